// The agent's helper processes (platform/linux/helper_process.cpp): what a
// helper inherits (only the fds it is given, no_new_privs), how its errors
// come back (with their errno), and that the helpers entering a container
// run confined (confineForAttach / confineForReadopt) and still do their job.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "mountfs/secret_ref.hpp"
#include "platform/linux/attach.hpp"
#include "platform/linux/confine.hpp"
#include "platform/linux/helper_process.hpp"
#include "platform/linux/tmpfs_view.hpp"
#include "tests/support/container_fixture.hpp"
#include "tests/support/pinned_pages.hpp"

using namespace secretshim;
using namespace secretshim::test;
using platform::runInHelper;
using platform::UniqueFd;

namespace {

std::string fdState(int fd) { return ::fcntl(fd, F_GETFD) >= 0 ? "open" : (errno == EBADF ? "closed" : "?"); }

// A helper reports what it saw as its error message.
Result<std::vector<UniqueFd>> report(const std::string& text) { return fail(text); }

mountfs::Bytes bytes(const std::string& s) { return {reinterpret_cast<const unsigned char*>(s.data()), s.size()}; }

}  // namespace

TEST_CASE("a helper keeps only stderr, its result socket and the fds it is given, with no_new_privs") {
    UniqueFd kept(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    UniqueFd inherited(::open("/dev/null", O_RDONLY));  // no O_CLOEXEC: fork keeps it
    UniqueFd cloexec(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    REQUIRE((kept && inherited && cloexec));
    const int keep[] = {kept.get()};
    auto result = runInHelper(keep, [&]() {
        return report("kept=" + fdState(kept.get()) + " inherited=" + fdState(inherited.get()) +
                      " cloexec=" + fdState(cloexec.get()) + " stdin=" + fdState(0) + " stdout=" + fdState(1) +
                      " stderr=" + fdState(2) + " nnp=" + std::to_string(::prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0)));
    });
    REQUIRE_FALSE(result.has_value());
    CHECK(result.error().message ==
          "kept=open inherited=closed cloexec=closed stdin=closed stdout=closed stderr=open nnp=1");
    // The parent is untouched.
    CHECK(fdState(inherited.get()) == "open");
    CHECK(::prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 0);
}

TEST_CASE("a helper's error comes back with its errno") {
    auto sys = runInHelper({}, []() -> Result<std::vector<UniqueFd>> {
        errno = ENOTDIR;
        return failErrno("resolving /x: in the container");
    });
    REQUIRE_FALSE(sys.has_value());
    CHECK(sys.error().code == ENOTDIR);
    CHECK(sys.error().message == "resolving /x: in the container: " + std::string(std::strerror(ENOTDIR)));

    auto plain = runInHelper({}, []() -> Result<std::vector<UniqueFd>> { return fail("a: b"); });
    REQUIRE_FALSE(plain.has_value());
    CHECK(plain.error().code == 0);
    CHECK(plain.error().message == "a: b");
}

TEST_CASE("a helper's fds come back to the parent") {
    auto fds = runInHelper({}, []() -> Result<std::vector<UniqueFd>> {
        int p[2];
        if (::pipe2(p, O_CLOEXEC) != 0) return failErrno("pipe2");
        UniqueFd r(p[0]), w(p[1]);
        if (::write(w.get(), "x", 1) != 1) return failErrno("write");
        std::vector<UniqueFd> out;
        out.push_back(std::move(r));
        return out;
    });
    REQUIRE(fds.has_value());
    REQUIRE(fds->size() == 1);
    char c = 0;
    CHECK(::read((*fds)[0].get(), &c, 1) == 1);
    CHECK(c == 'x');
}

TEST_CASE("a helper that enters a container runs confined once inside") {
    TempDir dir;
    const std::string rootfs = dir.path() + "/rootfs";
    makeBusyboxRootfs(rootfs);
    FakeContainer c(rootfs);
    const int keep[] = {c.pidfd()};
    // attachMounts() with nothing to attach: it enters, confines, returns.
    auto result = runInHelper(keep, [&]() -> Result<std::vector<UniqueFd>> {
        if (auto ok = platform::attachMounts(c.pidfd(), c.rootfs(), {}, &platform::confineForAttach); !ok)
            return propagate(ok);
        std::string seen;
        seen += ::socket(AF_INET, SOCK_STREAM, 0) < 0 && errno == EPERM ? "socket=EPERM" : "socket=allowed";
        seen += ::prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) < 0 && errno == EPERM ? " prctl=EPERM" : " prctl=allowed";
        seen += ::unlinkat(AT_FDCWD, "/etc/passwd", 0) < 0 && errno == EPERM ? " unlink=EPERM" : " unlink=allowed";
        return report(seen);
    });
    REQUIRE_FALSE(result.has_value());
    CHECK(result.error().message == "socket=EPERM prctl=EPERM unlink=EPERM");
}

TEST_CASE("the confined attach helper still does its job") {
    TempDir dir;
    const std::string rootfs = dir.path() + "/rootfs";
    makeBusyboxRootfs(rootfs);
    FakeContainer c(rootfs);
    const std::string marker = "helper-marker-3c1e";
    const std::string annotation = "alpha;source=alpha,target=/etc/app/pw";
    auto refs = mountfs::parseSecretRefs(annotation);
    REQUIRE(refs.has_value());
    auto layout = mountfs::planView(*refs);
    REQUIRE(layout.has_value());
    auto view = platform::TmpfsView::build(*layout, {bytes(marker), bytes(marker)}, {}, platform::kernelFeatures());
    REQUIRE(view.has_value());
    auto attached = (*view)->attach({c.pidfd(), c.rootfs()});
    REQUIRE_MESSAGE(attached.has_value(), (attached ? "" : attached.error().message));
    auto inside = readInside(c, "/etc/app/pw");
    REQUIRE(inside.has_value());
    CHECK(*inside == marker);

    // The pages of the file the single-file mount pins, held by a pipe.
    UniqueFd file(::openat((*view)->writableRoot(), "file/etc/app/pw", O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    REQUIRE(file);
    PinnedPages pinned(file.get());
    const bool held = pinned.then() == marker;
    CHECK_MESSAGE(held, "the pinned pages differ from the marker");

    // The re-adopting helper (confineForReadopt) needs a pivoted rootfs,
    // which FakeContainer is not: runtime_e2e.sh restarts the agent under a
    // running runc container for it. The update helper: atomic_update_test.
    REQUIRE((*view)->flush().has_value());
    auto after = readInside(c, "/etc/app/pw");
    REQUIRE(after.has_value());
    CHECK(after->empty());
    // Zeroed through the pinned inode: an overwrite, not a truncate alone.
    CHECK_MESSAGE(pinned.zeroedNow(), "the pages that held the marker were not overwritten");
}
