#include "platform/linux/tmpfs_view.hpp"

#include <sched.h>
#include <sys/mount.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/statfs.h>
#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>  // renameat2
#include <set>
#include <string>

#include "platform/linux/confine.hpp"
#include "platform/linux/id_map.hpp"
#include "platform/linux/helper_process.hpp"
#include "platform/linux/mount_api.hpp"
#include "platform/linux/two_threads.hpp"
#include "platform/linux/view_file.hpp"

namespace secretshim::platform {
namespace {

using mountfs::Bytes;

constexpr std::size_t kPage = 4096;
// In the tmpfs root, next to dir/ and file/: no target's file can be named so.
constexpr const char* kUpdateTemp = ".update";
// A re-adopted view reaches only dir/: its new files are linked there under
// this name, complete (owner, mode, content), for the moment before the
// rename that puts them in place.
constexpr const char* kAdoptedTemp = ".secretshim-update";

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

Result<void> fillSecretFile(int fd, Bytes data, const mountfs::SecretRef& ref);

Result<void> writeSecretFile(int root, const std::string& path, Bytes data,
                             const mountfs::SecretRef& ref) {
    // 0600 until fchown/fchmod set the reference's own owner and mode.
    UniqueFd fd(::openat(root, path.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd) return failErrno("creating the file for secret \"" + ref.source + "\"");
    return fillSecretFile(fd.get(), data, ref);
}

Result<void> setOwnerAndMode(int fd, const mountfs::SecretRef& ref);

Result<void> fillSecretFile(int fd, Bytes data, const mountfs::SecretRef& ref) {
    if (auto ok = writeAll(fd, data); !ok)
        return tl::unexpected(wrap(ok.error(), "secret \"" + ref.source + "\""));
    return setOwnerAndMode(fd, ref);
}

Result<void> setOwnerAndMode(int fd, const mountfs::SecretRef& ref) {
    // A new file already belongs to our fsuid/fsgid (the view's directories
    // have no setgid bit): skip the call when that is the wanted owner, as
    // it is for most references (uid and gid default to 0).
    // (Asked once: geteuid and getegid are syscalls too.)
    static const uid_t ownUid = ::geteuid();
    static const gid_t ownGid = ::getegid();
    if ((ref.uid != ownUid || ref.gid != ownGid) && ::fchown(fd, ref.uid, ref.gid) != 0)
        return failErrno("setting the owner of secret \"" + ref.source + "\"");
    if (::fchmod(fd, ref.mode) != 0)
        return failErrno("setting the mode of secret \"" + ref.source + "\"");
    return {};
}

// The file a (writable) single-file mount shows, through the mount itself;
// only a regular file, never waiting on it (a re-adopted mount is the
// container's tree).
Result<void> wipeMounted(int mountFd) {
    UniqueFd fd(::open(("/proc/self/fd/" + std::to_string(mountFd)).c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC));
    if (!fd) return failErrno("opening a single-file mount");
    if (auto ok = checkRegular(fd.get(), "what a single-file mount shows"); !ok) return ok;
    return wipeFile(fd.get());
}

// Appends each piece to the file, counting what it got.
class FileSink final : public mountfs::PayloadSink {
public:
    explicit FileSink(int fd) : fd_(fd) {}
    Result<void> write(Bytes piece) override {
        if (auto ok = writeAll(fd_, piece); !ok) return ok;
        written_ += piece.size();
        return {};
    }
    std::size_t written() const { return written_; }

private:
    int fd_;
    std::size_t written_ = 0;
};

// A new file holding payload `index` of `source`, written by the source
// itself piece by piece (the agent decrypts through one small locked buffer
// straight into the file: measured against decrypting into a shared
// mapping of the file, that was about 40% less CPU for 1000 x 64 KiB and
// for 1000 x 64 B: mmap, a zeroed page fault per page and munmap cost more
// than the copy of a cache-hot buffer). If the source fails midway (a record that
// fails its tag check once all its unauthenticated plaintext was written),
// what it wrote is zeroed and the file removed before the error returns.
Result<void> writeSecretFileFrom(int root, const std::string& path, const mountfs::PayloadSource& source,
                                 std::size_t index, const mountfs::SecretRef& ref) {
    UniqueFd fd(::openat(root, path.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd) return failErrno("creating the file for secret \"" + ref.source + "\"");
    FileSink sink(fd.get());
    Result<void> ok = source.produce(index, sink);
    if (ok && sink.written() != source.size(index))
        ok = fail("internal error: secret \"" + ref.source + "\" produced " + std::to_string(sink.written()) +
                  " bytes, not " + std::to_string(source.size(index)));
    if (ok) ok = setOwnerAndMode(fd.get(), ref);
    if (!ok) {
        (void)wipeFile(fd.get());
        (void)::unlinkat(root, path.c_str(), 0);
        const auto& e = ok.error();
        // The source's own errors already name the secret (the store's
        // "cannot decrypt" line); a failed write does not.
        if (e.message.find(ref.source) == std::string::npos)
            return tl::unexpected(wrap(e, "secret \"" + ref.source + "\""));
        return ok;
    }
    return {};
}

// A directory of the view with exactly `mode`: under the unit's UMask=0077
// mkdirat() alone made dir/, which /run/secrets shows, 0700 and root's,
// closed to every other user of the container.
Result<void> makeDirectory(int root, const std::string& path, mode_t mode) {
    if (::mkdirat(root, path.c_str(), mode) != 0) return failErrno("creating the view's " + path);
    if (::fchmodat(root, path.c_str(), mode, 0) != 0) return failErrno("setting the mode of the view's " + path);
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
            return tl::unexpected(ok.error());
        bytes += pages(payloads.size(i));
    }
    // Room for every file, one update's temporary file, and directories.
    bytes += pages(options.maxPayload) + kPage * (layout.directories.size() + 4);
    const std::size_t inodes = layout.entries.size() + layout.directories.size() + 8;

    std::unique_ptr<TmpfsView> view(new TmpfsView(std::move(layout), features, options.maxPayload));
    auto root = createTmpfs(bytes, inodes, features.tmpfsNoswap, view->noswap_);
    if (!root) return tl::unexpected(root.error());
    view->root_ = std::move(*root);
    struct stat st {};
    if (::fstat(view->root_.get(), &st) != 0) return failErrno("inspecting the view's tmpfs");
    view->device_ = st.st_dev;

    const int rootfd = view->root_.get();
    for (const std::string& dir : {std::string(mountfs::kViewDir), std::string(mountfs::kViewFiles)})
        if (auto ok = makeDirectory(rootfd, dir, dir == mountfs::kViewDir ? 0755 : 0700); !ok)
            return tl::unexpected(ok.error());
    for (const std::string& dir : view->layout_.directories)
        if (auto ok = makeDirectory(rootfd, dir, 0755); !ok) return tl::unexpected(ok.error());
    // On failure the view's destructor flushes the files already written
    // (a missing one is skipped); a file left partial was wiped and removed
    // by writeSecretFileFrom().
    if (auto ok = view->fillFiles(payloads); !ok) return tl::unexpected(ok.error());

    auto ok = features.detachedClone ? view->makeReadOnlyClones() : view->makeReadOnlyClonesStaged();
    if (!ok) return tl::unexpected(ok.error());
    view->dirAttached_ = view->layout_.hasDirectoryMount();
    return view;
}

// A large task's files are filled on two threads, each with its own copy
// of the source (its own decryption buffer). Both the bytes and the number
// of files count: creating, filling and closing a file costs about as much
// as writing kFileCost bytes, so 1000 files of 64 B are worth a thread as
// much as 2 MiB of values are. Below kTwoThreads (about a millisecond of
// work) the thread costs more than it saves.
Result<void> TmpfsView::fillFiles(const mountfs::PayloadSource& payloads) {
    constexpr std::size_t kFileCost = std::size_t{16} << 10;
    constexpr std::size_t kTwoThreads = std::size_t{2} << 20;
    const std::size_t count = payloads.count();
    std::size_t total = 0;
    for (std::size_t i = 0; i < count; ++i) total += kFileCost + payloads.size(i);
    std::atomic<bool> stop{false};
    const auto fill = [&](const mountfs::PayloadSource& source, std::size_t from, std::size_t to) -> Result<void> {
        for (std::size_t i = from; i < to && !stop.load(std::memory_order_relaxed); ++i) {
            const auto& entry = layout_.entries[i];
            if (auto ok = writeSecretFileFrom(root_.get(), entry.file, source, i, entry.ref); !ok) {
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
// and made writable again. Only our very tmpfs: what is mounted there is at
// a mount root and on the device the view was built on (recorded in the
// task's root-only record; anonymous device numbers are unique while their
// superblock lives, and the container's mount keeps ours alive). Anything
// else, a tmpfs of the container's own mounted over ours, say, is refused
// before anything in it is opened.
static Result<UniqueFd> cloneAttached(int root, const std::string& target, dev_t device) {
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
        if (auto ok = confineForReadopt(); !ok) return tl::unexpected(ok.error());
        UniqueFd root(::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC));
        if (!root) return failErrno("opening the container's root");
        std::vector<UniqueFd> out;
        if (l.hasDirectoryMount()) {
            auto fd = cloneAttached(root.get(), std::string(mountfs::kSecretsDir), device);
            if (!fd) return tl::unexpected(fd.error());
            out.push_back(std::move(*fd));
        }
        for (const auto& entry : l.entries) {
            if (entry.inDirectory) continue;
            auto fd = cloneAttached(root.get(), entry.ref.target, device);
            if (!fd) return tl::unexpected(fd.error());
            out.push_back(std::move(*fd));
        }
        return out;
    });
    if (!fds) return tl::unexpected(fds.error());
    auto it = fds->begin();
    view->adopted_ = true;
    if (l.hasDirectoryMount()) view->root_ = std::move(*it++);
    view->dirAttached_ = static_cast<bool>(view->root_);
    view->fileMounts_.resize(l.entries.size());
    for (std::size_t i = 0; i < l.entries.size(); ++i)
        if (!l.entries[i].inDirectory) view->fileMounts_[i] = std::move(*it++);
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
    if (auto ok = checkStored(root.get(), device); !ok) return tl::unexpected(ok.error());
    std::set<std::string> files;
    for (const auto& entry : layout.entries) {
        // O_PATH: looked at (a regular file, inside the view), never opened.
        if (auto file = openViewFile(root.get(), entry.file, O_PATH); !file)
            return tl::unexpected(wrap(file.error(), "the stored view holds no file for " + entry.ref.target));
        files.insert(entry.file);
    }
    // A crash between writing a file and renaming it into place (a rotation,
    // a live grant) leaves one that no reference names: nobody else would
    // ever wipe it.
    if (auto strays = wipeTree(root.get(), files); !strays)
        return tl::unexpected(wrap(strays.error(), "wiping what the stored view holds beyond its references"));
    std::unique_ptr<TmpfsView> view(new TmpfsView(std::move(layout), features, maxPayload));
    view->root_ = std::move(root);
    view->device_ = device;
    view->noswap_ = features.tmpfsNoswap;  // as built: the agent asks for it wherever the kernel has it
    view->dirAttached_ = view->layout_.hasDirectoryMount();  // the hook attached it before the view was stored
    view->fileMounts_.resize(view->layout_.entries.size());
    return view;
}

Result<std::size_t> TmpfsView::wipeStored(int root, dev_t device) {
    if (auto ok = checkStored(root, device); !ok) return tl::unexpected(ok.error());
    return wipeTree(root);
}

Result<void> TmpfsView::flushAdopted() {
    Result<void> result;
    const std::size_t prefix = mountfs::kViewDir.size() + 1;
    for (std::size_t i = 0; i < layout_.entries.size(); ++i) {
        const auto& entry = layout_.entries[i];
        // The container's tree, as it was mounted at our targets: nothing
        // outside it is reached, nothing in it waited on (view_file.hpp).
        Result<void> ok;
        if (entry.inDirectory && root_)
            ok = wipeAndUnlink(root_.get(), entry.file.substr(prefix));
        else if (fileMounts_[i])
            ok = wipeMounted(fileMounts_[i].get());
        else
            ok = fail("opening " + entry.ref.target + ": not re-adopted");
        if (!ok && result)
            result = tl::unexpected(wrap(ok.error(), "flushing secret \"" + entry.ref.source + "\""));
    }
    if (root_) (void)::unlinkat(root_.get(), kAdoptedTemp, 0);  // left by a crash
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

std::string TmpfsView::pathInRoot(const mountfs::ViewEntry& entry) const {
    if (!adopted_) return entry.file;
    return entry.file.substr(mountfs::kViewDir.size() + 1);  // root_ is dir/ itself
}

// tmpfs takes a new size and inode count on a live superblock (fspick +
// FSCONFIG_CMD_RECONFIGURE, 5.2): a grant added live need not fit in the
// room left at build time. Only when the room left would not hold the file,
// its new directories and the update slot; best effort (a write that does
// not fit then fails with ENOSPC and says so).
void TmpfsView::growFor(std::size_t bytes, std::size_t directories) {
    struct statfs sfs {};
    if (!root_ || ::fstatfs(root_.get(), &sfs) != 0) return;
    const std::size_t need = pages(bytes) + pages(maxPayload_) + kPage * (directories + 1);
    const std::size_t have = static_cast<std::size_t>(sfs.f_bavail) * sfs.f_bsize;
    if (have >= need && sfs.f_ffree >= directories + 4) return;
    UniqueFd ctx(::fspick(root_.get(), "", FSPICK_EMPTY_PATH | FSPICK_CLOEXEC | FSPICK_NO_AUTOMOUNT));
    if (!ctx) return;
    const std::size_t size = static_cast<std::size_t>(sfs.f_blocks) * sfs.f_bsize + (need - std::min(have, need));
    const std::size_t inodes = static_cast<std::size_t>(sfs.f_files) + directories + 4;
    (void)(::fsconfig(ctx.get(), FSCONFIG_SET_STRING, "size", std::to_string(size).c_str(), 0) == 0 &&
           ::fsconfig(ctx.get(), FSCONFIG_SET_STRING, "nr_inodes", std::to_string(inodes).c_str(), 0) == 0 &&
           ::fsconfig(ctx.get(), FSCONFIG_CMD_RECONFIGURE, nullptr, nullptr, 0) == 0);
}

Result<std::string> TmpfsView::stageFile(Bytes payload, const mountfs::SecretRef& ref) {
    if (!root_)
        return fail("the view re-adopted after an agent restart has no " + std::string(mountfs::kSecretsDir) +
                    " mount to write through: needs a restart of the task");
    if (!adopted_) {
        // No unlink beforehand (it was 13% of a rotation reaching 200
        // containers): only a failed update leaves this name, and it wipes
        // and removes it here, partial plaintext included.
        if (auto ok = writeSecretFile(root_.get(), kUpdateTemp, payload, ref); !ok) {
            (void)wipeAndUnlink(root_.get(), kUpdateTemp);
            return tl::unexpected(ok.error());
        }
        return std::string(kUpdateTemp);
    }
    for (const auto& e : layout_.entries)
        if (e.inDirectory && pathInRoot(e) == kAdoptedTemp)
            return fail("target " + e.ref.target + " is the name the agent needs for updates");
    // Unnamed until complete: the container never sees a partial file.
    UniqueFd fd(::openat(root_.get(), ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600));
    if (!fd) return failErrno("creating the file for secret \"" + ref.source + "\"");
    if (auto ok = fillSecretFile(fd.get(), payload, ref); !ok) {
        (void)wipeFile(fd.get());  // partial plaintext, freed with the fd
        return tl::unexpected(ok.error());
    }
    (void)::unlinkat(root_.get(), kAdoptedTemp, 0);  // left by a crash
    const std::string self = "/proc/self/fd/" + std::to_string(fd.get());
    if (::linkat(AT_FDCWD, self.c_str(), root_.get(), kAdoptedTemp, AT_SYMLINK_FOLLOW) != 0)
        return failErrno("linking the new file for secret \"" + ref.source + "\"");
    return std::string(kAdoptedTemp);
}

// Runs `act` (an attach or a rebind) in a helper inside the container's
// mount namespace. Built view: `source` is the read-only mount to use.
// Re-adopted view: its mounts were cloned inside the container's namespace,
// and the kernel lets only a process there clone them again (an anonymous
// mount namespace is tied to its creator's, fs/namespace.c
// check_anonymous_mnt()); so the helper clones `clonePath` of root_ there,
// before it confines itself, and brings the writable clone back.
Result<UniqueFd> TmpfsView::runInContainer(const mountfs::ContainerHandle& container, int source,
                                           const std::string& clonePath, uid_t uid, gid_t gid, const LiveAct& act) {
    std::vector<int> keep{container.pidfd};
    if (source >= 0) keep.push_back(source);
    if (!clonePath.empty()) keep.push_back(root_.get());
    auto fds = runInHelper(keep, [&]() -> Result<std::vector<UniqueFd>> {
        // What the container gets created in its tree (placeholders) is its
        // root's, as at start (the hook's actAsContainerRoot).
        if (uid != 0 || gid != 0)
            if (auto ok = actAs({uid, gid}); !ok) return tl::unexpected(ok.error());
        std::vector<UniqueFd> out;
        if (clonePath.empty()) {
            if (auto ok = act(source, &confineForAttach); !ok) return tl::unexpected(ok.error());
            return out;
        }
        // The fd number `act` will use, filled once inside.
        UniqueFd slot(::fcntl(container.pidfd, F_DUPFD_CLOEXEC, 0));
        if (!slot) return failErrno("reserving an fd");
        UniqueFd writable;
        const AfterEnter cloneThere = [&]() -> Result<void> {
            writable.reset(::open_tree(root_.get(), clonePath.c_str(),
                                       OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_SYMLINK_NOFOLLOW));
            if (!writable) return failErrno("cloning the view's new file");
            auto readOnly = readOnlyClone(root_.get(), clonePath.c_str());
            if (!readOnly) return tl::unexpected(readOnly.error());
            if (::dup3(readOnly->get(), slot.get(), O_CLOEXEC) < 0) return failErrno("placing the view's new mount");
            return confineForAttach();
        };
        if (auto ok = act(slot.get(), cloneThere); !ok) return tl::unexpected(ok.error());
        out.push_back(std::move(writable));
        return out;
    });
    if (!fds) return tl::unexpected(fds.error());
    if (fds->empty()) return UniqueFd();
    return std::move(fds->front());
}

Result<void> TmpfsView::update(std::size_t index, Bytes payload,
                               const mountfs::ContainerHandle& container) {
    if (flushed_) return fail("the secrets view was flushed");
    if (index >= layout_.entries.size()) return fail("no such reference in the view");
    const mountfs::ViewEntry entry = layout_.entries[index];
    if (auto ok = mountfs::checkPayloadSize(entry.ref.source, payload.size(), maxPayload_); !ok)
        return ok;
    if (!entry.inDirectory && !(features_.moveMountBeneath && features_.detachedClone))
        return fail("updating " + entry.ref.target +
                    " needs a restart of the task: the kernel cannot rebind a single-file mount");

    auto temp = stageFile(payload, entry.ref);
    if (!temp) return tl::unexpected(temp.error());
    // The old file is not wiped: a reader that opened it just before the
    // swap must still read the whole old value (the atomic-update test
    // caught torn reads when it was). Its pages are freed with its last
    // reference. Revocation and exit go through flush(), which does wipe.
    // rename() swaps the name atomically: a reader opens the old file or the
    // new one, never a half-written one.
    if (entry.inDirectory) {
        if (::renameat(root_.get(), temp->c_str(), root_.get(), pathInRoot(entry).c_str()) != 0) {
            auto error = failErrno("replacing secret \"" + entry.ref.source + "\"");
            (void)wipeAndUnlink(root_.get(), *temp);
            return error;
        }
        return {};
    }

    // A single-file target: a mount of the new file goes beneath the old one.
    // A re-adopted view has no file/ to rename into: the new file's own
    // writable clone becomes the entry's handle.
    struct stat own {};
    if (::fstat(root_.get(), &own) != 0) return failErrno("inspecting the view");
    const std::string target = entry.ref.target;
    const LiveAct rebind = [&](int fd, const AfterEnter& afterEnter) {
        return rebindFile(container.pidfd, container.rootfs, target, fd, afterEnter, own.st_dev);
    };
    if (adopted_) {
        auto writable = runInContainer(container, -1, *temp, 0, 0, rebind);
        (void)::unlinkat(root_.get(), temp->c_str(), 0);  // the mounts keep the file
        if (!writable) return tl::unexpected(writable.error());
        fileMounts_[index] = std::move(*writable);
        return {};
    }
    if (::renameat(root_.get(), temp->c_str(), root_.get(), entry.file.c_str()) != 0)
        return failErrno("replacing secret \"" + entry.ref.source + "\"");
    auto clone = readOnlyClone(root_.get(), entry.file.c_str());
    if (!clone) return tl::unexpected(clone.error());
    auto done = runInContainer(container, clone->get(), {}, 0, 0, rebind);
    if (!done) return tl::unexpected(done.error());
    return {};
}

bool TmpfsView::addNeedsMount(const mountfs::SecretRef& ref) const {
    auto planned = mountfs::planView({ref});
    return !planned || !planned->entries.front().inDirectory || !dirAttached_;
}


// An act for runInContainer(): attaches `source` (its fd: the one given).
TmpfsView::LiveAct TmpfsView::attachOne(const mountfs::ContainerHandle& container, MountSource source) {
    return [container, source](int fd, const AfterEnter& afterEnter) mutable {
        source.fd = fd;
        return attachMounts(container.pidfd, container.rootfs, std::span<const MountSource>(&source, 1), afterEnter);
    };
}

Result<void> TmpfsView::addEntry(const mountfs::SecretRef& ref, Bytes payload,
                                 const mountfs::ContainerHandle& container, uid_t rootUid, gid_t rootGid) {
    if (flushed_) return fail("the secrets view was flushed");
    auto planned = mountfs::planView({ref});
    if (!planned) return tl::unexpected(planned.error());
    mountfs::ViewEntry entry = planned->entries.front();
    for (const auto& e : layout_.entries)
        if (e.ref.target == ref.target) return fail("target " + ref.target + " is already in the view");
    if (auto ok = mountfs::checkPayloadSize(ref.source, payload.size(), maxPayload_); !ok) return ok;
    const bool newMount = !entry.inDirectory || !dirAttached_;
    // Before 6.15 only the staging helper could clone a detached mount.
    if (newMount && !features_.detachedClone)
        return fail("adding " + ref.target + " needs a restart of the task: the kernel cannot clone a detached mount");
    if (!root_)
        return fail("adding " + ref.target + " needs a restart of the task: the view re-adopted after an agent "
                    "restart has no " + std::string(mountfs::kSecretsDir) + " mount to write through");
    growFor(payload.size(), planned->directories.size());
    // A re-adopted view has only dir/: it stages a single-file entry there.
    if (entry.inDirectory || !adopted_)
        for (const std::string& dir : planned->directories) {
            const std::string path = adopted_ ? dir.substr(mountfs::kViewDir.size() + 1) : dir;
            if (auto ok = makeDirectory(root_.get(), path, 0755); !ok && ok.error().code != EEXIST)
                return tl::unexpected(ok.error());
        }

    if (entry.inDirectory && dirAttached_) {
        auto temp = stageFile(payload, entry.ref);
        if (!temp) return tl::unexpected(temp.error());
        // RENAME_NOREPLACE: never over a file the view already shows.
        if (::renameat2(root_.get(), temp->c_str(), root_.get(), pathInRoot(entry).c_str(), RENAME_NOREPLACE) != 0) {
            auto error = failErrno("adding secret \"" + ref.source + "\"");
            (void)::unlinkat(root_.get(), temp->c_str(), 0);
            return error;
        }
    } else if (entry.inDirectory) {
        // The first target under /run/secrets of a built view: dir/ is not
        // in the container yet; the file is complete before dir/ appears.
        if (auto ok = writeSecretFile(root_.get(), entry.file, payload, entry.ref); !ok) return ok;
        auto clone = readOnlyClone(root_.get(), std::string(mountfs::kViewDir).c_str());
        const MountSource source{std::string(mountfs::kSecretsDir), clone ? clone->get() : -1, true};
        auto done = clone ? runInContainer(container, source.fd, {}, rootUid, rootGid, attachOne(container, source))
                          : Result<UniqueFd>(tl::unexpected(clone.error()));
        if (!done) {
            (void)wipeAndUnlink(root_.get(), entry.file);
            return tl::unexpected(done.error());
        }
        dirAttached_ = true;
    } else {
        // A single-file target: its own read-only mount of a new file.
        Result<UniqueFd> done = UniqueFd();
        if (adopted_) {
            auto temp = stageFile(payload, entry.ref);
            if (!temp) return tl::unexpected(temp.error());
            done = runInContainer(container, -1, *temp, rootUid, rootGid,
                                  attachOne(container, {ref.target, -1, false}));
            if (!done)
                (void)wipeAndUnlink(root_.get(), *temp);
            else
                (void)::unlinkat(root_.get(), temp->c_str(), 0);  // the mounts keep the file
        } else {
            if (auto ok = writeSecretFile(root_.get(), entry.file, payload, entry.ref); !ok) return ok;
            auto clone = readOnlyClone(root_.get(), entry.file.c_str());
            done = clone ? runInContainer(container, clone->get(), {}, rootUid, rootGid,
                                          attachOne(container, {ref.target, clone->get(), false}))
                         : Result<UniqueFd>(tl::unexpected(clone.error()));
            if (!done) (void)wipeAndUnlink(root_.get(), entry.file);
        }
        if (!done) return tl::unexpected(done.error());
        fileMounts_.resize(layout_.entries.size());
        fileMounts_.push_back(std::move(*done));  // a writable clone if adopted, else nothing
    }
    layout_.entries.push_back(std::move(entry));
    fileMounts_.resize(layout_.entries.size());
    return {};
}

Result<void> TmpfsView::removeEntry(std::size_t index, const mountfs::ContainerHandle& container) {
    if (flushed_) return fail("the secrets view was flushed");
    if (index >= layout_.entries.size()) return fail("no such reference in the view");
    const mountfs::ViewEntry entry = layout_.entries[index];
    fileMounts_.resize(layout_.entries.size());
    // A single-file target: its mount in the container goes first, if it
    // still is ours (attach.cpp detachFile checks device and inode).
    Result<void> detached;
    if (!entry.inDirectory) {
        struct stat st {};
        const bool known = adopted_ ? fileMounts_[index] && ::fstat(fileMounts_[index].get(), &st) == 0
                                    : ::fstatat(root_.get(), entry.file.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
        if (!known) {
            detached = failErrno("inspecting the view's file for " + entry.ref.target);
        } else {
            const FileIdentity ours{st.st_dev, st.st_ino};
            const int keep[] = {container.pidfd};
            auto done = runInHelper(keep, [&]() -> Result<std::vector<UniqueFd>> {
                if (auto ok = detachFile(container.pidfd, container.rootfs, entry.ref.target, ours, &confineForAttach);
                    !ok)
                    return tl::unexpected(ok.error());
                return std::vector<UniqueFd>{};
            });
            if (!done) detached = tl::unexpected(done.error());
        }
    }
    // Zero before unlinking: a reader that has the file open (or a mount
    // that could not be detached) then sees nothing of the secret.
    Result<void> ok = !entry.inDirectory && adopted_
                          ? (fileMounts_[index] ? wipeMounted(fileMounts_[index].get())
                                                : fail("no handle on " + entry.ref.target))
                          : wipeAndUnlink(root_.get(), pathInRoot(entry));
    if (!ok) return tl::unexpected(wrap(ok.error(), "revoking secret \"" + entry.ref.source + "\""));
    layout_.entries.erase(layout_.entries.begin() + static_cast<std::ptrdiff_t>(index));
    fileMounts_.erase(fileMounts_.begin() + static_cast<std::ptrdiff_t>(index));
    if (!detached)
        return tl::unexpected(wrap(detached.error(), "secret \"" + entry.ref.source + "\" was zeroed and removed, but its mount at " +
                                                         entry.ref.target + " stays"));
    return {};
}

// A view of kTwoThreads files or more is wiped on two threads (the
// zeroing of each file is independent; only the unlinks share a lock).
Result<void> TmpfsView::flush() {
    constexpr std::size_t kTwoThreads = 64;
    if (flushed_) return {};
    if (adopted_) return flushAdopted();
    releaseMountSources();
    const auto wipe = [this](std::size_t from, std::size_t to) -> Result<void> {
        Result<void> result;
        for (std::size_t i = from; i < to; ++i) {
            const auto& entry = layout_.entries[i];
            // Zero before unlinking: a process that has the file open (or a
            // single-file mount that pins it) then sees zeros, not the secret.
            Result<void> ok = wipeAndUnlink(root_.get(), entry.file);
            if (!ok && result)
                result = tl::unexpected(wrap(ok.error(), "flushing secret \"" + entry.ref.source + "\""));
        }
        return result;
    };
    const std::size_t count = layout_.entries.size(), half = count / 2;
    Result<void> result = count >= kTwoThreads
        ? onTwoThreads([&] { return wipe(0, half); }, [&] { return wipe(half, count); })
        : wipe(0, count);
    (void)::unlinkat(root_.get(), kUpdateTemp, 0);
    root_.reset();
    flushed_ = true;
    return result;
}

}  // namespace secretshim::platform
