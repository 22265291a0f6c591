#!/bin/sh
# Hostile images and clients against the real hook, agent and runc.
# Usage: hostile_runc.sh BUILD_DIR cases|race|flood
#
#   cases  a rootfs with symlinks at every component of a target (absolute,
#          relative, looping, to /proc/self/root, to /etc, to the host's /),
#          FIFO, socket, device and directory targets, a bind-mounted host
#          volume in the path. Each start either shows the secret at its
#          target inside the container or fails with one line from the hook.
#   race   a host process swaps a directory of a shared volume with a
#          symlink out of the rootfs in a tight loop while containers start
#          with targets under it (RACE_SECONDS, default 30).
#   flood  many idle connections, half-sent and oversized frames, connection
#          churn: the agent still serves a container and leaks no fd.
#
# After each: a host check that nothing was created, changed or mounted
# outside the rootfs (a canary directory the symlinks point at, the host's
# /, /etc and /run, the host's mount table) and that no view is left in any
# mount table. Every name a case could create carries a random tag, so a
# file with that tag anywhere on the host is an escape. Secret values are
# random markers compared by SHA-256, never printed.
set -u
. "$(dirname "$0")/lib.sh"
build=$(cd "$1" && pwd)
mode=$2
scripts=$(cd "$(dirname "$0")/../../scripts" && pwd)
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root"; exit 77; }
command -v runc >/dev/null || { echo "SKIP: runc not installed"; exit 77; }

hook=$build/plugin/secretshim-hook
work=$(mktemp -d /tmp/secretshim-hostile-XXXXXX)
sock=$work/agent.sock
tag=hx$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')
canary=$work/canary
helper_pid=
ids=""

cleanup() {
    [ -n "$helper_pid" ] && kill "$helper_pid" 2>/dev/null && wait "$helper_pid" 2>/dev/null
    for id in $ids; do runc --root "$work/state-rt" delete -f "$id" >/dev/null 2>&1; done
    stop_agent
    remove_work
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# bundle NAME ANNOTATION ARGS...: a busybox bundle with our hooks.
bundle() { b=$1; ann=$2; shift 2; python3 "$scripts/make_bundle.py" "$work/$b" "$hook" "$sock" "$ann" 0 "$@"; }
# edit_config NAME PYTHON: runs PYTHON with `spec` (the config.json) bound.
edit_config() {
    python3 - "$work/$1/config.json" "$2" <<'PY'
import json, sys
path, code = sys.argv[1], sys.argv[2]
spec = json.load(open(path))
exec(code)
json.dump(spec, open(path, "w"), indent=1)
PY
}
no_run_tmpfs='spec["mounts"] = [m for m in spec["mounts"] if m["destination"] != "/run"]'
bind_mount() { edit_config "$1" "spec['mounts'].append({'destination': '$3', 'type': 'bind', 'source': '$2', 'options': ['rbind', 'rw']})"; }

# --- the host check ---------------------------------------------------------
# The canary directory: every entry with type, size, mode, owner and mtime.
canary_state() { find "$canary" -printf '%P %y %s %m %u %T@\n' | sort | sha256sum; }
# The host's mount points (this test runs in the host's mount namespace).
host_mounts() { awk '{print $5}' /proc/self/mountinfo | sort; }
# Files with our tag where an escape would put them (the places the
# symlinks point at), outside the test's own tree.
tagged_on_host() {
    find / /etc /run /tmp "$canary" -maxdepth 3 -xdev \( -path "$work" -prune \) -o -name "*$tag*" -print 2>/dev/null |
        grep -v "^$work/" | grep -v "^$canary\$"
}
host_before() {
    canary_before=$(canary_state)
    host_mounts >"$work/mounts.before"
    passwd_before=$(sha256sum /etc/passwd)
}
host_check() { # LABEL
    host_mounts >"$work/mounts.after"
    # Other tests on the machine may mount too: only mounts that touch what
    # this test owns or that a hostile target could reach count.
    new=$(comm -13 "$work/mounts.before" "$work/mounts.after" |
          grep -e "$work" -e "$tag" -e '^/$' -e '^/etc' -e '^/run/secrets' -e '^/proc' || true)
    check "$1: host canary directory unchanged" '[ "$(canary_state)" = "$canary_before" ]'
    check "$1: nothing tagged created on the host" '[ -z "$(tagged_on_host)" ]'
    check "$1: host /etc/passwd unchanged" '[ "$(sha256sum /etc/passwd)" = "$passwd_before" ]'
    check "$1: no new mount in the host's mount table" '[ -z "$new" ]' || echo "# new mounts: $new"
    check "$1: no view left in any mount table" no_view_mounts
}

start_agent || { echo "FAIL - agent did not start"; cat "$work/agent.log" >&2; exit 1; }
mkdir -p "$canary"
: >"$canary/keep"
value=$(marker)
printf %s "$value" | ctl secret create s - --grant root >/dev/null
want=$(digest "$value")
host_before

# --- cases ------------------------------------------------------------------
# hostile NAME ANNOTATION EXPECT SETUP: builds a bundle whose container
# prints the digest of the file at EXPECT's path, runs SETUP in the bundle
# directory ($r is its rootfs), and starts it with runc.
#   EXPECT=ok:PATH[:HOSTPATH]  the container reads the secret at PATH; the
#                              placeholder (or directory) HOSTPATH, relative
#                              to the rootfs, is where it landed
#   EXPECT=SUBSTRING           the start fails; the hook printed one line
#                              containing SUBSTRING and nothing ran
hostile() {
    name=$1; ann=$2; expect=$3; setup=$4
    case $expect in ok:*) path=$(echo "$expect" | cut -d: -f2); landed=$(echo "$expect" | cut -d: -f3) ;;
                    *) path=/nonexistent; landed= ;; esac
    bundle "$name" "$ann" sh -c "sha256sum '$path' | cut -c1-64"
    r=$work/$name/rootfs
    (cd "$work/$name" && r=$r && eval "$setup") || { bad "$name: setup"; return; }
    ids="$ids $name"
    out=$(runc --root "$work/state-rt" run --bundle "$work/$name" "$name" 2>"$work/$name.err"); rc=$?
    runc --root "$work/state-rt" delete -f "$name" >/dev/null 2>&1
    case $expect in
    ok:*)
        if [ $rc = 0 ] && [ "$out" = "$want" ] && { [ -z "$landed" ] || [ -e "$r/$landed" ] || [ -L "$r/$landed" ]; }; then
            ok "$name: the secret is at $path inside the container${landed:+ (/$landed in the rootfs)}"
        else
            bad "$name: expected the secret at $path (rc=$rc)"; sed 's/^/# /' "$work/$name.err"
        fi ;;
    *)
        lines=$(grep -c 'secretshim-hook:' "$work/$name.err")
        if [ $rc != 0 ] && [ -z "$out" ] && [ "$lines" = 1 ] && grep -qF -- "$expect" "$work/$name.err"; then
            ok "$name: refused: $(grep -o 'secretshim-hook: [^\\]*' "$work/$name.err" | sed "s/$tag/TAG/g" | cut -c1-160)"
        else
            bad "$name: expected one hook line with \"$expect\" (rc=$rc)"; sed 's/^/# /' "$work/$name.err"
        fi ;;
    esac
    tasks_empty || bad "$name: the agent still holds the view"
}

run_cases() {
    T=/etc/app$tag/pw$tag   # a single-file target
    D="s;source=s,target=$T"
    # Symlinks at each component of /etc/appTAG/pwTAG.
    hostile etc-abs-to-host-root "source=s,target=$T" "ok:$T:app$tag/pw$tag" \
        'rm -rf $r/etc && ln -s / $r/etc'
    hostile etc-abs-to-canary "source=s,target=$T" "is a dangling symbolic link" \
        'rm -rf $r/etc && ln -s $canary $r/etc'
    hostile etc-rel-escaping "source=s,target=$T" "is a dangling symbolic link" \
        'rm -rf $r/etc && ln -s ../../../../../../../../../..$canary $r/etc'
    hostile etc-rel-escaping-existing "source=s,target=$T" "ok:$T:${canary#/}/app$tag/pw$tag" \
        'rm -rf $r/etc && ln -s ../../../../../../../../../..$canary $r/etc && mkdir -p $r$canary'
    hostile app-abs-to-etc "source=s,target=$T" "ok:$T:etc/pw$tag" \
        'ln -s /etc $r/etc/app$tag'
    hostile app-abs-to-host-root "source=s,target=$T" "ok:$T:pw$tag" \
        'ln -s / $r/etc/app$tag'
    hostile app-rel-dotdot "source=s,target=$T" "ok:$T:pw$tag" \
        'ln -s ../../../../.. $r/etc/app$tag'
    hostile app-loop "source=s,target=$T" "Too many levels of symbolic links" \
        'ln -s loop$tag $r/etc/app$tag && ln -s app$tag $r/etc/loop$tag'
    hostile app-self-loop "source=s,target=$T" "Too many levels of symbolic links" \
        'ln -s app$tag $r/etc/app$tag'
    hostile app-proc-self-root "source=s,target=$T" "in the container" \
        'ln -s /proc/self/root $r/etc/app$tag'
    # The confined hook has no CAP_SYS_PTRACE: another process's magic
    # links are refused (EACCES) before RESOLVE_NO_MAGICLINKS (ELOOP).
    hostile app-proc-1-root "source=s,target=$T" "resolving $T in the container: " \
        'ln -s /proc/1/root/etc $r/etc/app$tag'
    hostile app-proc-self-cwd "source=s,target=$T" "in the container" \
        'ln -s /proc/self/cwd $r/etc/app$tag'
    hostile leaf-abs-to-host-passwd "source=s,target=$T" "is a dangling symbolic link" \
        'mkdir $r/etc/app$tag && ln -s /etc/passwd$tag $r/etc/app$tag/pw$tag'
    hostile leaf-abs-to-existing "source=s,target=$T" "ok:$T:etc/shadow$tag" \
        'mkdir $r/etc/app$tag && : >$r/etc/shadow$tag && ln -s /etc/shadow$tag $r/etc/app$tag/pw$tag'
    hostile leaf-to-canary-file "source=s,target=$T" "is a dangling symbolic link" \
        'mkdir $r/etc/app$tag && ln -s $canary/keep $r/etc/app$tag/pw$tag'
    hostile leaf-loop "source=s,target=$T" "Too many levels of symbolic links" \
        'mkdir $r/etc/app$tag && ln -s pw$tag $r/etc/app$tag/pw$tag'
    hostile leaf-proc-magic "source=s,target=$T" "resolving $T in the container: " \
        'mkdir $r/etc/app$tag && ln -s /proc/1/exe $r/etc/app$tag/pw$tag'
    # /run/secrets itself (the directory mount), without runc's /run tmpfs.
    hostile run-abs-to-host-root "s" "ok:/run/secrets/s:secrets" \
        'edit_config $name "$no_run_tmpfs"; rm -rf $r/run && ln -s / $r/run'
    hostile secrets-abs-to-canary "s" "is a dangling symbolic link" \
        'edit_config $name "$no_run_tmpfs"; ln -s $canary $r/run/secrets'
    hostile secrets-abs-to-etc "s" "ok:/run/secrets/s" \
        'edit_config $name "$no_run_tmpfs"; ln -s /etc $r/run/secrets'
    hostile secrets-to-rootfs-root "s" "resolves to the container's root" \
        'edit_config $name "$no_run_tmpfs"; ln -s / $r/run/secrets'
    hostile secrets-proc-self-root "s" "in the container" \
        'edit_config $name "$no_run_tmpfs"; ln -s /proc/self/root $r/run/secrets'
    hostile secrets-loop "s" "Too many levels of symbolic links" \
        'edit_config $name "$no_run_tmpfs"; ln -s secrets $r/run/secrets'
    # Targets of the wrong type.
    hostile target-fifo "$D" "is a FIFO, not a regular file" \
        'mkdir $r/etc/app$tag && mkfifo $r/etc/app$tag/pw$tag'
    hostile target-socket "$D" "is a socket, not a regular file" \
        'mkdir $r/etc/app$tag && python3 -c "import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])" $r/etc/app$tag/pw$tag'
    hostile target-char-device "$D" "is a character device, not a regular file" \
        'mkdir $r/etc/app$tag && mknod $r/etc/app$tag/pw$tag c 1 3'
    hostile target-block-device "$D" "is a block device, not a regular file" \
        'mkdir $r/etc/app$tag && mknod $r/etc/app$tag/pw$tag b 7 0'
    hostile target-directory "$D" "is a directory, not a regular file" \
        'mkdir -p $r/etc/app$tag/pw$tag'
    hostile secrets-is-fifo "s" "is a FIFO, not a directory" \
        'edit_config $name "$no_run_tmpfs"; mkfifo $r/run/secrets'
    hostile secrets-is-file "s" "is a regular file, not a directory" \
        'edit_config $name "$no_run_tmpfs"; : >$r/run/secrets'
    hostile secrets-is-device "s" "is a character device, not a directory" \
        'edit_config $name "$no_run_tmpfs"; mknod $r/run/secrets c 1 3'
    hostile parent-is-fifo "source=s,target=$T" "Not a directory" \
        'mkfifo $r/etc/app$tag'
    # A bind-mounted host volume in the path: the volume belongs to the
    # container, so the placeholder lands in it; its symlinks still resolve
    # inside the rootfs.
    mkdir -p "$work/vol1" "$work/vol2" "$work/vol3"
    hostile volume-plain "source=s,target=$T" "ok:$T" \
        'bind_mount $name $work/vol1 /etc/app$tag'
    check "volume-plain: the placeholder in the host volume is empty" '[ -f "$work/vol1/pw$tag" ] && [ ! -s "$work/vol1/pw$tag" ]'
    hostile volume-symlink-to-canary "source=s,target=/etc/app$tag/sub/pw$tag" "is a dangling symbolic link" \
        'bind_mount $name $work/vol2 /etc/app$tag; ln -sfn $canary $work/vol2/sub'
    hostile volume-symlink-to-host-root "source=s,target=/etc/app$tag/sub/pw$tag" "ok:/etc/app$tag/sub/pw$tag:pw$tag" \
        'bind_mount $name $work/vol3 /etc/app$tag; ln -sfn / $work/vol3/sub'
    hostile volume-rel-escaping "source=s,target=/etc/app$tag/rel/pw$tag" "ok:/etc/app$tag/rel/pw$tag:pw$tag" \
        'bind_mount $name $work/vol3 /etc/app$tag; ln -sfn ../../../../../../../../../.. $work/vol3/rel'
    check "volumes: no placeholder followed a symlink out of a volume" '[ ! -e "$work/pw$tag" ] && [ ! -e "$work/vol3/pw$tag" ]'
    # Where a mount point resolves, not how the target spells it: an image's
    # symlink must not put a mount under the container's /proc, /sys or /dev.
    hostile app-to-dev "source=s,target=$T" "resolves to /dev/pw$tag in the container, under /dev" \
        'ln -s /dev $r/etc/app$tag'
    hostile secrets-to-proc-sys "s" "resolves to /proc/sys in the container, under /proc" \
        'edit_config $name "$no_run_tmpfs"; ln -s /proc/sys $r/run/secrets'
    # A volume with shared propagation (its host side shared too): a mount
    # of ours in it would propagate to the host's side of the volume.
    mkdir -p "$work/vol4"
    mount --bind "$work/vol4" "$work/vol4" && mount --make-shared "$work/vol4"
    hostile volume-shared "source=s,target=/etc/app$tag/pw$tag" "is in a mount with shared propagation (a volume?)" \
        "edit_config \$name \"spec['mounts'].append({'destination': '/etc/app$tag', 'type': 'bind', 'source': '$work/vol4', 'options': ['rbind', 'rw', 'rshared']})\""
    check "volume-shared: nothing of ours appeared in the host's side of the volume" \
        '! grep -q " $work/vol4/" /proc/self/mountinfo && [ ! -s "$work/vol4/pw$tag" ]'
    umount "$work/vol4"
    # A store record tampered in its ciphertext, the second of three: the
    # agent decrypts each straight into the view, so the first is in its
    # file and the second's unauthenticated plaintext in its own when the
    # tag check fails. One line; the view is wiped and gone.
    for n in 1 2 3; do head -c 65536 /dev/urandom | ctl secret create "tamp$n$tag" - --grant root >/dev/null; done
    python3 -c 'import sys; b = bytearray(open(sys.argv[1], "rb").read()); b[len(b) // 2] ^= 1; open(sys.argv[1], "r+b").write(b)' \
        "$work/state/secrets/tamp2$tag.secret"
    hostile tampered-record "tamp1$tag;tamp2$tag;tamp3$tag" "cannot decrypt (corrupt or tampered)" ':'
    host_check "cases"
}

# --- race -------------------------------------------------------------------
# A host volume is bind-mounted at /etc/appTAG; in it, sub<i> and sub<i>.alt
# are a directory and a symlink out of the rootfs (to the host's canary
# directory, absolute for odd i, relative for even i), and a host process
# swaps them with renameat2(RENAME_EXCHANGE) in a tight loop while
# containers start with the targets /etc/appTAG/sub<i>/pw<i>TAG. Inside
# the container the symlinks resolve to a decoy directory in the rootfs at
# the canary's path, so a start may land each target in the volume's
# directory or in the decoy: both are the container's. The host's canary
# must never get a file or a mount.
run_race() {
    seconds=${RACE_SECONDS:-30}
    k=8
    vol=$work/vol
    mkdir -p "$vol"
    ann=""; i=1
    while [ $i -le $k ]; do
        mkdir "$vol/sub$i"
        if [ $((i % 2)) = 1 ]; then ln -s "$canary" "$vol/sub$i.alt"
        else ln -s "../../../../../../../../../..$canary" "$vol/sub$i.alt"; fi
        ann="$ann${ann:+;}source=s,target=/etc/app$tag/sub$i/pw$i$tag"
        i=$((i + 1))
    done
    # The container finds each of its targets (the volume's directory is
    # under one of two names at any moment; retried until seen) and prints
    # how many it found holding the secret.
    bundle race "$ann" sh -c '
        found=0; i=1
        while [ $i -le '"$k"' ]; do
            n=0
            while [ $n -lt 200 ]; do
                for f in '"$canary"'/pw${i}'"$tag"' /etc/app'"$tag"'/sub$i/pw${i}'"$tag"' /etc/app'"$tag"'/sub$i.alt/pw${i}'"$tag"'; do
                    [ "$(sha256sum "$f" 2>/dev/null | cut -c1-64)" = '"$want"' ] && { found=$((found + 1)); n=1000; break; }
                done
                n=$((n + 1))
            done
            i=$((i + 1))
        done
        echo "found $found"'
    bind_mount race "$vol" "/etc/app$tag"
    mkdir -p "$work/race/rootfs$canary"
    python3 - "$vol" "$k" "$work/swaps" <<'PY' &
import ctypes, os, signal, sys
vol, k, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD, RENAME_EXCHANGE = -100, 2
pairs = [(f"{vol}/sub{i}".encode(), f"{vol}/sub{i}.alt".encode()) for i in range(1, k + 1)]
swaps = 0
def stop(*_):
    open(out, "w").write(str(swaps))
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
while True:
    for a, b in pairs:
        if libc.renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE) != 0:
            open(out, "w").write("renameat2: " + os.strerror(ctypes.get_errno()))
            sys.exit(1)
        swaps += 1
PY
    helper_pid=$!
    starts=0; landed=0; refused=0; broken=0
    end=$(( $(date +%s) + seconds ))
    while [ "$(date +%s)" -lt $end ]; do
        starts=$((starts + 1))
        id=race$starts
        out=$(runc --root "$work/state-rt" run --bundle "$work/race" "$id" 2>"$work/race.err"); rc=$?
        if [ $rc = 0 ] && [ "$out" = "found $k" ]; then
            landed=$((landed + 1))
        elif [ $rc != 0 ] && [ -z "$out" ] && [ "$(grep -c 'secretshim-hook: container' "$work/race.err")" = 1 ]; then
            refused=$((refused + 1))
            [ $refused -le 3 ] && echo "# refused: $(grep -o 'secretshim-hook: [^\\]*' "$work/race.err" | sed "s/$tag/TAG/g")"
        else
            broken=$((broken + 1))
            echo "# $id: rc=$rc out=$out"; sed 's/^/# /' "$work/race.err" | tail -3
            runc --root "$work/state-rt" delete -f "$id" >/dev/null 2>&1
        fi
    done
    kill "$helper_pid"; wait "$helper_pid"; swapper=$?; helper_pid=
    swaps=$(cat "$work/swaps" 2>/dev/null)
    echo "# $starts starts x $k targets = $((starts * k)) tries in ${seconds}s against $swaps swaps: $landed with every secret inside, $refused refused cleanly, $broken otherwise"
    check "the swapper ran the whole time" '[ $swapper = 0 ] && [ "${swaps:-0}" -gt 0 ] 2>/dev/null'
    check "enough tries ($((starts * k)))" '[ $starts -ge 20 ]'
    check "every start got its secrets inside the rootfs or volume, or failed with one line" '[ $broken = 0 ]'
    check "at least one start got its secrets" '[ $landed -gt 0 ]'
    check "placeholders only in the volume's directories and the decoy" \
        '[ -z "$(find "$work" -name "pw*$tag" | grep -v -E -e "^$vol/sub[0-9]+(\.alt)?/pw[0-9]+$tag\$" -e "^$work/race/rootfs$canary/pw[0-9]+$tag\$")" ]'
    in_vol=$(find "$vol" -name "pw*$tag" | wc -l); in_decoy=$(find "$work/race/rootfs$canary" -name "pw*$tag" | wc -l)
    check "the swaps changed what the hook resolved ($in_vol targets landed in the volume, $in_decoy in the decoy)" \
        '[ "$in_vol" -gt 0 ] && [ "$in_decoy" -gt 0 ]'
    check "the agent holds no view" tasks_empty
    host_check "race"
}

# --- flood ------------------------------------------------------------------
# flood_agent.py holds more idle connections than the agent serves at once,
# sends oversized, split and garbage frames (with fds attached), leaves
# creates half-done and churns connections, while a container starts.
agent_fds() { ls "/proc/$agent_pid/fd" | wc -l; }
run_flood() {
    bundle warm "s" sh -c 'sha256sum /run/secrets/s | cut -c1-64'
    ids="$ids warm"
    out=$(runc --root "$work/state-rt" run --bundle "$work/warm" warm 2>/dev/null)
    check "a container reads its secret before the flood" '[ "$out" = "$want" ]'
    tasks_empty
    fds_before=$(agent_fds)
    python3 "$(dirname "$0")/flood_agent.py" "$sock" "$work/flood.ready" >"$work/flood.out" 2>"$work/flood.err" &
    helper_pid=$!
    i=0
    while [ ! -e "$work/flood.ready" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
    fds_during=$(agent_fds)
    bundle during "s" sh -c 'sha256sum /run/secrets/s | cut -c1-64'
    ids="$ids during"
    out=$(runc --root "$work/state-rt" run --bundle "$work/during" during 2>"$work/during.err")
    check "a container started during the flood reads its secret" '[ "$out" = "$want" ]' || sed 's/^/# /' "$work/during.err"
    wait "$helper_pid"; rc=$?; helper_pid=
    check "the flooder ran to the end" '[ $rc = 0 ]' || sed 's/^/# /' "$work/flood.err"
    val() { awk -v k="$1" '$1 == k {print $2}' "$work/flood.out"; }
    echo "# flood: $(grep -v ^refusal_ "$work/flood.out" | tr '\n' ' ')agent fds: $fds_before before, $fds_during while 200 were held"
    check "connections beyond 128 are turned away at once as busy ($(val busy_refused) of 200)" '[ "$(val busy_refused)" -ge 72 ]'
    check "the agent held at most 128 connections (fds $fds_before -> $fds_during)" '[ $((fds_during - fds_before)) -le 130 ]'
    check "the agent logged the refusals" 'grep -q "connection(s): 128 open, the limit" "$work/agent.log"'
    check "oversized frames: the client is dropped (10)" '[ "$(val oversized_closed)" = 10 ]'
    check "split frames: refused as malformed (10)" '[ "$(val split_refused)" = 10 ]' || sed "s/^/# /" "$work/flood.err"
    check "garbage and unknown requests with fds attached: refused (20)" '[ "$(val fds_refused)" = 20 ]'
    check "a create whose pidfd is not a pidfd: refused" '[ "$(val bad_pidfd_refused)" = 1 ]'
    check "half-done creates were built (6)" '[ "$(val half_built)" = 6 ]'
    check "silent half-done creates closed by the deadline (3)" '[ "$(val half_closed)" = 3 ]'
    check "every idle connection closed by the agent (200)" '[ "$(val idle_closed)" = 200 ]'
    for r in $(awk '$1 ~ /^refusal_/ {print $1}' "$work/flood.out"); do
        check "protocol refusal ${r#refusal_}: the exact line" '[ "$(val "$r")" = 1 ]' || grep "refusal ${r#refusal_}:" "$work/flood.err" | sed 's/^/# /'
    done
    check "protocol refusals checked (24)" '[ "$(grep -c "^refusal_" "$work/flood.out")" = 24 ]'
    check "an NRI container: announced, created without an identity, listed, flushed by nri.stop" \
        '[ "$(val nri_task)" = 1 ]' || grep "nri:" "$work/flood.err" | sed 's/^/# /'
    check "a task started over the protocol, then released" '[ "$(val task_started)" = 1 ] && [ "$(val released)" = 1 ]'
    check "the same id with two bundles: two tasks, each released by its own bundle, never by a guess" \
        '[ "$(val keyed_release)" = 1 ] && grep -qF "container \"twin\": a release without a bundle (a hook older than the agent) names 2 running containers with that id: none released" "$work/agent.log"' ||
        grep "keyed release" "$work/flood.err" | sed 's/^/# /'
    check "half-done views flushed, no task left" tasks_empty
    i=0
    while [ "$(agent_fds)" -gt "$fds_before" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    check "no fd leaked by the agent ($fds_before before, $(agent_fds) after)" '[ "$(agent_fds)" -le "$fds_before" ]' ||
        ls -l "/proc/$agent_pid/fd" | sed 's/^/# /'
    check "the agent still serves" 'ctl status >/dev/null'
    # More running tasks than one 64 KiB reply lists: task ls pages.
    python3 "$(dirname "$0")/many_tasks.py" "$sock" "$build/plugin/secretshimctl" s 80 >"$work/many.out" 2>"$work/many.err"
    many() { awk -v k="$1" '$1 == k {print $2}' "$work/many.out"; }
    echo "# many tasks: $(tr '\n' ' ' <"$work/many.out")"
    check "80 tasks started over the protocol" '[ "$(many started)" = 80 ]' || sed 's/^/# /' "$work/many.err"
    check "task ls lists all 80 ($(many json_bytes) bytes of JSON, more than one 64 KiB message)" \
        '[ "$(many listed_all_once)" = 1 ] && [ "$(many json_bytes)" -gt 65536 ] && [ "$(many names_right)" = 1 ]'
    check "task ls as a table: 80 rows" '[ "$(many table_rows)" = 80 ]'
    check "all 80 flushed when their process exited" '[ "$(many left_after_exit)" = 0 ]'
    host_check "flood"
}

case $mode in
cases) run_cases ;;
race) run_race ;;
flood) run_flood ;;
*) echo "usage: hostile_runc.sh BUILD_DIR cases|race|flood"; exit 2 ;;
esac

echo "$checks checks, $failures failure(s)"
# The agent logs names, never values: safe to show when something failed.
[ $failures = 0 ] || { echo "--- agent log"; sed "s/$tag/TAG/g" "$work/agent.log" | tail -40; }
[ $failures = 0 ]
