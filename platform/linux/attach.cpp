#include "platform/linux/attach.hpp"

#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <fcntl.h>
#include <climits>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>
#include <vector>

#include "platform/linux/mount_api.hpp"
#include "platform/linux/path_resolve.hpp"
#include "platform/linux/read_all.hpp"
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
        if (auto ok = afterEnter(); !ok) return propagate(ok);
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
    if (rc != 0) return failErrno(saved, "detaching " + shown + " in the container");
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

// Where an fd leads, as the kernel names it (through the host's /proc kept
// from before setns(): "self" is this process there).
Result<std::string> pathOf(int procfd, int fd, const std::string& shown) {
    char buf[PATH_MAX];
    const ssize_t n = ::readlinkat(procfd, ("self/fd/" + std::to_string(fd)).c_str(), buf, sizeof buf);
    if (n < 0 || static_cast<std::size_t>(n) >= sizeof buf) return failErrno("naming " + shown + " in the container");
    return std::string(buf, static_cast<std::size_t>(n));
}

// What checkMountPoint() compares each mount point with, read once per
// attach: where the rootfs is, and the container's mount table (the points
// lie in mounts that were there before any of ours: a target under
// /run/secrets is served by the directory mount, never put inside it).
struct ContainerMounts {
    std::string root;       // the rootfs's path ("" for "/")
    std::string mountinfo;  // /proc/self/mountinfo in the container's namespace
};

Result<ContainerMounts> readContainerMounts(int procfd, int root) {
    ContainerMounts m;
    auto rootPath = pathOf(procfd, root, "the rootfs");
    if (!rootPath) return propagate(rootPath);
    m.root = *rootPath == "/" ? std::string() : *rootPath;
    UniqueFd info(::openat(procfd, "self/mountinfo", O_RDONLY | O_CLOEXEC));
    if (!info) return failErrno("reading the container's mounts");
    auto text = readAll(info.get(), 16 << 20, "the container's mounts");
    if (!text) return propagate(text);
    m.mountinfo = std::move(*text);
    return m;
}

// A mount point as it resolved, not as the target spelled it: an image's
// symlink (/run/secrets -> /proc/sys) must not put a mount under the
// container's /proc, /sys or /dev, which the string checks of the target
// cannot see; nor in a mount with shared propagation (a volume mounted
// rshared), where our mount would propagate to its peers, the host's
// mount of that volume too.
Result<void> checkMountPoint(int procfd, const ContainerMounts& mounts, int point, const std::string& target) {
    auto pointPath = pathOf(procfd, point, target);
    if (!pointPath) return propagate(pointPath);
    if (pointPath->compare(0, mounts.root.size() + 1, mounts.root + "/") != 0)
        return fail(target + " resolves outside the container's root: left as it is");
    const std::string inside = pointPath->substr(mounts.root.size());
    for (const char* dir : {"/proc", "/sys", "/dev"}) {
        const std::size_t n = std::char_traits<char>::length(dir);
        if (inside.compare(0, n, dir) == 0 && (inside.size() == n || inside[n] == '/'))
            return fail(target + " resolves to " + inside + " in the container, under " + dir);
    }
    struct statx stx {};
    if (::statx(point, "", AT_EMPTY_PATH, STATX_MNT_ID, &stx) != 0 || !(stx.stx_mask & STATX_MNT_ID))
        return failErrno("inspecting the mount of " + target + " in the container");
    const std::string id = std::to_string(stx.stx_mnt_id) + " ";
    const std::string& text = mounts.mountinfo;
    for (std::size_t at = 0; at < text.size();) {
        std::size_t end = text.find('\n', at);
        if (end == std::string::npos) end = text.size();
        const std::string_view line(text.data() + at, end - at);
        at = end + 1;
        if (line.compare(0, id.size(), id) != 0) continue;
        // mount-id parent-id major:minor root point options [optional fields...] - ...
        const auto dash = line.find(" - ");
        if (line.substr(0, dash).find(" shared:") != std::string_view::npos)
            return fail(target + " is in a mount with shared propagation (a volume?): a secret mounted there would "
                                 "appear outside the container");
        return {};
    }
    return fail("the mount of " + target + " is not in the container's mount table");
}

std::string relativeOf(const std::string& target) {
    const auto first = target.find_first_not_of('/');
    return first == std::string::npos ? "." : target.substr(first);
}

}  // namespace

Result<void> attachMounts(int pidfd, const std::string& rootfs, std::span<const MountSource> sources,
                          AfterEnter afterEnter, bool rootReadOnly) {
    auto proc = openProc();
    if (!proc) return propagate(proc);
    auto root = enterContainer(pidfd, rootfs, afterEnter);
    if (!root) return propagate(root);

    auto mounts = readContainerMounts(proc->get(), root->get());
    if (!mounts) return propagate(mounts);
    std::vector<const MountSource*> order;
    for (const auto& s : sources) order.push_back(&s);
    std::stable_partition(order.begin(), order.end(), [](const MountSource* s) { return s->directory; });

    std::vector<int> attached;
    for (const MountSource* s : order) {
        auto point = openMountPoint(root->get(), s->target,
                                    s->directory ? MountPointKind::Directory : MountPointKind::File, rootReadOnly);
        Result<void> result;
        if (!point)
            result = propagate(point);
        else if (auto ok = checkMountPoint(proc->get(), *mounts, point->get(), s->target); !ok)
            result = ok;
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
    if (!proc) return propagate(proc);
    auto root = enterContainer(pidfd, rootfs, afterEnter);
    if (!root) return propagate(root);
    const std::string relative = relativeOf(target);
    UniqueFd top(sysOpenat2(root->get(), relative.c_str(), O_PATH,
                            RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS));
    if (!top) return failErrno("resolving " + target + " in the container");
    if (ourDev != 0) {
        auto found = inspect(top.get(), target);
        if (!found) return propagate(found);
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
    if (!proc) return propagate(proc);
    auto root = enterContainer(pidfd, rootfs, afterEnter);
    if (!root) return propagate(root);
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
        if (!found) return propagate(found);
        if (found->dev != ours.dev || found->ino != ours.ino || !found->mountRoot) {
            if (round > 0) return {};
            return fail(target + " in the container is no longer our secret's mount: left as it is");
        }
        if (auto ok = detachMountChecked(proc->get(), at.get(), target); !ok) return ok;
    }
    return {};
}

}  // namespace secretshim::platform
