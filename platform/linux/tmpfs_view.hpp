// The Linux secrets view: a detached tmpfs built through the new mount API,
// never attached in the host's mount namespace. The view keeps the
// writable mount for updates and flushing; what goes into the container
// are read-only clones (one of dir/, one per single-file target).
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "mountfs/secrets_view.hpp"
#include "platform/linux/attach.hpp"
#include "platform/linux/features.hpp"
#include "platform/linux/unique_fd.hpp"

namespace secretshim::platform {

class ViewRoot;
class BuiltRoot;

class TmpfsView final {
public:
    static Result<std::unique_ptr<TmpfsView>> build(mountfs::ViewLayout layout,
                                                     const std::vector<mountfs::Bytes>& payloads,
                                                     const mountfs::ViewOptions& options,
                                                     const KernelFeatures& features);
    // The same, each file written by the source itself (see PayloadSource).
    static Result<std::unique_ptr<TmpfsView>> build(mountfs::ViewLayout layout,
                                                     const mountfs::PayloadSource& payloads,
                                                     const mountfs::ViewOptions& options,
                                                     const KernelFeatures& features);
    // Recovers the view of a running container after an agent restart
    // when no stored root is at hand (after `systemctl stop`, or without
    // systemd; else fromStore()): a helper enters the container, finds our mounts at their targets, and
    // clones them writable (the superblock was never read-only). Only mounts
    // of the tmpfs on `device` (device(), recorded when the view was built)
    // are taken: anything else is refused before anything in it is opened. Such a view
    // holds dir/ (what /run/secrets shows) and each single-file mount, not
    // the tmpfs's root: it is updated through dir/ (a new file is made
    // unnamed with O_TMPFILE, then linked under a dot name for the moment
    // before its rename), so a re-adopted view without a /run/secrets mount
    // can be flushed and have grants revoked, but gets no new content.
    static Result<std::unique_ptr<TmpfsView>> adopt(mountfs::ViewLayout layout, int pidfd, dev_t device,
                                                     const KernelFeatures& features,
                                                     std::size_t maxPayload = mountfs::kDefaultMaxPayload);
    // Recovers the view of a running container from its writable root
    // (writableRoot()) as the service manager's fd store kept it across a
    // crash or a restart of the agent: nothing of the container is entered
    // or looked at.
    // `root` must be the root of a tmpfs on `device` (recorded when the view
    // was built) holding a regular file for every entry of `layout`; any other
    // file in it (left by a crash in the middle of an update) is wiped. The
    // view is then the one that was built: updated, revoked from and flushed
    // the same way.
    static Result<std::unique_ptr<TmpfsView>> fromStore(mountfs::ViewLayout layout, UniqueFd root, dev_t device,
                                                         const KernelFeatures& features,
                                                         std::size_t maxPayload = mountfs::kDefaultMaxPayload);
    // Whether an fd from the fd store is a view's writable root: the root of
    // a tmpfs, on `device` unless that is 0 (a view with no record). Nothing
    // is written through one that is not.
    static Result<void> checkStored(int root, dev_t device);
    // Zeroes and removes every file of a view whose container is gone,
    // through its writable root as the fd store kept it (checkStored()
    // first); how many files.
    static Result<std::size_t> wipeStored(int root, dev_t device);
    ~TmpfsView();
    TmpfsView(const TmpfsView&) = delete;
    TmpfsView& operator=(const TmpfsView&) = delete;

    const mountfs::ViewLayout& layout() const { return layout_; }
    Result<void> attach(const mountfs::ContainerHandle& container);
    Result<void> update(std::size_t index, mountfs::Bytes payload,
                        const mountfs::ContainerHandle& container);
    Result<void> flush();

    // Live grants and revocations (cluster mode). A new reference appears
    // atomically: under an attached /run/secrets mount it is written, then
    // renamed into place; any other target (or the first one under
    // /run/secrets) gets its own read-only mount, attached by a helper in
    // the container's mount namespace through the hook's safe path
    // (attach.cpp), placeholders owned by `rootUid`/`rootGid` (the host ids
    // of the container's root). On failure the view is as before.
    Result<void> addEntry(const mountfs::SecretRef& ref, mountfs::Bytes payload,
                          const mountfs::ContainerHandle& container, uid_t rootUid = 0, gid_t rootGid = 0);
    // Whether adding `ref` attaches a new mount in the container.
    bool addNeedsMount(const mountfs::SecretRef& ref) const;
    // Detaches a single-file target's mount in the container (only if it
    // still is ours: attach.cpp detachFile), then zeroes and removes the
    // file. If the mount cannot be detached, the file is still zeroed and
    // removed (the entry is gone) and the error says the mount stays.
    Result<void> removeEntry(std::size_t index, const mountfs::ContainerHandle& container);

    // The read-only mounts to attach, for a process that attaches them
    // itself (the hook). Empty once attached or flushed.
    std::vector<MountSource> mountSources() const;
    // Forgets the read-only mounts after another process attached them.
    void releaseMountSources();
    bool noswap() const { return noswap_; }
    // The device number of the view's tmpfs: what proves a mount is ours.
    dev_t device() const { return device_; }
    // The writable root of the view's tmpfs (a detached mount), for the
    // service manager's fd store; -1 for a view re-adopted from its mounts
    // in the container, which has no hold on the root.
    int writableRoot() const;
    // Leaves an attached view to its container when this object goes away
    // (no flush): a stopping agent hands running containers' secrets to its
    // successor, which re-adopts them (systemctl restart, package upgrade).
    void keepAttached() { kept_ = true; }

private:
    // Each lifecycle has its file: build and attach (tmpfs_view_build.cpp),
    // adopt and fromStore (tmpfs_view_adopt.cpp), live edits
    // (tmpfs_view_live.cpp), flush (tmpfs_view_flush.cpp); how the files
    // are reached depends on the kind of root (view_root.hpp).
    TmpfsView(mountfs::ViewLayout layout, const KernelFeatures& features, std::size_t maxPayload);
    Result<void> fillFiles(int root, const mountfs::PayloadSource& payloads);
    Result<void> makeReadOnlyClones(int root);
    Result<void> makeReadOnlyClonesStaged(BuiltRoot& root);
    // Makes room in the tmpfs (sized at build) for one more file of `bytes`
    // and `directories` new directories.
    void growFor(std::size_t bytes, std::size_t directories);

    mountfs::ViewLayout layout_;
    KernelFeatures features_;
    std::size_t maxPayload_;
    bool noswap_ = false;
    dev_t device_ = 0;
    bool flushed_ = false;
    bool kept_ = false;

    std::unique_ptr<ViewRoot> root_;    // how the view's files are reached
    bool dirAttached_ = false;          // the container has our /run/secrets mount
    // Read-only clones for the container until attached: one of dir/, and
    // one per single-file entry (by entry index; invalid for dir entries).
    UniqueFd dirMount_;
    std::vector<UniqueFd> fileMounts_;
};

}  // namespace secretshim::platform
