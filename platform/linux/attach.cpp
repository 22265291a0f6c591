#include "platform/linux/attach.hpp"

#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
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

Result<UniqueFd> enterContainer(int pidfd, const std::string& rootfs, const AfterEnter& afterEnter) {
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

// The same, checked: umount2's errno when it fails.
Result<void> detachMountChecked(int procfd, int fd, const std::string& shown) {
    const std::string path = "self/fd/" + std::to_string(fd);
    UniqueFd cwd(::open(".", O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (::fchdir(procfd) != 0) return failErrno("detaching " + shown + " in the container");
    const int rc = ::umount2(path.c_str(), MNT_DETACH);
    const int saved = errno;
    const bool restored = !cwd || ::fchdir(cwd.get()) == 0;
    if (rc != 0) return failCode(saved, "detaching " + shown + " in the container");
    if (!restored) return failErrno("restoring the cwd after detaching " + shown);
    return {};
}

struct Found {
    dev_t dev = 0;
    ino_t ino = 0;
    bool mountRoot = false;
};

Result<Found> inspect(int fd, const std::string& shown) {
    struct statx stx {};
    if (::statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_INO, &stx) != 0)
        return failErrno("inspecting " + shown + " in the container");
    Found f;
    f.dev = makedev(stx.stx_dev_major, stx.stx_dev_minor);
    f.ino = static_cast<ino_t>(stx.stx_ino);
    f.mountRoot = (stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) && (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT);
    return f;
}

std::string relativeOf(const std::string& target) {
    const auto first = target.find_first_not_of('/');
    return first == std::string::npos ? "." : target.substr(first);
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
                        AfterEnter afterEnter, dev_t ourDev) {
    auto proc = openProc();
    if (!proc) return tl::unexpected(proc.error());
    auto root = enterContainer(pidfd, rootfs, afterEnter);
    if (!root) return tl::unexpected(root.error());
    const std::string relative = relativeOf(target);
    UniqueFd top(sysOpenat2(root->get(), relative.c_str(), O_PATH,
                            RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS));
    if (!top) return failErrno("resolving " + target + " in the container");
    if (ourDev != 0) {
        auto found = inspect(top.get(), target);
        if (!found) return tl::unexpected(found.error());
        if (found->dev != ourDev || !found->mountRoot)
            return fail(target + " in the container is no longer our secret's mount: left as it is");
    }
    if (::move_mount(fd, "", top.get(), "",
                     MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH | kMoveMountBeneath) != 0)
        return failErrno("mounting the new " + target + " beneath the old one");
    detachMount(proc->get(), top.get());
    return {};
}

// A container controls its own tree: the target may now be a symlink to
// elsewhere in its root, or carry a mount of its own on top of ours. The
// lookup stays in its root (RESOLVE_IN_ROOT, no magic links), and only a
// mount root showing our very file (device and inode of the view's tmpfs,
// which no other filesystem shares) is detached, through the fd we
// checked (/proc/self/fd names exactly that mount: no path is resolved
// twice).
Result<void> detachFile(int pidfd, const std::string& rootfs, const std::string& target, FileIdentity ours,
                        AfterEnter afterEnter) {
    auto proc = openProc();
    if (!proc) return tl::unexpected(proc.error());
    auto root = enterContainer(pidfd, rootfs, afterEnter);
    if (!root) return tl::unexpected(root.error());
    const std::string relative = relativeOf(target);
    // A few rounds: mounts of ours stacked at the target (a rebind that
    // was interrupted) go too; anything else ends the loop.
    for (int round = 0; round < 4; ++round) {
        UniqueFd at(sysOpenat2(root->get(), relative.c_str(), O_PATH, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS));
        if (!at) {
            if (round > 0 && errno == ENOENT) return {};
            return failErrno("resolving " + target + " in the container");
        }
        auto found = inspect(at.get(), target);
        if (!found) return tl::unexpected(found.error());
        if (found->dev != ours.dev || found->ino != ours.ino || !found->mountRoot) {
            if (round > 0) return {};
            return fail(target + " in the container is no longer our secret's mount: left as it is");
        }
        if (auto ok = detachMountChecked(proc->get(), at.get(), target); !ok) return ok;
    }
    return {};
}

}  // namespace secretshim::platform
