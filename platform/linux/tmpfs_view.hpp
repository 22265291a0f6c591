// The Linux secrets view: a detached tmpfs built through the new mount API,
// never attached in the host's mount namespace. The view keeps the
// writable mount for updates and flushing; what goes into the container
// are read-only clones (one of dir/, one per single-file target).
#pragma once

#include <memory>
#include <vector>

#include "mountfs/secrets_view.hpp"
#include "platform/linux/attach.hpp"
#include "platform/linux/features.hpp"
#include "platform/linux/unique_fd.hpp"

namespace secretshim::platform {

class TmpfsView final : public mountfs::SecretsView {
public:
    static Result<std::unique_ptr<TmpfsView>> build(mountfs::ViewLayout layout,
                                                     const std::vector<mountfs::Bytes>& payloads,
                                                     const mountfs::ViewOptions& options,
                                                     const KernelFeatures& features);
    // Recovers the view of a running container after an agent restart: a
    // helper enters the container, finds our mounts at their targets, and
    // clones them writable (the superblock was never read-only). Such a view
    // can be flushed but not updated.
    static Result<std::unique_ptr<TmpfsView>> adopt(mountfs::ViewLayout layout, int pidfd,
                                                     const KernelFeatures& features);
    ~TmpfsView() override;

    const mountfs::ViewLayout& layout() const override { return layout_; }
    Result<void> attach(const mountfs::ContainerHandle& container) override;
    Result<void> update(std::size_t index, mountfs::Bytes payload,
                        const mountfs::ContainerHandle& container) override;
    Result<void> flush() override;

    // Live grants and revocations (cluster mode). A new reference can be
    // added only under the directory mount (/run/secrets), which the
    // container already has; it appears atomically (written, then renamed
    // into place). Removing an entry zeroes its file, then unlinks it: a
    // single-file target keeps its (now empty) mount until the task restarts.
    Result<void> addEntry(const mountfs::SecretRef& ref, mountfs::Bytes payload);
    Result<void> removeEntry(std::size_t index);

    // The read-only mounts to attach, for a process that attaches them
    // itself (the hook). Empty once attached or flushed.
    std::vector<MountSource> mountSources() const;
    // Forgets the read-only mounts after another process attached them.
    void releaseMountSources();
    bool noswap() const { return noswap_; }
    // Leaves an attached view to its container when this object goes away
    // (no flush): a stopping agent hands running containers' secrets to its
    // successor, which re-adopts them (systemctl restart, package upgrade).
    void keepAttached() { kept_ = true; }

private:
    TmpfsView(mountfs::ViewLayout layout, const KernelFeatures& features, std::size_t maxPayload)
        : layout_(std::move(layout)), features_(features), maxPayload_(maxPayload) {}
    Result<void> makeReadOnlyClones();
    Result<void> makeReadOnlyClonesStaged();

    mountfs::ViewLayout layout_;
    KernelFeatures features_;
    std::size_t maxPayload_;
    bool noswap_ = false;
    bool flushed_ = false;
    bool kept_ = false;
    Result<void> flushAdopted();

    UniqueFd root_;                  // writable, detached
    bool adopted_ = false;           // then root_ is a writable clone of dir/ (if any)
    UniqueFd dirMount_;              // read-only clone of dir/
    std::vector<UniqueFd> fileMounts_;  // by entry index; invalid for dir entries
};

}  // namespace secretshim::platform
