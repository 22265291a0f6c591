#include "platform/linux/mount_api.hpp"

#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <string>

namespace secretshim::platform {

int sysPidfdOpen(int pid, unsigned flags) {
    return static_cast<int>(::syscall(SYS_pidfd_open, pid, flags));
}

int sysOpenat2(int dirfd, const char* path, std::uint64_t flags, std::uint64_t resolve) {
    open_how how{};
    how.flags = flags | O_CLOEXEC;
    how.resolve = resolve;
    // With RESOLVE_IN_ROOT or RESOLVE_BENEATH the kernel answers EAGAIN when
    // a rename anywhere raced a ".." walk and it cannot prove the walk stayed
    // inside; openat2(2) says to retry. A volume whose directories are
    // renamed in a loop (tests/integration/hostile_runc.sh race) saw it in
    // about one start in ten, and a busy node that mounts elsewhere sees it
    // too; the retries make it rare, and the error stays EAGAIN if they all
    // lose.
    int fd = -1;
    for (int attempt = 0; attempt < 64; ++attempt) {
        fd = static_cast<int>(::syscall(SYS_openat2, dirfd, path, &how, sizeof how));
        if (fd >= 0 || errno != EAGAIN) break;
    }
    return fd;
}

int sysMountSetattr(int dirfd, const char* path, unsigned flags, std::uint64_t set,
                    std::uint64_t clear) {
    mount_attr attr{};
    attr.attr_set = set;
    attr.attr_clr = clear;
    return static_cast<int>(::syscall(SYS_mount_setattr, dirfd, path, flags, &attr, sizeof attr));
}

Result<UniqueFd> readOnlyClone(int dirfd, const char* path) {
    UniqueFd clone(::open_tree(dirfd, path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_SYMLINK_NOFOLLOW));
    if (!clone) return failErrno(std::string("cloning the view's ") + path);
    if (sysMountSetattr(clone.get(), "", AT_EMPTY_PATH, MOUNT_ATTR_RDONLY, 0) != 0)
        return failErrno(std::string("making the view's ") + path + " read-only");
    return clone;
}

}  // namespace secretshim::platform
