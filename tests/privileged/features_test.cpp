#include <doctest/doctest.h>

#include "platform/linux/features.hpp"

using secretshim::platform::kernelFeatures;
using secretshim::platform::probeKernelFeatures;

TEST_CASE("the probe finds what secrets views need and is stable") {
    const auto& f = kernelFeatures();
    CHECK(f.newMountApi);
    CHECK(f.openat2);
    CHECK(f.pidfdSetns);
    CHECK(f.mountSetattr);
    CHECK(f.sufficient());
    const auto again = probeKernelFeatures();
    CHECK(again.describe() == f.describe());
    MESSAGE("kernel features: " << f.describe());
}

TEST_CASE("describe names every feature") {
    const std::string d = kernelFeatures().describe();
    for (const char* name : {"new-mount-api=", "openat2=", "pidfd-setns=", "mount-setattr=",
                             "tmpfs-noswap=", "move-mount-beneath=", "detached-clone="})
        CHECK(d.find(name) != std::string::npos);
}

#include <sys/utsname.h>

#include <cstdio>

// The probe never looks at the version; the test does, to catch a probe
// that wrongly reports a feature missing on a kernel known to have it.
TEST_CASE("the probe agrees with the kernel version where the version is known") {
    utsname u{};
    REQUIRE(uname(&u) == 0);
    int major = 0, minor = 0;
    REQUIRE(std::sscanf(u.release, "%d.%d", &major, &minor) == 2);
    const int v = major * 100 + minor;
    const auto& f = kernelFeatures();
    if (v >= 604) CHECK(f.tmpfsNoswap);
    if (v >= 605) CHECK(f.moveMountBeneath);
    if (v >= 615) CHECK(f.detachedClone);
    if (v < 605) CHECK_FALSE(f.moveMountBeneath);
}
