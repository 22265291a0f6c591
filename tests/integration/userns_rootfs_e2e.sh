#!/bin/sh
# User namespaces and read-only root filesystems, with real runc
# containers (and Podman --uidmap):
#  * a container with uidMappings/gidMappings: a secret's uid/gid are
#    container ids, the files carry the host ids they map to; an id with no
#    mapping is refused in one line; noswap stays (the agent builds views
#    in the initial user namespace, where the kernel allows it);
#  * root.readonly: a target whose mount point cannot be created is refused
#    in one line with nothing left behind; with a /run tmpfs in the spec,
#    /run/secrets works; existing mount points work.
# Usage: userns_rootfs_e2e.sh BUILD_DIR [runc|crun]
# Secret values are random markers compared as SHA-256 digests, never printed.
set -u
. "$(dirname "$0")/lib.sh"
build=$(cd "$1" && pwd)
scripts=$(cd "$(dirname "$0")/../../scripts" && pwd)
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root"; exit 77; }
runtime=${2:-runc}
command -v "$runtime" >/dev/null || { echo "SKIP: $runtime not installed"; exit 77; }

hook=$build/plugin/secretshim-hook
work=$(mktemp -d /tmp/secretshim-userns-XXXXXX)
chmod 0711 "$work"  # the container's root (host uid 100000) walks to its rootfs
sock=$work/agent.sock
ids=""

cleanup() {
    for id in $ids; do rt delete -f "$id" >/dev/null 2>&1; done
    stop_agent
    remove_work
}
trap cleanup EXIT
trap "exit 1" INT TERM HUP PIPE
view_grep='" secretshim " /proc/self/mountinfo'  # for no_view_mounts
# bundle NAME ANNOTATION UID ARGS... (USERNS, READONLY, NO_RUN_TMPFS from the environment)
bundle() {
    b=$1; ann=$2; uid=$3; shift 3
    python3 "$scripts/make_bundle.py" "$work/$b" "$hook" "$sock" "$ann" "$uid" "$@"
    [ -z "${USERNS:-}" ] || chown -R "${USERNS%%:*}:${USERNS%%:*}" "$work/$b/rootfs"
}
run() { id=$1; shift; ids="$ids $id"; rt run --bundle "$work/$id" "$id" "$@"; }
# What the hook said: runc passes its stderr on, crun writes it to the file
# the bundle's run.oci.hooks.stderr annotation names.
hook_said() { cat "$work/$1.err" "$work/$1.hookerr" 2>/dev/null; }

start_agent
db=$(marker); api=$(marker)
printf %s "$db" | ctl secret create db_pass - --grant root >/dev/null
printf %s "$api" | ctl secret create api_key - --grant root >/dev/null

# --- User namespaces: container ids 0..65535 are host ids 100000..165535.
export USERNS=100000:65536
bundle u1 "db_pass;source=api_key,target=/etc/app/key,uid=1000,gid=1000,mode=0400" 1000 \
    sh -c 'sha256sum /etc/app/key | cut -c1-64; stat -c "%u %g %a" /etc/app/key /run/secrets/db_pass;
           grep -cE " (/run/secrets|/etc/app/key) ro,nosuid,nodev,noexec[, ].*,noswap" /proc/self/mountinfo'
out=$(run u1 2>"$work/u1.err"); rc=$?
check "userns: container runs as its uid 1000" '[ $rc = 0 ]' || cat "$work/u1.err" "$work/u1.hookerr" 2>/dev/null
check "userns: uid 1000 reads its 0400 secret" '[ "$(echo "$out" | sed -n 1p)" = "$(digest "$api")" ]'
check "userns: owners are container ids inside" '[ "$(echo "$out" | sed -n 2,3p | tr "\n" " ")" = "1000 1000 400 0 0 444 " ]'
check "userns: both mounts ro,nosuid,nodev,noexec and noswap" '[ "$(echo "$out" | sed -n 4p)" = 2 ]'
check "userns: the placeholder the hook created belongs to the container's root (host 100000)" \
    '[ "$(stat -c "%u %g" "$work/u1/rootfs/etc/app/key" "$work/u1/rootfs/etc/app" | tr "\n" " ")" = "100000 100000 100000 100000 " ]'
check "userns: flushed after exit" tasks_empty

bundle u2 "db_pass;source=api_key,target=/etc/app/key,uid=1000,gid=1000,mode=0400" 0 sh -c 'sleep 100'
python3 - "$work/u2/config.json" <<'PY'
import json, sys
spec = json.load(open(sys.argv[1]))
caps = ["CAP_SYS_ADMIN", "CAP_DAC_OVERRIDE"]
spec["process"]["capabilities"] = {k: caps for k in ("bounding", "effective", "permitted")}
spec["process"]["noNewPrivileges"] = True
json.dump(spec, open(sys.argv[1], "w"))
PY
ids="$ids u2"
rt run -d --bundle "$work/u2" u2 >/dev/null 2>"$work/u2.err" </dev/null
pid=$(pid_of u2)
check "userns: on the host the file has the mapped ids 101000:101000" \
    '[ "$(stat -c "%u %g" "/proc/$pid/root/etc/app/key")" = "101000 101000" ]'
# The container's root holds CAP_SYS_ADMIN in its own user namespace: it
# can remount what it mounted itself (its /run tmpfs), but not clear ro,
# nosuid or noexec on its secrets: the hook hands over mounts whose flags
# the kernel has locked (platform/linux/userns_lock.hpp).
check "userns: the container's root can remount its own /run (so it holds CAP_SYS_ADMIN)" \
    'rt exec u2 /bin/busybox mount -o remount,bind,ro /run >/dev/null 2>&1'
check "userns: ... but not make its secrets directory read-write" \
    '! rt exec u2 /bin/busybox mount -o remount,bind,rw /run/secrets >/dev/null 2>&1'
check "userns: ... nor clear nosuid or noexec on a single-file secret" \
    '! rt exec u2 /bin/busybox mount -o remount,bind,ro,suid /etc/app/key >/dev/null 2>&1 && ! rt exec u2 /bin/busybox mount -o remount,bind,ro,exec /etc/app/key >/dev/null 2>&1'
check "userns: the flags are still ro,nosuid,nodev,noexec" \
    '[ "$(rt exec u2 /bin/busybox grep -cE " (/run/secrets|/etc/app/key) ro,nosuid,nodev,noexec[, ]" /proc/self/mountinfo)" = 2 ]'
check "userns: the container's root can still read its secret" '[ "$(rt exec u2 /bin/busybox sha256sum /etc/app/key | cut -c1-64)" = "$(digest "$api")" ]'
kill -9 "$pid"
check "userns: killed, flushed" tasks_empty

# An agent restart: a container without CAP_SYS_ADMIN got unlocked mounts
# (nothing in it can remount them: a nested user namespace would get a
# copy of the mount namespace, which the kernel locks, CVE-2014-5206), and
# is re-adopted; one with CAP_SYS_ADMIN got locked ones, which cannot be
# cloned writable again (a known limit).
bundle u5 "db_pass" 0 sh -c 'sleep 100'
ids="$ids u5"
rt run -d --bundle "$work/u5" u5 >/dev/null 2>"$work/u5.err" </dev/null
check "userns without CAP_SYS_ADMIN: the container cannot remount its view" \
    '! rt exec u5 /bin/busybox mount -o remount,bind,rw /run/secrets >/dev/null 2>&1'
bundle u6 "api_key" 0 sh -c 'sleep 100'
ids="$ids u6"
python3 - "$work/u6/config.json" <<'PY'
import json, sys
spec = json.load(open(sys.argv[1]))
spec["process"]["capabilities"] = {k: ["CAP_SYS_ADMIN"] for k in ("bounding", "effective", "permitted")}
json.dump(spec, open(sys.argv[1], "w"))
PY
rt run -d --bundle "$work/u6" u6 >/dev/null 2>"$work/u6.err" </dev/null
kill -9 "$agent_pid"; wait "$agent_pid" 2>/dev/null
start_agent
check "userns without CAP_SYS_ADMIN: re-adopted after an agent restart" '[ "$(ctl task ls --format json | grep -c "\"u5\"")" = 1 ]'
check "userns with CAP_SYS_ADMIN: locked, so not re-adopted (known limit), and says why" \
    'grep -qF "container \"u6\": cannot re-adopt its secrets: making the clone of /run/secrets writable: Operation not permitted" "$work/agent.log"'
check "userns: both still read their secrets" \
    '[ "$(rt exec u5 /bin/busybox sha256sum /run/secrets/db_pass | cut -c1-64)" = "$(digest "$db")" ] && [ "$(rt exec u6 /bin/busybox sha256sum /run/secrets/api_key | cut -c1-64)" = "$(digest "$api")" ]'
kill -9 "$(pid_of u5)" "$(pid_of u6)"
check "userns: the re-adopted container flushed on exit" tasks_empty

bundle u3 "source=db_pass,uid=70000" 0 sh -c 'echo RAN'
out=$(run u3 2>"$work/u3.err"); rc=$?
check "userns: a uid with no mapping is refused in one line" \
    '[ $rc != 0 ] && [ -z "$out" ] && hook_said u3 | grep -qF "secretshim-hook: container u3: secret" && hook_said u3 | grep -qF "uid 70000 has no mapping in the container"'
check "userns: refused, nothing left" 'no_view_mounts && tasks_empty && [ ! -e "$work/u3/rootfs/run/secrets" ]'
bundle u4 "source=db_pass,gid=65536" 0 sh -c 'echo RAN'
out=$(run u4 2>"$work/u4.err"); rc=$?
check "userns: a gid with no mapping is refused" '[ $rc != 0 ] && hook_said u4 | grep -qF "gid 65536 has no mapping"'
check "userns: the kernel refuses noswap for a tmpfs made in a user namespace (why the agent makes views outside)" \
    '! unshare -Urm sh -c "mount -t tmpfs -o noswap none /mnt" 2>/dev/null && unshare -Urm sh -c "mount -t tmpfs none /mnt"'
unset USERNS

# --- Read-only rootfs.
export READONLY=1
bundle r1 "db_pass" 0 sh -c 'sha256sum /run/secrets/db_pass | cut -c1-64; touch /x 2>/dev/null || echo RO'
out=$(run r1 2>"$work/r1.err"); rc=$?
check "readonly rootfs, /run a tmpfs: /run/secrets works" '[ $rc = 0 ] && [ "$(echo "$out" | tr "\n" " ")" = "$(digest "$db") RO " ]' || cat "$work/r1.err"
check "readonly rootfs: flushed" tasks_empty

bundle r2 "db_pass;source=api_key,target=/etc/app/key" 0 sh -c 'echo RAN'
out=$(run r2 2>"$work/r2.err"); rc=$?
err=$(hook_said r2 | grep -o "secretshim-hook: .*" | sed 's/\\n.*//; s/"$//')
echo "# $runtime said: $err"
check "readonly rootfs: a target outside /run/secrets is refused in one line" \
    '[ $rc != 0 ] && [ -z "$out" ] && [ "$err" = "secretshim-hook: container r2: creating /etc/app in the container: the root filesystem is read-only (use a target under /run/secrets, or a mount point the image already has)" ]'
check "readonly rootfs: refused, no view, no task, the /run/secrets mount taken down" \
    'no_view_mounts && tasks_empty && [ ! -e "$work/r2/rootfs/etc/app" ]'

export NO_RUN_TMPFS=1
bundle r3 "db_pass" 0 sh -c 'echo RAN'
out=$(run r3 2>"$work/r3.err"); rc=$?
check "readonly rootfs without a /run tmpfs: /run/secrets refused in one line" \
    '[ $rc != 0 ] && [ -z "$out" ] && hook_said r3 | grep -qF "secretshim-hook: container r3: creating /run/secrets in the container: the root filesystem is read-only" && tasks_empty'
# Mount points the image already has need no creating.
bundle r4 "db_pass;source=api_key,target=/etc/key" 0 sh -c 'sha256sum /run/secrets/db_pass /etc/key | cut -c1-64'
mkdir -p "$work/r4/rootfs/run/secrets"; : >"$work/r4/rootfs/etc/key"
out=$(run r4 2>"$work/r4.err"); rc=$?
check "readonly rootfs: existing mount points work" '[ $rc = 0 ] && [ "$(echo "$out" | tr "\n" " ")" = "$(digest "$db") $(digest "$api") " ]' || cat "$work/r4.err"
check "readonly rootfs: flushed" tasks_empty
unset READONLY NO_RUN_TMPFS

echo "$failures failure(s)"
[ $failures = 0 ] || { echo "--- agent log"; cat "$work/agent.log"; }
[ $failures = 0 ]
