#!/bin/sh
# Installs what is missing, builds, and runs the whole test suite (as root:
# the privileged suites mount, enter namespaces and run containers): the
# Linux build's suites, the Windows view under wine, the same Linux suites
# again under ASan+UBSan (scripts/test-sanitizers.sh), and the fuzzers for
# a bounded time (scripts/test-fuzz.sh; FUZZ_SECONDS, default 60).
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
    BUILD_DIR=${FUZZ_BUILD_DIR:-build-fuzz} sh scripts/test-fuzz.sh >"$fuzz_out" 2>&1 || status=$?
    cat "$fuzz_out"
    fuzz_line=$(grep '^fuzzers: ' "$fuzz_out" | tail -1 || true)
    rm -f "$fuzz_out"
    [ -n "$fuzz_line" ] || fuzz_line="fuzzers: 0 passed, 1 failed"
fi
# meson's own summaries count executables; restate them all as one line,
# with each fuzzer counted as one test.
# shellcheck disable=SC2086
python3 - "$fuzz_line" $logs <<'PY'
import json, os, re, sys
counts = {"OK": 0, "FAIL": 0, "SKIP": 0, "TIMEOUT": 0, "ERROR": 0, "EXPECTEDFAIL": 0, "UNEXPECTEDPASS": 0}
m = re.match(r"fuzzers: (\d+) passed, (\d+) failed", sys.argv[1])
if m:
    counts["OK"] += int(m.group(1))
    counts["FAIL"] += int(m.group(2))
for log in sys.argv[2:]:
    if not os.path.exists(log):
        counts["ERROR"] += 1  # a suite that did not even run
        continue
    for line in open(log):
        r = json.loads(line)["result"]
        counts[r] = counts.get(r, 0) + 1
failed = counts["FAIL"] + counts["TIMEOUT"] + counts["ERROR"] + counts["UNEXPECTEDPASS"]
print(f"{counts['OK'] + counts['EXPECTEDFAIL']} passed, {failed} failed, {counts['SKIP']} skipped")
PY
exit $status
