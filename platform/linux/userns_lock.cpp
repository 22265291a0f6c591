#include "platform/linux/userns_lock.hpp"

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

namespace secretshim::platform {
namespace {

// Where the staging tmpfs goes in the private namespace: any directory.
constexpr const char* kStagingPoints[] = {"/tmp", "/run", "/mnt", "/"};

Result<UniqueFd> stagingTmpfs() {
    UniqueFd ctx(::fsopen("tmpfs", FSOPEN_CLOEXEC));
    if (!ctx) return failErrno("fsopen(tmpfs) for staging");
    if (::fsconfig(ctx.get(), FSCONFIG_SET_STRING, "size", "64k", 0) != 0 ||
        ::fsconfig(ctx.get(), FSCONFIG_SET_STRING, "mode", "0700", 0) != 0 ||
        ::fsconfig(ctx.get(), FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) != 0)
        return failErrno("creating the staging tmpfs");
    UniqueFd mnt(::fsmount(ctx.get(), FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC));
    if (!mnt) return failErrno("fsmount(tmpfs) for staging");
    return mnt;
}

}  // namespace

Result<bool> inOtherUserNamespace(pid_t pid) {
    struct stat theirs {}, ours {};
    const std::string path = "/proc/" + std::to_string(pid) + "/ns/user";
    if (::stat(path.c_str(), &theirs) != 0) return failErrno("inspecting the container's user namespace");
    if (::stat("/proc/self/ns/user", &ours) != 0) return failErrno("inspecting our user namespace");
    return theirs.st_dev != ours.st_dev || theirs.st_ino != ours.st_ino;
}

Result<std::vector<UniqueFd>> lockMountFlags(int pidfd, std::span<const MountSource> sources) {
    // A private copy of our namespace: nothing staged propagates anywhere.
    if (::unshare(CLONE_NEWNS) != 0) return failErrno("creating a staging mount namespace");
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
        return failErrno("making the staging mounts private");
    auto staging = stagingTmpfs();
    if (!staging) return propagate(staging);
    for (std::size_t i = 0; i < sources.size(); ++i) {
        const std::string name = std::to_string(i);
        if (sources[i].directory) {
            if (::mkdirat(staging->get(), name.c_str(), 0700) != 0) return failErrno("staging a mount point");
        } else {
            UniqueFd f(::openat(staging->get(), name.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600));
            if (!f) return failErrno("staging a mount point");
        }
    }
    // A detached mount is in no namespace and would not be copied: attach
    // the staging tmpfs, then the sources on it.
    const char* point = nullptr;
    for (const char* p : kStagingPoints)
        if (::move_mount(staging->get(), "", AT_FDCWD, p, MOVE_MOUNT_F_EMPTY_PATH) == 0) {
            point = p;
            break;
        }
    if (!point) return failErrno("attaching the staging tmpfs");
    UniqueFd staged(::open(point, O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!staged) return failErrno("opening the staging tmpfs");
    for (std::size_t i = 0; i < sources.size(); ++i)
        if (::move_mount(sources[i].fd, "", staged.get(), std::to_string(i).c_str(), MOVE_MOUNT_F_EMPTY_PATH) != 0)
            return failErrno("staging the mount for " + sources[i].target);

    if (::setns(pidfd, CLONE_NEWUSER) != 0) return failErrno("entering the container's user namespace");
    // The copy belongs to the container's user namespace: the kernel locks
    // the flags of every mount in it (fs/namespace.c, lock_mnt_tree()).
    if (::unshare(CLONE_NEWNS) != 0) return failErrno("copying the staging mount namespace");
    UniqueFd copy(::open(point, O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!copy) return failErrno("opening the staged mounts");
    std::vector<UniqueFd> clones;
    for (std::size_t i = 0; i < sources.size(); ++i) {
        // A clone keeps the MNT_LOCK_* flags (and drops MNT_LOCKED, so it can move).
        UniqueFd clone(::open_tree(copy.get(), std::to_string(i).c_str(),
                                   OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_SYMLINK_NOFOLLOW));
        if (!clone) return failErrno("cloning the locked mount for " + sources[i].target);
        clones.push_back(std::move(clone));
    }
    return clones;
}

}  // namespace secretshim::platform
