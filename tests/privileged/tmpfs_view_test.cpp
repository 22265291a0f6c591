// Builds and attaches real views into a throwaway mount namespace over a
// busybox rootfs, and checks them from inside and from the host. Secret
// values are markers compared in code, never printed.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "mountfs/secret_ref.hpp"
#include "platform/linux/tmpfs_view.hpp"
#include "tests/support/container_fixture.hpp"
#include "tests/support/pinned_pages.hpp"

using namespace secretshim;
using namespace secretshim::test;
using platform::TmpfsView;
using platform::UniqueFd;

namespace {

mountfs::Bytes bytes(const std::string& s) {
    return {reinterpret_cast<const unsigned char*>(s.data()), s.size()};
}

std::unique_ptr<TmpfsView> buildFrom(const std::string& annotation, const std::vector<std::string>& values,
                                     platform::KernelFeatures features = platform::kernelFeatures()) {
    auto refs = mountfs::parseSecretRefs(annotation);
    REQUIRE(refs.has_value());
    auto layout = mountfs::planView(*refs);
    REQUIRE(layout.has_value());
    std::vector<mountfs::Bytes> payloads;
    for (const auto& v : values) payloads.push_back(bytes(v));
    auto view = TmpfsView::build(std::move(*layout), payloads, {}, features);
    if (!view) FAIL("build failed: " << view.error().message);
    return std::move(*view);
}

struct Setup {
    TempDir dir;
    std::string rootfs = dir.path() + "/rootfs";
    Setup() { makeBusyboxRootfs(rootfs); }
};

const MountEntry* findMount(const std::vector<MountEntry>& mounts, const std::string& point) {
    const MountEntry* found = nullptr;
    for (const auto& m : mounts)
        if (m.mountPoint == point) found = &m;  // the last one is on top
    return found;
}

// Pins the pages of the view's file at `path` (see pinned_pages.hpp), through
// its writable root.
PinnedPages pinViewFile(const TmpfsView& view, const std::string& path) {
    UniqueFd fd(::openat(view.writableRoot(), path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    REQUIRE_MESSAGE(fd, path);
    return PinnedPages(fd.get());
}

}  // namespace

TEST_CASE("a view under /run/secrets shows each secret with its owner, mode and mount options") {
    Setup s;
    const std::string markerA = "marker-A-1f0c";
    const std::string markerB = "marker-B-77aa-longer-value";
    auto view = buildFrom("alpha;source=beta,uid=1000,gid=1001,mode=0440", {markerA, markerB});
    FakeContainer c(s.rootfs);
    auto ok = view->attach({c.pidfd(), c.rootfs()});
    REQUIRE_MESSAGE(ok.has_value(), (ok ? "" : ok.error().message));

    auto a = readInside(c, "/run/secrets/alpha");
    REQUIRE(a.has_value());
    CHECK(*a == markerA);
    auto b = readInside(c, "/run/secrets/beta", 1000, 1001);
    REQUIRE(b.has_value());
    CHECK(*b == markerB);

    auto sa = statInside(c, "/run/secrets/alpha");
    REQUIRE(sa.has_value());
    CHECK(sa->uid == 0);
    CHECK(sa->gid == 0);
    CHECK(sa->mode == 0444);
    auto sb = statInside(c, "/run/secrets/beta");
    REQUIRE(sb.has_value());
    CHECK(sb->uid == 1000);
    CHECK(sb->gid == 1001);
    CHECK(sb->mode == 0440);

    // Another uid is refused by the mode, as it should be.
    auto other = readInside(c, "/run/secrets/beta", 2000, 2000);
    CHECK_FALSE(other.has_value());

    const auto mounts = containerMounts(c);
    const MountEntry* m = findMount(mounts, "/run/secrets");
    REQUIRE(m != nullptr);
    CHECK(m->fsType == "tmpfs");
    for (const char* opt : {"ro", "nosuid", "nodev", "noexec"}) CHECK_MESSAGE(hasOption(m->options, opt), opt);
    CHECK(hasOption(m->superOptions, "noswap") == view->noswap());
    CHECK(view->noswap() == platform::kernelFeatures().tmpfsNoswap);

    // Read-only: even root in the container cannot write or create.
    auto write = runInside(c, 0, 0, []() -> Result<std::string> {
        int fd = ::open("/run/secrets/new", O_CREAT | O_WRONLY, 0600);
        if (fd >= 0) {
            ::close(fd);
            return std::string("created");
        }
        return std::string(errno == EROFS ? "erofs" : "other");
    });
    REQUIRE(write.has_value());
    CHECK(*write == "erofs");

    // Nothing on the host: no mount below the rootfs outside the container.
    CHECK_FALSE(anyMountBelow(c.rootfs(), c.pid()));
}

TEST_CASE("single-file targets, created parents, and uid-restricted reads") {
    Setup s;
    const std::string marker = "marker-file-target-42";
    auto view = buildFrom("source=pw,target=/etc/app/pw,uid=1000,gid=1000,mode=0400", {marker});
    FakeContainer c(s.rootfs);
    auto ok = view->attach({c.pidfd(), c.rootfs()});
    REQUIRE_MESSAGE(ok.has_value(), (ok ? "" : ok.error().message));

    auto r = readInside(c, "/etc/app/pw", 1000, 1000);
    REQUIRE(r.has_value());
    CHECK(*r == marker);
    CHECK_FALSE(readInside(c, "/etc/app/pw", 1001, 1001).has_value());
    auto st = statInside(c, "/etc/app/pw");
    REQUIRE(st.has_value());
    CHECK(st->regular);
    CHECK(st->uid == 1000);
    CHECK(st->mode == 0400);

    const auto mounts = containerMounts(c);
    const MountEntry* m = findMount(mounts, "/etc/app/pw");
    REQUIRE(m != nullptr);
    for (const char* opt : {"ro", "nosuid", "nodev", "noexec"}) CHECK_MESSAGE(hasOption(m->options, opt), opt);
    CHECK(findMount(mounts, "/run/secrets") == nullptr);  // no directory mount was needed
    // The parent directory and the placeholder are in the rootfs, not elsewhere.
    CHECK(pathExists(c.rootfs() + "/etc/app/pw"));
    CHECK_FALSE(anyMountBelow(c.rootfs(), c.pid()));
}

TEST_CASE("rotations to ever larger values keep fitting: the view's tmpfs grows for them") {
    Setup s;
    auto view = buildFrom("db;source=db,target=/etc/app/pw", {"marker-small-1", "marker-small-1"});
    FakeContainer c(s.rootfs);
    auto ok = view->attach({c.pidfd(), c.rootfs()});
    REQUIRE_MESSAGE(ok.has_value(), (ok ? "" : ok.error().message));
    // Built with room for its files and one value of max_payload (512000):
    // the second pair of rotations would not fit in that.
    for (const std::size_t size : {300000, 400000, 500000}) {
        const std::string value(size, static_cast<char>('a' + size / 100000));
        for (std::size_t i = 0; i < 2; ++i) {
            auto up = view->update(i, bytes(value), {c.pidfd(), c.rootfs()});
            REQUIRE_MESSAGE(up.has_value(), (up ? "" : up.error().message));
        }
        for (const char* target : {"/run/secrets/db", "/etc/app/pw"}) {
            auto r = readInside(c, target, 0, 0);
            REQUIRE(r.has_value());
            const bool same = *r == value;  // compared, never printed
            CHECK_MESSAGE(same, target);
        }
    }
}

TEST_CASE("the same secret referenced twice keeps each reference's owner and mode") {
    Setup s;
    const std::string marker = "marker-dup-9";
    auto view = buildFrom("source=db,target=a,uid=1000,mode=0400;source=db,target=/opt/b,uid=2000,gid=3,mode=0440",
                          {marker, marker});
    FakeContainer c(s.rootfs);
    REQUIRE(view->attach({c.pidfd(), c.rootfs()}).has_value());
    auto a = statInside(c, "/run/secrets/a");
    auto b = statInside(c, "/opt/b");
    REQUIRE(a.has_value());
    REQUIRE(b.has_value());
    CHECK(a->uid == 1000);
    CHECK(a->mode == 0400);
    CHECK(b->uid == 2000);
    CHECK(b->gid == 3);
    CHECK(b->mode == 0440);
    CHECK(readInside(c, "/run/secrets/a", 1000, 0).value_or("") == marker);
    CHECK(readInside(c, "/opt/b", 2000, 3).value_or("") == marker);
}

TEST_CASE("nested targets under /run/secrets are served by the directory mount") {
    Setup s;
    auto view = buildFrom("source=x,target=app/one;source=y,target=app/two", {"marker-x", "marker-y"});
    FakeContainer c(s.rootfs);
    REQUIRE(view->attach({c.pidfd(), c.rootfs()}).has_value());
    CHECK(readInside(c, "/run/secrets/app/one").value_or("") == "marker-x");
    CHECK(readInside(c, "/run/secrets/app/two").value_or("") == "marker-y");
    int secretsMounts = 0;
    for (const auto& m : containerMounts(c)) secretsMounts += m.mountPoint.rfind("/run/secrets", 0) == 0;
    CHECK(secretsMounts == 1);
}

TEST_CASE("flush empties an attached view; after the container exits nothing is left") {
    Setup s;
    // 8 x 500 KiB: enough to see in Shmem over the noise.
    const std::size_t size = mountfs::kDefaultMaxPayload;
    std::vector<std::string> values;
    std::string annotation;
    for (int i = 0; i < 7; ++i) {
        values.push_back(std::string(size, static_cast<char>('a' + i)));
        annotation += "s" + std::to_string(i) + ";";
    }
    values.push_back(std::string(size, 'z'));
    annotation += "source=s7,target=/srv/s7";

    const long before = shmemKiB();
    auto view = buildFrom(annotation, values);
    FakeContainer c(s.rootfs);
    REQUIRE(view->attach({c.pidfd(), c.rootfs()}).has_value());
    const long during = shmemKiB();
    CHECK(during - before >= 3500);
    CHECK(readInside(c, "/run/secrets/s0").value_or("") == values[0]);
    // The pages of a file under /run/secrets and of the single-file one.
    std::vector<PinnedPages> pinned;
    pinned.push_back(pinViewFile(*view, "dir/s0"));
    pinned.push_back(pinViewFile(*view, "file/srv/s7"));
    const bool held = pinned[0].then() == values[0] && pinned[1].then() == values[7];
    CHECK_MESSAGE(held, "the pinned pages differ from the values");

    REQUIRE(view->flush().has_value());
    CHECK(view->flush().has_value());  // idempotent
    // Overwritten, not only truncated: the pages that held each value hold
    // zeros (a truncate alone would leave them holding it).
    CHECK_MESSAGE(pinned[0].zeroedNow(), "dir/s0 was not overwritten");
    CHECK_MESSAGE(pinned[1].zeroedNow(), "file/srv/s7 was not overwritten");
    pinned.clear();
    // The directory is empty now; the single-file mount shows an empty file.
    auto listing = runInside(c, 0, 0, []() -> Result<std::string> {
        struct stat st {};
        if (::stat("/run/secrets/s0", &st) == 0) return std::string("still there");
        return std::string("gone");
    });
    CHECK(listing.value_or("") == "gone");
    CHECK(readInside(c, "/srv/s7").value_or("x") == "");
    const long flushed = shmemKiB();
    CHECK(flushed - before < 1024);

    view.reset();
    c.kill();
    // The container's namespace is gone with its last process.
    for (int i = 0; i < 50 && anyMountBelow(s.rootfs); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    CHECK_FALSE(anyMountBelow(s.rootfs));
    CHECK(shmemKiB() - before < 1024);
}

TEST_CASE("the view's directories keep their modes under the agent's UMask=0077") {
    Setup s;
    const mode_t old = ::umask(077);  // the packaged unit's
    auto view = buildFrom("source=a,target=app/a,uid=1000,mode=0400", {"marker-umask-a"});
    ::umask(old);
    FakeContainer c(s.rootfs);
    REQUIRE(view->attach({c.pidfd(), c.rootfs()}).has_value());
    CHECK(statInside(c, "/run/secrets").value_or(StatInfo{}).mode == 0755);
    CHECK(statInside(c, "/run/secrets/app").value_or(StatInfo{}).mode == 0755);
    CHECK(readInside(c, "/run/secrets/app/a", 1000, 1000).value_or("") == "marker-umask-a");
}

TEST_CASE("a failed attach leaves nothing mounted in the container") {
    Setup s;
    REQUIRE(::mkfifo((s.rootfs + "/etc/fifo").c_str(), 0600) == 0);
    auto view = buildFrom("good;source=bad,target=/etc/fifo", {"marker-good", "marker-bad"});
    FakeContainer c(s.rootfs);
    auto ok = view->attach({c.pidfd(), c.rootfs()});
    REQUIRE_FALSE(ok.has_value());
    CHECK(ok.error().message == "/etc/fifo in the container is a FIFO, not a regular file");
    CHECK(containerMounts(c).empty());
}

TEST_CASE("without detached-mount cloning (before 6.15) the staged fallback works") {
    Setup s;
    auto features = platform::kernelFeatures();
    features.detachedClone = false;
    auto view = buildFrom("alpha;source=beta,target=/etc/beta", {"marker-staged-a", "marker-staged-b"}, features);
    FakeContainer c(s.rootfs);
    REQUIRE(view->attach({c.pidfd(), c.rootfs()}).has_value());
    CHECK(readInside(c, "/run/secrets/alpha").value_or("") == "marker-staged-a");
    CHECK(readInside(c, "/etc/beta").value_or("") == "marker-staged-b");
    // The writable root still works after the staging namespace died.
    REQUIRE(view->update(0, bytes("marker-staged-a2"), {c.pidfd(), c.rootfs()}).has_value());
    CHECK(readInside(c, "/run/secrets/alpha").value_or("") == "marker-staged-a2");
    // And a single-file update says plainly that it needs a restart.
    auto up = view->update(1, bytes("marker-staged-b2"), {c.pidfd(), c.rootfs()});
    REQUIRE_FALSE(up.has_value());
    CHECK(up.error().message ==
          "updating /etc/beta needs a restart of the task: the kernel cannot rebind a single-file mount");
    CHECK_FALSE(anyMountBelow(c.rootfs(), c.pid()));
}

TEST_CASE("build refuses empty and oversized payloads, naming the secret") {
    auto refs = mountfs::parseSecretRefs("big");
    REQUIRE(refs.has_value());
    auto layout = mountfs::planView(*refs);
    REQUIRE(layout.has_value());
    std::string big(mountfs::kDefaultMaxPayload + 1, 'x');
    auto r = TmpfsView::build(*layout, {bytes(big)}, {}, platform::kernelFeatures());
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().message == "secret \"big\" is 512001 bytes, over the limit of 512000");
    auto e = TmpfsView::build(*layout, {bytes("")}, {}, platform::kernelFeatures());
    REQUIRE_FALSE(e.has_value());
    CHECK(e.error().message == "secret \"big\" is empty");
}

// Live grants and revocations (cluster mode): a new single-file target and
// the first /run/secrets target are attached as mounts of their own; a
// revoked single-file target's mount is detached, then the file zeroed.
TEST_CASE("live: new targets are attached, a revoked single-file mount is detached") {
    Setup s;
    const std::string first = "marker-live-first-0a1b";
    const std::string added = "marker-live-added-9c8d";
    const std::string inDir = "marker-live-dir-5e6f";
    auto view = buildFrom("source=a,target=/srv/a", {first});
    FakeContainer c(s.rootfs);
    const mountfs::ContainerHandle handle{c.pidfd(), c.rootfs()};
    REQUIRE(view->attach(handle).has_value());

    auto refs = mountfs::parseSecretRefs("source=b,target=/etc/live/b,mode=0440;source=c,target=/run/secrets/c");
    REQUIRE(refs.has_value());
    CHECK(view->addNeedsMount((*refs)[0]));
    CHECK(view->addNeedsMount((*refs)[1]));  // no /run/secrets mount yet
    auto ok = view->addEntry((*refs)[0], bytes(added), handle);
    REQUIRE_MESSAGE(ok.has_value(), (ok ? "" : ok.error().message));
    ok = view->addEntry((*refs)[1], bytes(inDir), handle);
    REQUIRE_MESSAGE(ok.has_value(), (ok ? "" : ok.error().message));
    CHECK(readInside(c, "/etc/live/b").value_or("") == added);
    CHECK(readInside(c, "/run/secrets/c").value_or("") == inDir);
    CHECK(statInside(c, "/etc/live/b").value_or(StatInfo{}).mode == 0440);
    auto mounts = containerMounts(c);
    const MountEntry* m = findMount(mounts, "/etc/live/b");
    REQUIRE(m != nullptr);
    for (const char* opt : {"ro", "nosuid", "nodev", "noexec"}) CHECK_MESSAGE(hasOption(m->options, opt), opt);
    REQUIRE(findMount(mounts, "/run/secrets") != nullptr);
    CHECK_FALSE(view->addNeedsMount(mountfs::parseSecretRef("d").value()));  // under /run/secrets now
    CHECK_FALSE(view->addEntry((*refs)[0], bytes(added), handle).has_value());  // the same target twice

    // Revoke /srv/a (entry 0): its mount goes, the placeholder is empty.
    ok = view->removeEntry(0, handle);
    REQUIRE_MESSAGE(ok.has_value(), (ok ? "" : ok.error().message));
    mounts = containerMounts(c);
    CHECK(findMount(mounts, "/srv/a") == nullptr);
    CHECK(findMount(mounts, "/etc/live/b") != nullptr);
    CHECK(readInside(c, "/srv/a").value_or("x") == "");
    CHECK(view->layout().entries.size() == 2);
    REQUIRE(view->flush().has_value());
}

// A container that moved its secret's mount away and planted a symlink to
// another mount root of the SAME tmpfs (its /run/secrets: same device) at
// the target: the inode check refuses it, nothing is unmounted, and the
// secret is zeroed anyway.
TEST_CASE("live: a revocation never detaches a mount the container steered it to") {
    Setup s;
    const std::string dirValue = "marker-hostile-dir-1234";
    const std::string fileValue = "marker-hostile-file-5678";
    auto view = buildFrom("d;source=f,target=/etc/t/f", {dirValue, fileValue});
    FakeContainer c(s.rootfs);
    const mountfs::ContainerHandle handle{c.pidfd(), c.rootfs()};
    REQUIRE(view->attach(handle).has_value());
    auto moved = runInside(c, 0, 0, []() -> Result<std::string> {
        if (::rename("/etc/t", "/etc/t.old") != 0) return failErrno("rename");
        if (::mkdir("/etc/t", 0755) != 0) return failErrno("mkdir");
        if (::symlink("/run/secrets", "/etc/t/f") != 0) return failErrno("symlink");
        return std::string("ok");
    });
    REQUIRE_MESSAGE(moved.has_value(), (moved ? "" : moved.error().message));
    auto ok = view->removeEntry(1, handle);
    REQUIRE_FALSE(ok.has_value());
    CHECK_MESSAGE(ok.error().message.find("no longer our secret's mount") != std::string::npos, ok.error().message);
    CHECK(view->layout().entries.size() == 1);  // zeroed and removed all the same
    const auto mounts = containerMounts(c);
    CHECK(findMount(mounts, "/run/secrets") != nullptr);
    CHECK(findMount(mounts, "/etc/t.old/f") != nullptr);
    CHECK(readInside(c, "/etc/t.old/f").value_or("x") == "");
    CHECK(readInside(c, "/run/secrets/d").value_or("") == dirValue);
    REQUIRE(view->flush().has_value());
}

// The fd store (systemd's, across a crash of the agent): the agent keeps
// each view's writable root there, and its successor takes the view back
// from that fd alone, or wipes it when the container is gone.
namespace {

// What a crash of the agent leaves: the view's root, as the store keeps it,
// and the container's mounts; the TmpfsView object is gone, unflushed.
UniqueFd crash(std::unique_ptr<TmpfsView>& view) {
    REQUIRE(view->writableRoot() >= 0);
    UniqueFd stored(::fcntl(view->writableRoot(), F_DUPFD_CLOEXEC, 0));
    REQUIRE(stored);
    view->keepAttached();
    view.reset();
    return stored;
}

mountfs::ViewLayout layoutOf(const std::string& annotation) {
    auto refs = mountfs::parseSecretRefs(annotation);
    REQUIRE(refs.has_value());
    auto layout = mountfs::planView(*refs);
    REQUIRE(layout.has_value());
    return std::move(*layout);
}

// The content of `path` below a view's root, read from the host.
std::string readBelow(int root, const std::string& path) {
    UniqueFd fd(::openat(root, path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!fd) return "<" + path + ": " + std::strerror(errno) + ">";
    std::string out(mountfs::kDefaultMaxPayload, '\0');
    const ssize_t n = ::read(fd.get(), out.data(), out.size());
    out.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
    return out;
}

}  // namespace

TEST_CASE("a view taken back from its stored root serves, rotates, revokes and flushes like the one built") {
    Setup s;
    const std::string alpha = "marker-store-alpha-3e1f", beta = "marker-store-beta-7c2d";
    const std::string gamma = "marker-store-gamma-5a9b", delta = "marker-store-delta-0d4e";
    auto view = buildFrom("alpha;source=beta,target=/etc/app/beta;source=gamma,target=/srv/gamma",
                          {alpha, beta, gamma});
    FakeContainer c(s.rootfs);
    const mountfs::ContainerHandle handle{c.pidfd(), c.rootfs()};
    REQUIRE(view->attach(handle).has_value());
    // Live changes before the crash: the files' names must not depend on
    // the references' order (the record keeps them in another order).
    REQUIRE(view->removeEntry(1, handle).has_value());
    REQUIRE(view->addEntry(mountfs::parseSecretRef("source=delta,target=/opt/delta").value(), bytes(delta), handle)
                .has_value());
    const dev_t device = view->device();
    UniqueFd stored = crash(view);

    auto back = TmpfsView::fromStore(layoutOf("source=delta,target=/opt/delta;source=gamma,target=/srv/gamma;alpha"),
                                     std::move(stored), device, platform::kernelFeatures());
    REQUIRE_MESSAGE(back.has_value(), (back ? "" : back.error().message));
    auto& v = *back;
    CHECK(v->device() == device);
    CHECK(v->writableRoot() >= 0);  // kept in the store again by the next crash
    CHECK(readInside(c, "/run/secrets/alpha").value_or("") == alpha);
    CHECK(readInside(c, "/srv/gamma").value_or("") == gamma);
    CHECK(readInside(c, "/opt/delta").value_or("") == delta);
    CHECK_FALSE(v->attach(handle).has_value());  // attached long ago

    // Entries: 0 delta, 1 gamma, 2 alpha. A rotation of each kind, then a revocation.
    REQUIRE(v->update(2, bytes("marker-store-alpha-2"), handle).has_value());
    CHECK(readInside(c, "/run/secrets/alpha").value_or("") == "marker-store-alpha-2");
    auto up = v->update(1, bytes("marker-store-gamma-2"), handle);
    REQUIRE_MESSAGE(up.has_value(), (up ? "" : up.error().message));
    CHECK(readInside(c, "/srv/gamma").value_or("") == "marker-store-gamma-2");
    auto gone = v->removeEntry(0, handle);
    REQUIRE_MESSAGE(gone.has_value(), (gone ? "" : gone.error().message));
    CHECK(findMount(containerMounts(c), "/opt/delta") == nullptr);
    CHECK(readInside(c, "/opt/delta").value_or("x") == "");

    REQUIRE(v->flush().has_value());
    CHECK(readInside(c, "/srv/gamma").value_or("x") == "");
    CHECK_FALSE(readInside(c, "/run/secrets/alpha").has_value());
    CHECK(v->writableRoot() == -1);
}

TEST_CASE("a stored fd is taken back only if it is the view's tmpfs root holding every file") {
    Setup s;
    const std::string marker = "marker-store-refused-61aa", other = "marker-store-other-93bc";
    auto view = buildFrom("alpha;source=beta,target=/etc/beta", {marker, marker});
    auto stranger = buildFrom("alpha", {other});
    FakeContainer c(s.rootfs);
    REQUIRE(view->attach({c.pidfd(), c.rootfs()}).has_value());
    const dev_t device = view->device();
    UniqueFd root(::fcntl(view->writableRoot(), F_DUPFD_CLOEXEC, 0));
    REQUIRE(root);
    const auto layout = layoutOf("alpha;source=beta,target=/etc/beta");
    const auto refused = [&](UniqueFd fd, const mountfs::ViewLayout& l) {
        auto r = TmpfsView::fromStore(l, std::move(fd), device, platform::kernelFeatures());
        REQUIRE_FALSE(r.has_value());
        return r.error().message;
    };

    // Another view's tmpfs: another device. Nothing is written to it.
    const std::string otherDevice = refused(UniqueFd(::fcntl(stranger->writableRoot(), F_DUPFD_CLOEXEC, 0)), layout);
    CHECK_MESSAGE(otherDevice.find("the stored fd is the tmpfs on device ") == 0, otherDevice);
    CHECK(readBelow(stranger->writableRoot(), "dir/alpha") == other);
    CHECK(TmpfsView::checkStored(stranger->writableRoot(), device).has_value() == false);
    CHECK(TmpfsView::wipeStored(stranger->writableRoot(), device).has_value() == false);
    CHECK(readBelow(stranger->writableRoot(), "dir/alpha") == other);
    // Not a tmpfs at all, and a directory of the view rather than its root.
    CHECK(refused(UniqueFd(::open("/proc", O_PATH | O_DIRECTORY | O_CLOEXEC)), layout) ==
          "the stored fd is not a tmpfs");
    CHECK(refused(UniqueFd(::openat(root.get(), "dir", O_PATH | O_DIRECTORY | O_CLOEXEC)), layout) ==
          "the stored fd is not the root of a tmpfs");
    // The right tmpfs, but a reference it does not hold.
    const std::string missing = refused(UniqueFd(::fcntl(root.get(), F_DUPFD_CLOEXEC, 0)),
                                        layoutOf("alpha;source=beta,target=/etc/other"));
    CHECK_MESSAGE(missing.find("the stored view holds no file for /etc/other: ") == 0, missing);
    CHECK(readInside(c, "/run/secrets/alpha").value_or("") == marker);
    CHECK(readInside(c, "/etc/beta").value_or("") == marker);

    // What no reference names (a crash in the middle of a rotation) is
    // wiped when the view is taken back; the references' files stay.
    {
        UniqueFd stray(::openat(root.get(), ".update", O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600));
        REQUIRE(stray);
        REQUIRE(::write(stray.get(), other.data(), other.size()) == static_cast<ssize_t>(other.size()));
    }
    UniqueFd looker(::fcntl(root.get(), F_DUPFD_CLOEXEC, 0));
    auto back = TmpfsView::fromStore(layout, std::move(root), device, platform::kernelFeatures());
    REQUIRE_MESSAGE(back.has_value(), (back ? "" : back.error().message));
    CHECK(::faccessat(looker.get(), ".update", F_OK, AT_SYMLINK_NOFOLLOW) != 0);
    CHECK(readInside(c, "/run/secrets/alpha").value_or("") == marker);
    CHECK(readInside(c, "/etc/beta").value_or("") == marker);
    view->keepAttached();  // the one taken back flushes it
    REQUIRE((*back)->flush().has_value());
}

TEST_CASE("the stored view of a container that is gone is wiped: every file zeroed, then removed") {
    Setup s;
    const std::size_t size = 500000;  // enough pages to see in Shmem
    const std::vector<std::string> values{std::string(size, 'p'), std::string(size, 'q'), std::string(size, 'r')};
    auto view = buildFrom("alpha;source=beta,target=deep/er/beta;source=gamma,target=/etc/app/gamma", values);
    FakeContainer c(s.rootfs);
    REQUIRE(view->attach({c.pidfd(), c.rootfs()}).has_value());
    const dev_t device = view->device();
    // A process that had a secret open when its container died.
    UniqueFd reader(::openat(view->writableRoot(), "dir/deep/er/beta", O_RDONLY | O_CLOEXEC));
    REQUIRE(reader);
    UniqueFd stored = crash(view);
    c.kill();
    const long before = shmemKiB();

    auto wiped = TmpfsView::wipeStored(stored.get(), device);
    REQUIRE_MESSAGE(wiped.has_value(), (wiped ? "" : wiped.error().message));
    CHECK(*wiped == 3);
    char buf[16] = {};
    CHECK(::pread(reader.get(), buf, sizeof buf, 0) == 0);
    for (const char* path : {"dir/alpha", "dir/deep/er/beta", "file/etc/app/gamma"})
        CHECK(::faccessat(stored.get(), path, F_OK, AT_SYMLINK_NOFOLLOW) != 0);
    CHECK(before - shmemKiB() >= 1000);  // the pages went while the handle is still open
    CHECK(TmpfsView::wipeStored(stored.get(), 0).value_or(99) == 0);  // any tmpfs root: a view with no record
}
