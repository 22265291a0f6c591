#!/bin/sh
# Installs what is missing, builds, and runs the whole test suite (as root:
# the privileged suites mount, enter namespaces and run containers): the
# Linux build's suites, the Windows view under wine, the same Linux suites
# again under ASan+UBSan (scripts/test-sanitizers.sh), and the fuzzers for
# a bounded time (scripts/test-fuzz.sh; FUZZ_SECONDS, default 20 here).
# QUICK=1 skips the last two. Ends with "N passed, N failed, N skipped",
# counted in test cases by scripts/count_tests.py: a pass whose setup or
# build failed and every sanitizer report count as failures there.
# SECRETSHIM_REQUIRE_ALL=1 (CI) also fails on any skip outside the wine
# pass (where a case needing symbolic links or ACLs cannot run).
set -u
cd "$(dirname "$0")/.." || exit 1
status=0
counted=""  # count_tests.py's arguments: --pass NAME STATUS LOG for each pass

# run_pass NAME LOG COMMAND...: runs one pass, its old log removed first: a
# pass that stops before its tests leaves no log, which counts as a failure
# (never the results of an earlier run).
run_pass() {
    name=$1 log=$2
    shift 2
    rm -f "$log"
    rc=0
    "$@" || rc=$?
    [ "$rc" = 0 ] || status=1
    counted="$counted --pass $name $rc $log"
}

# shellcheck disable=SC2317  # called by run_pass
linux() {
    sh scripts/setup.sh &&
        { [ -f "$build/build.ninja" ] || meson setup "$build" >/dev/null; } &&
        meson compile -C "$build" &&
        meson test -C "$build" --print-errorlogs --num-processes 2
}
build=${BUILD_DIR:-build}
run_pass linux "$build/meson-logs/testlog.json" linux
# The Windows view: cross-built with mingw-w64, tested under wine.
windows_build=${WINDOWS_BUILD_DIR:-build-windows}
run_pass windows "$windows_build/meson-logs/testlog.json" env BUILD_DIR="$windows_build" sh scripts/test-windows.sh

if [ "${QUICK:-0}" != 1 ]; then
    asan_build=${ASAN_BUILD_DIR:-build-asan}
    # Its skips are judged by the count below, not by its own.
    run_pass sanitizers "$asan_build/meson-logs/testlog.json" \
        env -u SECRETSHIM_REQUIRE_ALL BUILD_DIR="$asan_build" sh scripts/test-sanitizers.sh
    counted="$counted --sanitizer-reports sanitizers $asan_build/sanitizer-logs"
    fuzz_out=$(mktemp /tmp/secretshim-fuzz-XXXXXX)
    BUILD_DIR=${FUZZ_BUILD_DIR:-build-fuzz} FUZZ_SECONDS=${FUZZ_SECONDS:-20} sh scripts/test-fuzz.sh >"$fuzz_out" 2>&1 || status=1
    cat "$fuzz_out"
    # Its last line; none (the build failed) counts as a failure.
    fuzz_line=$(grep '^fuzzers: ' "$fuzz_out" | tail -1 || true)
    rm -f "$fuzz_out"
fi

# shellcheck disable=SC2086  # build directories have no spaces
python3 scripts/count_tests.py --may-skip windows ${fuzz_line+--fuzz "$fuzz_line"} $counted || status=1
exit $status
