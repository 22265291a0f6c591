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
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root"; exit 77; }
for tool in dpkg-buildpackage lintian systemd-analyze runc unshare nsenter python3; do
    command -v "$tool" >/dev/null || { echo "SKIP: $tool not installed"; exit 77; }
done
[ -x /lib/systemd/systemd ] || { echo "SKIP: systemd not installed"; exit 77; }

work=$(mktemp -d /tmp/secretshim-debtest-XXXXXX)
root=$work/root
failures=0
sd_pid=
cgroups=""
cleanup() {
    if [ -n "$sd_pid" ]; then
        for c in c1 c2 c3 c4 c5; do ns runc --root "$work/runc" delete -f "$c" >/dev/null 2>&1; done
        kill -KILL "$sd_pid" 2>/dev/null   # PID 1 of the namespace: takes all of it along
        i=0; while kill -0 "$sd_pid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
    fi
    # Leaf first: systemd made system.slice/... below our own cgroups. The
    # namespace's processes may take a moment to be gone.
    for cg in $cgroups; do
        i=0
        while [ -d "$cg" ] && [ $i -lt 50 ]; do
            find "$cg" -depth -type d -exec rmdir {} \; 2>/dev/null || sleep 0.1
            i=$((i + 1))
        done
        [ -d "$cg" ] && echo "# left behind: cgroup $cg" >&2
    done
    rm -rf "$work"
}
trap cleanup EXIT
ok() { echo "ok - $1"; }
bad() { echo "FAIL - $1"; failures=$((failures + 1)); }
check() { if eval "$2"; then ok "$1"; else bad "$1"; return 1; fi; }
marker() { head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
digest() { printf %s "$1" | sha256sum | cut -c1-64; }

# --- build -----------------------------------------------------------------
# SECRETSHIM_DEB=FILE checks an already built package instead (development).
start=$(date +%s)
if [ -n "${SECRETSHIM_DEB:-}" ]; then
    mkdir -p "$work/out" && cp "$SECRETSHIM_DEB" "$work/out/"
elif ! sh "$src/scripts/build-deb.sh" "$work/out" >"$work/build.out" 2>&1; then
    cat "$work/build.out"
    echo "FAIL - the package builds"
    exit 1
fi
echo "# package built in $(($(date +%s) - start)) s"
# Debian's flags (_FORTIFY_SOURCE=2, ...) may raise warnings the project's
# build does not: listed here, not fatal (packaging/debian/rules).
grep -h ': warning: ' "$work"/out/*_build.log 2>/dev/null | sort -u | sed 's/^/# compiler: /'

deb=$(ls "$work"/out/secretshim_*.deb) || { echo "FAIL - no secretshim_*.deb"; exit 1; }
ok "the package builds: $(basename "$deb")"

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
check "the example config is a conffile" '[ "$(cat "$work/control/conffiles")" = /etc/secretshim/secretshimd.yaml ]'
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

# ns CMD...: runs CMD in a private mount namespace where the extracted
# package is overlaid on the host's /usr, /etc and /lib/systemd/system: the
# packaged unit, programs, config and man pages sit at their packaged paths
# and nothing is written to the host's. With $sd_pid set: in the namespaces
# of that systemd instead.
overlay_script='
for d in usr etc lib/systemd/system; do
    mount -t overlay overlay -o "lowerdir=$ROOT/$d:/$d" "/$d" || exit 1
done'
ns() {
    if [ -n "$sd_pid" ]; then
        nsenter -t "$sd_pid" -m -p "$@"
    else
        ROOT=$root unshare -m --propagation private sh -c "$overlay_script"'
exec "$@"' sh "$@"
    fi
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
mkdir -p "$units" "$work/runc"
cp "$root/lib/systemd/system/secretshimd.service" "$units/"
printf '[Unit]\nDescription=secretshim package test\nWants=secretshimd.service\n' >"$units/secretshim-test.target"
# The agent's log (no journald here), and 5 s instead of 1 s between a
# crash and the automatic restart (the crash test acts while the agent is
# down): the only additions to the unit.
mkdir "$units/secretshimd.service.d"
printf '[Service]\nStandardError=append:/run/secretshimd-test.log\n' >"$units/secretshimd.service.d/log.conf"
printf '[Service]\nRestartSec=5s\n' >"$units/secretshimd.service.d/restart.conf"
for t in sysinit basic shutdown multi-user; do printf '[Unit]\nDescription=stub\n' >"$units/$t.target"; done
# v1 hierarchies (a hybrid host like this VM) are mounted again inside; on
# a pure cgroup2 host systemd gets the cgroup2 tree.
hierarchies=$(awk '$3 == "cgroup" {print $2 " " $4}' /proc/self/mounts)
cat >"$work/boot.sh" <<EOF
set -e
ROOT=$root
$overlay_script
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t tmpfs -o mode=0755 tmpfs /var/lib
if [ -n "$hierarchies" ]; then
    mount -t tmpfs -o mode=0755 tmpfs /sys/fs/cgroup
    echo "$hierarchies" | while read -r dir opts; do
        mkdir -p "\$dir"
        mount -t cgroup -o "\$opts" cgroup "\$dir"
    done
else
    mount -t cgroup2 cgroup2 /sys/fs/cgroup
fi
exec env -i container=secretshim-test SYSTEMD_UNIT_PATH=$units PATH=/usr/sbin:/usr/bin:/sbin:/bin \\
    /lib/systemd/systemd --system --unit=secretshim-test.target --log-target=console </dev/null
EOF
# enter.sh moves itself into a new child of its cgroup in every hierarchy
# (they become the namespace's cgroup roots), then becomes unshare.
cat >"$work/enter.sh" <<'EOF'
work=$1 hybrid=$2
awk '$3 == "cgroup" || $3 == "cgroup2" {print $2, $3, $4}' /proc/self/mounts | while read -r mnt type opts; do
    [ -n "$hybrid" ] && [ "$type" = cgroup2 ] && continue   # systemd uses the v1 trees there
    while IFS=: read -r _ ctrls path; do
        if [ "$type" = cgroup2 ]; then
            [ -z "$ctrls" ] || continue
        else
            [ -n "$ctrls" ] || continue
            miss=0
            for c in $(echo "$ctrls" | tr , ' '); do
                case ",$opts," in *,"$c",*) ;; *) miss=1 ;; esac
            done
            [ $miss = 0 ] || continue
        fi
        dir=$mnt${path%/}/secretshim-debtest-$$
        mkdir -p "$dir" && echo "$dir" >>"$work/cgroups" || break
        for f in cpuset.cpus cpuset.mems; do   # a new v1 cpuset starts empty
            [ -f "$dir/$f" ] && cat "$dir/../$f" >"$dir/$f"
        done
        echo $$ >"$dir/cgroup.procs"
        break
    done </proc/self/cgroup
done
exec unshare --pid --fork --mount --cgroup --propagation private --mount-proc sh "$work/boot.sh"
EOF
sh "$work/enter.sh" "$work" "$hierarchies" >"$work/systemd.log" 2>&1 &
unshare_pid=$!
i=0
while [ $i -lt 100 ]; do
    sd_pid=$(pgrep -P "$unshare_pid" -x systemd || true)
    [ -n "$sd_pid" ] && break
    sleep 0.1; i=$((i + 1))
done
cgroups=$(cat "$work/cgroups" 2>/dev/null)
if [ -z "$sd_pid" ]; then
    cat "$work/systemd.log"
    bad "systemd started in a throwaway namespace"
    echo "$failures failed"; exit 1
fi
ok "systemd started in a throwaway namespace (pid $sd_pid)"

state() { ns systemctl show -p ActiveState --value secretshimd 2>/dev/null; }
wait_state() {
    i=0
    while [ $i -lt 300 ]; do
        [ "$(state)" = "$1" ] && return 0
        sleep 0.1; i=$((i + 1))
    done
    return 1
}
# Type=notify: "active" only after READY=1 (the socket accepts by then).
if ! check "the unit becomes active (Type=notify, READY=1)" 'wait_state active'; then
    ns systemctl status --no-pager secretshimd 2>&1 | sed 's/^/# /'
    ns cat /run/secretshimd-test.log | sed 's/^/# agent: /'
    sed 's/^/# systemd: /' "$work/systemd.log" | tail -30
    echo "$failures failed"; exit 1
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
ctl() { ns secretshimctl "$@"; }
printf %s "$db" | ctl secret create db_pass - --grant root >/dev/null
printf %s "$key" | ctl secret create api_key - --grant root >/dev/null
check "secretshimctl creates secrets through the packaged socket" '[ "$(ctl secret ls --format json | python3 -c "import json,sys; print(len(json.load(sys.stdin)))")" = 2 ]'
python3 "$src/scripts/make_bundle.py" "$work/c1" /usr/libexec/secretshim/secretshim-hook /run/secretshim/agent.sock \
    "db_pass;source=api_key,target=/etc/app/key,uid=1000,gid=1000,mode=0440" 0 sh -c 'while :; do sleep 1; done'
rt() { ns runc --root "$work/runc" "$@"; }
# both_readable C: in container C, root reads db_pass and uid 1000 the
# key at /etc/app/key, each the stored value (compared by digest).
both_readable() {
    [ "$(rt exec "$1" /bin/busybox cat /run/secrets/db_pass | sha256sum | cut -c1-64)" = "$(digest "$db")" ] &&
        [ "$(rt exec --user 1000:1000 "$1" /bin/busybox cat /etc/app/key | sha256sum | cut -c1-64)" = "$(digest "$key")" ]
}
rt run -d --bundle "$work/c1" c1 >"$work/c1.out" 2>&1 </dev/null
check "a container started with its secrets" '[ "$(rt exec c1 /bin/busybox stat -c %u:%g:%a /etc/app/key)" = 1000:1000:440 ] &&
    both_readable c1' ||
    { sed 's/^/# /' "$work/c1.out"; cat "$work/c1.hookerr" 2>/dev/null | sed 's/^/# hook: /'; }
# The agent runs under the unit's UMask=0077: the view's directories must
# not come out 0700 (/run/secrets is one of them).
check "a user other than root reads its /run/secrets file" \
    '[ "$(rt exec --user 1000:1000 c1 /bin/busybox cat /run/secrets/db_pass | sha256sum | cut -c1-64)" = "$(digest "$db")" ]'
# How many fds systemd keeps for the unit: one view per running container.
stored_count() { ns systemctl show -p NFileDescriptorStore --value secretshimd; }
agent_log() { ns cat /run/secretshimd-test.log; }
check "its view is kept in systemd's fd store" '[ "$(stored_count)" = 1 ]'

# Restart: the new agent, in a new sandbox (a new mount namespace). A
# restart job keeps the unit's fd store (seen with systemd 252: its
# resources are released only once the unit is inactive with no job
# pending), so the view comes back from there, and stays stored.
ns systemctl restart secretshimd
check "systemctl restart: active again" 'wait_state active'
check "re-adopted across the restart" '[ "$(ctl task ls --format json | grep -c "\"c1\"")" = 1 ]'
check "systemctl restart: re-adopted from the fd store, which it keeps" \
    'agent_log | grep -qF "container \"c1\": re-adopted secrets db_pass,api_key from the fd store" &&
     [ "$(stored_count)" = 1 ]'
check "re-adopted: both targets still readable" 'both_readable c1'
# Stop, then start: systemd empties the fd store of a stopped unit. The new
# agent enters the container's namespace to re-adopt the view through its
# mounts (proven ours by the device), and cannot store it again.
ns systemctl stop secretshimd
ns systemctl start secretshimd
check "systemctl stop, start: active again" 'wait_state active'
check "after a stop, re-adopted through its mounts (the fd store was emptied)" \
    'agent_log | grep -qF "container \"c1\": re-adopted secrets db_pass,api_key from its mounts in the container" &&
     [ "$(stored_count)" = 0 ]'
check "re-adopted through its mounts: both targets still readable" 'both_readable c1'
rt kill c1 KILL
tasks_empty() {
    i=0
    while [ $i -lt 100 ]; do
        [ "$(ctl task ls --format json | tr -d ' \n')" = "[]" ] && return 0
        sleep 0.05; i=$((i + 1))
    done
    return 1
}
check "the re-adopted view is flushed when the container exits" tasks_empty
rt delete -f c1 >/dev/null 2>&1

# A crash: `systemctl kill -s KILL`, and Restart=on-failure starts the agent
# again while systemd keeps the fd store. The new agent takes the running
# container's view back from there, entering no container.
main_pid() { ns systemctl show -p MainPID --value secretshimd; }
substate() { ns systemctl show -p SubState --value secretshimd; }
wait_down() {  # the agent died; systemd waits RestartSec before the restart
    i=0
    while [ $i -lt 100 ]; do [ "$(substate)" = auto-restart ] && return 0; sleep 0.05; i=$((i + 1)); done
    return 1
}
wait_back() {  # wait_back OLD_PID: active again, another process
    i=0
    while [ $i -lt 300 ]; do
        [ "$(state)" = active ] && [ "$(main_pid)" != "$1" ] && return 0
        sleep 0.1; i=$((i + 1))
    done
    return 1
}
# record_field ID FIELD: a field of container ID's task record; nothing
# once the record is gone.
record_field() {
    ns python3 -c 'import glob, json, sys
for f in glob.glob("/run/secretshim/tasks/*.task"):
    r = json.load(open(f))
    if r["id"] == sys.argv[1]: print(json.dumps(r[sys.argv[2]]))' "$1" "$2"
}
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
    'agent_log | grep -qF "container \"c2\": re-adopted secrets db_pass,api_key from the fd store" &&
     agent_log | grep -qF "container \"c4\": re-adopted secrets db_pass from the fd store" && [ "$(stored_count)" = 2 ]'
check "crash: every target still readable" 'both_readable c2 &&
    [ "$(rt exec c4 /bin/busybox cat /run/secrets/db_pass | sha256sum | cut -c1-64)" = "$(digest "$db")" ]'
rt kill c4 KILL
check "crash: the locked view taken back is flushed when its container exits" \
    'i=0; while [ "$(stored_count)" != 1 ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
     [ "$(ctl task ls --format json | grep -c "\"c4\"")" = 0 ] &&
     agent_log | grep -qF "container \"c4\": exited, secrets flushed in "'
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
    'agent_log | grep -qF "container \"c3\": exited while the agent was down; its secrets were wiped (2 files)"'
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
    'agent_log | grep -qE "the fd store.s entry \"[0-9a-f]{64}\" belongs to no task: its view was wiped \(1 file\)" &&
     [ "$(stored_count)" = 0 ] &&
     [ -z "$(rt exec c5 /bin/busybox cat /run/secrets/db3 2>/dev/null)" ]'
rt delete -f c5 >/dev/null 2>&1

ns systemctl stop secretshimd
check "systemctl stop: inactive, not failed (STOPPING=1, exit 0)" '[ "$(state)" = inactive ]'
check "stop removes the socket, keeps the task records (RuntimeDirectoryPreserve)" '! ns test -e /run/secretshim/agent.sock && ns test -d /run/secretshim/tasks'

[ "$failures" = 0 ] || ns cat /run/secretshimd-test.log | sed 's/^/# agent: /'
echo "$failures failed"
[ "$failures" = 0 ]
