#!/bin/sh
# The agent's metrics (metrics_listen) with real runc containers: the page
# parses with prometheus_client's parser, counts one attach, one flush and
# each refusal under its reason, shows what is held while a container runs
# and nothing after, never names a secret nor holds its value, answers 404
# off /metrics, and stays bounded (idle scrapers closed, the ones over the
# cap refused) without slowing a container's start.
# Usage: metrics_e2e.sh BUILD_DIR. Secret values are random markers
# compared in the shell, never printed.
set -u
. "$(dirname "$0")/lib.sh"
build=$(cd "$1" && pwd)
runtime=runc
scripts=$(cd "$(dirname "$0")/../../scripts" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root"; exit 77; }

hook=$build/plugin/secretshim-hook
work=$(mktemp -d /tmp/secretshim-metrics-XXXXXX)
sock=$work/agent.sock
ids=""
py=/usr/bin/python3  # Debian's, which sees python3-prometheus-client
scrape() { "$py" "$here/metrics_scrape.py" "$@"; }

cleanup() {
    for id in $ids; do rt delete -f "$id" >/dev/null 2>&1; done
    [ -z "${idle_pid:-}" ] || kill "$idle_pid" 2>/dev/null
    stop_agent
    remove_work
}
trap cleanup EXIT

bundle() { b=$1; ann=$2; shift 2; python3 "$scripts/make_bundle.py" "$work/$b" "$hook" "$sock" "$ann" 0 "$@"; }

# A bad address stops the agent at start, in one line naming the key.
printf 'metrics_listen: "localhost:9464"\n' >"$work/bad.yaml"
"$build/plugin/secretshimd" --config "$work/bad.yaml" --socket "$sock" --state-dir "$work/state" 2>"$work/bad.err"
rc=$?
check "metrics_listen that does not parse: the agent refuses to start, in one line" \
    '[ $rc = 1 ] && [ "$(wc -l <"$work/bad.err")" = 1 ] && grep -q "bad.yaml:1: key \"metrics_listen\": expected HOST:PORT" "$work/bad.err"'

port=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url=http://127.0.0.1:$port
mkdir -p "$work/textfile"
tf=$work/textfile/secretshim.prom
{ sed 's/^max_container_files: .*/max_container_files: 2/' "$scripts/../packaging/secretshimd.yaml"; printf 'metrics_listen: 127.0.0.1:%s\nmetrics_textfile: %s\n' "$port" "$tf"; } \
    >"$work/agent.yaml"
start_agent "$work/agent.yaml" || { echo "FAIL - agent did not start"; cat "$work/agent.log" >&2; exit 1; }
up() { scrape get "$url/metrics" "$work/m0.txt" >"$work/m0.status" 2>/dev/null; }
check "the agent serves its metrics on 127.0.0.1:$port" 'wait_for 5 up && grep -qF "metrics on http://127.0.0.1:$port/metrics" "$work/agent.log"'

# The port taken (by this agent): a second agent stops at start, in one
# line, before it serves its socket.
mkdir -p "$work/rt2"
"$build/plugin/secretshimd" --config "$work/agent.yaml" --socket "$work/second.sock" --state-dir "$work/state2" \
    --runtime-dir "$work/rt2" 2>"$work/second.err"
rc=$?
check "metrics_listen on a port in use: the agent refuses to start, in one line" \
    '[ $rc = 1 ] && [ "$(wc -l <"$work/second.err")" = 1 ] && grep -q "metrics_listen 127.0.0.1:$port: bind: Address already in use" "$work/second.err" && [ ! -e "$work/second.sock" ]'

# v NAME [K=V...]: the sample's value in scrape $cur.
v() { scrape value "$work/$cur.txt" "$@"; }
# delta NAME [K=V...]: how much it grew from m0 to $cur.
delta() {
    a=$(cur=m0 v "$@"); b=$(v "$@")
    case "$a$b" in *[!0-9]*|"") echo "not a count: $a $b" ;; *) echo $((b - a)) ;; esac
}

cur=m0
check "GET /metrics: 200, text/plain; version=0.0.4" 'grep -q "^200 text/plain; version=0.0.4" "$work/m0.status"'
check "the page parses (prometheus_client), with HELP and TYPE, histograms well formed" 'scrape check "$work/m0.txt"'
check "build_info names the version" '[ "$(v secretshim_build_info version="$(sed -n "s/^ *version : .\(.*\).,$/\1/p" "$scripts/../meson.build")")" = 1 ]'
check "every refusal reason is there from the start, at 0" \
    '[ "$(grep -c "^secretshim_refusals_total{reason=\"[a-z_]*\"} 0$" "$work/m0.txt")" = 8 ]'
check "local mode: no etcd series" '! grep -q "secretshim_etcd" "$work/m0.txt"'
check "another path is 404" '[ "$(scrape get "$url/" "$work/x.txt")" = "404 text/plain; charset=utf-8" ] &&
    [ "$(scrape get "$url/metrics/x" "$work/x.txt" | cut -d" " -f1)" = 404 ] &&
    [ "$(scrape get "$url/secrets" "$work/x.txt" | cut -d" " -f1)" = 404 ]'
check "metrics_textfile: written at start, mode 0644, the same page (it parses)" \
    '[ "$(stat -c %a "$tf")" = 644 ] && scrape check "$tf" && [ "$(scrape value "$tf" secretshim_attaches_total)" = 0 ]'
check "another method on /metrics is 405" '[ "$(scrape post "$url/metrics")" = 405 ]'

# A container that gets its secret, one refused it (no grant), one asking
# for a secret that does not exist (counted as not granted: the same
# refusal line, no enumeration), one whose annotation does not parse.
name=metricsdb_$(marker | cut -c1-10)
value=$(marker)
printf %s "$value" | ctl secret create "$name" - --grant root >/dev/null
printf %s "$(marker)" | ctl secret create "${name}_nogrant" - >/dev/null
bundle mtcheld "$name" sh -c 'sleep 100'
ids="$ids mtcheld"
rt run -d --bundle "$work/mtcheld" mtcheld >/dev/null 2>"$work/mtcheld.err" </dev/null
check "a container holds its secret" '[ "$(ctl task ls --format json | grep -c "\"mtcheld\"")" = 1 ]'
scrape get "$url/metrics" "$work/m1.txt" >/dev/null; cur=m1
check "while it runs: one view held" '[ "$(v secretshim_views_held)" = 1 ]'
check "while it runs: its plaintext bytes held (the value is 24 bytes)" '[ "$(v secretshim_plaintext_bytes_held)" = 24 ]'
check "attaches went up by exactly 1" '[ "$(delta secretshim_attaches_total)" = 1 ]'
tf_shows() { [ "$(scrape value "$tf" "$@" 2>/dev/null)" = 1 ]; }
check "metrics_textfile: rewritten when the page changed (within 5 s)" 'wait_for 7 tf_shows secretshim_views_held'

bundle mtcrefused "${name}_nogrant" sh -c 'echo RAN'
ids="$ids mtcrefused"
out=$(rt run --bundle "$work/mtcrefused" mtcrefused 2>/dev/null)
check "a secret without a grant: the container is refused" '[ "$out" != RAN ]'
bundle mtcmissing "${name}_missing" sh -c 'echo RAN'
ids="$ids mtcmissing"
out=$(rt run --bundle "$work/mtcmissing" mtcmissing 2>/dev/null)
check "a secret that does not exist: refused" '[ "$out" != RAN ]'
bundle mtcbadspec "source=$name,mode=9999" sh -c 'echo RAN'
ids="$ids mtcbadspec"
out=$(rt run --bundle "$work/mtcbadspec" mtcbadspec 2>/dev/null)
check "an annotation that does not parse: refused" '[ "$out" != RAN ]'
# Three files where the config allows two (max_container_files: 2); a
# target the image has a dangling symbolic link at (the hook cannot attach).
bundle mtclimit "$name;source=$name,target=two;source=$name,target=three" sh -c 'echo RAN'
ids="$ids mtclimit"
out=$(rt run --bundle "$work/mtclimit" mtclimit 2>/dev/null)
check "over max_container_files: refused" '[ "$out" != RAN ]'
bundle mtctarget "source=$name,target=/etc/key" sh -c 'echo RAN'
ln -s /nowhere "$work/mtctarget/rootfs/etc/key"
ids="$ids mtctarget"
out=$(rt run --bundle "$work/mtctarget" mtctarget 2>/dev/null)
check "a dangling symbolic link at the target: refused" '[ "$out" != RAN ]'
scrape get "$url/metrics" "$work/m2.txt" >/dev/null; cur=m2
check "both refusals counted under not_granted" '[ "$(delta secretshim_refusals_total reason=not_granted)" = 2 ]'
check "the bad annotation counted under bad_request" '[ "$(delta secretshim_refusals_total reason=bad_request)" = 1 ]'
check "the file limit counted under limit" '[ "$(delta secretshim_refusals_total reason=limit)" = 1 ]'
check "the hook's failed attach counted under target" '[ "$(delta secretshim_refusals_total reason=target)" = 1 ]'
check "no other reason moved" \
    '(for r in unknown_secret identity unreachable other; do [ "$(delta secretshim_refusals_total reason=$r)" = 0 ] || exit 1; done)'
check "refusals attach nothing" '[ "$(delta secretshim_attaches_total)" = 1 ]'

rt delete -f mtcheld >/dev/null 2>&1
check "the container stopped: flushed" tasks_empty
scrape get "$url/metrics" "$work/m3.txt" >/dev/null; cur=m3
check "after the stop the page still parses, histograms cumulative" 'scrape check "$work/m3.txt"'
tf_zero() { [ "$(scrape value "$tf" secretshim_views_held 2>/dev/null)" = 0 ]; }
check "metrics_textfile: back to 0 views too, no temporary file left" \
    'wait_for 7 tf_zero && [ "$(scrape value "$tf" secretshim_attaches_total)" = 1 ] && [ "$(ls -A "$work/textfile")" = secretshim.prom ]'
check "views and plaintext held back to 0" '[ "$(v secretshim_views_held)" = 0 ] && [ "$(v secretshim_plaintext_bytes_held)" = 0 ]'
check "attaches went up by exactly 1 in all" '[ "$(delta secretshim_attaches_total)" = 1 ]'
check "the flush histogram's count went up by exactly 1, its +Inf bucket with it" \
    '[ "$(delta secretshim_flush_duration_seconds_count)" = 1 ] && [ "$(delta secretshim_flush_duration_seconds_bucket le=+Inf)" = 1 ]'
check "the flush took under a second (bucket le=1 counts it)" '[ "$(delta secretshim_flush_duration_seconds_bucket le=1)" = 1 ]'
check "no scrape holds the secret's value" '! grep -qF "$value" "$work"/m[0-3].txt "$tf"'
check "no scrape names a secret (names are private: no per-secret labels)" '! grep -qF "metricsdb_" "$work"/m[0-3].txt "$tf"'
check "no scrape names a container" '! grep -qF "mtc" "$work"/m[0-3].txt'

# Scrapers are bounded and never in the hook's way: 8 idle connections
# (the cap) hold every slot; a ninth is closed unanswered; a container
# starts meanwhile as usual; the idle ones are closed by the read timeout.
scrape idle 127.0.0.1 "$port" 8 8 >"$work/idle.out" & idle_pid=$!
sleep 0.5
extra_closed() { [ "$(scrape extra 127.0.0.1 "$port")" = closed ]; }
check "over the cap of 8 connections, one more is closed unanswered" 'wait_for 4 extra_closed'
bundle mtcbusy "$name" sh -c 'cat /run/secrets/'"$name"' | sha256sum | cut -c1-64'
ids="$ids mtcbusy"
out=$(rt run --bundle "$work/mtcbusy" mtcbusy 2>/dev/null)
check "with every metrics slot held, a container still gets its secret" '[ "$out" = "$(digest "$value")" ]'
wait "$idle_pid"; idle_pid=
check "idle scrapers are closed by the read timeout (5 s)" '[ "$(cat "$work/idle.out")" = 8 ]'

finish
