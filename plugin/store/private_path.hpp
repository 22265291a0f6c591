// Opening the agent's own files and directories in the state directory:
// never through a symlink, and only when nobody but the agent's own uid can
// read or replace them.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "mountfs/base/error.hpp"
#include "platform/linux/unique_fd.hpp"

namespace secretshim::plugin {

using platform::UniqueFd;

enum class DirAccess {
    any,        // e.g. a state directory whose mode the package chose
    ownerOnly,  // owned by the effective uid, no group or other bits
};

// Opens directory `name` relative to dirFd (AT_FDCWD for a plain path),
// creating it with mode 0700 when missing (one level, not its parents).
// `label` names it in errors, e.g. "secrets directory /var/lib/x/secrets".
Result<UniqueFd> openOrCreateDir(int dirFd, const std::string& name, const std::string& label,
                                 DirAccess access);

struct OpenedFile {
    UniqueFd fd;
    std::uint64_t size = 0;
};

// Opens regular file `name` in dirFd for reading. Refuses a symlink, a
// file that is not regular, one with group or other bits, or one not owned
// by the effective uid. A missing file gives Error{ENOENT, "<label> does
// not exist"}.
Result<OpenedFile> openPrivateFile(int dirFd, const std::string& name, const std::string& label);

// A file that holds a secret but that another program reads by path (a TLS
// key OpenSSL loads, a password file): a regular file (symlinks followed:
// certificate tools link keys), owned by the effective uid, with no group
// or other bits; "<label> is accessible by group or others (mode 0644);
// expected 0600" otherwise.
Result<void> checkPrivateFile(const std::string& path, const std::string& label);

// Reads exactly out.size() bytes from the current offset.
Result<void> readExact(int fd, std::span<unsigned char> out, const std::string& label);

// The whole of a small text file of the agent's (openPrivateFile()'s checks;
// a missing file is its Error{ENOENT, ...}); "<label> is too large" beyond
// `maxSize` bytes.
Result<std::string> readPrivateText(int dirFd, const std::string& name, const std::string& label,
                                    std::uint64_t maxSize);

}  // namespace secretshim::plugin
