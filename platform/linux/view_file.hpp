// Reaching a file of one of our views without ever leaving it or waiting on
// it. A re-adopted view is whatever the container had mounted at its
// targets, so a flush must not trust its tree: the parent is resolved with
// openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
// RESOLVE_NO_XDEV), the file is opened from that parent fd with
// O_NONBLOCK | O_NOFOLLOW (a FIFO with no reader fails at once, one with a
// reader is opened without blocking, then refused), refused unless it is a
// regular file, and its name is unlinked from that same parent fd: a
// directory swapped for a symlink between two steps changes nothing.
#pragma once

#include <set>
#include <string>

#include "mountfs/base/error.hpp"
#include "platform/linux/unique_fd.hpp"

namespace secretshim::platform {

struct ViewFile {
    UniqueFd parent;   // the directory holding it, inside the view
    std::string name;  // its last component
    UniqueFd fd;       // open with the flags asked for, a regular file
};

// `path` is relative to `root` (a view's writable mount or directory fd).
// `flags` are the open flags (O_WRONLY, O_RDONLY); O_NONBLOCK, O_NOFOLLOW
// and O_CLOEXEC are always added.
Result<ViewFile> openViewFile(int root, const std::string& path, int flags);

// Refuses an open file that is not a regular file (a FIFO, a socket, a
// directory): "<shown> is not a regular file: left as it is".
Result<void> checkRegular(int fd, const std::string& shown);

// Overwrites a regular file's whole content with zeros, then truncates it.
Result<void> wipeFile(int fd);

// Zeroes the file a writable single-file mount shows, reached through the
// mount itself; only a regular file, never waited on (a re-adopted mount is
// the container's tree).
Result<void> wipeMounted(int mountFd);

// Zeroes the file at `path` (as openViewFile reaches it), then unlinks its
// name from the parent it was found in.
Result<void> wipeAndUnlink(int root, const std::string& path);

// Zeroes and unlinks every regular file below `root` whose path (relative
// to `root`, as ViewEntry::file spells it) is not in `keep`, each as
// wipeAndUnlink() does it; directories are descended into through the same
// resolution (never a symbolic link, never another mount), one open at a
// time however deep. Anything else (a FIFO, a symbolic link) is left, and
// counts as an error. Tries every file; returns how many it wiped, or the
// first error.
Result<std::size_t> wipeTree(int root, const std::set<std::string>& keep = {});

}  // namespace secretshim::platform
