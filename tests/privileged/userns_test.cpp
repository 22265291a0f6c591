// A view built by a process inside a user namespace: the kernel refuses
// tmpfs's noswap there (6.4+: "Turning off swap in unprivileged tmpfs
// mounts unsupported"), and the view must be built without it. The agent
// itself builds views in the initial namespace, where noswap is kept.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "mountfs/secret_ref.hpp"
#include "platform/linux/tmpfs_view.hpp"
#include "tests/support/skip.hpp"

using namespace secretshim;

namespace {

bool writeFile(const char* path, const std::string& text) {
    const int fd = ::open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return false;
    const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
    ::close(fd);
    return ok;
}

// In a child: a user namespace mapping root to root, a mount namespace, a
// view with one secret. Exit 0: built without noswap; 2: built with it;
// 1: setup failed; 3: build failed.
int buildInUserNamespace() {
    if (::unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) return 1;
    if (!writeFile("/proc/self/setgroups", "deny") || !writeFile("/proc/self/uid_map", "0 0 1") ||
        !writeFile("/proc/self/gid_map", "0 0 1"))
        return 1;
    auto refs = mountfs::parseSecretRefs("a");
    if (!refs) return 1;
    auto layout = mountfs::planView(*refs);
    if (!layout) return 1;
    const std::string value = "marker-userns-5d1e";
    std::vector<mountfs::Bytes> payloads{{reinterpret_cast<const unsigned char*>(value.data()), value.size()}};
    platform::KernelFeatures features = platform::kernelFeatures();
    features.tmpfsNoswap = true;  // ask for it: the kernel must be the one that says no
    auto view = platform::TmpfsView::build(std::move(*layout), payloads, {}, features);
    if (!view) return 3;
    return (*view)->noswap() ? 2 : 0;
}

}  // namespace

TEST_CASE("in a user namespace noswap is refused and the view is built without it" *
          doctest::skip(testing::skipUnlessKernelHas(platform::kernelFeatures().tmpfsNoswap,
                                                     "the kernel has no tmpfs noswap: nothing to fall back from"))) {
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) ::_exit(buildInUserNamespace());
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
}
