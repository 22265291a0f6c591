// Attaching a view's read-only mounts inside a container. The hook calls
// attachMounts() directly (it is single-threaded and exits afterwards); a
// long-lived process goes through runInHelper().
#pragma once

#include <span>
#include <string>

#include "mountfs/error.hpp"

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
using AfterEnter = Result<void> (*)();

// Enters the mount namespace of `pidfd` (changing the calling process for
// good), opens `rootfs` there and moves each source onto its target,
// directory mounts first. On failure, detaches what it had attached.
Result<void> attachMounts(int pidfd, const std::string& rootfs, std::span<const MountSource> sources,
                          AfterEnter afterEnter = nullptr, bool rootReadOnly = false);

// Replaces the single-file mount at `target` by `fd` without a moment where
// the target shows nothing: mounts `fd` beneath the current mount
// (MOVE_MOUNT_BENEATH, 6.5+), then detaches the old one. Same namespace
// rules as attachMounts().
Result<void> rebindFile(int pidfd, const std::string& rootfs, const std::string& target, int fd,
                        AfterEnter afterEnter = nullptr);

}  // namespace secretshim::platform
