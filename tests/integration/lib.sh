# Helpers shared by the end-to-end scripts in this folder (POSIX sh).
# shellcheck shell=sh disable=SC2154  # the sourcing script sets build, work, sock, ...
# Each script sources it first: . "$(dirname "$0")/lib.sh"
# The functions read the script's variables when they are called: build
# (the build dir), work (the test's temp dir), sock (the agent's socket),
# scripts (the project's scripts/ dir), runtime (runc|crun, for rt) and
# agent_pid. Secret values are random markers compared in the shell or as
# SHA-256 digests, never printed.

failures=0
checks=0
skips=0
agent_pid=

# check LABEL SHELL-CODE: one "ok - LABEL" or "FAIL - LABEL" line; counts both.
ok() { checks=$((checks + 1)); printf 'ok - %s\n' "$1"; }
bad() { checks=$((checks + 1)); printf 'FAIL - %s\n' "$1"; failures=$((failures + 1)); }
check() { if eval "$2"; then ok "$1"; else bad "$1"; return 1; fi; }
# skip LABEL: "skip - LABEL" for checks this machine cannot run, counted as
# skipped (scripts/count_tests.py), never as passed; see finish.
skip() { skips=$((skips + 1)); printf 'skip - %s\n' "$1"; }
# finish: the script's exit status: 1 if a check failed, else 77 (meson's
# SKIP) if one was skipped, else 0.
finish() { [ "$failures" = 0 ] || exit 1; [ "$skips" = 0 ] || exit 77; exit 0; }
marker() { head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
# Containers report SHA-256 digests of what they read, not the bytes: busybox
# cat splices a tmpfs file into its stdout by reference, and when the
# container exits at once the flush zeroes those pages before the reader on
# the other end has copied them (seen here: 1 in ~20 such containers).
digest() { printf %s "$1" | sha256sum | cut -c1-64; }

ctl() { "$build/plugin/secretshimctl" --socket "$sock" "$@"; }
# crun 1.8 refuses a hybrid cgroup layout: run it in a private mount
# namespace without the cgroup2 mount (docs/platform-notes.md). The runtime's state
# directory is $rt_root if set, else $work/state-rt.
rt() {
    if [ "$runtime" = crun ] && mountpoint -q /sys/fs/cgroup/unified 2>/dev/null; then
        unshare -m --propagation private sh -c 'umount -l /sys/fs/cgroup/unified; exec crun --cgroup-manager=disabled --root "$0" "$@"' "${rt_root:-$work/state-rt}" "$@"
    else
        "$runtime" --root "${rt_root:-$work/state-rt}" "$@"
    fi
}
pid_of() { rt state "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])'; }

# start_agent [CONFIG]: the agent on this test's socket and state dir
# ($agent_state, default $work/state), by default with the packaged example
# config; true once the socket is there.
start_agent() {
    rm -f "$sock"  # a SIGKILLed agent leaves its socket file
    "$build/plugin/secretshimd" --config "${1:-$scripts/../packaging/secretshimd.yaml}" --socket "$sock" \
        --state-dir "${agent_state:-$work/state}" 2>>"$work/agent.log" &
    agent_pid=$!
    i=0
    while [ ! -S "$sock" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
    [ -S "$sock" ]
}
stop_agent() {
    [ -z "$agent_pid" ] || { kill "$agent_pid" 2>/dev/null && wait "$agent_pid" 2>/dev/null; }
    agent_pid=
    # In the sanitizer build, UBSan's reports go to the agent's stderr: into
    # the test's output, where scripts/count_tests.py counts them.
    grep -s -e ': runtime error: ' -e 'ERROR: [A-Za-z]*Sanitizer' "$work/agent.log" || true
}

# in_private_varlib DIR CMD...: CMD in a private mount namespace with DIR
# over /var/lib. containers/image (buildah, podman load) writes root's
# blob-info cache to /var/lib/containers/cache whatever --root says.
# shellcheck disable=SC2016  # $0 and $@ belong to the inner sh
in_private_varlib() {
    vdir=$1; shift
    mkdir -p "$vdir"
    unshare -m --propagation private sh -c 'mount --bind "$0" /var/lib && exec "$@"' "$vdir" "$@"
}
# buildah_in STORE ARGS...: buildah on a private vfs store under STORE.
buildah_in() {
    bstore=$1; shift
    mkdir -p "$bstore/tmp"
    TMPDIR=$bstore/tmp in_private_varlib "$bstore/varlib" \
        buildah --root "$bstore/root" --runroot "$bstore/runroot" --storage-driver vfs "$@"
}
# oci_image STORE ROOTFS REF ARCHIVE [ANNOTATION...]: an OCI image of ROOTFS
# (entrypoint /bin/sh) whose manifest carries each KEY=VALUE annotation,
# written as an OCI archive (ARCHIVE) holding REF.
oci_image() {
    ostore=$1 rootfs=$2 ref=$3 archive=$4; shift 4
    c=$(buildah_in "$ostore" from scratch) || return 1
    buildah_in "$ostore" copy "$c" "$rootfs/" / >/dev/null || return 1
    for a in "$@"; do buildah_in "$ostore" config --annotation "$a" "$c" || return 1; done
    buildah_in "$ostore" config --entrypoint '["/bin/sh"]' --env PATH=/bin "$c" || return 1
    buildah_in "$ostore" commit --quiet --format oci "$c" "$ref" >/dev/null || return 1
    buildah_in "$ostore" rm "$c" >/dev/null
    rm -f "$archive"
    buildah_in "$ostore" push --quiet "$ref" "oci-archive:$archive:$ref"
}

# tasks_empty: the agent holds no task (within 2 s: it flushes on the
# pidfd wakeup, which comes a few ms after the init is gone).
tasks_empty() {
    i=0
    while [ $i -lt 40 ]; do
        [ "$(ctl task ls --format json | tr -d ' \n')" = "[]" ] && return 0
        sleep 0.05; i=$((i + 1))
    done
    return 1
}
# no_view_mounts: no view left in a mount table. By default: nothing below
# $work in any process's table. A script whose runtime keeps mounts of its
# own below $work (Podman's, containerd's storage) sets view_grep to the
# grep arguments to use instead (evaluated at each call).
no_view_mounts() {
    if [ -n "${view_grep:-}" ]; then
        eval "! grep -qs $view_grep"
    else
        ! grep -qs "$work/" /proc/[0-9]*/mountinfo
    fi
}

# remove_work: unmounts what is left below $work in this mount namespace
# (a runtime's storage, a failed test's mount), deepest first, then removes
# $work unless KEEP is set.
remove_work() {
    awk -v w="$work/" 'index($5, w) == 1 {print $5}' /proc/self/mountinfo 2>/dev/null | sort -r |
        while read -r m; do umount -l "$m"; done
    [ -n "${KEEP:-}" ] || rm -rf "$work"
}

# Cluster scripts (run by tests/cluster/with_cluster.sh, which sets
# ETCD_ENDPOINTS and ETCD_PKI): etcdctl as etcd's root user, and runc
# containers tied to a cluster task (their ids kept in $ids for cleanup).
etcdctl_at() { eps=$1; shift; ETCDCTL_API=3 etcdctl --endpoints "$eps" --cacert "$ETCD_PKI/ca.crt" \
    --cert "$ETCD_PKI/root.crt" --key "$ETCD_PKI/root.key" --command-timeout 5s "$@"; }
etcdctl_root() { etcdctl_at "$ETCD_ENDPOINTS" "$@"; }
wait_for() {  # wait_for SECONDS COMMAND...
    limit=$(( $1 * 20 )); shift; i=0
    while [ $i -lt $limit ]; do "$@" && return 0; sleep 0.05; i=$((i + 1)); done
    return 1
}
# bundle NAME TASK ARGS...: a bundle in $work/NAME for task TASK (extra
# annotation ANN), running ARGS.
bundle() { b=$1; task=$2; shift 2; TASK_ANNOTATION=$task python3 "$scripts/make_bundle.py" "$work/$b" "$hook" "$sock" "${ANN:-}" 0 "$@"; }
start_detached() { ids="$ids $1"; rt run -d --bundle "$work/$1" "$1" >/dev/null 2>"$work/$1.err" </dev/null; }
# cleanup_cluster: a cluster script's exit trap: its containers, its agent,
# every etcd member resumed (a test may leave one SIGSTOPped), then $work.
cleanup_cluster() {
    for id in $ids; do runc --root "$work/state-rt" delete -f "$id" >/dev/null 2>&1; done
    stop_agent
    for m in m1 m2 m3; do sh "$ETCD_CLUSTER_SCRIPT" signal "$ETCD_DIR" "$m" CONT >/dev/null 2>&1; done
    remove_work
}

# Journal scripts: a systemd-journald of the script's own. The script runs
# in a mount namespace of its own (unshare -m --propagation private), where
# start_journald mounts a tmpfs over /run (hiding the host's journal
# socket, if any): journald creates its sockets there itself when no
# systemd hands them over, and keeps its files in /run/log/journal
# (volatile). Values are never in an entry; names are, so a failing
# script may show them.
journald=/lib/systemd/systemd-journald
jdir=/run/log/journal
journald_pid=
start_journald() {
    mount -t tmpfs -o mode=0755 tmpfs /run || return 1
    # Its own settings: volatile storage, no kernel messages, no rate limit
    # (a dropped entry would fail a check for the wrong reason).
    printf '[Journal]\nStorage=volatile\nReadKMSG=no\nRateLimitBurst=0\nForwardToSyslog=no\nForwardToWall=no\n' \
        >"$work/journald.conf"
    mount --bind "$work/journald.conf" /etc/systemd/journald.conf || return 1
    "$journald" >"$work/journald.log" 2>&1 &
    journald_pid=$!
    wait_for 10 test -S /run/systemd/journal/socket ||
        { echo "FAIL - journald did not start"; cat "$work/journald.log"; return 1; }
}
stop_journald() { [ -z "$journald_pid" ] || { kill "$journald_pid" 2>/dev/null && wait "$journald_pid" 2>/dev/null; }; journald_pid=; }
# entries MATCH...: the agent's journal entries that match, as JSON lines.
entries() { journalctl -D "$jdir" --no-pager -o json SYSLOG_IDENTIFIER=secretshimd "$@" 2>/dev/null; }
# field_of FIELD: FIELD of each JSON entry on stdin, one per line (a
# repeated field's values one per line too).
field_of() {
    python3 -c '
import json, sys
for line in sys.stdin:
    v = json.loads(line).get(sys.argv[1])
    for x in (v if isinstance(v, list) else [v]):
        if x is not None: print(x)' "$1"
}
# has_entry FIELD=VALUE...: some entry matches all of them (journalctl ANDs
# different fields); waits: journald writes a little after the send.
matched() { [ -n "$(entries "$@")" ]; }
has_entry() { wait_for 5 matched "$@"; }
# journal_holds MARKER...: whether any field of any entry holds one of them
# (the journal's export format), printing nothing.
journal_holds() {
    for m in "$@"; do journalctl -D "$jdir" --no-pager -o export | grep -q -F -e "$m" && return 0; done
    return 1
}
