#include "platform/linux/confine.hpp"

#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <span>
#include <string>

#include "seccomp_filters.hpp"  // generated: seccomp_filter_gen.cpp

namespace secretshim::platform {
namespace {

constexpr int kKeep[] = {CAP_SYS_ADMIN, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH};

bool kept(int cap) {
    for (int k : kKeep)
        if (k == cap) return true;
    return false;
}

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

// The allow-lists and why each call is there: seccomp_filter_gen.cpp,
// which compiles them with libseccomp at build time. Loading the program
// as it is saves building it in every hook (~0.1 ms). Through prctl(), not
// seccomp(2): the agent's unit filter (SystemCallFilter=@system-service)
// refuses seccomp(2) but allows prctl(), as libseccomp's fallback knew.
Result<void> installFilter(std::span<const sock_filter> program) {
    const sock_fprog prog{static_cast<unsigned short>(program.size()), const_cast<sock_filter*>(program.data())};
    if (::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) != 0)
        return failErrno("loading the seccomp filter");
    return {};
}

Result<void> confine(std::span<const sock_filter> program) {
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return failErrno("setting no_new_privs");
    if (auto ok = dropCapabilities(); !ok) return ok;
    return installFilter(program);
}

}  // namespace

#if defined(__SANITIZE_ADDRESS__)
Result<void> confineForAttach() { return confine(seccomp_filters::kAttachFilterSanitizer); }
Result<void> confineForReadopt() { return confine(seccomp_filters::kReadoptFilterSanitizer); }
#else
Result<void> confineForAttach() { return confine(seccomp_filters::kAttachFilter); }
Result<void> confineForReadopt() { return confine(seccomp_filters::kReadoptFilter); }
#endif

}  // namespace secretshim::platform
