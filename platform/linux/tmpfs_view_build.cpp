// Building a view: a detached tmpfs sized for its files, filled, and the
// read-only clones the container gets; attaching them.
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <string>

#include "platform/linux/confine.hpp"
#include "platform/linux/helper_process.hpp"
#include "platform/linux/mount_api.hpp"
#include "platform/linux/secret_file.hpp"
#include "platform/linux/tmpfs_view.hpp"
#include "platform/linux/two_threads.hpp"
#include "platform/linux/view_root.hpp"

namespace secretshim::platform {
namespace {

using mountfs::Bytes;

Result<UniqueFd> createTmpfs(std::size_t sizeBytes, std::size_t inodes, bool tryNoswap, bool& noswap) {
    UniqueFd ctx(::fsopen("tmpfs", FSOPEN_CLOEXEC));
    if (!ctx) return failErrno("fsopen(tmpfs)");
    const auto set = [&](const char* key, const std::string& value) -> Result<void> {
        if (::fsconfig(ctx.get(), FSCONFIG_SET_STRING, key, value.c_str(), 0) != 0)
            return failErrno(std::string("setting tmpfs ") + key);
        return {};
    };
    if (auto ok = set("size", std::to_string(sizeBytes)); !ok) return propagate(ok);
    if (auto ok = set("nr_inodes", std::to_string(inodes)); !ok) return propagate(ok);
    if (auto ok = set("mode", "0755"); !ok) return propagate(ok);
    // Names our mounts in mountinfo, for admins and for the tests.
    if (auto ok = set("source", "secretshim"); !ok) return propagate(ok);
    // noswap keeps plaintext off swap devices (6.4+); refused in a user
    // namespace or on older kernels, where we go on without it.
    noswap = tryNoswap && ::fsconfig(ctx.get(), FSCONFIG_SET_FLAG, "noswap", nullptr, 0) == 0;
    // Large folios (tmpfs "huge=", 6.14+ for sizes below 2 MiB): a 64 KiB
    // file is then one folio, not 16 pages, and writing it and zeroing it at
    // flush each take one page-cache operation instead of 16 (1000 files of
    // 64 KiB on this VM: writing 65 -> 34 ms of CPU, wiping 39 -> 28 ms).
    // within_size: never a folio past a file's end, so the size set above
    // still holds every file. Best effort: a kernel without transparent
    // huge pages refuses the option, and files are then made of pages.
    (void)::fsconfig(ctx.get(), FSCONFIG_SET_STRING, "huge", "within_size", 0);
    if (::fsconfig(ctx.get(), FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) != 0)
        return failErrno("creating the tmpfs");
    UniqueFd mnt(::fsmount(ctx.get(), FSMOUNT_CLOEXEC,
                           MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC));
    if (!mnt) return failErrno("fsmount(tmpfs)");
    return mnt;
}

}  // namespace

TmpfsView::TmpfsView(mountfs::ViewLayout layout, const KernelFeatures& features, std::size_t maxPayload)
    : layout_(std::move(layout)), features_(features), maxPayload_(maxPayload) {}

Result<std::unique_ptr<TmpfsView>> TmpfsView::build(mountfs::ViewLayout layout,
                                                     const std::vector<Bytes>& payloads,
                                                     const mountfs::ViewOptions& options,
                                                     const KernelFeatures& features) {
    return build(std::move(layout), mountfs::SpanPayloads(payloads), options, features);
}

Result<std::unique_ptr<TmpfsView>> TmpfsView::build(mountfs::ViewLayout layout,
                                                     const mountfs::PayloadSource& payloads,
                                                     const mountfs::ViewOptions& options,
                                                     const KernelFeatures& features) {
    if (!features.sufficient())
        return fail("the kernel lacks what secrets views need (" + features.describe() + ")");
    if (payloads.count() != layout.entries.size())
        return fail("internal error: " + std::to_string(payloads.count()) + " payloads for " +
                    std::to_string(layout.entries.size()) + " references");
    std::size_t bytes = 0;
    for (std::size_t i = 0; i < payloads.count(); ++i) {
        const auto& ref = layout.entries[i].ref;
        if (auto ok = mountfs::checkPayloadSize(ref.source, payloads.size(i), options.maxPayload); !ok)
            return propagate(ok);
        bytes += pages(payloads.size(i));
    }
    // Room for every file, one update's temporary file, and directories.
    bytes += pages(options.maxPayload) + kPage * (layout.directories.size() + 4);
    const std::size_t inodes = layout.entries.size() + layout.directories.size() + 8;

    std::unique_ptr<TmpfsView> view(new TmpfsView(std::move(layout), features, options.maxPayload));
    auto tmpfs = createTmpfs(bytes, inodes, features.tmpfsNoswap, view->noswap_);
    if (!tmpfs) return propagate(tmpfs);
    struct stat st {};
    if (::fstat(tmpfs->get(), &st) != 0) return failErrno("inspecting the view's tmpfs");
    view->device_ = st.st_dev;
    auto owned = std::make_unique<BuiltRoot>(std::move(*tmpfs));
    BuiltRoot& root = *owned;
    view->root_ = std::move(owned);

    for (const std::string& dir : {std::string(mountfs::kViewDir), std::string(mountfs::kViewFiles)})
        if (auto ok = makeDirectory(root.fd(), dir, dir == mountfs::kViewDir ? 0755 : 0700); !ok)
            return propagate(ok);
    for (const std::string& dir : view->layout_.directories)
        if (auto ok = makeDirectory(root.fd(), dir, 0755); !ok) return propagate(ok);
    // On failure the view's destructor flushes the files already written
    // (a missing one is skipped); a file left partial was wiped and removed
    // by writeSecretFileFrom().
    if (auto ok = view->fillFiles(root.fd(), payloads); !ok) return propagate(ok);

    auto ok = features.detachedClone ? view->makeReadOnlyClones(root.fd()) : view->makeReadOnlyClonesStaged(root);
    if (!ok) return propagate(ok);
    view->dirAttached_ = view->layout_.hasDirectoryMount();
    return view;
}

// A large task's files are filled on two threads, each with its own copy
// of the source (its own decryption buffer). Both the bytes and the number
// of files count: creating, filling and closing a file costs about as much
// as writing kFileCost bytes, so 1000 files of 64 B are worth a thread as
// much as 2 MiB of values are. Below kTwoThreads (about a millisecond of
// work) the thread costs more than it saves.
Result<void> TmpfsView::fillFiles(int root, const mountfs::PayloadSource& payloads) {
    constexpr std::size_t kFileCost = std::size_t{16} << 10;
    constexpr std::size_t kTwoThreads = std::size_t{2} << 20;
    const std::size_t count = payloads.count();
    std::size_t total = 0;
    for (std::size_t i = 0; i < count; ++i) total += kFileCost + payloads.size(i);
    std::atomic<bool> stop{false};
    const auto fill = [&](const mountfs::PayloadSource& source, std::size_t from, std::size_t to) -> Result<void> {
        for (std::size_t i = from; i < to && !stop.load(std::memory_order_relaxed); ++i) {
            const auto& entry = layout_.entries[i];
            if (auto ok = writeSecretFileFrom(root, entry.file, source, i, entry.ref); !ok) {
                stop = true;
                return ok;
            }
        }
        return {};
    };
    std::unique_ptr<mountfs::PayloadSource> other = total >= kTwoThreads ? payloads.concurrentCopy() : nullptr;
    if (!other) return fill(payloads, 0, count);
    // The second thread takes the entries past half of the cost.
    std::size_t split = 0;
    for (std::size_t cost = 0; split < count && cost < total / 2; ++split) cost += kFileCost + payloads.size(split);
    return onTwoThreads([&] { return fill(payloads, 0, split); }, [&] { return fill(*other, split, count); });
}

Result<void> TmpfsView::makeReadOnlyClones(int root) {
    fileMounts_.resize(layout_.entries.size());
    if (layout_.hasDirectoryMount()) {
        auto clone = readOnlyClone(root, std::string(mountfs::kViewDir).c_str());
        if (!clone) return propagate(clone);
        dirMount_ = std::move(*clone);
    }
    for (std::size_t i = 0; i < layout_.entries.size(); ++i) {
        if (layout_.entries[i].inDirectory) continue;
        auto clone = readOnlyClone(root, layout_.entries[i].file.c_str());
        if (!clone) return propagate(clone);
        fileMounts_[i] = std::move(*clone);
    }
    return {};
}

// Before 6.15 a detached mount cannot be cloned. A helper attaches it in a
// private mount namespace of its own, clones from there (the writable root
// too), and exits; the clones outlive that namespace.
Result<void> TmpfsView::makeReadOnlyClonesStaged(BuiltRoot& root) {
    // Host side only (no container's files): no_new_privs and no inherited
    // fds but the view's, no seccomp (it needs unshare and mount).
    const int keep[] = {root.fd()};
    auto fds = runInHelper(keep, [this, &root]() -> Result<std::vector<UniqueFd>> {
        if (::unshare(CLONE_NEWNS) != 0) return failErrno("unshare(CLONE_NEWNS)");
        if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
            return failErrno("making the helper's mounts private");
        if (::move_mount(root.fd(), "", AT_FDCWD, "/tmp", MOVE_MOUNT_F_EMPTY_PATH) != 0)
            return failErrno("staging the view");
        UniqueFd staged(::open("/tmp", O_PATH | O_DIRECTORY | O_CLOEXEC));
        if (!staged) return failErrno("opening the staged view");
        std::vector<UniqueFd> out;
        UniqueFd writable(::open_tree(staged.get(), "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH));
        if (!writable) return failErrno("cloning the staged view");
        out.push_back(std::move(writable));
        // The helper's copy of the view: cloned from the staged mount.
        if (auto ok = makeReadOnlyClones(staged.get()); !ok) return propagate(ok);
        if (dirMount_) out.push_back(std::move(dirMount_));
        for (auto& fd : fileMounts_)
            if (fd) out.push_back(std::move(fd));
        return out;
    });
    if (!fds) return propagate(fds);
    const std::size_t expected = 1 + (layout_.hasDirectoryMount() ? 1 : 0) +
        static_cast<std::size_t>(std::count_if(layout_.entries.begin(), layout_.entries.end(),
                                               [](const auto& e) { return !e.inDirectory; }));
    if (fds->size() != expected) return fail("the staging helper returned the wrong mounts");
    auto it = fds->begin();
    root.replace(std::move(*it++));
    fileMounts_.clear();
    fileMounts_.resize(layout_.entries.size());
    if (layout_.hasDirectoryMount()) dirMount_ = std::move(*it++);
    for (std::size_t i = 0; i < layout_.entries.size(); ++i)
        if (!layout_.entries[i].inDirectory) fileMounts_[i] = std::move(*it++);
    return {};
}

int TmpfsView::writableRoot() const { return flushed_ ? -1 : root_->storable(); }

std::vector<MountSource> TmpfsView::mountSources() const {
    std::vector<MountSource> sources;
    if (dirMount_) sources.push_back({std::string(mountfs::kSecretsDir), dirMount_.get(), true});
    for (std::size_t i = 0; i < fileMounts_.size(); ++i)
        if (fileMounts_[i]) sources.push_back({layout_.entries[i].ref.target, fileMounts_[i].get(), false});
    return sources;
}

void TmpfsView::releaseMountSources() {
    dirMount_.reset();
    for (auto& fd : fileMounts_) fd.reset();
}

// A re-adopted view has no mount sources: it is attached already.
Result<void> TmpfsView::attach(const mountfs::ContainerHandle& container) {
    if (flushed_) return fail("the secrets view was flushed");
    const std::vector<MountSource> sources = mountSources();
    if (sources.empty()) return fail("the secrets view is already attached");
    std::vector<int> keep{container.pidfd};
    for (const auto& source : sources) keep.push_back(source.fd);
    auto done = runInHelper(keep, [&]() -> Result<std::vector<UniqueFd>> {
        if (auto ok = attachMounts(container.pidfd, container.rootfs, sources, &confineForAttach); !ok)
            return propagate(ok);
        return std::vector<UniqueFd>{};
    });
    if (!done) return propagate(done);
    releaseMountSources();
    return {};
}

}  // namespace secretshim::platform
