// Files of the agent's state directory on Windows (node key, secret
// records, task records): created under the Administrators-and-SYSTEM
// DACL, written whole under a temporary name and renamed into place, so a
// crash leaves the old file or the new one, never a torn one. Paths are
// "\\?\" paths (no Win32 normalization: "CON.secret" is a file there).
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "mountfs/base/error.hpp"
#include "platform/windows/security_descriptor.hpp"
#include "plugin/store/secure_buffer.hpp"

namespace secretshim::plugin {

// An absolute "\\?\" form of a directory given on the command line.
Result<std::wstring> absoluteDirectory(std::string_view path);
// What to make of a directory that is already there.
enum class ExistingDirectory {
    // Refused unless owned by Administrators or SYSTEM with a DACL that
    // allows only them: someone else could have planted a key or a record.
    mustBePrivate,
    // Used as it is: inside a directory already checked, or in a test
    // under wine (which reports no real owners or ACLs).
    asItIs,
};
// Creates the directory with `descriptor` if it is missing; refuses a file
// or a reparse point there, and checks an existing one as `existing` says.
Result<void> ensurePrivateDirectory(const std::wstring& path, const platform::SecurityDescriptor& descriptor,
                                    ExistingDirectory existing);
// The whole file, at most maxBytes. A missing file is code ERROR_FILE_NOT_FOUND.
Result<SecureBuffer> readWholeFile(const std::wstring& path, std::size_t maxBytes);
// Writes a temporary file next to `path` and renames it there. Without
// `replace`, an existing `path` is refused with code ERROR_ALREADY_EXISTS.
Result<void> writeFileAtomically(const std::wstring& path, std::span<const unsigned char> data,
                                 const platform::SecurityDescriptor& descriptor, bool replace);
// Names (not paths) of the regular files in `dir` ending in `suffix`.
Result<std::vector<std::wstring>> listFileNames(const std::wstring& dir, std::wstring_view suffix);
// Deletes a file; a missing one is not an error. Returns whether it existed.
Result<bool> removeFileIfPresent(const std::wstring& path);

}  // namespace secretshim::plugin
