#!/bin/sh
# The hook's fast path: a container with no secretshim annotation. Times
# secretshim-hook against /bin/true and bench/noop (a static program that does
# nothing: the cost of starting any process), all started by the same timer
# with a runc-like OCI state on stdin.
# usage: bench/hook_fastpath.sh [BUILD_DIR] [RUNS]
set -eu
build=${1:-build}
runs=${2:-2000}
state=$(mktemp /tmp/secretshim-bench-XXXXXX)
trap 'rm -f "$state"' EXIT
printf '%s' '{"ociVersion":"1.0.2-dev","id":"bench","status":"creating","pid":1,"bundle":"/nonexistent","annotations":{"org.opencontainers.image.ref.name":"busybox"}}' > "$state"
"$build/bench/spawn_timer" "$runs" "$state" -- "$build/plugin/secretshim-hook" createRuntime -- /bin/true -- "$build/bench/noop"
