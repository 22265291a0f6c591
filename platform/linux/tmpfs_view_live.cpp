// Live edits of a running container's view (cluster mode): a new value
// renamed into place, a single-file target re-bound, a grant added, a grant
// revoked. Readers see the old file or the new one, never a torn one.
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>  // renameat2
#include <string>

#include "platform/linux/confine.hpp"
#include "platform/linux/helper_process.hpp"
#include "platform/linux/id_map.hpp"
#include "platform/linux/mount_api.hpp"
#include "platform/linux/secret_file.hpp"
#include "platform/linux/tmpfs_view.hpp"
#include "platform/linux/view_file.hpp"
#include "platform/linux/view_root.hpp"

namespace secretshim::platform {
namespace {

using mountfs::Bytes;

// An act for runInContainer(): attaches `source` (its fd: the one given).
LiveAct attachOne(const mountfs::ContainerHandle& container, MountSource source) {
    return [container, source](int fd, const AfterEnter& afterEnter) mutable {
        source.fd = fd;
        return attachMounts(container.pidfd, container.rootfs, std::span<const MountSource>(&source, 1), afterEnter);
    };
}

}  // namespace

Result<void> TmpfsView::update(std::size_t index, Bytes payload, const mountfs::ContainerHandle& container) {
    if (flushed_) return fail("the secrets view was flushed");
    if (index >= layout_.entries.size()) return fail("no such reference in the view");
    const mountfs::ViewEntry entry = layout_.entries[index];
    if (auto ok = mountfs::checkPayloadSize(entry.ref.source, payload.size(), maxPayload_); !ok)
        return ok;
    if (!entry.inDirectory && !(features_.moveMountBeneath && features_.detachedClone))
        return fail("updating " + entry.ref.target +
                    " needs a restart of the task: the kernel cannot rebind a single-file mount");

    // A value larger than the old one, rotated more than once, would
    // otherwise outgrow the room the view was built with.
    growFor(payload.size(), 0);
    auto temp = root_->stage(payload, entry.ref, layout_);
    if (!temp) return propagate(temp);
    // The old file is not wiped: a reader that opened it just before the
    // swap must still read the whole old value (the atomic-update test
    // caught torn reads when it was). Its pages are freed with its last
    // reference. Revocation and exit go through flush(), which does wipe.
    // rename() swaps the name atomically: a reader opens the old file or the
    // new one, never a half-written one.
    if (entry.inDirectory) {
        const int root = root_->fd();
        if (::renameat(root, temp->c_str(), root, root_->pathOf(entry).c_str()) != 0) {
            auto error = failErrno("replacing secret \"" + entry.ref.source + "\"");
            (void)wipeAndUnlink(root, *temp);
            return error;
        }
        return {};
    }
    // A single-file target: a mount of the new file goes beneath the old one.
    const std::string target = entry.ref.target;
    const dev_t own = device_;
    const LiveAct rebind = [&](int fd, const AfterEnter& afterEnter) {
        return rebindFile(container.pidfd, container.rootfs, target, fd, afterEnter, own);
    };
    return root_->showFile(index, entry, *temp, false, container, 0, 0, rebind);
}

bool TmpfsView::addNeedsMount(const mountfs::SecretRef& ref) const {
    auto planned = mountfs::planView({ref});
    return !planned || !planned->entries.front().inDirectory || !dirAttached_;
}

Result<void> TmpfsView::addEntry(const mountfs::SecretRef& ref, Bytes payload,
                                 const mountfs::ContainerHandle& container, uid_t rootUid, gid_t rootGid) {
    if (flushed_) return fail("the secrets view was flushed");
    auto planned = mountfs::planView({ref});
    if (!planned) return propagate(planned);
    mountfs::ViewEntry entry = planned->entries.front();
    for (const auto& e : layout_.entries)
        if (e.ref.target == ref.target) return fail("target " + ref.target + " is already in the view");
    if (auto ok = mountfs::checkPayloadSize(ref.source, payload.size(), maxPayload_); !ok) return ok;
    const bool newMount = !entry.inDirectory || !dirAttached_;
    // Before 6.15 only the staging helper could clone a detached mount.
    if (newMount && !features_.detachedClone)
        return fail("adding " + ref.target + " needs a restart of the task: the kernel cannot clone a detached mount");
    const int root = root_->fd();
    if (root < 0)
        return fail("adding " + ref.target + " needs a restart of the task: the view re-adopted after an agent "
                    "restart has no " + std::string(mountfs::kSecretsDir) + " mount to write through");
    growFor(payload.size(), planned->directories.size());
    if (auto ok = root_->makeDirectories(*planned); !ok) return ok;

    if (entry.inDirectory && dirAttached_) {
        auto temp = root_->stage(payload, entry.ref, layout_);
        if (!temp) return propagate(temp);
        // RENAME_NOREPLACE: never over a file the view already shows.
        if (::renameat2(root, temp->c_str(), root, root_->pathOf(entry).c_str(), RENAME_NOREPLACE) != 0) {
            auto error = failErrno("adding secret \"" + ref.source + "\"");
            (void)::unlinkat(root, temp->c_str(), 0);
            return error;
        }
    } else if (entry.inDirectory) {
        // The first target under /run/secrets of a built view (a re-adopted
        // one without dir/ has no root to write through): dir/ is not in
        // the container yet; the file is complete before dir/ appears.
        const std::string path = root_->pathOf(entry);
        if (auto ok = writeSecretFile(root, path, payload, entry.ref); !ok) return ok;
        auto clone = readOnlyClone(root, std::string(mountfs::kViewDir).c_str());
        const MountSource source{std::string(mountfs::kSecretsDir), clone ? clone->get() : -1, true};
        auto done = clone ? runInContainer(container, source.fd, -1, {}, rootUid, rootGid, attachOne(container, source))
                          : Result<UniqueFd>(propagate(clone));
        if (!done) {
            (void)wipeAndUnlink(root, path);
            return propagate(done);
        }
        dirAttached_ = true;
    } else {
        // A single-file target: its own read-only mount of a new file.
        auto path = root_->writeNewFile(entry, payload, layout_);
        if (!path) return propagate(path);
        if (auto ok = root_->showFile(layout_.entries.size(), entry, *path, true, container, rootUid, rootGid,
                                      attachOne(container, {ref.target, -1, false}));
            !ok)
            return ok;
    }
    layout_.entries.push_back(std::move(entry));
    fileMounts_.resize(layout_.entries.size());
    return {};
}

Result<void> TmpfsView::removeEntry(std::size_t index, const mountfs::ContainerHandle& container) {
    if (flushed_) return fail("the secrets view was flushed");
    if (index >= layout_.entries.size()) return fail("no such reference in the view");
    const mountfs::ViewEntry entry = layout_.entries[index];
    // A single-file target: its mount in the container goes first, if it
    // still is ours (attach.cpp detachFile checks device and inode).
    Result<void> detached;
    if (!entry.inDirectory) {
        auto ours = root_->identity(index, entry);
        if (!ours) {
            detached = propagate(ours);
        } else {
            const int keep[] = {container.pidfd};
            auto done = runInHelper(keep, [&]() -> Result<std::vector<UniqueFd>> {
                if (auto ok = detachFile(container.pidfd, container.rootfs, entry.ref.target, *ours, &confineForAttach);
                    !ok)
                    return propagate(ok);
                return std::vector<UniqueFd>{};
            });
            if (!done) detached = propagate(done);
        }
    }
    // Zero before unlinking: a reader that has the file open (or a mount
    // that could not be detached) then sees nothing of the secret.
    if (auto ok = root_->revoke(index, entry); !ok)
        return propagate(ok, "revoking secret \"" + entry.ref.source + "\"");
    layout_.entries.erase(layout_.entries.begin() + static_cast<std::ptrdiff_t>(index));
    if (index < fileMounts_.size()) fileMounts_.erase(fileMounts_.begin() + static_cast<std::ptrdiff_t>(index));
    if (!detached)
        return propagate(detached, "secret \"" + entry.ref.source + "\" was zeroed and removed, but its mount at " +
                                                         entry.ref.target + " stays");
    return {};
}

// tmpfs takes a new size and inode count on a live superblock (fspick +
// FSCONFIG_CMD_RECONFIGURE, 5.2): a grant added live need not fit in the
// room left at build time. Only when the room left would not hold the file,
// its new directories and the update slot; best effort (a write that does
// not fit then fails with ENOSPC and says so).
void TmpfsView::growFor(std::size_t bytes, std::size_t directories) {
    struct statfs sfs {};
    const int root = root_->fd();
    if (root < 0 || ::fstatfs(root, &sfs) != 0) return;
    const std::size_t need = pages(bytes) + pages(maxPayload_) + kPage * (directories + 1);
    const std::size_t have = static_cast<std::size_t>(sfs.f_bavail) * sfs.f_bsize;
    if (have >= need && sfs.f_ffree >= directories + 4) return;
    UniqueFd ctx(::fspick(root, "", FSPICK_EMPTY_PATH | FSPICK_CLOEXEC | FSPICK_NO_AUTOMOUNT));
    if (!ctx) return;
    const std::size_t size = static_cast<std::size_t>(sfs.f_blocks) * sfs.f_bsize + (need - std::min(have, need));
    const std::size_t inodes = static_cast<std::size_t>(sfs.f_files) + directories + 4;
    (void)(::fsconfig(ctx.get(), FSCONFIG_SET_STRING, "size", std::to_string(size).c_str(), 0) == 0 &&
           ::fsconfig(ctx.get(), FSCONFIG_SET_STRING, "nr_inodes", std::to_string(inodes).c_str(), 0) == 0 &&
           ::fsconfig(ctx.get(), FSCONFIG_CMD_RECONFIGURE, nullptr, nullptr, 0) == 0);
}

// Built view: `source` is the read-only mount to use. Re-adopted view: its
// mounts were cloned inside the container's mount namespace, and the kernel
// lets only a process there clone them again (an anonymous mount namespace
// is tied to its creator's, fs/namespace.c check_anonymous_mnt()); so the
// helper clones `clonePath` of `root` there, before it confines itself, and
// brings the writable clone back.
Result<UniqueFd> runInContainer(const mountfs::ContainerHandle& container, int source, int root,
                                const std::string& clonePath, uid_t uid, gid_t gid, const LiveAct& act) {
    std::vector<int> keep{container.pidfd};
    if (source >= 0) keep.push_back(source);
    if (!clonePath.empty()) keep.push_back(root);
    auto fds = runInHelper(keep, [&]() -> Result<std::vector<UniqueFd>> {
        // What the container gets created in its tree (placeholders) is its
        // root's, as at start (the hook's actAsContainerRoot).
        if (uid != 0 || gid != 0)
            if (auto ok = actAs({uid, gid}); !ok) return propagate(ok);
        std::vector<UniqueFd> out;
        if (clonePath.empty()) {
            if (auto ok = act(source, &confineForAttach); !ok) return propagate(ok);
            return out;
        }
        // The fd number `act` will use, filled once inside.
        UniqueFd slot(::fcntl(container.pidfd, F_DUPFD_CLOEXEC, 0));
        if (!slot) return failErrno("reserving an fd");
        UniqueFd writable;
        const AfterEnter cloneThere = [&]() -> Result<void> {
            writable.reset(::open_tree(root, clonePath.c_str(), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_SYMLINK_NOFOLLOW));
            if (!writable) return failErrno("cloning the view's new file");
            auto readOnly = readOnlyClone(root, clonePath.c_str());
            if (!readOnly) return propagate(readOnly);
            if (::dup3(readOnly->get(), slot.get(), O_CLOEXEC) < 0) return failErrno("placing the view's new mount");
            return confineForAttach();
        };
        if (auto ok = act(slot.get(), cloneThere); !ok) return propagate(ok);
        out.push_back(std::move(writable));
        return out;
    });
    if (!fds) return propagate(fds);
    if (fds->empty()) return UniqueFd();
    return std::move(fds->front());
}

// The built view's files each have their path in the tmpfs.

Result<void> BuiltRoot::makeDirectories(const mountfs::ViewLayout& planned) {
    for (const std::string& dir : planned.directories)
        if (auto ok = makeDirectory(fd(), dir, 0755); !ok && ok.error().code != EEXIST) return ok;
    return {};
}

// No unlink beforehand (it was 13% of a rotation reaching 200 containers):
// only a failed update leaves this name, and it wipes and removes it here,
// partial plaintext included.
Result<std::string> BuiltRoot::stage(Bytes payload, const mountfs::SecretRef& ref, const mountfs::ViewLayout&) {
    if (auto ok = writeSecretFile(fd(), kUpdateTemp, payload, ref); !ok) {
        (void)wipeAndUnlink(fd(), kUpdateTemp);
        return propagate(ok);
    }
    return std::string(kUpdateTemp);
}

Result<std::string> BuiltRoot::writeNewFile(const mountfs::ViewEntry& entry, Bytes payload,
                                            const mountfs::ViewLayout&) {
    if (auto ok = writeSecretFile(fd(), entry.file, payload, entry.ref); !ok) return propagate(ok);
    return entry.file;
}

// The file goes to the entry's place in file/ (a new entry's is there
// already), and the container gets a read-only clone of it.
Result<void> BuiltRoot::showFile(std::size_t, const mountfs::ViewEntry& entry, const std::string& path, bool adding,
                                 const mountfs::ContainerHandle& container, uid_t uid, gid_t gid, const LiveAct& act) {
    if (path != entry.file && ::renameat(fd(), path.c_str(), fd(), entry.file.c_str()) != 0)
        return failErrno("replacing secret \"" + entry.ref.source + "\"");
    auto clone = readOnlyClone(fd(), entry.file.c_str());
    auto done = clone ? runInContainer(container, clone->get(), -1, {}, uid, gid, act)
                      : Result<UniqueFd>(propagate(clone));
    if (!done) {
        if (adding) (void)wipeAndUnlink(fd(), entry.file);
        return propagate(done);
    }
    return {};
}

Result<FileIdentity> BuiltRoot::identity(std::size_t, const mountfs::ViewEntry& entry) const {
    struct stat st {};
    if (::fstatat(fd(), entry.file.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
        return failErrno("inspecting the view's file for " + entry.ref.target);
    return FileIdentity{st.st_dev, st.st_ino};
}

// The re-adopted view writes through dir/ alone: a single-file entry's new
// file is staged there, and its writable clone, made in the container,
// becomes the entry's handle.

Result<void> AdoptedRoot::makeDirectories(const mountfs::ViewLayout& planned) {
    const mountfs::ViewEntry& entry = planned.entries.front();
    if (!entry.inDirectory) return {};  // staged in dir/ itself
    for (const std::string& dir : mountfs::parentsInArea(entry))
        if (auto ok = makeDirectory(fd(), dir, 0755); !ok && ok.error().code != EEXIST) return ok;
    return {};
}

Result<std::string> AdoptedRoot::stage(Bytes payload, const mountfs::SecretRef& ref,
                                       const mountfs::ViewLayout& layout) {
    if (!fd_)
        return fail("the view re-adopted after an agent restart has no " + std::string(mountfs::kSecretsDir) +
                    " mount to write through: needs a restart of the task");
    for (const auto& e : layout.entries)
        if (e.inDirectory && pathOf(e) == kAdoptedTemp)
            return fail("target " + e.ref.target + " is the name the agent needs for updates");
    // Unnamed until complete: the container never sees a partial file.
    UniqueFd file(::openat(fd(), ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600));
    if (!file) return failOnView(fd(), "creating the file for secret \"" + ref.source + "\"");
    if (auto ok = fillSecretFile(file.get(), payload, ref); !ok) {
        (void)wipeFile(file.get());  // partial plaintext, freed with the fd
        return propagate(ok);
    }
    (void)::unlinkat(fd(), kAdoptedTemp, 0);  // left by a crash
    const std::string self = "/proc/self/fd/" + std::to_string(file.get());
    if (::linkat(AT_FDCWD, self.c_str(), fd(), kAdoptedTemp, AT_SYMLINK_FOLLOW) != 0)
        return failErrno("linking the new file for secret \"" + ref.source + "\"");
    return std::string(kAdoptedTemp);
}

Result<std::string> AdoptedRoot::writeNewFile(const mountfs::ViewEntry& entry, Bytes payload,
                                              const mountfs::ViewLayout& layout) {
    return stage(payload, entry.ref, layout);
}

Result<void> AdoptedRoot::showFile(std::size_t index, const mountfs::ViewEntry&, const std::string& path, bool adding,
                                   const mountfs::ContainerHandle& container, uid_t uid, gid_t gid,
                                   const LiveAct& act) {
    auto writable = runInContainer(container, -1, fd(), path, uid, gid, act);
    if (!writable && adding)
        (void)wipeAndUnlink(fd(), path);
    else
        (void)::unlinkat(fd(), path.c_str(), 0);  // the mounts keep the file
    if (!writable) return propagate(writable);
    if (files_.size() <= index) files_.resize(index + 1);
    files_[index] = std::move(*writable);
    return {};
}

Result<FileIdentity> AdoptedRoot::identity(std::size_t index, const mountfs::ViewEntry& entry) const {
    struct stat st {};
    if (index >= files_.size() || !files_[index] || ::fstat(files_[index].get(), &st) != 0)
        return failErrno("inspecting the view's file for " + entry.ref.target);
    return FileIdentity{st.st_dev, st.st_ino};
}

}  // namespace secretshim::platform
