// main() for privileged suites: SKIP (exit 77, which meson reports as a
// skip, never a pass) where root or the kernel features are missing.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdio>

#include "platform/linux/features.hpp"

int main(int argc, char** argv) {
    if (::geteuid() != 0) {
        std::puts("SKIP: privileged tests need root");
        return 77;
    }
    const auto& features = secretshim::platform::kernelFeatures();
    if (!features.sufficient()) {
        std::printf("SKIP: kernel lacks what secrets views need (%s)\n", features.describe().c_str());
        return 77;
    }
    doctest::Context context(argc, argv);
    return context.run();
}
