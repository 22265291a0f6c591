// A doctest case that cannot run on this machine is skipped, never passed:
//   TEST_CASE("..." * doctest::skip(skipUnless(have, "why it cannot run here")))
// doctest counts it under "skipped"; the "SKIP: why" line it prints says
// which (scripts/count_tests.py lists them, and fails CI on any). The
// condition is evaluated when the case is registered, before main().
#pragma once

#include <cstdio>

#ifdef __linux__
#include <unistd.h>
#endif

namespace secretshim::testing {

inline bool skipUnless(bool have, const char* why) {
    if (!have) std::printf("SKIP: %s\n", why);
    return !have;
}

#ifdef __linux__
// For a case of a privileged suite that needs a kernel feature: without
// root the probes fail whatever the kernel has, and privileged_main skips
// the whole program for that reason instead.
inline bool skipUnlessKernelHas(bool have, const char* why) { return skipUnless(have || ::geteuid() != 0, why); }
#endif

}  // namespace secretshim::testing
