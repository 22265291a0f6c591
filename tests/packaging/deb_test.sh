#!/bin/sh
# The Debian package, built and checked for real: dpkg-buildpackage from the
# tree (scripts/build-deb.sh), lintian (no errors), the file list of the
# package extracted into a throwaway root, the conffile, the hooks.d JSON,
# `systemd-analyze verify` and `security` on the packaged unit, and then
# the packaged unit run by a real systemd (PID 1 of a throwaway PID and
# mount namespace) with the packaged programs at their packaged paths:
# Type=notify readiness, the sandbox as the kernel sees it, a runc
# container served through it, re-adoption across `systemctl restart` and
# a crash (`systemctl kill -s KILL`) through systemd's fd store and across
# `systemctl stop` and `start` through the container's mounts (a stopped
# unit's fd store is emptied), and the view of a container that exited
# while the agent was down, or one no task record names, wiped through the
# fd store.
# Usage: deb_test.sh SOURCE_DIR BUILD_DIR
# Secret values are random markers compared in the shell, never printed.
set -u
src=$(cd "$1" && pwd)
build=$(cd "$2" && pwd)
work=$(mktemp -d /tmp/secretshim-debtest-XXXXXX)
root=$work/root
. "$src/tests/packaging/lib.sh"
rt_ids="c1 c2 c3 c4 c5"
pkg_setup dpkg-buildpackage lintian systemd-analyze

# --- build -----------------------------------------------------------------
pkg_build

# --- lintian ---------------------------------------------------------------
start=$(date +%s)
lintian --fail-on error --display-info --pedantic "$deb" >"$work/lintian.out" 2>&1
status=$?
grep -v 'running with root privileges' "$work/lintian.out" | sed 's/^/# lintian: /'
echo "# lintian took $(($(date +%s) - start)) s"
check "lintian: no errors" '[ $status = 0 ] && ! grep -q "^E: " "$work/lintian.out"'

# --- contents --------------------------------------------------------------
dpkg -x "$deb" "$root"
check "file list as expected" 'python3 "$src/tests/packaging/check_files.py" "$root" "$src/tests/packaging/expected_files.txt"'
dpkg-deb -e "$deb" "$work/control"
check "the example config and the containerd base spec are the conffiles" \
    '[ "$(sort "$work/control/conffiles" | tr "\n" " ")" = "/etc/secretshim/containerd/base-spec.json /etc/secretshim/secretshimd.yaml " ]'
check "the base spec where 0.1.0 put it (a config.toml may name it) links to the conffile" \
    '[ "$(readlink "$root/usr/share/secretshim/containerd/base-spec.json")" = /etc/secretshim/containerd/base-spec.json ]'
check "the containerd tables name the base spec conffile" \
    'grep -qxF "  base_runtime_spec = \"/etc/secretshim/containerd/base-spec.json\"" "$root/usr/share/secretshim/containerd/secretshim.toml"'
check "installed config is the annotated example" 'cmp -s "$root/etc/secretshim/secretshimd.yaml" "$src/packaging/secretshimd.yaml"'
check "secretshim-runtime-cri is the wrapper under its CRI name" '[ "$(readlink "$root/usr/libexec/secretshim/secretshim-runtime-cri")" = secretshim-runtime ]'
check "the NRI plugin is installed beside the hook it names" \
    '[ -x "$root/usr/libexec/secretshim/secretshim-nri" ] && "$root/usr/libexec/secretshim/secretshim-nri" --help | grep -qF -- "--hook TEXT=/usr/libexec/secretshim/secretshim-hook"'
check "the hook is static" '[ -x "$root/usr/libexec/secretshim/secretshim-hook" ] && ! readelf -l "$root/usr/libexec/secretshim/secretshim-hook" | grep -q "INTERP"'
check "the agent links libsystemd (sd_notify)" 'readelf -d "$root/usr/sbin/secretshimd" | grep -q "libsystemd.so"'
check "packaged programs run" '"$root/usr/bin/secretshimctl" --help >/dev/null && "$root/usr/sbin/secretshimd" --help >/dev/null'
# One invalid hooks.d file makes every `podman run` on the node fail.
check "hooks.d for Podman: valid, runs the packaged hook with --integration podman" \
    'python3 "$src/tests/integration/check_hooks_json.py" podman "$root/usr/share/containers/oci/hooks.d/secretshim.json" \
        /usr/libexec/secretshim/secretshim-hook >"$work/hooks.out" && [ -x "$root/usr/libexec/secretshim/secretshim-hook" ]' ||
    grep FAIL "$work/hooks.out"
check "hooks.d for CRI-O: valid, runs the packaged hook with --integration cri-o" \
    'python3 "$src/tests/integration/check_hooks_json.py" cri-o "$root/usr/share/secretshim/cri-o/hooks.d/secretshim.json" \
        /usr/libexec/secretshim/secretshim-hook >"$work/hooks.out"' || grep FAIL "$work/hooks.out"

# ns CMD... (lib.sh), before systemd runs: CMD in a private mount namespace
# where the extracted package is overlaid on the host's /usr, /etc and
# /lib/systemd/system: the packaged unit, programs, config and man pages
# sit at their packaged paths and nothing is written to the host's.
overlay_script='
for d in usr etc lib/systemd/system; do
    mount -t overlay overlay -o "lowerdir=$ROOT/$d:/$d" "/$d" || exit 1
done'
ns_before() {
    ROOT=$root unshare -m --propagation private sh -c "$overlay_script"'
exec "$@"' sh "$@"
}

# --- systemd-analyze -------------------------------------------------------
check "systemd-analyze verify: clean" 'ns systemd-analyze verify secretshimd.service >"$work/verify.out" 2>&1 && [ ! -s "$work/verify.out" ]' ||
    sed 's/^/# /' "$work/verify.out"
ns systemd-analyze security --offline=yes secretshimd.service >"$work/security.out" 2>&1
score=$(sed -n 's/.*Overall exposure level for secretshimd.service: \([0-9.]*\).*/\1/p' "$work/security.out")
echo "# systemd-analyze security: exposure ${score:-?} (docs/admin-guide.md quotes it)"
# A hardening line dropped from the unit raises the exposure.
check "systemd-analyze security: exposure at most 3.5" '[ -n "$score" ] && python3 -c "import sys; sys.exit(float(sys.argv[1]) > 3.5)" "$score"'

# --- the unit under a real systemd -----------------------------------------
# systemd is PID 1 of a new PID namespace, in a mount namespace with the
# overlays above, a fresh /run and /var/lib (tmpfs: nothing on the host),
# and cgroup trees of its own below ours (a cgroup namespace). It loads
# units only from $work/units: the packaged unit (a verbatim copy) and a
# target that wants it, so no host service starts.
units=$work/units
mkdir -p "$work/runc"
journald_units secretshimd.service
cp "$root/lib/systemd/system/secretshimd.service" "$units/"
# 5 s instead of 1 s between a crash and the automatic restart (the crash
# test acts while the agent is down): the only addition to the unit. The
# agent logs to journald, which runs there too (journalctl -u secretshimd).
mkdir "$units/secretshimd.service.d"
printf '[Service]\nRestartSec=5s\n' >"$units/secretshimd.service.d/restart.conf"
sd_start "ROOT=$root
$overlay_script
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t tmpfs -o mode=0755 tmpfs /var/lib
mount -t tmpfs -o mode=0755 tmpfs /var/log
$(dev_script "")"

# Type=notify: "active" only after READY=1 (the socket accepts by then).
if ! check "the unit becomes active (Type=notify, READY=1)" 'wait_state active'; then
    ns systemctl status --no-pager secretshimd 2>&1 | sed 's/^/# /'
    agent_log | sed 's/^/# agent: /'
    sed 's/^/# systemd: /' "$work/systemd.log" | tail -30
    finish; exit 1
fi
check "status text from sd_notify" '[ "$(ns systemctl show -p StatusText --value secretshimd)" = "serving /run/secretshim/agent.sock" ]'
main=$(ns systemctl show -p MainPID --value secretshimd)
ns cat /proc/$main/status /proc/$main/limits >"$work/agent.proc"
check "the sandbox as the kernel sees it: no_new_privs, seccomp, bounding set" '
    st=$(cat "$work/agent.proc")
    echo "$st" | grep -q "^NoNewPrivs:[[:space:]]*1" && echo "$st" | grep -q "^Seccomp:[[:space:]]*2" &&
    [ "$(echo "$st" | sed -n "s/^CapBnd:[[:space:]]*//p")" = 00000000002c002f ]'
# Without CAP_SYS_RESOURCE (this VM's root lacks it) systemd cannot raise
# a hard limit above its own: then the agent gets that one.
memlock=67108864
python3 -c "import resource as r; r.setrlimit(r.RLIMIT_MEMLOCK, ($memlock, $memlock))" 2>/dev/null ||
    memlock=$(python3 -c "import resource as r; print(r.getrlimit(r.RLIMIT_MEMLOCK)[1])")
check "limits: no core, LimitMEMLOCK=64M ($memlock here)" '
    [ "$(ns systemctl show -p LimitMEMLOCK --value secretshimd)" = 67108864 ] &&
    grep -q "^Max core file size *0 *0 " "$work/agent.proc" &&
    grep -q "^Max locked memory *$memlock *$memlock " "$work/agent.proc"' ||
    grep -E "^(NoNewPrivs|Seccomp|CapBnd|Max core|Max locked)" "$work/agent.proc" | sed "s/^/# /"
check "MemoryMax=512M on its cgroup" '
    [ "$(ns cat /sys/fs/cgroup/memory/system.slice/secretshimd.service/memory.limit_in_bytes 2>/dev/null ||
         ns cat /sys/fs/cgroup/system.slice/secretshimd.service/memory.max)" = 536870912 ]'
check "its own /tmp and a read-only /usr" '
    ns nsenter -t $main -m sh -c "! touch /usr/.secretshim-probe 2>/dev/null && [ \"\$(stat -c %i /tmp)\" != \"\$(stat -c %i /proc/1/root/tmp)\" ]"'
check "socket and state directories" '
    [ "$(ns stat -c %a:%F /run/secretshim/agent.sock)" = "600:socket" ] &&
    [ "$(ns stat -c %a /var/lib/secretshim)" = 700 ] && ns test -f /var/lib/secretshim/node.key'

# A runc container served by the packaged unit, its hook at the packaged path.
db=$(marker); key=$(marker)
printf %s "$db" | ctl secret create db_pass - --grant root >/dev/null
printf %s "$key" | ctl secret create api_key - --grant root >/dev/null
check "secretshimctl creates secrets through the packaged socket" '[ "$(ctl secret ls --format json | python3 -c "import json,sys; print(len(json.load(sys.stdin)))")" = 2 ]'
python3 "$src/scripts/make_bundle.py" "$work/c1" /usr/libexec/secretshim/secretshim-hook /run/secretshim/agent.sock \
    "db_pass;source=api_key,target=/etc/app/key,uid=1000,gid=1000,mode=0440" 0 sh -c 'while :; do sleep 1; done'
rt run -d --bundle "$work/c1" c1 >"$work/c1.out" 2>&1 </dev/null
check "a container started with its secrets" '[ "$(rt exec c1 /bin/busybox stat -c %u:%g:%a /etc/app/key)" = 1000:1000:440 ] &&
    both_readable c1' ||
    { sed 's/^/# /' "$work/c1.out"; cat "$work/c1.hookerr" 2>/dev/null | sed 's/^/# hook: /'; }
# The agent runs under the unit's UMask=0077: the view's directories must
# not come out 0700 (/run/secrets is one of them).
check "a user other than root reads its /run/secrets file" \
    '[ "$(rt exec --user 1000:1000 c1 /bin/busybox cat /run/secrets/db_pass | sha256sum | cut -c1-64)" = "$(digest "$db")" ]'
check "its view is kept in systemd's fd store" '[ "$(stored_count)" = 1 ]'

# Restart: the new agent, in a new sandbox (a new mount namespace). A
# restart job keeps the unit's fd store (seen with systemd 252: its
# resources are released only once the unit is inactive with no job
# pending), so the view comes back from there, and stays stored.
ns systemctl restart secretshimd
check "systemctl restart: active again" 'wait_state active'
check "re-adopted across the restart" '[ "$(ctl task ls --format json | grep -c "\"c1\"")" = 1 ]'
check "systemctl restart: re-adopted from the fd store, which it keeps" \
    'log_has "container \"c1\": re-adopted secrets db_pass,api_key from the fd store" &&
     [ "$(stored_count)" = 1 ]'
check "re-adopted: both targets still readable" 'both_readable c1'
# Stop, then start: systemd empties the fd store of a stopped unit. The new
# agent enters the container's namespace to re-adopt the view through its
# mounts (proven ours by the device), and cannot store it again.
ns systemctl stop secretshimd
ns systemctl start secretshimd
check "systemctl stop, start: active again" 'wait_state active'
check "after a stop, re-adopted through its mounts (the fd store was emptied)" \
    'log_has "container \"c1\": re-adopted secrets db_pass,api_key from its mounts in the container" &&
     [ "$(stored_count)" = 0 ]'
check "re-adopted through its mounts: both targets still readable" 'both_readable c1'
rt kill c1 KILL
check "the re-adopted view is flushed when the container exits" tasks_empty
rt delete -f c1 >/dev/null 2>&1

# A crash: `systemctl kill -s KILL`, and Restart=on-failure starts the agent
# again while systemd keeps the fd store. The new agent takes the running
# container's view back from there, entering no container.
grants="db_pass;source=api_key,target=/etc/app/key,uid=1000,gid=1000,mode=0440"
python3 "$src/scripts/make_bundle.py" "$work/c2" /usr/libexec/secretshim/secretshim-hook /run/secretshim/agent.sock \
    "$grants" 0 sh -c 'while :; do sleep 1; done'
rt run -d --bundle "$work/c2" c2 >"$work/c2.out" 2>&1 </dev/null
# And a container in a user namespace of its own that keeps CAP_SYS_ADMIN:
# the hook hands it locked mounts, whose read-only flag a clone cannot
# clear, so re-adopting it through its mounts fails (README "User
# namespaces"). The view from the fd store needs no clone.
USERNS=100000:65536 python3 "$src/scripts/make_bundle.py" "$work/c4" /usr/libexec/secretshim/secretshim-hook \
    /run/secretshim/agent.sock db_pass 0 sh -c 'while :; do sleep 1; done'
chown -R 100000:100000 "$work/c4/rootfs"
chmod 711 "$work" "$work/c4"  # its root (host uid 100000) walks to its rootfs
python3 - "$work/c4/config.json" <<'PY'
import json, sys
spec = json.load(open(sys.argv[1]))
spec["process"]["capabilities"] = {k: ["CAP_SYS_ADMIN"] for k in ("bounding", "effective", "permitted")}
json.dump(spec, open(sys.argv[1], "w"))
PY
rt run -d --bundle "$work/c4" c4 >"$work/c4.out" 2>&1 </dev/null
check "crash: two more containers started (one with locked mounts), their views in the fd store" \
    '[ "$(ctl task ls --format json | grep -cE "\"c[24]\"")" = 2 ] && [ "$(record_field c4 locked)" = true ] &&
     [ "$(stored_count)" = 2 ]' ||
    sed 's/^/# /' "$work/c2.out" "$work/c4.out"
old=$(main_pid)
ns systemctl kill -s KILL secretshimd
check "crash: the agent is killed and restarted by systemd" 'wait_down && wait_back "$old"'
check "crash: re-adopted from the fd store, the locked view too" \
    'log_has "container \"c2\": re-adopted secrets db_pass,api_key from the fd store" &&
     log_has "container \"c4\": re-adopted secrets db_pass from the fd store" && [ "$(stored_count)" = 2 ]'
check "crash: every target still readable" 'both_readable c2 &&
    [ "$(rt exec c4 /bin/busybox cat /run/secrets/db_pass | sha256sum | cut -c1-64)" = "$(digest "$db")" ]'
rt kill c4 KILL
check "crash: the locked view taken back is flushed when its container exits" \
    'i=0; while [ "$(stored_count)" != 1 ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
     [ "$(ctl task ls --format json | grep -c "\"c4\"")" = 0 ] &&
     log_has "container \"c4\": exited, secrets flushed in "'
rt delete -f c4 >/dev/null 2>&1
# A revocation reaches the view taken back: its single-file mount detached,
# its file wiped; the other secret stays.
ctl secret revoke api_key root >/dev/null
check "crash: a grant revoked after it reaches the view taken back" \
    '[ -z "$(rt exec c2 /bin/busybox cat /etc/app/key 2>/dev/null)" ] &&
     [ "$(rt exec c2 /bin/busybox cat /run/secrets/db_pass | sha256sum | cut -c1-64)" = "$(digest "$db")" ]'
ctl secret grant api_key root >/dev/null
rt kill c2 KILL
check "crash: the view taken back is flushed when the container exits, and leaves the fd store" \
    'tasks_empty && [ "$(stored_count)" = 0 ]'
rt delete -f c2 >/dev/null 2>&1

# A crash, and the container exits while the agent is down. The fd store
# still holds its view: a process of this test takes it from systemd
# (/proc/1/fd/N in the namespace) and keeps it, with the secret file open,
# to see what the new agent does to it.
db3=$(marker); key3=$(marker)
printf %s "$db3" | ctl secret create db3 - --grant root >/dev/null
printf %s "$key3" | ctl secret create key3 - --grant root >/dev/null
python3 "$src/scripts/make_bundle.py" "$work/c3" /usr/libexec/secretshim/secretshim-hook /run/secretshim/agent.sock \
    "db3;source=key3,target=/etc/app/key" 0 sh -c 'while :; do sleep 1; done'
rt run -d --bundle "$work/c3" c3 >"$work/c3.out" 2>&1 </dev/null
dev3=$(record_field c3 view_device)
check "gone while down: the container started, its view in the fd store" '[ -n "$dev3" ] && [ "$(stored_count)" = 1 ]' ||
    sed 's/^/# /' "$work/c3.out"
old=$(main_pid)
ns systemctl kill -s KILL secretshimd
wait_down
rt kill c3 KILL
i=0; while [ "$(rt state c3 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')" != stopped ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
stored=$(ns sh -c 'for f in /proc/1/fd/*; do [ "$(stat -L -c %d "$f" 2>/dev/null)" = "$1" ] && echo "$f"; done' sh "$dev3" | head -n 1)
ns sh -c 'cd "$1" && exec 7<dir/db3 && echo $$ >/run/holder.pid && exec sleep 600' sh "$stored" >/dev/null 2>&1 &
i=0; while ! ns test -s /run/holder.pid && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
holder=$(ns cat /run/holder.pid 2>/dev/null)
check "gone while down: systemd's fd store holds the view, with the secrets (positive control)" \
    '[ -n "$stored" ] && [ -n "$holder" ] &&
     [ "$(ns sha256sum /proc/$holder/cwd/dir/db3 | cut -c1-64)" = "$(digest "$db3")" ] &&
     [ "$(ns sha256sum /proc/$holder/cwd/file/etc/app/key | cut -c1-64)" = "$(digest "$key3")" ]'
check "gone while down: all that happened before the agent came back" '[ "$(substate)" = auto-restart ]' ||
    echo "# the agent came back within RestartSec: the checks above raced it"
check "gone while down: the agent is restarted by systemd" 'wait_back "$old"'
check "gone while down: the agent says it wiped the view" \
    'log_has "container \"c3\": exited while the agent was down; its secrets were wiped (2 files)"'
check "gone while down: no file left in the view, and an open one reads nothing" \
    '[ "$(ns find /proc/$holder/cwd/ -type f | wc -l)" = 0 ] && [ "$(ns sh -c "wc -c </proc/$holder/fd/7")" = 0 ]'
check "gone while down: no task, no record, nothing in the fd store" \
    'tasks_empty && [ "$(stored_count)" = 0 ] && [ -z "$(record_field c3 view_device)" ]'
check "gone while down: no marker in the new agent's memory" \
    'ns python3 "$src/tests/integration/scan_memory.py" "$(main_pid)" "$db3" "$key3"'
env "SCAN_PROBE=$db3" sleep 30 & probe=$!
check "the memory scanner finds a marker where there is one" '! python3 "$src/tests/integration/scan_memory.py" "$probe" "$db3" >/dev/null'
kill "$probe"; wait "$probe" 2>/dev/null
[ -n "$holder" ] && ns kill "$holder"
rt delete -f c3 >/dev/null 2>&1

# A view in the fd store that no task record names (the record lost while
# the agent was down): nobody could flush it any more, so the new agent
# wipes it through the store, though its container runs, and drops it.
python3 "$src/scripts/make_bundle.py" "$work/c5" /usr/libexec/secretshim/secretshim-hook /run/secretshim/agent.sock \
    db3 0 sh -c 'while :; do sleep 1; done'
rt run -d --bundle "$work/c5" c5 >"$work/c5.out" 2>&1 </dev/null
check "no record: the container started, its view in the fd store" '[ "$(stored_count)" = 1 ]' ||
    sed 's/^/# /' "$work/c5.out"
old=$(main_pid)
ns systemctl kill -s KILL secretshimd
wait_down
ns python3 -c 'import glob, json, os, sys
for f in glob.glob("/run/secretshim/tasks/*.task"):
    if json.load(open(f))["id"] == sys.argv[1]: os.remove(f)' c5
check "no record: the agent is restarted by systemd" 'wait_back "$old"'
check "no record: its view is wiped through the fd store and dropped" \
    'log_has -E "the fd store.s entry \"[0-9a-f]{64}\" belongs to no task: its view was wiped \(1 file\)" &&
     [ "$(stored_count)" = 0 ] &&
     [ -z "$(rt exec c5 /bin/busybox cat /run/secrets/db3 2>/dev/null)" ]'
rt delete -f c5 >/dev/null 2>&1

ns systemctl stop secretshimd
check "systemctl stop: inactive, not failed (STOPPING=1, exit 0)" '[ "$(state)" = inactive ]'
check "stop removes the socket, keeps the task records (RuntimeDirectoryPreserve)" '! ns test -e /run/secretshim/agent.sock && ns test -d /run/secretshim/tasks'

[ "$failures" = 0 ] || agent_log | sed 's/^/# agent: /'
finish
