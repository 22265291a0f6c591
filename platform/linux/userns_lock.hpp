// Mount flags a container cannot clear. The kernel locks a mount's
// ro/nosuid/nodev/noexec/atime flags (MNT_LOCK_*) only where it copies a
// mount namespace into a less privileged user namespace; a mount moved into
// a container's namespace is not locked, so a container whose root holds
// CAP_SYS_ADMIN in its own user namespace could remount its view
// read-write. Going through such a copy locks ours too.
#pragma once

#include <sys/types.h>

#include <span>
#include <vector>

#include "mountfs/base/error.hpp"
#include "platform/linux/attach.hpp"
#include "platform/linux/unique_fd.hpp"

namespace secretshim::platform {

// Whether the process `pid` lives in a user namespace other than ours.
Result<bool> inOtherUserNamespace(pid_t pid);

// Returns, for each source, a detached clone with its flags locked. Stages
// the sources in a private mount namespace, enters the user namespace of
// `pidfd`, copies the mount namespace there (the kernel locks every mount
// of the copy) and clones the staged mounts. Changes the calling process
// for good: it is left in that user namespace and a private copy of the
// mount namespace. Single-threaded processes only (setns of a user
// namespace refuses others).
Result<std::vector<UniqueFd>> lockMountFlags(int pidfd, std::span<const MountSource> sources);

}  // namespace secretshim::platform
