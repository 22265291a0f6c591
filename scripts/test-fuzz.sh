#!/bin/sh
# Builds the libFuzzer fuzzers of tests/fuzz with clang 14, ASan and UBSan in
# build-fuzz/, replays every input under tests/fuzz/<fuzzer>/regressions/,
# then fuzzes each fuzzer for FUZZ_SECONDS on a copy of its seed corpus
# (the tree is never written). Fails on any crash, leak, timeout or
# sanitizer report; prints one summary line per fuzzer, then
# "fuzzers: N passed, N failed".
#
#   FUZZ_SECONDS=60     fuzzing time per fuzzer (0: replay and seeds only)
#   FUZZ_JOBS=2         fuzzers run at once (default: the number of cores)
#   FUZZ_TIMEOUT=10     seconds one input may take before it counts as a hang
#   FUZZ_MAX_LEN=4096   largest input libFuzzer generates
#   FUZZ_ONLY="a b"     run only these fuzzers
#   BUILD_DIR=build-fuzz
# Crash inputs are left in $BUILD_DIR/run/<fuzzer>/; copy one to
# tests/fuzz/<fuzzer>/regressions/ to replay it on every run.
set -eu
cd "$(dirname "$0")/.."
root=$(pwd)
export DEBIAN_FRONTEND=noninteractive

seconds=${FUZZ_SECONDS:-60}
jobs=${FUZZ_JOBS:-$(nproc)}
hang=${FUZZ_TIMEOUT:-10}
max_len=${FUZZ_MAX_LEN:-4096}
build=${BUILD_DIR:-build-fuzz}
case $build in /*) ;; *) build=$root/$build ;; esac
start_all=$(date +%s)

# The project's build dependencies, then clang 14 and libFuzzer's runtime.
sh scripts/setup.sh
missing=""
for p in clang-14 libclang-rt-14-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing
fi

start_build=$(date +%s)
log=$(mktemp)
if [ ! -f "$build/build.ninja" ]; then
  meson setup -Dfuzz=true --native-file tests/fuzz/clang.ini "$build" >"$log" 2>&1 || { cat "$log"; exit 1; }
fi
ninja -C "$build" >"$log" 2>&1 || { cat "$log"; rm -f "$log"; exit 1; }
rm -f "$log"
build_seconds=$(( $(date +%s) - start_build ))
echo "fuzz: built in ${build_seconds}s ($build)"

fuzzers=${FUZZ_ONLY:-$(cd tests/fuzz && for d in */; do
  d=${d%/}; [ -f "$d/${d}_fuzzer.cpp" ] && echo "$d"; done)}

run=$build/run
rm -rf "$run"
mkdir -p "$run"
# Sanitizer reports are fatal; leaks are checked after every input.
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:symbolize=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"

# The headline of what one input breaks: the invariant, the sanitizer
# report or libFuzzer's verdict, without the pid.
headline() {
  grep -m1 -e 'invariant broken' -e 'ERROR: AddressSanitizer' -e 'ERROR: LeakSanitizer' \
    -e 'runtime error' -e 'ERROR: libFuzzer' "$1" | sed -e 's/^==[0-9]*== *//' -e 's/^[^ ]*fuzz\/[^ ]*: //' | cut -c1-200
}

# Replays the regressions, then fuzzes in libFuzzer's fork mode, which goes
# on after a crash (a known bug must not hide the next one). Writes
# $run/<name>/summary, findings and status (ok or FAILED).
fuzz_one() {
  name=$1
  bin=$build/tests/fuzz/${name}_fuzzer
  dir=$run/$name
  src=tests/fuzz/$name
  mkdir -p "$dir/corpus" "$dir/tmp"
  # The agent fuzzer keeps its throwaway state directory here.
  export TMPDIR="$dir/tmp"
  : >"$dir/findings"

  replayed=0
  failed_replays=0
  for input in "$src"/regressions/*; do
    [ -f "$input" ] || continue
    replayed=$((replayed + 1))
    log=$dir/replay-$(basename "$input").log
    if ! timeout $((hang * 3 + 30)) "$bin" -timeout="$hang" "$input" </dev/null >"$log" 2>&1; then
      failed_replays=$((failed_replays + 1))
      echo "regression $(basename "$input"): $(headline "$log")" >>"$dir/findings"
    fi
  done

  cp -R "$src/corpus/." "$dir/corpus/"
  seeds=$(find "$dir/corpus" -type f | wc -l)
  dict=""
  [ -f "$src/$name.dict" ] && dict="-dict=$src/$name.dict"
  start=$(date +%s)
  if [ "$seconds" -gt 0 ]; then
    mode="-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 -max_total_time=$seconds"
  else
    mode="-runs=0"  # the seeds only
  fi
  # shellcheck disable=SC2086
  timeout $((seconds + hang * 3 + 120)) "$bin" $mode -timeout="$hang" -max_len="$max_len" \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$dir/" $dict "$dir/corpus" \
    >"$dir/fuzz.log" 2>&1 || echo "fuzzing: libFuzzer exited with status $?" >>"$dir/findings"
  elapsed=$(( $(date +%s) - start ))
  # Fork mode's progress lines: "#EXECS: cov: N ft: N corp: N ...".
  execs=$(sed -n 's/^#\([0-9]*\): cov: .*/\1/p' "$dir/fuzz.log" | tail -1)
  [ -n "$execs" ] || execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/fuzz.log" | tail -1)
  execs=${execs:-0}
  cov=$(grep -o 'cov: [0-9]*' "$dir/fuzz.log" | tail -1 | cut -d' ' -f2)
  files=$(find "$dir/corpus" -type f | wc -l)
  bytes=$(find "$dir/corpus" -type f -exec cat {} + | wc -c)
  artifacts=$(find "$dir" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' \
    -o -name 'oom-*' \) | sort)
  # What the fuzzing found: replay up to 10 inputs for their headlines.
  echo "$artifacts" | grep . | head -10 | while read -r a; do
    case $(basename "$a") in
      timeout-*) echo "fuzzing: timeout (over ${hang}s for one input)" ;;
      oom-*) echo "fuzzing: out of memory (over 2048 MB)" ;;
      *) timeout $((hang * 3 + 30)) "$bin" -timeout="$hang" "$a" </dev/null >"$a.log" 2>&1 || true
         echo "fuzzing: $(headline "$a.log")" ;;
    esac
  done | awk '{ k = $0; sub(/ \[.*/, "", k); n[k]++; if (!(k in e)) e[k] = $0 }
              END { for (k in n) print n[k] "x " e[k] }' | sort >>"$dir/findings"
  found=$(echo "$artifacts" | grep -c . || true)
  status=ok
  [ -s "$dir/findings" ] && status=FAILED
  printf 'fuzz: %-14s %-6s %s execs in %ss (%s/s), corpus %s -> %s files (%s bytes), cov %s, regressions %s/%s clean, %s crash input(s)\n' \
    "$name" "$status" "$execs" "$elapsed" $((execs / (elapsed > 0 ? elapsed : 1))) "$seeds" "$files" "$bytes" \
    "${cov:-?}" $((replayed - failed_replays)) "$replayed" "$found" >"$dir/summary"
  echo "$status" >"$dir/status"
  rm -rf "$dir/tmp"
}

# Batches of $jobs fuzzers at a time: each takes the same time.
# shellcheck disable=SC2086  # one word per fuzzer
set -- $fuzzers
while [ $# -gt 0 ]; do
  pids=""
  i=0
  while [ $# -gt 0 ] && [ $i -lt "$jobs" ]; do
    fuzz_one "$1" &
    pids="$pids $!"
    shift
    i=$((i + 1))
  done
  for pid in $pids; do wait "$pid" || true; done
done

passed=0
failed=0
for name in $fuzzers; do
  dir=$run/$name
  if [ "$(cat "$dir/status" 2>/dev/null)" = ok ]; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "---- $name: logs and crash inputs in $dir"
    sed 's/^/  /' "$dir/findings" 2>/dev/null || true
  fi
done
for name in $fuzzers; do cat "$run/$name/summary" 2>/dev/null || echo "fuzz: $name FAILED (no result)"; done
echo "fuzz: total wall time $(( $(date +%s) - start_all ))s (build ${build_seconds}s, ${seconds}s per fuzzer, $jobs at once)"
echo "fuzzers: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
