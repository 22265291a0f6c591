#include "platform/linux/attach.hpp"

#include <sched.h>
#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <vector>

#include "platform/linux/mount_api.hpp"
#include "platform/linux/path_resolve.hpp"
#include "platform/linux/unique_fd.hpp"

namespace secretshim::platform {
namespace {

// After setns() our /proc may belong to another pid namespace, where
// /proc/self does not exist: keep the host's /proc to name our own fds.
Result<UniqueFd> openProc() {
    UniqueFd proc(::open("/proc", O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!proc) return failErrno("opening /proc");
    return proc;
}

Result<UniqueFd> enterContainer(int pidfd, const std::string& rootfs, AfterEnter afterEnter = nullptr) {
    if (::setns(pidfd, CLONE_NEWNS) != 0)
        return failErrno("entering the container's mount namespace");
    if (afterEnter)
        if (auto ok = afterEnter(); !ok) return tl::unexpected(ok.error());
    // Only an fd opened after setns() can be a move_mount() target there.
    UniqueFd root(::open(rootfs.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!root) return failErrno("opening the container's rootfs " + rootfs);
    return root;
}

// Detaches the mount that `fd` is the root of: umount2() takes a path, and
// /proc/self/fd/N names exactly that mount.
void detachMount(int procfd, int fd) {
    const std::string path = "self/fd/" + std::to_string(fd);
    UniqueFd cwd(::open(".", O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (::fchdir(procfd) == 0) (void)::umount2(path.c_str(), MNT_DETACH);
    // Best effort: nothing after this resolves a path against the cwd.
    if (cwd && ::fchdir(cwd.get()) != 0) return;
}

}  // namespace

Result<void> attachMounts(int pidfd, const std::string& rootfs, std::span<const MountSource> sources,
                          AfterEnter afterEnter, bool rootReadOnly) {
    auto proc = openProc();
    if (!proc) return tl::unexpected(proc.error());
    auto root = enterContainer(pidfd, rootfs, afterEnter);
    if (!root) return tl::unexpected(root.error());

    std::vector<const MountSource*> order;
    for (const auto& s : sources) order.push_back(&s);
    std::stable_partition(order.begin(), order.end(), [](const MountSource* s) { return s->directory; });

    std::vector<int> attached;
    for (const MountSource* s : order) {
        auto point = openMountPoint(root->get(), s->target,
                                    s->directory ? MountPointKind::Directory : MountPointKind::File, rootReadOnly);
        Result<void> result;
        if (!point)
            result = tl::unexpected(point.error());
        else if (::move_mount(s->fd, "", point->get(), "",
                              MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) != 0)
            result = failErrno("mounting secrets on " + s->target + " in the container");
        if (!result) {
            for (auto it = attached.rbegin(); it != attached.rend(); ++it) detachMount(proc->get(), *it);
            return result;
        }
        attached.push_back(s->fd);
    }
    return {};
}

Result<void> rebindFile(int pidfd, const std::string& rootfs, const std::string& target, int fd,
                        AfterEnter afterEnter) {
    auto proc = openProc();
    if (!proc) return tl::unexpected(proc.error());
    auto root = enterContainer(pidfd, rootfs, afterEnter);
    if (!root) return tl::unexpected(root.error());
    std::string relative = target.substr(target.find_first_not_of('/'));
    UniqueFd top(sysOpenat2(root->get(), relative.c_str(), O_PATH,
                            RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS));
    if (!top) return failErrno("resolving " + target + " in the container");
    if (::move_mount(fd, "", top.get(), "",
                     MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH | kMoveMountBeneath) != 0)
        return failErrno("mounting the new " + target + " beneath the old one");
    detachMount(proc->get(), top.get());
    return {};
}

}  // namespace secretshim::platform
