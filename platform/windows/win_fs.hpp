// The file-system calls the Windows view makes, behind an interface so the
// view's logic (links, ACLs, refusal of reparse points) is tested against a
// fake: wine 8 neither creates symbolic links nor applies ACLs. RealWinFs
// makes the Win32 calls. Paths are absolute host paths in "\\?\" form (no
// Win32 normalization: "..", trailing dots and "/" are taken literally).
//
// No call follows a reparse point at the path's last component; callers
// check every component above it (container_path.hpp).
#pragma once

#include <string>
#include <vector>

#include "mountfs/base/error.hpp"
#include "mountfs/secrets_view.hpp"
#include "platform/windows/security_descriptor.hpp"
#include "platform/windows/unique_handle.hpp"

namespace secretshim::platform {

// What is at a path, seen without following a reparse point there.
struct Node {
    bool exists = false;
    bool directory = false;
    bool reparsePoint = false;  // a symbolic link, junction or mount point
    // With pin: an open handle that keeps the entry from being renamed or
    // deleted (no FILE_SHARE_DELETE) until it is released. Fakes leave it
    // empty.
    UniqueHandle pin;
};

struct DirEntry {
    std::wstring name;
    bool directory = false;
    bool reparsePoint = false;
};

class WinFs {
public:
    virtual ~WinFs() = default;

    // A missing entry or parent is `exists == false`, not an error.
    virtual Result<Node> openNode(const std::wstring& path, bool pin) = 0;
    // Fails if the path exists. `descriptor` may be null (inherit).
    virtual Result<void> createDirectory(const std::wstring& path, const SecurityDescriptor* descriptor) = 0;
    // Replaces the DACL of an existing directory (protected: no inheritance).
    virtual Result<void> protectDirectory(const std::wstring& path, const SecurityDescriptor& descriptor) = 0;
    // The entries except "." and "..".
    virtual Result<std::vector<DirEntry>> listDirectory(const std::wstring& path) = 0;
    // Creates a new file (fails if the name exists, as a link too), writes
    // `data` and flushes it. A partial file is removed on failure.
    virtual Result<void> createFile(const std::wstring& path, mountfs::Bytes data,
                                    const SecurityDescriptor* descriptor) = 0;
    virtual Result<void> createHardLink(const std::wstring& link, const std::wstring& existing) = 0;
    // Renames `from` over `to` in one step (MoveFileExW REPLACE_EXISTING).
    virtual Result<void> replaceFile(const std::wstring& from, const std::wstring& to) = 0;
    // Overwrites a regular file's content with zeros and flushes it. With
    // onlyIfUnused, returns false (and changes nothing) when another handle
    // has the file open, so a reader never sees a value turn into zeros.
    virtual Result<bool> wipeFile(const std::wstring& path, bool onlyIfUnused) = 0;
    // Deletes a file, or a file symbolic link itself (never its target).
    virtual Result<void> deleteFile(const std::wstring& path) = 0;
    // Removes an empty directory, or a directory reparse point itself.
    virtual Result<void> removeDirectory(const std::wstring& path) = 0;
    // Creates a file symbolic link at `link` whose text is `text`, and
    // checks that it exists afterwards.
    virtual Result<void> createSymlink(const std::wstring& link, const std::wstring& text) = 0;
};

}  // namespace secretshim::platform
