// Attaching a view's read-only mounts inside a container. The hook calls
// attachMounts() directly (it is single-threaded and exits afterwards); a
// long-lived process goes through runInHelper().
#pragma once

#include <sys/types.h>

#include <functional>
#include <span>
#include <string>

#include "mountfs/base/error.hpp"

namespace secretshim::platform {

struct MountSource {
    std::string target;   // absolute path inside the container
    int fd = -1;          // a detached, read-only mount
    bool directory = false;
};

// Runs once the process is inside the container's mount namespace and
// before it looks at the container's files (the hook confines itself
// there: setns() on another root process needs ptrace access, so it must
// come first).
// (A std::function: the agent's helpers also clone there what only a process
// inside may clone, tmpfs_view_live.cpp.)
using AfterEnter = std::function<Result<void>()>;

// Enters the mount namespace of `pidfd` (changing the calling process for
// good), opens `rootfs` there and moves each source onto its target,
// directory mounts first. On failure, detaches what it had attached.
Result<void> attachMounts(int pidfd, const std::string& rootfs, std::span<const MountSource> sources,
                          AfterEnter afterEnter = nullptr, bool rootReadOnly = false);

// Replaces the single-file mount at `target` by `fd` without a moment where
// the target shows nothing: mounts `fd` beneath the current mount
// (MOVE_MOUNT_BENEATH, 6.5+), then detaches the old one. With `ourDev` set,
// the mount found at `target` must be a mount root on that device (the
// view's tmpfs), else nothing is touched. Same namespace rules as
// attachMounts().
Result<void> rebindFile(int pidfd, const std::string& rootfs, const std::string& target, int fd,
                        AfterEnter afterEnter = nullptr, dev_t ourDev = 0);

// Which file of ours a single-file mount shows (the view's tmpfs file).
struct FileIdentity {
    dev_t dev = 0;
    ino_t ino = 0;
};

// Detaches the single-file mount at `target` (resolved in the container's
// root, as at attach) if, and only if, it is a mount of `ours`: a mount
// root with our file's device and inode. A container that put a symlink or
// a mount of its own there gets an error and keeps its mounts. Repeats for
// mounts of ours stacked there. Same namespace rules as attachMounts().
Result<void> detachFile(int pidfd, const std::string& rootfs, const std::string& target, FileIdentity ours,
                        AfterEnter afterEnter = nullptr);

}  // namespace secretshim::platform
