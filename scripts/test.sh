#!/bin/sh
# Installs what is missing, builds, and runs the whole test suite (as root:
# the privileged suites mount, enter namespaces and run containers).
# Ends with the line "N passed, N failed, N skipped".
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
# meson's own summaries count executables; restate both as one plain line.
python3 - "$build/meson-logs/testlog.json" "$windows_build/meson-logs/testlog.json" <<'PY'
import json, os, sys
counts = {"OK": 0, "FAIL": 0, "SKIP": 0, "TIMEOUT": 0, "ERROR": 0, "EXPECTEDFAIL": 0, "UNEXPECTEDPASS": 0}
for log in sys.argv[1:]:
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
