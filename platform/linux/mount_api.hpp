// Thin wrappers over the kernel calls glibc 2.36 lacks or hides, and the
// constants its headers do not have yet.
#pragma once

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/mount.h>

#include <cstdint>

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

}  // namespace secretshim::platform
