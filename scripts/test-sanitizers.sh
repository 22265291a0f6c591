#!/bin/sh
# Builds the whole project with AddressSanitizer (and LeakSanitizer) and
# UndefinedBehaviorSanitizer in build-asan/ and runs the whole meson test
# suite there: unit, privileged and integration (as root, like CI). The
# integration tests start the agent, the hook and the CLI from this build,
# so their leaks count too: the agent is checked when it exits on SIGTERM.
# Fails on any failing test and on any sanitizer report, which every
# process writes to $BUILD_DIR/sanitizer-logs/. Ends with the line
# "sanitizers: N passed, N failed, N skipped".
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

# Every sanitized process reports into one directory (log_path adds .PID):
# the e2e tests stop agents in their cleanup without looking at the exit
# status, and those leak reports would go with the test's temp directory.
# A process confined by platform::confineForAttach() (the hook, the child
# of confine_test) can open nothing there, and does not leak-check: the
# check needs clone and ptrace (see plugin/hook/main.cpp).
logs=$build/sanitizer-logs
rm -rf "$logs"
mkdir -p "$logs"
chmod 1777 "$logs"
export ASAN_OPTIONS="detect_leaks=1:log_path=$logs/asan:check_initialization_order=1:strict_init_order=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$logs/ubsan${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"

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
  status=1
  echo "---- sanitizer reports ($(echo "$reports" | wc -l) file(s) in $logs)"
  for r in $reports; do
    echo "---- $(basename "$r")"
    # The report's headline, its first frames and the summary.
    grep -v '^ *$' "$r" | head -40
  done
fi

echo "sanitizers: $(echo "$reports" | grep -c . || true) sanitizer report file(s)"
python3 scripts/count_tests.py --prefix sanitizers "$build/meson-logs/testlog.json"
echo "sanitizers: total wall time $(( $(date +%s) - start_all ))s (build ${build_seconds}s, tests ${test_seconds}s)"
exit $status
