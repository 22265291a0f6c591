#include "platform/linux/tmpfs_view.hpp"

#include <sched.h>
#include <sys/mount.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>  // renameat2
#include <string>

#include "platform/linux/confine.hpp"
#include "platform/linux/helper_process.hpp"
#include "platform/linux/mount_api.hpp"

namespace secretshim::platform {
namespace {

using mountfs::Bytes;

constexpr std::size_t kPage = 4096;
constexpr std::uint64_t kOwnOnly = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
constexpr const char* kUpdateTemp = "file/.update";

std::size_t pages(std::size_t bytes) { return (bytes + kPage - 1) / kPage * kPage; }

Result<void> writeAll(int fd, Bytes data) {
    std::size_t done = 0;
    while (done < data.size()) {
        const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return failErrno("writing a secret file");
        done += static_cast<std::size_t>(n);
    }
    return {};
}

Result<void> writeSecretFile(int root, const std::string& path, Bytes data,
                             const mountfs::SecretRef& ref) {
    // 0600 until fchown/fchmod set the reference's own owner and mode.
    UniqueFd fd(::openat(root, path.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd) return failErrno("creating the file for secret \"" + ref.source + "\"");
    if (auto ok = writeAll(fd.get(), data); !ok)
        return tl::unexpected(wrap(ok.error(), "secret \"" + ref.source + "\""));
    // A new file already belongs to our fsuid/fsgid (the view's directories
    // have no setgid bit): skip the call when that is the wanted owner, as
    // it is for most references (uid and gid default to 0).
    // (Asked once: geteuid and getegid are syscalls too.)
    static const uid_t ownUid = ::geteuid();
    static const gid_t ownGid = ::getegid();
    if ((ref.uid != ownUid || ref.gid != ownGid) && ::fchown(fd.get(), ref.uid, ref.gid) != 0)
        return failErrno("setting the owner of secret \"" + ref.source + "\"");
    if (::fchmod(fd.get(), ref.mode) != 0)
        return failErrno("setting the mode of secret \"" + ref.source + "\"");
    return {};
}

// Overwrites an open file with zeros and frees its pages. The zeros are
// what wipes the plaintext: truncating alone would hand the pages back to
// the page allocator as they are (unless the kernel runs with
// init_on_free). One pwritev() of the same zero page repeated covers a file
// of up to kZeroPages pages (every payload up to 512 KiB), instead of one
// pwrite() per page.
Result<void> wipeFile(int fd) {
    constexpr std::size_t kZeroPages = 128;
    struct stat st {};
    if (::fstat(fd, &st) != 0) return failErrno("inspecting a secret file");
    static const unsigned char zeros[kPage] = {};
    iovec iov[kZeroPages];
    for (off_t off = 0; off < st.st_size;) {
        std::size_t left = static_cast<std::size_t>(st.st_size - off), n = 0;
        for (; n < kZeroPages && left > 0; ++n) {
            iov[n] = {const_cast<unsigned char*>(zeros), std::min(kPage, left)};
            left -= iov[n].iov_len;
        }
        const ssize_t written = ::pwritev(fd, iov, static_cast<int>(n), off);
        if (written < 0 && errno == EINTR) continue;
        if (written <= 0) return failErrno("overwriting a secret file");
        off += written;
    }
    if (::ftruncate(fd, 0) != 0) return failErrno("truncating a secret file");
    return {};
}

Result<UniqueFd> readOnlyClone(int dirfd, const char* path) {
    UniqueFd clone(::open_tree(dirfd, path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_SYMLINK_NOFOLLOW));
    if (!clone) return failErrno(std::string("cloning the view's ") + path);
    if (sysMountSetattr(clone.get(), "", AT_EMPTY_PATH, MOUNT_ATTR_RDONLY, 0) != 0)
        return failErrno(std::string("making the view's ") + path + " read-only");
    return clone;
}

Result<UniqueFd> createTmpfs(std::size_t sizeBytes, std::size_t inodes, bool tryNoswap, bool& noswap) {
    UniqueFd ctx(::fsopen("tmpfs", FSOPEN_CLOEXEC));
    if (!ctx) return failErrno("fsopen(tmpfs)");
    const auto set = [&](const char* key, const std::string& value) -> Result<void> {
        if (::fsconfig(ctx.get(), FSCONFIG_SET_STRING, key, value.c_str(), 0) != 0)
            return failErrno(std::string("setting tmpfs ") + key);
        return {};
    };
    if (auto ok = set("size", std::to_string(sizeBytes)); !ok) return tl::unexpected(ok.error());
    if (auto ok = set("nr_inodes", std::to_string(inodes)); !ok) return tl::unexpected(ok.error());
    if (auto ok = set("mode", "0755"); !ok) return tl::unexpected(ok.error());
    // Names our mounts in mountinfo, for admins and for the tests.
    if (auto ok = set("source", "secretshim"); !ok) return tl::unexpected(ok.error());
    // noswap keeps plaintext off swap devices (6.4+); refused in a user
    // namespace or on older kernels, where we go on without it.
    noswap = tryNoswap && ::fsconfig(ctx.get(), FSCONFIG_SET_FLAG, "noswap", nullptr, 0) == 0;
    if (::fsconfig(ctx.get(), FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) != 0)
        return failErrno("creating the tmpfs");
    UniqueFd mnt(::fsmount(ctx.get(), FSMOUNT_CLOEXEC,
                           MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC));
    if (!mnt) return failErrno("fsmount(tmpfs)");
    return mnt;
}

}  // namespace

Result<std::unique_ptr<TmpfsView>> TmpfsView::build(mountfs::ViewLayout layout,
                                                     const std::vector<Bytes>& payloads,
                                                     const mountfs::ViewOptions& options,
                                                     const KernelFeatures& features) {
    if (!features.sufficient())
        return fail("the kernel lacks what secrets views need (" + features.describe() + ")");
    if (payloads.size() != layout.entries.size())
        return fail("internal error: " + std::to_string(payloads.size()) + " payloads for " +
                    std::to_string(layout.entries.size()) + " references");
    std::size_t bytes = 0;
    for (std::size_t i = 0; i < payloads.size(); ++i) {
        const auto& ref = layout.entries[i].ref;
        if (auto ok = mountfs::checkPayloadSize(ref.source, payloads[i].size(), options.maxPayload); !ok)
            return tl::unexpected(ok.error());
        bytes += pages(payloads[i].size());
    }
    // Room for every file, one update's temporary file, and directories.
    bytes += pages(options.maxPayload) + kPage * (layout.directories.size() + 4);
    const std::size_t inodes = layout.entries.size() + layout.directories.size() + 8;

    std::unique_ptr<TmpfsView> view(new TmpfsView(std::move(layout), features, options.maxPayload));
    auto root = createTmpfs(bytes, inodes, features.tmpfsNoswap, view->noswap_);
    if (!root) return tl::unexpected(root.error());
    view->root_ = std::move(*root);

    const int rootfd = view->root_.get();
    for (const std::string& dir : {std::string(mountfs::kViewDir), std::string(mountfs::kViewFiles)})
        if (::mkdirat(rootfd, dir.c_str(), dir == mountfs::kViewDir ? 0755 : 0700) != 0)
            return failErrno("creating the view's " + dir);
    for (const std::string& dir : view->layout_.directories)
        if (::mkdirat(rootfd, dir.c_str(), 0755) != 0)
            return failErrno("creating the view's " + dir);
    for (std::size_t i = 0; i < payloads.size(); ++i) {
        const auto& entry = view->layout_.entries[i];
        if (auto ok = writeSecretFile(rootfd, entry.file, payloads[i], entry.ref); !ok)
            return tl::unexpected(ok.error());
    }

    auto ok = features.detachedClone ? view->makeReadOnlyClones() : view->makeReadOnlyClonesStaged();
    if (!ok) return tl::unexpected(ok.error());
    return view;
}

Result<void> TmpfsView::makeReadOnlyClones() {
    fileMounts_.resize(layout_.entries.size());
    if (layout_.hasDirectoryMount()) {
        auto clone = readOnlyClone(root_.get(), std::string(mountfs::kViewDir).c_str());
        if (!clone) return tl::unexpected(clone.error());
        dirMount_ = std::move(*clone);
    }
    for (std::size_t i = 0; i < layout_.entries.size(); ++i) {
        if (layout_.entries[i].inDirectory) continue;
        auto clone = readOnlyClone(root_.get(), layout_.entries[i].file.c_str());
        if (!clone) return tl::unexpected(clone.error());
        fileMounts_[i] = std::move(*clone);
    }
    return {};
}

// Before 6.15 a detached mount cannot be cloned. A helper attaches it in a
// private mount namespace of its own, clones from there (the writable root
// too), and exits; the clones outlive that namespace.
Result<void> TmpfsView::makeReadOnlyClonesStaged() {
    // Host side only (no container's files): no_new_privs and no inherited
    // fds but the view's, no seccomp (it needs unshare and mount).
    const int keep[] = {root_.get()};
    auto fds = runInHelper(keep, [this]() -> Result<std::vector<UniqueFd>> {
        if (::unshare(CLONE_NEWNS) != 0) return failErrno("unshare(CLONE_NEWNS)");
        if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
            return failErrno("making the helper's mounts private");
        if (::move_mount(root_.get(), "", AT_FDCWD, "/tmp", MOVE_MOUNT_F_EMPTY_PATH) != 0)
            return failErrno("staging the view");
        UniqueFd staged(::open("/tmp", O_PATH | O_DIRECTORY | O_CLOEXEC));
        if (!staged) return failErrno("opening the staged view");
        std::vector<UniqueFd> out;
        UniqueFd writable(::open_tree(staged.get(), "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH));
        if (!writable) return failErrno("cloning the staged view");
        out.push_back(std::move(writable));
        root_.reset(staged.release());  // this is the helper's copy of the view
        if (auto ok = makeReadOnlyClones(); !ok) return tl::unexpected(ok.error());
        if (dirMount_) out.push_back(std::move(dirMount_));
        for (auto& fd : fileMounts_)
            if (fd) out.push_back(std::move(fd));
        return out;
    });
    if (!fds) return tl::unexpected(fds.error());
    const std::size_t expected = 1 + (layout_.hasDirectoryMount() ? 1 : 0) +
        static_cast<std::size_t>(std::count_if(layout_.entries.begin(), layout_.entries.end(),
                                               [](const auto& e) { return !e.inDirectory; }));
    if (fds->size() != expected) return fail("the staging helper returned the wrong mounts");
    auto it = fds->begin();
    root_ = std::move(*it++);
    fileMounts_.clear();
    fileMounts_.resize(layout_.entries.size());
    if (layout_.hasDirectoryMount()) dirMount_ = std::move(*it++);
    for (std::size_t i = 0; i < layout_.entries.size(); ++i)
        if (!layout_.entries[i].inDirectory) fileMounts_[i] = std::move(*it++);
    return {};
}

// In the container's mount namespace: our tmpfs mounted at `target`, cloned
// and made writable again.
static Result<UniqueFd> cloneAttached(int root, const std::string& target) {
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
    UniqueFd clone(::open_tree(at.get(), "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH));
    if (!clone) return failErrno("cloning " + target + " in the container");
    if (sysMountSetattr(clone.get(), "", AT_EMPTY_PATH, 0, MOUNT_ATTR_RDONLY) != 0)
        return failErrno("making the clone of " + target + " writable");
    return clone;
}

Result<std::unique_ptr<TmpfsView>> TmpfsView::adopt(mountfs::ViewLayout layout, int pidfd,
                                                     const KernelFeatures& features) {
    std::unique_ptr<TmpfsView> view(new TmpfsView(std::move(layout), features, 0));
    const mountfs::ViewLayout& l = view->layout_;
    const int keep[] = {pidfd};
    auto fds = runInHelper(keep, [&]() -> Result<std::vector<UniqueFd>> {
        if (::setns(pidfd, CLONE_NEWNS) != 0) return failErrno("entering the container's mount namespace");
        // Inside the container, before looking at its files: confined like
        // the hook, plus the calls that clone our mounts back.
        if (auto ok = confineForReadopt(); !ok) return tl::unexpected(ok.error());
        UniqueFd root(::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC));
        if (!root) return failErrno("opening the container's root");
        std::vector<UniqueFd> out;
        if (l.hasDirectoryMount()) {
            auto fd = cloneAttached(root.get(), std::string(mountfs::kSecretsDir));
            if (!fd) return tl::unexpected(fd.error());
            out.push_back(std::move(*fd));
        }
        for (const auto& entry : l.entries) {
            if (entry.inDirectory) continue;
            auto fd = cloneAttached(root.get(), entry.ref.target);
            if (!fd) return tl::unexpected(fd.error());
            out.push_back(std::move(*fd));
        }
        return out;
    });
    if (!fds) return tl::unexpected(fds.error());
    auto it = fds->begin();
    view->adopted_ = true;
    if (l.hasDirectoryMount()) view->root_ = std::move(*it++);
    view->fileMounts_.resize(l.entries.size());
    for (std::size_t i = 0; i < l.entries.size(); ++i)
        if (!l.entries[i].inDirectory) view->fileMounts_[i] = std::move(*it++);
    return view;
}

Result<void> TmpfsView::flushAdopted() {
    Result<void> result;
    const std::size_t prefix = mountfs::kViewDir.size() + 1;
    for (std::size_t i = 0; i < layout_.entries.size(); ++i) {
        const auto& entry = layout_.entries[i];
        UniqueFd fd;
        if (entry.inDirectory && root_)
            fd.reset(sysOpenat2(root_.get(), entry.file.c_str() + prefix, O_WRONLY | O_NOFOLLOW, kOwnOnly));
        else if (fileMounts_[i])  // a single-file mount: reopen the file it shows
            fd.reset(::open(("/proc/self/fd/" + std::to_string(fileMounts_[i].get())).c_str(),
                            O_WRONLY | O_CLOEXEC));
        Result<void> ok = fd ? wipeFile(fd.get()) : failErrno("opening " + entry.ref.target);
        if (ok && entry.inDirectory && ::unlinkat(root_.get(), entry.file.c_str() + prefix, 0) != 0)
            ok = failErrno("removing " + entry.ref.target);
        if (!ok && result)
            result = tl::unexpected(wrap(ok.error(), "flushing secret \"" + entry.ref.source + "\""));
    }
    root_.reset();
    for (auto& fd : fileMounts_) fd.reset();
    flushed_ = true;
    return result;
}

TmpfsView::~TmpfsView() {
    if (!kept_) (void)flush();
}

std::vector<MountSource> TmpfsView::mountSources() const {
    std::vector<MountSource> sources;
    if (adopted_) return sources;  // fileMounts_ are writable clones then
    if (dirMount_) sources.push_back({std::string(mountfs::kSecretsDir), dirMount_.get(), true});
    for (std::size_t i = 0; i < fileMounts_.size(); ++i)
        if (fileMounts_[i]) sources.push_back({layout_.entries[i].ref.target, fileMounts_[i].get(), false});
    return sources;
}

void TmpfsView::releaseMountSources() {
    if (adopted_) return;
    dirMount_.reset();
    for (auto& fd : fileMounts_) fd.reset();
}

Result<void> TmpfsView::attach(const mountfs::ContainerHandle& container) {
    if (flushed_) return fail("the secrets view was flushed");
    if (adopted_) return fail("the secrets view is already attached");
    const std::vector<MountSource> sources = mountSources();
    if (sources.empty()) return fail("the secrets view is already attached");
    std::vector<int> keep{container.pidfd};
    for (const auto& source : sources) keep.push_back(source.fd);
    auto done = runInHelper(keep, [&]() -> Result<std::vector<UniqueFd>> {
        if (auto ok = attachMounts(container.pidfd, container.rootfs, sources, &confineForAttach); !ok)
            return tl::unexpected(ok.error());
        return std::vector<UniqueFd>{};
    });
    if (!done) return tl::unexpected(done.error());
    releaseMountSources();
    return {};
}

Result<void> TmpfsView::update(std::size_t index, Bytes payload,
                               const mountfs::ContainerHandle& container) {
    if (flushed_) return fail("the secrets view was flushed");
    if (adopted_) return fail("a view re-adopted after an agent restart cannot be updated");
    if (index >= layout_.entries.size()) return fail("no such reference in the view");
    const mountfs::ViewEntry& entry = layout_.entries[index];
    if (auto ok = mountfs::checkPayloadSize(entry.ref.source, payload.size(), maxPayload_); !ok)
        return ok;
    if (!entry.inDirectory && !(features_.moveMountBeneath && features_.detachedClone))
        return fail("updating " + entry.ref.target +
                    " needs a restart of the task: the kernel cannot rebind a single-file mount");

    (void)::unlinkat(root_.get(), kUpdateTemp, 0);  // left by a crash
    if (auto ok = writeSecretFile(root_.get(), kUpdateTemp, payload, entry.ref); !ok) return ok;
    // The old file is not wiped: a reader that opened it just before the
    // swap must still read the whole old value (the atomic-update test
    // caught torn reads when it was). Its pages are freed with its last
    // reference. Revocation and exit go through flush(), which does wipe.
    // rename() swaps the name atomically: a reader opens the old file or the
    // new one, never a half-written one.
    if (::renameat(root_.get(), kUpdateTemp, root_.get(), entry.file.c_str()) != 0)
        return failErrno("replacing secret \"" + entry.ref.source + "\"");
    if (entry.inDirectory) return {};

    auto clone = readOnlyClone(root_.get(), entry.file.c_str());
    if (!clone) return tl::unexpected(clone.error());
    const int keep[] = {container.pidfd, clone->get()};
    auto done = runInHelper(keep, [&]() -> Result<std::vector<UniqueFd>> {
        if (auto ok = rebindFile(container.pidfd, container.rootfs, entry.ref.target, clone->get(),
                                 &confineForAttach);
            !ok)
            return tl::unexpected(ok.error());
        return std::vector<UniqueFd>{};
    });
    if (!done) return tl::unexpected(done.error());
    return {};
}

Result<void> TmpfsView::addEntry(const mountfs::SecretRef& ref, Bytes payload) {
    if (flushed_) return fail("the secrets view was flushed");
    if (adopted_) return fail("a view re-adopted after an agent restart cannot be updated");
    auto planned = mountfs::planView({ref});
    if (!planned) return tl::unexpected(planned.error());
    mountfs::ViewEntry entry = planned->entries.front();
    if (!entry.inDirectory || !layout_.hasDirectoryMount())
        return fail("adding " + ref.target + " needs a restart of the task: only targets under " +
                    std::string(mountfs::kSecretsDir) + " of a task that already has some can be added live");
    for (const auto& e : layout_.entries)
        if (e.file == entry.file) return fail("target " + ref.target + " is already in the view");
    if (auto ok = mountfs::checkPayloadSize(ref.source, payload.size(), maxPayload_); !ok) return ok;
    for (const std::string& dir : planned->directories)
        if (::mkdirat(root_.get(), dir.c_str(), 0755) != 0 && errno != EEXIST)
            return failErrno("creating the view's " + dir);
    (void)::unlinkat(root_.get(), kUpdateTemp, 0);
    if (auto ok = writeSecretFile(root_.get(), kUpdateTemp, payload, entry.ref); !ok) return ok;
    // RENAME_NOREPLACE: never over a file the image's view already shows.
    if (::renameat2(root_.get(), kUpdateTemp, root_.get(), entry.file.c_str(), RENAME_NOREPLACE) != 0) {
        auto error = failErrno("adding secret \"" + ref.source + "\"");
        (void)::unlinkat(root_.get(), kUpdateTemp, 0);
        return error;
    }
    layout_.entries.push_back(std::move(entry));
    fileMounts_.resize(layout_.entries.size());
    return {};
}

Result<void> TmpfsView::removeEntry(std::size_t index) {
    if (flushed_) return fail("the secrets view was flushed");
    if (adopted_) return fail("a view re-adopted after an agent restart cannot be updated");
    if (index >= layout_.entries.size()) return fail("no such reference in the view");
    const mountfs::ViewEntry entry = layout_.entries[index];
    // Zero before unlinking: a reader that has the file open, or the
    // single-file mount that pins it, then sees nothing of the secret.
    UniqueFd fd(sysOpenat2(root_.get(), entry.file.c_str(), O_WRONLY | O_NOFOLLOW, kOwnOnly));
    Result<void> ok = fd ? wipeFile(fd.get()) : failErrno("opening " + entry.file);
    if (ok && ::unlinkat(root_.get(), entry.file.c_str(), 0) != 0) ok = failErrno("removing " + entry.file);
    if (!ok) return tl::unexpected(wrap(ok.error(), "revoking secret \"" + entry.ref.source + "\""));
    layout_.entries.erase(layout_.entries.begin() + static_cast<std::ptrdiff_t>(index));
    if (index < fileMounts_.size()) fileMounts_.erase(fileMounts_.begin() + static_cast<std::ptrdiff_t>(index));
    return {};
}

Result<void> TmpfsView::flush() {
    if (flushed_) return {};
    if (adopted_) return flushAdopted();
    Result<void> result;
    releaseMountSources();
    for (const auto& entry : layout_.entries) {
        // Zero before unlinking: a process that has the file open (or a
        // single-file mount that pins it) then sees zeros, not the secret.
        UniqueFd fd(sysOpenat2(root_.get(), entry.file.c_str(), O_WRONLY | O_NOFOLLOW, kOwnOnly));
        Result<void> ok = fd ? wipeFile(fd.get()) : failErrno("opening " + entry.file);
        if (ok && ::unlinkat(root_.get(), entry.file.c_str(), 0) != 0)
            ok = failErrno("removing " + entry.file);
        if (!ok && result) result = tl::unexpected(wrap(ok.error(), "flushing secret \"" + entry.ref.source + "\""));
    }
    (void)::unlinkat(root_.get(), kUpdateTemp, 0);
    root_.reset();
    flushed_ = true;
    return result;
}

}  // namespace secretshim::platform

namespace secretshim::mountfs {

Result<std::unique_ptr<SecretsView>> buildView(ViewLayout layout, const std::vector<Bytes>& payloads,
                                               const ViewOptions& options) {
    auto view = platform::TmpfsView::build(std::move(layout), payloads, options,
                                           platform::kernelFeatures());
    if (!view) return tl::unexpected(view.error());
    return std::unique_ptr<SecretsView>(std::move(*view));
}

}  // namespace secretshim::mountfs
