#include "platform/linux/confine.hpp"

#include <linux/capability.h>
#include <seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <span>

namespace secretshim::platform {
namespace {

constexpr int kKeep[] = {CAP_SYS_ADMIN, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH};

bool kept(int cap) {
    for (int k : kKeep)
        if (k == cap) return true;
    return false;
}

// Each entry and why the attach phase needs it. The same list confines the
// hook (plugin/hook/main.cpp) and the agent's helpers that enter a
// container to attach or rebind (TmpfsView::attach, update, via
// helper_process.cpp, which has already closed every inherited fd and set
// no_new_privs); the re-adopting helper adds kReadoptAllowed below.
constexpr int kAllowed[] = {
    SCMP_SYS(openat),       // /proc, the rootfs, placeholders (O_CREAT|O_EXCL|O_NOFOLLOW)
    SCMP_SYS(openat2),      // every lookup inside the rootfs (RESOLVE_IN_ROOT)
    SCMP_SYS(mkdirat),      // missing parents of a target
    SCMP_SYS(fstat),        // type and identity checks of resolved targets
    SCMP_SYS(newfstatat),   // glibc's fstat()
    SCMP_SYS(statx),
    SCMP_SYS(move_mount),   // the attach itself
    SCMP_SYS(umount2),      // rolling back a partial attach
    SCMP_SYS(fchdir),       // naming a mount through /proc/self/fd for umount2
    SCMP_SYS(close),
    SCMP_SYS(sendmsg),      // reporting to the agent
    SCMP_SYS(recvmsg),
    SCMP_SYS(write),        // the one error line on stderr
    SCMP_SYS(brk),          // the allocator
    SCMP_SYS(mmap),
    SCMP_SYS(munmap),
    SCMP_SYS(mremap),
    SCMP_SYS(madvise),
    SCMP_SYS(futex),        // libstdc++ locks, uncontended
    SCMP_SYS(rt_sigprocmask),
    SCMP_SYS(rt_sigreturn),
    SCMP_SYS(exit),
    SCMP_SYS(exit_group),
};

// Added for the re-adopting helper (TmpfsView::adopt), which checks and
// clones the mounts it finds at each target.
constexpr int kReadoptAllowed[] = {
    SCMP_SYS(open_tree),      // cloning our attached mount
    SCMP_SYS(mount_setattr),  // clearing read-only on the detached clone
    SCMP_SYS(fstatfs),        // checking it is a tmpfs
};

// What the sanitizer runtimes call after confinement, in sanitizer builds
// only: ASan's sigaltstack() before every noreturn call, UBSan's pipe2() and
// write() that probe a vptr, getpid() and readlink() in their reports.
#if defined(__SANITIZE_ADDRESS__)
constexpr int kSanitizerAllowed[] = {SCMP_SYS(sigaltstack), SCMP_SYS(pipe2), SCMP_SYS(getpid),
                                     SCMP_SYS(readlink)};
#endif

struct FilterDeleter {
    void operator()(void* ctx) const { seccomp_release(ctx); }
};

Result<void> dropCapabilities() {
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2] = {};
    if (::syscall(SYS_capget, &header, data) != 0) return failErrno("reading capabilities");
    // The bounding set first: dropping from it needs CAP_SETPCAP, which
    // capset() below takes away. A process without it (the agent under its
    // systemd unit) keeps its bounding set: with no_new_privs set, an
    // execve could gain nothing beyond the permitted set capset() leaves,
    // and the filter allows no execve.
    if (data[CAP_SETPCAP / 32].effective & (1u << (CAP_SETPCAP % 32)))
        for (int cap = 0; cap <= CAP_LAST_CAP; ++cap)
            if (!kept(cap) && ::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL)
                return failErrno("dropping capability " + std::to_string(cap) + " from the bounding set");
    (void)::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    data[0] = data[1] = {};
    for (int cap : kKeep) {
        data[cap / 32].effective |= 1u << (cap % 32);
        data[cap / 32].permitted |= 1u << (cap % 32);
    }
    if (::syscall(SYS_capset, &header, data) != 0) return failErrno("dropping capabilities");
    return {};
}

Result<void> installFilter(std::span<const int> extra) {
    std::unique_ptr<void, FilterDeleter> ctx(seccomp_init(SCMP_ACT_ERRNO(EPERM)));
    if (!ctx) return fail("seccomp_init failed");
    for (std::span<const int> list : {std::span<const int>(kAllowed), extra})
        for (int call : list) {
            const int rc = seccomp_rule_add(ctx.get(), SCMP_ACT_ALLOW, call, 0);
            if (rc != 0) return failCode(-rc, "adding a seccomp rule");
        }
#if defined(__SANITIZE_ADDRESS__)
    for (int call : kSanitizerAllowed) {
        const int rc = seccomp_rule_add(ctx.get(), SCMP_ACT_ALLOW, call, 0);
        if (rc != 0) return failCode(-rc, "adding a seccomp rule");
    }
#endif
    if (const int rc = seccomp_load(ctx.get()); rc != 0) return failCode(-rc, "loading the seccomp filter");
    return {};
}

Result<void> confine(std::span<const int> extra) {
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return failErrno("setting no_new_privs");
    if (auto ok = dropCapabilities(); !ok) return ok;
    return installFilter(extra);
}

}  // namespace

Result<void> confineForAttach() { return confine({}); }

Result<void> confineForReadopt() { return confine(kReadoptAllowed); }

}  // namespace secretshim::platform
