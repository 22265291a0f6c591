#!/bin/sh
# The Debian package, built and checked for real: dpkg-buildpackage from the
# tree (scripts/build-deb.sh), lintian (no errors), the file list of the
# package extracted into a throwaway root, the conffile, the hooks.d JSON,
# `systemd-analyze verify` and `security` on the packaged unit, and then
# the packaged unit run by a real systemd (PID 1 of a throwaway PID and
# mount namespace) with the packaged programs at their packaged paths:
# Type=notify readiness, the sandbox as the kernel sees it, a runc
# container served through it, re-adoption across `systemctl restart`.
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
        ns runc --root "$work/runc" delete -f c1 >/dev/null 2>&1
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
# The agent's log (no journald here): the only addition to the unit.
mkdir "$units/secretshimd.service.d"
printf '[Service]\nStandardError=append:/run/secretshimd-test.log\n' >"$units/secretshimd.service.d/log.conf"
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
rt run -d --bundle "$work/c1" c1 >"$work/c1.out" 2>&1 </dev/null
check "a container started with its secrets" '[ "$(rt exec c1 /bin/busybox stat -c %u:%g:%a /etc/app/key)" = 1000:1000:440 ] &&
    [ "$(rt exec --user 1000:1000 c1 /bin/busybox cat /etc/app/key | sha256sum | cut -c1-64)" = "$(digest "$key")" ] &&
    [ "$(rt exec c1 /bin/busybox cat /run/secrets/db_pass | sha256sum | cut -c1-64)" = "$(digest "$db")" ] &&
    true' ||
    { sed 's/^/# /' "$work/c1.out"; cat "$work/c1.hookerr" 2>/dev/null | sed 's/^/# hook: /'; }
# The agent runs under the unit's UMask=0077: the view's directories must
# not come out 0700 (/run/secrets is one of them).
check "a user other than root reads its /run/secrets file" \
    '[ "$(rt exec --user 1000:1000 c1 /bin/busybox cat /run/secrets/db_pass | sha256sum | cut -c1-64)" = "$(digest "$db")" ]'

# Restart: the new agent, in a new sandbox (a new mount namespace), enters
# the container's namespace to re-adopt the view.
ns systemctl restart secretshimd
check "systemctl restart: active again" 'wait_state active'
check "re-adopted across the restart" '[ "$(ctl task ls --format json | grep -c "\"c1\"")" = 1 ]'
check "re-adopted: both targets still readable" '[ "$(rt exec c1 /bin/busybox cat /run/secrets/db_pass | sha256sum | cut -c1-64)" = "$(digest "$db")" ] &&
    [ "$(rt exec --user 1000:1000 c1 /bin/busybox cat /etc/app/key | sha256sum | cut -c1-64)" = "$(digest "$key")" ]'
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

ns systemctl stop secretshimd
check "systemctl stop: inactive, not failed (STOPPING=1, exit 0)" '[ "$(state)" = inactive ]'
check "stop removes the socket, keeps the task records (RuntimeDirectoryPreserve)" '! ns test -e /run/secretshim/agent.sock && ns test -d /run/secretshim/tasks'

[ "$failures" = 0 ] || ns cat /run/secretshimd-test.log | sed 's/^/# agent: /'
echo "$failures failed"
[ "$failures" = 0 ]
