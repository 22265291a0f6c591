#!/bin/sh
# Installs what is missing, builds, and runs the whole test suite (as root:
# the privileged suites mount, enter namespaces and run containers): the
# Linux build's suites, the Windows view under wine, the same Linux suites
# again under ASan+UBSan (scripts/test-sanitizers.sh), and the fuzzers for
# a bounded time (scripts/test-fuzz.sh; FUZZ_SECONDS, default 20 here).
# QUICK=1 skips the last two. Ends with "N passed, N failed, N skipped".
set -eu
cd "$(dirname "$0")/.."
sh scripts/setup.sh
build=${BUILD_DIR:-build}
[ -f "$build/build.ninja" ] || meson setup "$build" >/dev/null
meson compile -C "$build"
status=0
meson test -C "$build" --print-errorlogs --num-processes 2 || status=$?
# The Windows view: cross-built with mingw-w64, tested under wine.
windows_build=${WINDOWS_BUILD_DIR:-build-windows}
BUILD_DIR=$windows_build sh scripts/test-windows.sh || status=$?
logs="$build/meson-logs/testlog.json $windows_build/meson-logs/testlog.json"
fuzz_line=""
if [ "${QUICK:-0}" != 1 ]; then
    asan_build=${ASAN_BUILD_DIR:-build-asan}
    BUILD_DIR=$asan_build sh scripts/test-sanitizers.sh || status=$?
    logs="$logs $asan_build/meson-logs/testlog.json"
    fuzz_out=$(mktemp /tmp/secretshim-fuzz-XXXXXX)
    BUILD_DIR=${FUZZ_BUILD_DIR:-build-fuzz} FUZZ_SECONDS=${FUZZ_SECONDS:-20} sh scripts/test-fuzz.sh >"$fuzz_out" 2>&1 || status=$?
    cat "$fuzz_out"
    fuzz_line=$(grep '^fuzzers: ' "$fuzz_out" | tail -1 || true)
    rm -f "$fuzz_out"
    [ -n "$fuzz_line" ] || fuzz_line="fuzzers: 0 passed, 1 failed"
fi
# meson's own summaries count executables; restate them all as one line,
# with each fuzzer counted as one test.
# shellcheck disable=SC2086
python3 scripts/count_tests.py --extra "$fuzz_line" $logs
exit $status
