// A reader inside the container loops over a secret while the view is
// updated many times: it must only ever see a whole old or a whole new
// value. Values are generated markers compared in code.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "mountfs/secret_ref.hpp"
#include "platform/linux/tmpfs_view.hpp"
#include "tests/support/container_fixture.hpp"
#include "tests/support/skip.hpp"

using namespace secretshim;
using namespace secretshim::test;
using secretshim::testing::skipUnlessKernelHas;

namespace {

constexpr std::size_t kValueSize = 8192;

std::string version(int k) { return std::string(kValueSize, static_cast<char>('A' + k % 26)); }

mountfs::Bytes bytes(const std::string& s) {
    return {reinterpret_cast<const unsigned char*>(s.data()), s.size()};
}

bool whole(const std::string& v) {
    if (v.size() != kValueSize || v[0] < 'A' || v[0] > 'Z') return false;
    return v.find_first_not_of(v[0]) == std::string::npos;
}

struct ReaderCounts {
    long reads = 0;
    long torn = 0;
};

// Forks a reader inside the container that loops until `stop` is readable.
pid_t startReader(const FakeContainer& c, const std::string& path, int stopFd, int resultFd) {
    const pid_t pid = ::fork();
    if (pid != 0) return pid;
    if (::setns(c.pidfd(), CLONE_NEWNS) != 0 || ::chroot(c.rootfs().c_str()) != 0 || ::chdir("/") != 0)
        ::_exit(2);
    ::fcntl(stopFd, F_SETFL, O_NONBLOCK);
    const char ready = 'r';
    (void)!::write(resultFd, &ready, 1);  // start updating only once we read
    ReaderCounts counts;
    std::string buf(kValueSize * 2, '\0');
    for (char b; ::read(stopFd, &b, 1) != 1;) {
        const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        std::string value;
        if (fd >= 0) {
            for (ssize_t n; (n = ::read(fd, buf.data(), buf.size())) > 0;) value.append(buf.data(), static_cast<std::size_t>(n));
            ::close(fd);
        }
        ++counts.reads;
        if (!whole(value)) ++counts.torn;
    }
    (void)!::write(resultFd, &counts, sizeof counts);
    ::_exit(0);
}

ReaderCounts runUpdatesUnderReader(platform::TmpfsView& view, const FakeContainer& c, std::size_t index,
                                   const std::string& path, int updates) {
    int stop[2], result[2];
    REQUIRE(::pipe(stop) == 0);
    REQUIRE(::pipe(result) == 0);
    const pid_t reader = startReader(c, path, stop[0], result[1]);
    REQUIRE(reader > 0);
    ::close(stop[0]);
    ::close(result[1]);
    char ready = 0;
    REQUIRE(::read(result[0], &ready, 1) == 1);
    int failures = 0;
    for (int k = 1; k <= updates; ++k) {
        const std::string v = version(k);
        auto ok = view.update(index, bytes(v), {c.pidfd(), c.rootfs()});
        if (!ok) {
            ++failures;
            MESSAGE("update failed: " << ok.error().message);
        }
    }
    CHECK(failures == 0);
    (void)!::write(stop[1], "x", 1);
    ReaderCounts counts;
    CHECK(::read(result[0], &counts, sizeof counts) == static_cast<ssize_t>(sizeof counts));
    ::close(stop[1]);
    ::close(result[0]);
    int status = 0;
    ::waitpid(reader, &status, 0);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    return counts;
}

std::unique_ptr<platform::TmpfsView> build(const std::string& annotation) {
    auto refs = mountfs::parseSecretRefs(annotation);
    REQUIRE(refs.has_value());
    auto layout = mountfs::planView(*refs);
    REQUIRE(layout.has_value());
    const std::string v0 = version(0);
    std::vector<mountfs::Bytes> payloads(refs->size(), bytes(v0));
    auto view = platform::TmpfsView::build(std::move(*layout), payloads, {}, platform::kernelFeatures());
    REQUIRE(view.has_value());
    return std::move(*view);
}

}  // namespace

TEST_CASE("updates under /run/secrets are atomic for a reader in the container") {
    TempDir dir;
    const std::string rootfs = dir.path() + "/rootfs";
    makeBusyboxRootfs(rootfs);
    auto view = build("rotating");
    FakeContainer c(rootfs);
    REQUIRE(view->attach({c.pidfd(), c.rootfs()}).has_value());

    const int updates = 20000;
    const auto counts = runUpdatesUnderReader(*view, c, 0, "/run/secrets/rotating", updates);
    MESSAGE("directory entry: " << counts.reads << " reads during " << updates << " updates");
    CHECK(counts.reads > 100);
    CHECK(counts.torn == 0);
    CHECK(readInside(c, "/run/secrets/rotating").value_or("") == version(updates));
    auto st = statInside(c, "/run/secrets/rotating");
    REQUIRE(st.has_value());
    CHECK(st->mode == 0444);  // the new file keeps the reference's mode
}

TEST_CASE("single-file targets are re-bound atomically, without stacking mounts" *
          doctest::skip(skipUnlessKernelHas(platform::kernelFeatures().moveMountBeneath &&
                                                platform::kernelFeatures().detachedClone,
                                            "the kernel cannot rebind single-file mounts (MOVE_MOUNT_BENEATH, "
                                            "a detached clone): the fallback has its own test"))) {
    TempDir dir;
    const std::string rootfs = dir.path() + "/rootfs";
    makeBusyboxRootfs(rootfs);
    auto view = build("source=rotating,target=/etc/app/key,uid=7,mode=0400");
    FakeContainer c(rootfs);
    REQUIRE(view->attach({c.pidfd(), c.rootfs()}).has_value());

    const int updates = 300;
    const auto counts = runUpdatesUnderReader(*view, c, 0, "/etc/app/key", updates);
    MESSAGE("single-file entry: " << counts.reads << " reads during " << updates << " updates");
    CHECK(counts.reads > 100);
    CHECK(counts.torn == 0);
    CHECK(readInside(c, "/etc/app/key").value_or("") == version(updates));
    int mountsAtTarget = 0;
    for (const auto& m : containerMounts(c)) mountsAtTarget += m.mountPoint == "/etc/app/key";
    CHECK(mountsAtTarget == 1);
    auto st = statInside(c, "/etc/app/key");
    REQUIRE(st.has_value());
    CHECK(st->uid == 7);
    CHECK(st->mode == 0400);
}
