// Attaching into a hostile image: the rootfs is prepared on the host with
// symlinks, ".." tricks, magic links, special files, loops and volumes that
// try to lead a mount or a created file out of the rootfs. Each case checks
// either that the secret lands inside the rootfs (read back in the
// container, and where it landed) or that the attach fails with a clear
// message and nothing half-mounted; and in every case, from the host, that
// the "host" sentinel directory outside the rootfs stays empty, that nothing
// was created at the matching host path, and that no mount shows up on the
// host. Secret values are markers compared in code, never printed.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <sstream>
#include <string>
#include <vector>

#include "mountfs/secret_ref.hpp"
#include "platform/linux/tmpfs_view.hpp"
#include "tests/support/container_fixture.hpp"

using namespace secretshim;
using namespace secretshim::test;
using platform::TmpfsView;
namespace fs = std::filesystem;

namespace {

mountfs::Bytes bytes(const std::string& s) {
    return {reinterpret_cast<const unsigned char*>(s.data()), s.size()};
}

std::unique_ptr<TmpfsView> buildFrom(const std::string& annotation, const std::vector<std::string>& values) {
    auto refs = mountfs::parseSecretRefs(annotation);
    REQUIRE_MESSAGE(refs.has_value(), (refs ? "" : refs.error().message));
    auto layout = mountfs::planView(*refs);
    REQUIRE(layout.has_value());
    std::vector<mountfs::Bytes> payloads;
    for (const auto& v : values) payloads.push_back(bytes(v));
    auto view = TmpfsView::build(std::move(*layout), payloads, {}, platform::kernelFeatures());
    if (!view) FAIL("build failed: " << view.error().message);
    return std::move(*view);
}

// A busybox rootfs, and next to it (outside it) the "host" sentinel
// directory that hostile symlinks point at by its absolute host path.
struct Setup {
    TempDir dir;
    std::string rootfs = dir.path() + "/rootfs";
    std::string host = dir.path() + "/host";
    Setup() {
        makeBusyboxRootfs(rootfs);
        fs::create_directory(host);
    }
    // The host path `p` as it would be found inside the rootfs.
    std::string inRootfs(const std::string& p) const { return rootfs + p; }
};

void makeSymlink(const std::string& value, const std::string& link) {
    REQUIRE_MESSAGE(::symlink(value.c_str(), link.c_str()) == 0, "symlink " << link);
}

// Replaces the image's (empty) /run by a symlink.
void replaceRun(const Setup& s, const std::string& value) {
    REQUIRE(fs::remove(s.rootfs + "/run"));
    makeSymlink(value, s.rootfs + "/run");
}

void writeFile(const std::string& path, const std::string& content) {
    std::ofstream(path, std::ios::binary) << content;
    REQUIRE(pathExists(path));
}

std::string readHostFile(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

std::size_t entriesIn(const std::string& dir) {
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir)) ++n;
    return n;
}

bool isDirectory(const std::string& path) {
    struct stat st {};
    return ::lstat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool hasMountAt(const FakeContainer& c, const std::string& point) {
    for (const auto& m : containerMounts(c))
        if (m.mountPoint == point) return true;
    return false;
}

// Runs fn in a child that joined the container's mount namespace (not
// chrooted): for mounts the image's runtime would have made there, which
// never propagate to the host (the namespace is private).
bool inContainerNamespace(const FakeContainer& c, const std::function<bool()>& fn) {
    const pid_t pid = ::fork();
    if (pid < 0) return false;
    if (pid == 0) ::_exit(::setns(c.pidfd(), CLONE_NEWNS) == 0 && fn() ? 0 : 1);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

// The attach was refused with exactly `message`, leaving no mount behind.
void checkRefused(const Result<void>& ok, const FakeContainer& c, const std::string& message) {
    REQUIRE_FALSE(ok.has_value());
    CHECK(ok.error().message == message);
    CHECK(containerMounts(c).empty());
}

void checkAttached(const Result<void>& ok) {
    REQUIRE_MESSAGE(ok.has_value(), (ok ? "" : ok.error().message));
}

// The secret reads back as `marker` at `path` inside the container.
void checkSecretAt(const FakeContainer& c, const std::string& path, const std::string& marker) {
    auto r = readInside(c, path);
    REQUIRE_MESSAGE(r.has_value(), path << ": " << (r ? "" : r.error().message));
    CHECK_MESSAGE((*r == marker), "the secret does not read back at " << path);
}

// From the host: the sentinel is empty, none of `hostPaths` exists, and no
// process but the container sees a mount below the sentinel or the rootfs.
void checkHostUntouched(const Setup& s, const FakeContainer& c,
                        std::initializer_list<std::string> hostPaths = {}) {
    CHECK(entriesIn(s.host) == 0);
    for (const auto& p : hostPaths) CHECK_MESSAGE(!pathExists(p), p << " exists on the host");
    CHECK_FALSE(anyMountBelow(s.host));
    CHECK_FALSE(anyMountBelow(c.rootfs(), c.pid()));
}

constexpr const char* kDangling = " in the container is a dangling symbolic link";
constexpr const char* kLoop = ": Too many levels of symbolic links";

}  // namespace

TEST_CASE("hostile rootfs: /run is an absolute symlink to a host directory the rootfs lacks") {
    Setup s;
    replaceRun(s, s.host);
    auto view = buildFrom("secretshim-hostile-1", {"marker-hostile-1"});
    FakeContainer c(s.rootfs);
    auto ok = view->attach({c.pidfd(), c.rootfs()});
    checkRefused(ok, c, std::string("/run") + kDangling);
    // Not created in the rootfs either: the link still dangles there.
    CHECK_FALSE(pathExists(s.inRootfs(s.host)));
    checkHostUntouched(s, c, {s.host + "/secrets", "/run/secrets/secretshim-hostile-1"});
}

TEST_CASE("hostile rootfs: /run points at the host path, which also exists inside the rootfs") {
    Setup s;
    fs::create_directories(s.inRootfs(s.host));
    replaceRun(s, s.host);
    const std::string marker = "marker-hostile-2";
    auto view = buildFrom("secretshim-hostile-2", {marker});
    FakeContainer c(s.rootfs);
    checkAttached(view->attach({c.pidfd(), c.rootfs()}));

    // It lands on the rootfs's own copy of that path.
    checkSecretAt(c, "/run/secrets/secretshim-hostile-2", marker);
    checkSecretAt(c, s.host + "/secrets/secretshim-hostile-2", marker);
    CHECK(isDirectory(s.inRootfs(s.host) + "/secrets"));
    CHECK(hasMountAt(c, s.host + "/secrets"));
    // From the host the created directory is an empty mount point.
    CHECK(entriesIn(s.inRootfs(s.host) + "/secrets") == 0);
    checkHostUntouched(s, c, {"/run/secrets/secretshim-hostile-2"});
}

TEST_CASE("hostile rootfs: /run/secrets resolves to the container's root") {
    Setup s;
    std::string link;
    SUBCASE("absolute") { link = "/"; }
    SUBCASE("dot-dot") { link = "../../../../.."; }
    SUBCASE("through /tmp") { link = "/tmp/.."; }
    makeSymlink(link, s.rootfs + "/run/secrets");
    auto view = buildFrom("secretshim-hostile-3", {"marker-hostile-3"});
    FakeContainer c(s.rootfs);
    auto ok = view->attach({c.pidfd(), c.rootfs()});
    checkRefused(ok, c, "/run/secrets in the container resolves to the container's root");
    CHECK_FALSE(pathExists(s.rootfs + "/secretshim-hostile-3"));
    checkHostUntouched(s, c, {"/secretshim-hostile-3", "/run/secrets/secretshim-hostile-3"});
}

TEST_CASE("hostile rootfs: /run -> / puts /run/secrets at the rootfs's /secrets") {
    Setup s;
    replaceRun(s, "/");
    const std::string marker = "marker-hostile-3b";
    auto view = buildFrom("secretshim-hostile-3b", {marker});
    FakeContainer c(s.rootfs);
    checkAttached(view->attach({c.pidfd(), c.rootfs()}));
    checkSecretAt(c, "/run/secrets/secretshim-hostile-3b", marker);
    checkSecretAt(c, "/secrets/secretshim-hostile-3b", marker);
    CHECK(isDirectory(s.rootfs + "/secrets"));
    CHECK(hasMountAt(c, "/secrets"));
    checkHostUntouched(s, c, {"/secrets/secretshim-hostile-3b", "/run/secrets/secretshim-hostile-3b"});
}

TEST_CASE("hostile rootfs: a single-file target whose parent is a symlink to /etc") {
    Setup s;
    fs::create_directories(s.rootfs + "/app");
    makeSymlink("/etc", s.rootfs + "/app/conf");
    const std::string marker = "marker-hostile-4";
    auto view = buildFrom("source=secretshim-hostile-4,target=/app/conf/secretshim-hostile-4", {marker});
    FakeContainer c(s.rootfs);
    checkAttached(view->attach({c.pidfd(), c.rootfs()}));

    checkSecretAt(c, "/app/conf/secretshim-hostile-4", marker);
    checkSecretAt(c, "/etc/secretshim-hostile-4", marker);
    // The placeholder is the rootfs's /etc/<name>: an empty regular file
    // from the host, where the mount is not seen.
    const std::string placeholder = s.rootfs + "/etc/secretshim-hostile-4";
    CHECK(fs::is_regular_file(fs::symlink_status(placeholder)));
    CHECK(fs::file_size(placeholder) == 0);
    CHECK(hasMountAt(c, "/etc/secretshim-hostile-4"));
    checkHostUntouched(s, c, {"/etc/secretshim-hostile-4", "/app/conf/secretshim-hostile-4"});
}

TEST_CASE("hostile rootfs: relative .. symlinks cannot climb out of the rootfs") {
    Setup s;
    SUBCASE("/run -> ../../../../../../..<host path>, missing in the rootfs") {
        replaceRun(s, "../../../../../../.." + s.host);
        REQUIRE(fs::exists(s.rootfs + "/run/../../../../../../.." + s.host));  // would reach the host
        auto view = buildFrom("secretshim-hostile-5a", {"marker-hostile-5a"});
        FakeContainer c(s.rootfs);
        auto ok = view->attach({c.pidfd(), c.rootfs()});
        checkRefused(ok, c, std::string("/run") + kDangling);
        CHECK_FALSE(pathExists(s.inRootfs(s.host)));
        checkHostUntouched(s, c, {"/run/secrets/secretshim-hostile-5a"});
    }
    SUBCASE("/run -> ../../../../../../..<host path>, present in the rootfs") {
        fs::create_directories(s.inRootfs(s.host));
        replaceRun(s, "../../../../../../.." + s.host);
        const std::string marker = "marker-hostile-5b";
        auto view = buildFrom("secretshim-hostile-5b", {marker});
        FakeContainer c(s.rootfs);
        checkAttached(view->attach({c.pidfd(), c.rootfs()}));
        checkSecretAt(c, "/run/secrets/secretshim-hostile-5b", marker);
        CHECK(isDirectory(s.inRootfs(s.host) + "/secrets"));
        CHECK(hasMountAt(c, s.host + "/secrets"));
        checkHostUntouched(s, c, {"/run/secrets/secretshim-hostile-5b"});
    }
    SUBCASE("/run/secrets -> ../../../../../../../tmp/<name>") {
        makeSymlink("../../../../../../../tmp/secretshim-hostile-5c", s.rootfs + "/run/secrets");
        auto view = buildFrom("secretshim-hostile-5c", {"marker-hostile-5c"});
        FakeContainer c(s.rootfs);
        auto ok = view->attach({c.pidfd(), c.rootfs()});
        checkRefused(ok, c, std::string("/run/secrets") + kDangling);
        CHECK_FALSE(pathExists(s.rootfs + "/tmp/secretshim-hostile-5c"));
        checkHostUntouched(s, c, {"/tmp/secretshim-hostile-5c"});
    }
    SUBCASE("a single-file target -> ../../../../../../../tmp/<name>") {
        makeSymlink("../../../../../../../tmp/secretshim-hostile-5d", s.rootfs + "/etc/secretshim-hostile-5d");
        auto view = buildFrom("source=secretshim-hostile-5d,target=/etc/secretshim-hostile-5d",
                              {"marker-hostile-5d"});
        FakeContainer c(s.rootfs);
        auto ok = view->attach({c.pidfd(), c.rootfs()});
        checkRefused(ok, c, std::string("/etc/secretshim-hostile-5d") + kDangling);
        CHECK_FALSE(pathExists(s.rootfs + "/tmp/secretshim-hostile-5d"));
        checkHostUntouched(s, c, {"/tmp/secretshim-hostile-5d", "/etc/secretshim-hostile-5d"});
    }
}

TEST_CASE("hostile rootfs: /run is a magic link through /proc") {
    const std::vector<std::string> links = {"/proc/self/root", "/proc/1/root", "/proc/thread-self/root"};
    SUBCASE("with the image's empty /proc the link dangles") {
        for (const std::string& link : links) {
            CAPTURE(link);
            Setup s;
            replaceRun(s, link);
            auto view = buildFrom("secretshim-hostile-6", {"marker-hostile-6"});
            FakeContainer c(s.rootfs);
            auto ok = view->attach({c.pidfd(), c.rootfs()});
            checkRefused(ok, c, std::string("/run") + kDangling);
            CHECK(entriesIn(s.rootfs + "/proc") == 0);
            checkHostUntouched(s, c, {"/run/secrets/secretshim-hostile-6", "/secrets/secretshim-hostile-6"});
        }
    }
    SUBCASE("with a real procfs at the rootfs's /proc the magic link is refused") {
        for (const std::string& link : links) {
            CAPTURE(link);
            Setup s;
            replaceRun(s, link);
            auto view = buildFrom("secretshim-hostile-6p", {"marker-hostile-6p"});
            FakeContainer c(s.rootfs);
            const std::string proc = s.rootfs + "/proc";
            REQUIRE(inContainerNamespace(c, [&] {
                return ::mount("proc", proc.c_str(), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) == 0;
            }));
            REQUIRE(containerMounts(c).size() == 1);
            auto ok = view->attach({c.pidfd(), c.rootfs()});
            REQUIRE_FALSE(ok.has_value());
            // RESOLVE_NO_MAGICLINKS says ELOOP; but procfs checks ptrace
            // access to the link's process first, so where we may not even
            // read /proc/1/root (a sandbox's init) that comes out as EACCES.
            char buf[PATH_MAX];
            const bool readable = link != "/proc/1/root" || ::readlink("/proc/1/root", buf, sizeof buf) >= 0;
            CHECK(ok.error().message == std::string("resolving /run/secrets in the container") +
                                            (readable ? kLoop : ": Permission denied"));
            // Only the procfs we mounted: nothing half-attached.
            const auto mounts = containerMounts(c);
            REQUIRE(mounts.size() == 1);
            CHECK(mounts[0].mountPoint == "/proc");
            checkHostUntouched(s, c, {"/run/secrets/secretshim-hostile-6p", "/secrets/secretshim-hostile-6p"});
        }
    }
}

TEST_CASE("hostile rootfs: a single-file target that is a FIFO, a socket or a device is refused") {
    Setup s;
    const std::string name = "secretshim-hostile-7";
    const std::string path = s.rootfs + "/etc/" + name;
    std::string what;
    SUBCASE("FIFO") {
        REQUIRE(::mkfifo(path.c_str(), 0600) == 0);
        what = "a FIFO";
    }
    SUBCASE("socket") {
        const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        REQUIRE(fd >= 0);
        sockaddr_un addr {};
        addr.sun_family = AF_UNIX;
        REQUIRE(path.size() < sizeof addr.sun_path);
        std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
        const int bound = ::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
        ::close(fd);
        REQUIRE(bound == 0);
        what = "a socket";
    }
    SUBCASE("character device") {
        REQUIRE(::mknod(path.c_str(), S_IFCHR | 0600, makedev(1, 3)) == 0);
        what = "a character device";
    }
    SUBCASE("block device") {
        REQUIRE(::mknod(path.c_str(), S_IFBLK | 0600, makedev(7, 0)) == 0);
        what = "a block device";
    }
    // With a directory mount in the same view: it is attached first, and
    // must be rolled back when the file target is refused.
    auto view = buildFrom("alpha;source=" + name + ",target=/etc/" + name, {"marker-7-dir", "marker-7-file"});
    FakeContainer c(s.rootfs);
    auto ok = view->attach({c.pidfd(), c.rootfs()});
    checkRefused(ok, c, "/etc/" + name + " in the container is " + what + ", not a regular file");
    CHECK(pathExists(path));  // left as the image had it
    checkHostUntouched(s, c, {"/etc/" + name});
}

TEST_CASE("hostile rootfs: a target of the wrong type is refused") {
    Setup s;
    SUBCASE("a single-file target that is a directory") {
        fs::create_directory(s.rootfs + "/etc/secretshim-hostile-8");
        auto view = buildFrom("source=secretshim-hostile-8,target=/etc/secretshim-hostile-8", {"marker-8"});
        FakeContainer c(s.rootfs);
        auto ok = view->attach({c.pidfd(), c.rootfs()});
        checkRefused(ok, c, "/etc/secretshim-hostile-8 in the container is a directory, not a regular file");
        CHECK(entriesIn(s.rootfs + "/etc/secretshim-hostile-8") == 0);
        checkHostUntouched(s, c, {"/etc/secretshim-hostile-8"});
    }
    SUBCASE("a single-file target that is a symlink to a directory") {
        makeSymlink("/tmp", s.rootfs + "/etc/secretshim-hostile-8l");
        auto view = buildFrom("source=secretshim-hostile-8l,target=/etc/secretshim-hostile-8l", {"marker-8l"});
        FakeContainer c(s.rootfs);
        auto ok = view->attach({c.pidfd(), c.rootfs()});
        checkRefused(ok, c, "/etc/secretshim-hostile-8l in the container is a directory, not a regular file");
        CHECK(entriesIn(s.rootfs + "/tmp") == 0);
        checkHostUntouched(s, c, {"/etc/secretshim-hostile-8l"});
    }
    SUBCASE("/run/secrets that is a regular file") {
        writeFile(s.rootfs + "/run/secrets", "image-content-8");
        auto view = buildFrom("secretshim-hostile-8f", {"marker-8f"});
        FakeContainer c(s.rootfs);
        auto ok = view->attach({c.pidfd(), c.rootfs()});
        checkRefused(ok, c, "/run/secrets in the container is a regular file, not a directory");
        CHECK((readHostFile(s.rootfs + "/run/secrets") == "image-content-8"));
        checkHostUntouched(s, c, {"/run/secrets/secretshim-hostile-8f"});
    }
    SUBCASE("/run/secrets that is a symlink to a host file path") {
        const std::string hostFile = s.dir.path() + "/hostfile";
        writeFile(hostFile, "host-content-8");
        makeSymlink(hostFile, s.rootfs + "/run/secrets");
        fs::create_directories(s.inRootfs(s.dir.path()));
        writeFile(s.inRootfs(hostFile), "image-content-8h");  // the rootfs's own file by that path
        auto view = buildFrom("secretshim-hostile-8h", {"marker-8h"});
        FakeContainer c(s.rootfs);
        auto ok = view->attach({c.pidfd(), c.rootfs()});
        checkRefused(ok, c, "/run/secrets in the container is a regular file, not a directory");
        CHECK((readHostFile(hostFile) == "host-content-8"));
        checkHostUntouched(s, c, {hostFile + "/secretshim-hostile-8h"});
    }
}

TEST_CASE("hostile rootfs: the final component is a dangling symlink to a host path") {
    Setup s;
    SUBCASE("a single-file target -> a path in the host sentinel") {
        makeSymlink(s.host + "/leak", s.rootfs + "/etc/secretshim-hostile-9");
        auto view = buildFrom("source=secretshim-hostile-9,target=/etc/secretshim-hostile-9", {"marker-9"});
        FakeContainer c(s.rootfs);
        auto ok = view->attach({c.pidfd(), c.rootfs()});
        checkRefused(ok, c, std::string("/etc/secretshim-hostile-9") + kDangling);
        CHECK_FALSE(pathExists(s.inRootfs(s.host)));
        checkHostUntouched(s, c, {s.host + "/leak", "/etc/secretshim-hostile-9"});
    }
    SUBCASE("a single-file target -> an existing host file the rootfs lacks") {
        const std::string hostFile = s.dir.path() + "/hostfile";
        writeFile(hostFile, "host-content-9");
        makeSymlink(hostFile, s.rootfs + "/etc/secretshim-hostile-9f");
        auto view = buildFrom("source=secretshim-hostile-9f,target=/etc/secretshim-hostile-9f", {"marker-9f"});
        FakeContainer c(s.rootfs);
        auto ok = view->attach({c.pidfd(), c.rootfs()});
        checkRefused(ok, c, std::string("/etc/secretshim-hostile-9f") + kDangling);
        CHECK((readHostFile(hostFile) == "host-content-9"));
        checkHostUntouched(s, c, {"/etc/secretshim-hostile-9f"});
    }
    SUBCASE("/run/secrets -> the host sentinel") {
        makeSymlink(s.host, s.rootfs + "/run/secrets");
        auto view = buildFrom("secretshim-hostile-9d", {"marker-9d"});
        FakeContainer c(s.rootfs);
        auto ok = view->attach({c.pidfd(), c.rootfs()});
        checkRefused(ok, c, std::string("/run/secrets") + kDangling);
        CHECK_FALSE(pathExists(s.inRootfs(s.host)));
        checkHostUntouched(s, c, {"/run/secrets/secretshim-hostile-9d"});
    }
    SUBCASE("an intermediate directory -> a host path") {
        makeSymlink(s.host + "/sub", s.rootfs + "/etc/secretshim-hostile-9m");
        auto view = buildFrom("source=secretshim-hostile-9m,target=/etc/secretshim-hostile-9m/deeper/pw",
                              {"marker-9m"});
        FakeContainer c(s.rootfs);
        auto ok = view->attach({c.pidfd(), c.rootfs()});
        checkRefused(ok, c, std::string("/etc/secretshim-hostile-9m") + kDangling);
        checkHostUntouched(s, c, {s.host + "/sub", "/etc/secretshim-hostile-9m"});
    }
}

TEST_CASE("hostile rootfs: a symlink to a file inside the rootfs is followed there") {
    Setup s;
    const std::string original = readHostFile(s.rootfs + "/etc/passwd");
    makeSymlink("/etc/passwd", s.rootfs + "/etc/secretshim-hostile-9p");
    const std::string marker = "marker-hostile-9p";
    auto view = buildFrom("source=secretshim-hostile-9p,target=/etc/secretshim-hostile-9p", {marker});
    FakeContainer c(s.rootfs);
    checkAttached(view->attach({c.pidfd(), c.rootfs()}));
    // The mount covers the image's own /etc/passwd, in the container only.
    checkSecretAt(c, "/etc/secretshim-hostile-9p", marker);
    checkSecretAt(c, "/etc/passwd", marker);
    CHECK(hasMountAt(c, "/etc/passwd"));
    CHECK((readHostFile(s.rootfs + "/etc/passwd") == original));
    checkHostUntouched(s, c, {"/etc/secretshim-hostile-9p"});
}

TEST_CASE("hostile rootfs: symlink loops are refused") {
    Setup s;
    SUBCASE("/run/a -> b, /run/b -> a, target /run/a/x") {
        makeSymlink("b", s.rootfs + "/run/a");
        makeSymlink("a", s.rootfs + "/run/b");
        auto view = buildFrom("source=secretshim-hostile-10,target=/run/a/x", {"marker-10"});
        FakeContainer c(s.rootfs);
        auto ok = view->attach({c.pidfd(), c.rootfs()});
        checkRefused(ok, c, std::string("resolving /run/a/x in the container") + kLoop);
        checkHostUntouched(s, c, {"/run/a/x"});
    }
    SUBCASE("/run/secrets -> itself") {
        makeSymlink("/run/secrets", s.rootfs + "/run/secrets");
        auto view = buildFrom("secretshim-hostile-10s", {"marker-10s"});
        FakeContainer c(s.rootfs);
        auto ok = view->attach({c.pidfd(), c.rootfs()});
        checkRefused(ok, c, std::string("resolving /run/secrets in the container") + kLoop);
        checkHostUntouched(s, c, {"/run/secrets/secretshim-hostile-10s"});
    }
    SUBCASE("a single-file target that is a loop") {
        makeSymlink("secretshim-hostile-10f", s.rootfs + "/etc/secretshim-hostile-10f");
        auto view = buildFrom("source=secretshim-hostile-10f,target=/etc/secretshim-hostile-10f", {"marker-10f"});
        FakeContainer c(s.rootfs);
        auto ok = view->attach({c.pidfd(), c.rootfs()});
        checkRefused(ok, c, std::string("resolving /etc/secretshim-hostile-10f in the container") + kLoop);
        checkHostUntouched(s, c, {"/etc/secretshim-hostile-10f"});
    }
}

TEST_CASE("hostile rootfs: a parent that is a symlink to a regular file") {
    Setup s;
    makeSymlink("/etc/passwd", s.rootfs + "/etc/secretshim-hostile-12");
    auto view = buildFrom("source=secretshim-hostile-12,target=/etc/secretshim-hostile-12/pw", {"marker-12"});
    FakeContainer c(s.rootfs);
    auto ok = view->attach({c.pidfd(), c.rootfs()});
    checkRefused(ok, c, "resolving /etc/secretshim-hostile-12/pw in the container: Not a directory");
    checkHostUntouched(s, c, {"/etc/secretshim-hostile-12"});
}

TEST_CASE("hostile rootfs: a volume bind-mounted into the container gets the placeholder") {
    Setup s;
    // A volume: a host directory (not the sentinel) bind-mounted into the
    // rootfs in the container's namespace only, as a runtime would do.
    const std::string volume = s.dir.path() + "/volume";
    fs::create_directory(volume);
    fs::create_directories(s.rootfs + "/mnt/vol");
    const std::string marker = "marker-hostile-11";
    auto view = buildFrom("source=secretshim-hostile-11,target=/mnt/vol/pw", {marker});
    FakeContainer c(s.rootfs);
    const std::string point = s.rootfs + "/mnt/vol";
    REQUIRE(inContainerNamespace(c, [&] {
        return ::mount(volume.c_str(), point.c_str(), nullptr, MS_BIND, nullptr) == 0;
    }));
    REQUIRE(hasMountAt(c, "/mnt/vol"));
    REQUIRE_FALSE(anyMountBelow(volume));
    REQUIRE_FALSE(anyMountBelow(c.rootfs(), c.pid()));

    checkAttached(view->attach({c.pidfd(), c.rootfs()}));
    // A volume is part of the container's view: the secret is on it, seen
    // at the target inside the container.
    checkSecretAt(c, "/mnt/vol/pw", marker);
    CHECK(hasMountAt(c, "/mnt/vol/pw"));
    // From the host the volume holds only the placeholder the attach
    // created: an empty, read-only regular file, with no mount on it.
    CHECK(entriesIn(volume) == 1);
    const std::string placeholder = volume + "/pw";
    CHECK(fs::is_regular_file(fs::symlink_status(placeholder)));
    CHECK(fs::file_size(placeholder) == 0);
    CHECK(readHostFile(placeholder).empty());
    CHECK((fs::status(placeholder).permissions() & fs::perms::all) == fs::perms(0444));
    CHECK_FALSE(anyMountBelow(volume));
    // Under the rootfs the host sees only the rootfs's own, empty directory.
    CHECK(entriesIn(s.rootfs + "/mnt/vol") == 0);
    checkHostUntouched(s, c, {"/mnt/vol/pw"});
}

TEST_CASE("hostile rootfs: a target hard-linked to a host file keeps the host file intact") {
    Setup s;
    const std::string hostFile = s.dir.path() + "/hostfile";
    writeFile(hostFile, "host-content-13");
    const std::string target = s.rootfs + "/etc/secretshim-hostile-13";
    REQUIRE(::link(hostFile.c_str(), target.c_str()) == 0);
    const std::string marker = "marker-hostile-13";
    auto view = buildFrom("source=secretshim-hostile-13,target=/etc/secretshim-hostile-13", {marker});
    FakeContainer c(s.rootfs);
    checkAttached(view->attach({c.pidfd(), c.rootfs()}));
    // A mount covers a name, not the inode: the container sees the secret,
    // the host file (both its names, from the host) keeps its content.
    checkSecretAt(c, "/etc/secretshim-hostile-13", marker);
    CHECK(hasMountAt(c, "/etc/secretshim-hostile-13"));
    CHECK((readHostFile(hostFile) == "host-content-13"));
    CHECK((readHostFile(target) == "host-content-13"));
    CHECK_FALSE(anyMountBelow(hostFile));
    checkHostUntouched(s, c, {"/etc/secretshim-hostile-13"});
}
