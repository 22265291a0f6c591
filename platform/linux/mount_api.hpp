// Thin wrappers over the kernel calls glibc 2.36 lacks or hides, and the
// constants its headers do not have yet.
#pragma once

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/mount.h>

#include <cstdint>

#include "mountfs/base/error.hpp"
#include "platform/linux/unique_fd.hpp"

namespace secretshim::platform {

#ifndef MOVE_MOUNT_BENEATH
inline constexpr unsigned kMoveMountBeneath = 0x00000200;  // Linux 6.5
#else
inline constexpr unsigned kMoveMountBeneath = MOVE_MOUNT_BENEATH;
#endif

// glibc 2.36's <sys/pidfd.h> lacks extern "C" and cannot be used from C++.
int sysPidfdOpen(int pid, unsigned flags);
int sysOpenat2(int dirfd, const char* path, std::uint64_t flags, std::uint64_t resolve);
int sysMountSetattr(int dirfd, const char* path, unsigned flags, std::uint64_t set,
                    std::uint64_t clear);

// A detached read-only clone of the mount at `path` below `dirfd` (a view's
// dir/ or one of its files), never following a final symbolic link.
Result<UniqueFd> readOnlyClone(int dirfd, const char* path);

}  // namespace secretshim::platform
