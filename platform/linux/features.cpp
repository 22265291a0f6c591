#include "platform/linux/features.hpp"

#include <sched.h>
#include <sys/mount.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>

#include "platform/linux/mount_api.hpp"
#include "platform/linux/unique_fd.hpp"

namespace secretshim::platform {
namespace {

UniqueFd tmpfsContext() { return UniqueFd(::fsopen("tmpfs", FSOPEN_CLOEXEC)); }

UniqueFd detachedTmpfs() {
    UniqueFd ctx = tmpfsContext();
    if (!ctx) return {};
    if (::fsconfig(ctx.get(), FSCONFIG_SET_STRING, "size", "4k", 0) != 0 ||
        ::fsconfig(ctx.get(), FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) != 0)
        return {};
    return UniqueFd(::fsmount(ctx.get(), FSMOUNT_CLOEXEC, 0));
}

}  // namespace

KernelFeatures probeKernelFeatures() {
    KernelFeatures f;
    UniqueFd mnt = detachedTmpfs();
    f.newMountApi = mnt.valid();

    UniqueFd root(sysOpenat2(AT_FDCWD, "/", O_PATH, RESOLVE_IN_ROOT));
    f.openat2 = root.valid();

    // setns() on a pidfd is EINVAL before 5.8; joining our own UTS
    // namespace changes nothing.
    UniqueFd self(sysPidfdOpen(::getpid(), 0));
    f.pidfdSetns = self && (::setns(self.get(), CLONE_NEWUTS) == 0 || errno == EPERM);

    f.mountSetattr = sysMountSetattr(-1, "", AT_EMPTY_PATH, 0, 0) == 0 || errno != ENOSYS;

    if (UniqueFd ctx = tmpfsContext())
        f.tmpfsNoswap = ::fsconfig(ctx.get(), FSCONFIG_SET_FLAG, "noswap", nullptr, 0) == 0;

    // Unknown move_mount flags are EINVAL before any fd is looked at.
    f.moveMountBeneath =
        ::move_mount(-1, "", -1, "",
                     MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH | kMoveMountBeneath) != 0 &&
        errno == EBADF;

    if (mnt) {
        UniqueFd clone(::open_tree(mnt.get(), "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH));
        f.detachedClone = clone.valid();
    }
    return f;
}

std::string initOnFree() {
    std::ifstream cmdline("/proc/cmdline");
    std::string word;
    std::string found;
    while (cmdline >> word) {
        if (word == "--") break;  // what follows is init's, not the kernel's
        if (word == "init_on_free=1" || word == "init_on_free=on") found = "on";
        if (word == "init_on_free=0" || word == "init_on_free=off") found = "off";
    }
    if (!found.empty()) return found;
    utsname u{};
    if (::uname(&u) != 0) return "unknown";
    std::ifstream config(std::string("/boot/config-") + u.release);
    for (std::string line; std::getline(config, line);) {
        if (line == "CONFIG_INIT_ON_FREE_DEFAULT_ON=y") return "on";
        if (line == "# CONFIG_INIT_ON_FREE_DEFAULT_ON is not set") return "off";
    }
    return "unknown";
}

const KernelFeatures& kernelFeatures() {
    static const KernelFeatures features = probeKernelFeatures();
    return features;
}

std::string KernelFeatures::describe() const {
    const auto yn = [](bool b) { return b ? "yes" : "no"; };
    std::string s;
    s += "new-mount-api=" + std::string(yn(newMountApi));
    s += " openat2=" + std::string(yn(openat2));
    s += " pidfd-setns=" + std::string(yn(pidfdSetns));
    s += " mount-setattr=" + std::string(yn(mountSetattr));
    s += " tmpfs-noswap=" + std::string(yn(tmpfsNoswap));
    s += " move-mount-beneath=" + std::string(yn(moveMountBeneath));
    s += " detached-clone=" + std::string(yn(detachedClone));
    return s;
}

}  // namespace secretshim::platform
