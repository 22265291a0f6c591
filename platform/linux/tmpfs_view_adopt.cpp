// Taking a running container's view back after an agent restart: from its
// mounts in the container (adopt), or from the tmpfs root the service
// manager's fd store kept (fromStore); wiping a stored root whose container
// is gone.
#include <sched.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <fcntl.h>
#include <unistd.h>

#include <set>
#include <string>

#include "platform/linux/confine.hpp"
#include "platform/linux/helper_process.hpp"
#include "platform/linux/mount_api.hpp"
#include "platform/linux/tmpfs_view.hpp"
#include "platform/linux/view_file.hpp"
#include "platform/linux/view_root.hpp"

namespace secretshim::platform {
namespace {

// In the container's mount namespace: our tmpfs mounted at `target`, cloned
// and made writable again. Only our very tmpfs: what is mounted there is at
// a mount root and on the device the view was built on (recorded in the
// task's root-only record; anonymous device numbers are unique while their
// superblock lives, and the container's mount keeps ours alive). Anything
// else, a tmpfs of the container's own mounted over ours, say, is refused
// before anything in it is opened.
Result<UniqueFd> cloneAttached(int root, const std::string& target, dev_t device) {
    const std::string relative = target.substr(1);
    UniqueFd at(sysOpenat2(root, relative.c_str(), O_PATH, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS));
    if (!at) return failErrno("resolving " + target + " in the container");
    struct statx stx {};
    struct statfs sfs {};
    if (::statx(at.get(), "", AT_EMPTY_PATH, STATX_BASIC_STATS, &stx) != 0 || ::fstatfs(at.get(), &sfs) != 0)
        return failErrno("inspecting " + target + " in the container");
    if (!(stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) || !(stx.stx_attributes & STATX_ATTR_MOUNT_ROOT) ||
        sfs.f_type != TMPFS_MAGIC)
        return fail(target + " in the container is no longer a secrets mount");
    if (::makedev(stx.stx_dev_major, stx.stx_dev_minor) != device)
        return fail(target + " in the container is not the view the agent built (device " +
                    std::to_string(stx.stx_dev_major) + ":" + std::to_string(stx.stx_dev_minor) + ", not " +
                    std::to_string(major(device)) + ":" + std::to_string(minor(device)) + "): left as it is");
    UniqueFd clone(::open_tree(at.get(), "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH));
    if (!clone) return failErrno("cloning " + target + " in the container");
    if (sysMountSetattr(clone.get(), "", AT_EMPTY_PATH, 0, MOUNT_ATTR_RDONLY) != 0)
        return failErrno("making the clone of " + target + " writable");
    return clone;
}

}  // namespace

Result<std::unique_ptr<TmpfsView>> TmpfsView::adopt(mountfs::ViewLayout layout, int pidfd, dev_t device,
                                                     const KernelFeatures& features, std::size_t maxPayload) {
    std::unique_ptr<TmpfsView> view(new TmpfsView(std::move(layout), features, maxPayload));
    view->device_ = device;
    const mountfs::ViewLayout& l = view->layout_;
    const int keep[] = {pidfd};
    auto fds = runInHelper(keep, [&]() -> Result<std::vector<UniqueFd>> {
        if (::setns(pidfd, CLONE_NEWNS) != 0) return failErrno("entering the container's mount namespace");
        // Inside the container, before looking at its files: confined like
        // the hook, plus the calls that clone our mounts back.
        if (auto ok = confineForReadopt(); !ok) return propagate(ok);
        UniqueFd root(::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC));
        if (!root) return failErrno("opening the container's root");
        std::vector<UniqueFd> out;
        if (l.hasDirectoryMount()) {
            auto fd = cloneAttached(root.get(), std::string(mountfs::kSecretsDir), device);
            if (!fd) return propagate(fd);
            out.push_back(std::move(*fd));
        }
        for (const auto& entry : l.entries) {
            if (entry.inDirectory) continue;
            auto fd = cloneAttached(root.get(), entry.ref.target, device);
            if (!fd) return propagate(fd);
            out.push_back(std::move(*fd));
        }
        return out;
    });
    if (!fds) return propagate(fds);
    auto it = fds->begin();
    UniqueFd dir;
    if (l.hasDirectoryMount()) dir = std::move(*it++);
    std::vector<UniqueFd> files(l.entries.size());
    for (std::size_t i = 0; i < l.entries.size(); ++i)
        if (!l.entries[i].inDirectory) files[i] = std::move(*it++);
    view->dirAttached_ = static_cast<bool>(dir);
    view->root_ = std::make_unique<AdoptedRoot>(std::move(dir), std::move(files));
    return view;
}

// Only the agent's own process can store fds for its unit (systemd's
// NotifyAccess=main), but whatever a bug put there is left alone.
Result<void> TmpfsView::checkStored(int fd, dev_t device) {
    struct statx stx {};
    struct statfs sfs {};
    if (::statx(fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &stx) != 0 || ::fstatfs(fd, &sfs) != 0)
        return failErrno("inspecting the stored fd");
    if (sfs.f_type != TMPFS_MAGIC) return fail("the stored fd is not a tmpfs");
    if (!S_ISDIR(stx.stx_mode) || !(stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) ||
        !(stx.stx_attributes & STATX_ATTR_MOUNT_ROOT))
        return fail("the stored fd is not the root of a tmpfs");
    if (device != 0 && ::makedev(stx.stx_dev_major, stx.stx_dev_minor) != device)
        return fail("the stored fd is the tmpfs on device " + std::to_string(stx.stx_dev_major) + ":" +
                    std::to_string(stx.stx_dev_minor) + ", not the view's " + std::to_string(major(device)) + ":" +
                    std::to_string(minor(device)));
    return {};
}

Result<std::unique_ptr<TmpfsView>> TmpfsView::fromStore(mountfs::ViewLayout layout, UniqueFd root, dev_t device,
                                                        const KernelFeatures& features, std::size_t maxPayload) {
    if (auto ok = checkStored(root.get(), device); !ok) return propagate(ok);
    std::set<std::string> files;
    for (const auto& entry : layout.entries) {
        // O_PATH: looked at (a regular file, inside the view), never opened.
        if (auto file = openViewFile(root.get(), entry.file, O_PATH); !file)
            return propagate(file, "the stored view holds no file for " + entry.ref.target);
        files.insert(entry.file);
    }
    // A crash between writing a file and renaming it into place (a rotation,
    // a live grant) leaves one that no reference names: nobody else would
    // ever wipe it.
    if (auto strays = wipeTree(root.get(), files); !strays)
        return propagate(strays, "wiping what the stored view holds beyond its references");
    std::unique_ptr<TmpfsView> view(new TmpfsView(std::move(layout), features, maxPayload));
    view->root_ = std::make_unique<BuiltRoot>(std::move(root));
    view->device_ = device;
    view->noswap_ = features.tmpfsNoswap;  // as built: the agent asks for it wherever the kernel has it
    view->dirAttached_ = view->layout_.hasDirectoryMount();  // the hook attached it before the view was stored
    view->fileMounts_.resize(view->layout_.entries.size());
    return view;
}

Result<std::size_t> TmpfsView::wipeStored(int root, dev_t device) {
    if (auto ok = checkStored(root, device); !ok) return propagate(ok);
    return wipeTree(root);
}

}  // namespace secretshim::platform
