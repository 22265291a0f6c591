#!/bin/sh
# Builds the whole project with AddressSanitizer (and LeakSanitizer) and
# UndefinedBehaviorSanitizer in build-asan/ and runs the whole meson test
# suite there: unit, privileged and integration (as root, like CI). The
# integration tests start the agent, the hook and the CLI from this build,
# so their leaks count too: the agent is checked when it exits on SIGTERM.
# Fails on any failing test and on any sanitizer report: ASan and LSan
# write theirs to $BUILD_DIR/sanitizer-logs/, UBSan to stderr (next to
# ASan, g++'s UBSan runtime ignores log_path), which the test's output
# holds. Ends with the line "sanitizers: N passed, N failed, N skipped"
# (scripts/count_tests.py: every report counts as a failure).
#
#   BUILD_DIR=build-asan
#   SANITIZE_TIMEOUT_MULTIPLIER=3   meson test --timeout-multiplier
#   SANITIZE_SUITES="unit privileged integration"
#   RACE_SECONDS=10                 the symlink race (30 s in the plain build)
set -eu
cd "$(dirname "$0")/.."
root=$(pwd)
start_all=$(date +%s)
sh scripts/setup.sh

build=${BUILD_DIR:-build-asan}
case $build in /*) ;; *) build=$root/$build ;; esac
multiplier=${SANITIZE_TIMEOUT_MULTIPLIER:-3}
suites=${SANITIZE_SUITES:-unit privileged integration}
# No result of an earlier run may be counted if this one stops early.
logs=$build/sanitizer-logs
rm -rf "$logs" "$build/meson-logs/testlog.json"

start_build=$(date +%s)
if [ ! -f "$build/build.ninja" ]; then
  setup_log=$(mktemp /tmp/secretshim-asan-setup-XXXXXX)
  meson setup "$build" -Db_sanitize=address,undefined -Doptimization=1 >"$setup_log" 2>&1 ||
    { cat "$setup_log"; rm -f "$setup_log"; exit 1; }
  rm -f "$setup_log"
fi
# Only what these suites run: not the cluster tests nor the benchmarks
# (about a minute of compiling on 2 cores); hence --no-rebuild below.
targets=$(meson introspect "$build" --targets | python3 -c '
import json, os, sys
build = sys.argv[1]
for t in json.load(sys.stdin):
    where = t["defined_in"]
    if t["build_by_default"] and "/tests/cluster/" not in where and "/bench/" not in where:
        for f in t["filename"]:
            print(os.path.relpath(f, build))
' "$build")
# shellcheck disable=SC2086
ninja -C "$build" $targets >"$build/compile.log" 2>&1 || { tail -50 "$build/compile.log"; exit 1; }
build_seconds=$(( $(date +%s) - start_build ))
echo "sanitizers: built in ${build_seconds}s ($build)"

# Every sanitized process writes its ASan and LSan reports into one
# directory (log_path adds .PID): the e2e tests stop agents in their
# cleanup without looking at the exit status, and those leak reports would
# go with the test's temp directory. UBSan (g++'s libubsan, next to
# libasan) ignores log_path and writes to stderr: into the test's output,
# or the agent's log, whose reports stop_agent (tests/integration/lib.sh)
# copies to the test's output.
# A process confined by platform::confineForAttach() (the hook, the child
# of confine_test) can open nothing there, and does not leak-check: the
# check needs clone and ptrace (see plugin/hook/main.cpp).
mkdir -p "$logs"
chmod 1777 "$logs"
export ASAN_OPTIONS="detect_leaks=1:log_path=$logs/asan:check_initialization_order=1:strict_init_order=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"

export RACE_SECONDS="${RACE_SECONDS:-10}"
start_test=$(date +%s)
status=0
suite_args=""
for s in $suites; do suite_args="$suite_args --suite $s"; done
# shellcheck disable=SC2086
meson test -C "$build" --no-rebuild --print-errorlogs --num-processes 2 --timeout-multiplier "$multiplier" \
  $suite_args || status=$?
test_seconds=$(( $(date +%s) - start_test ))

reports=$(find "$logs" -type f | sort)
if [ -n "$reports" ]; then
  echo "---- sanitizer reports ($(echo "$reports" | wc -l) file(s) in $logs)"
  for r in $reports; do
    echo "---- $(basename "$r")"
    # The report's headline, its first frames and the summary.
    grep -v '^ *$' "$r" | head -40
  done
fi

python3 scripts/count_tests.py --prefix sanitizers --pass sanitizers "$status" "$build/meson-logs/testlog.json" \
  --sanitizer-reports sanitizers "$logs" || status=1
echo "sanitizers: total wall time $(( $(date +%s) - start_all ))s (build ${build_seconds}s, tests ${test_seconds}s)"
exit $status
