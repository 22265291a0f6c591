#include "platform/linux/mount_api.hpp"

#include <sys/syscall.h>
#include <unistd.h>

namespace secretshim::platform {

int sysPidfdOpen(int pid, unsigned flags) {
    return static_cast<int>(::syscall(SYS_pidfd_open, pid, flags));
}

int sysOpenat2(int dirfd, const char* path, std::uint64_t flags, std::uint64_t resolve) {
    open_how how{};
    how.flags = flags | O_CLOEXEC;
    how.resolve = resolve;
    return static_cast<int>(::syscall(SYS_openat2, dirfd, path, &how, sizeof how));
}

int sysMountSetattr(int dirfd, const char* path, unsigned flags, std::uint64_t set,
                    std::uint64_t clear) {
    mount_attr attr{};
    attr.attr_set = set;
    attr.attr_clr = clear;
    return static_cast<int>(::syscall(SYS_mount_setattr, dirfd, path, flags, &attr, sizeof attr));
}

}  // namespace secretshim::platform
