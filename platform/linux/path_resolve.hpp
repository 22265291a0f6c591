// Opens a mount point inside an untrusted root filesystem. Every lookup is
// scoped to the rootfs with openat2(RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS),
// so no symlink, ".." or magic link the image planted can lead outside it
// (the bug class of runc CVE-2021-30465). Missing parents and placeholder
// files are created through directory fds, never by a path string.
#pragma once

#include <string_view>

#include "mountfs/base/error.hpp"
#include "platform/linux/unique_fd.hpp"

namespace secretshim::platform {

enum class MountPointKind { Directory, File };

// Returns an O_PATH fd of `target` (absolute, clean) inside `rootfd`,
// creating it and its parents if missing. Refuses a target that exists with
// the wrong type, that is the rootfs itself, or a dangling symlink. With
// rootReadOnly (the spec's root.readonly) nothing is created on the rootfs's
// own mount, only in other mounts (a /run tmpfs): runc makes the rootfs
// read-only after the createRuntime hooks and crun before them; neither
// may see the image changed.
Result<UniqueFd> openMountPoint(int rootfd, std::string_view target, MountPointKind kind,
                                bool rootReadOnly = false);

}  // namespace secretshim::platform
