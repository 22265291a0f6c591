# Shared by the package tests (deb_test.sh, lifecycle_test.sh); sourced,
# POSIX sh. They set src, build and work (a fresh directory), then call
# pkg_setup; it installs the cleanup on exit.
#
# What lives here: the checks' output (ok, bad, check), random markers,
# building or reusing the package, a real systemd as PID 1 of a throwaway
# PID, mount and cgroup namespace (sd_start), commands run in it (ns), and
# the helpers that talk to the agent under it and to runc containers.
# Secret values are random markers compared in the shell, never printed.

failures=0
sd_pid=
cgroups=""
# Containers (runc ids under $work/runc) and cleanup hooks of the test.
rt_ids=""
pkg_cleanup_hooks=""

pkg_setup() {
    [ "$(id -u)" = 0 ] || { echo "SKIP: needs root"; exit 77; }
    for tool in "$@" unshare nsenter python3 runc; do
        command -v "$tool" >/dev/null || { echo "SKIP: $tool not installed"; exit 77; }
    done
    [ -x /lib/systemd/systemd ] || { echo "SKIP: systemd not installed"; exit 77; }
    trap pkg_cleanup EXIT
    trap "exit 1" INT TERM HUP PIPE
}

pkg_cleanup() {
    for h in $pkg_cleanup_hooks; do "$h"; done
    if [ -n "$sd_pid" ]; then
        for c in $rt_ids; do ns runc --root "$work/runc" delete -f "$c" >/dev/null 2>&1; done
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

ok() { echo "ok - $1"; }
bad() { echo "FAIL - $1"; failures=$((failures + 1)); }
check() { if eval "$2"; then ok "$1"; else bad "$1"; return 1; fi; }
marker() { head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
digest() { printf %s "$1" | sha256sum | cut -c1-64; }
finish() {
    echo "$failures failed"
    [ "$failures" = 0 ]
}

# pkg_build: sets deb to the package built from $src into $work/out, or to
# a copy of SECRETSHIM_DEB=FILE (an already built package: development).
# The packaging tests share one build of the same tree: it is kept in
# $build/packaging-deb with a digest of every file of the tree (tracked and
# new ones, as scripts/build-deb.sh takes them), and built again when one
# changed. Outside a git checkout it is built every time.
pkg_tree_digest() {
    git -C "$src" rev-parse --is-inside-work-tree >/dev/null 2>&1 || return 1
    (cd "$src" && git ls-files -z --cached --others --exclude-standard |
        xargs -0 sh -c 'for f; do [ -f "$f" ] && printf "%s\0" "$f"; done' sh | xargs -0 sha256sum | sha256sum)
}
pkg_build() {
    start=$(date +%s)
    cache=$build/packaging-deb
    mkdir -p "$work/out"
    if [ -n "${SECRETSHIM_DEB:-}" ]; then
        cp "$SECRETSHIM_DEB" "$work/out/"
    elif pkg_tree=$(pkg_tree_digest) && [ "$(cat "$cache/tree" 2>/dev/null)" = "$pkg_tree" ]; then
        cp "$cache"/out/* "$work/out/"
        echo "# the package of this very tree, built by an earlier packaging test"
    elif ! sh "$src/scripts/build-deb.sh" "$work/out" >"$work/build.out" 2>&1; then
        cat "$work/build.out"
        echo "FAIL - the package builds"
        exit 1
    elif [ -n "${pkg_tree:-}" ]; then
        rm -rf "$cache" && mkdir -p "$cache/out" && cp "$work"/out/* "$cache/out/" && echo "$pkg_tree" >"$cache/tree"
    fi
    echo "# package built in $(($(date +%s) - start)) s"
    # Debian's flags (_FORTIFY_SOURCE=2, ...) may raise warnings the project's
    # build does not: listed here, not fatal (packaging/debian/rules).
    grep -h ': warning: ' "$work"/out/*_build.log 2>/dev/null | sort -u | sed 's/^/# compiler: /'
    deb=$(ls "$work"/out/secretshim_*.deb) || { echo "FAIL - no secretshim_*.deb"; exit 1; }
    ok "the package builds: $(basename "$deb")"
}

# ns CMD...: runs CMD in the namespaces of the systemd that sd_start
# started; before that, in ns_before (a function of the test), if any.
ns() {
    if [ -n "$sd_pid" ]; then
        nsenter -t "$sd_pid" -m -p "$@"
    else
        ns_before "$@"
    fi
}

# sd_start ROOT_SETUP: systemd as PID 1 of a new PID namespace, in a new
# mount namespace where the shell code ROOT_SETUP ran first (it makes the
# root the test wants: overlays, a fresh /run), with cgroup trees of its
# own below ours (a cgroup namespace). It loads units only from
# $work/units (SYSTEMD_UNIT_PATH; sd_unit_path, if set, instead) and starts
# secretshim-test.target, which the test writes there, so no host service
# starts. Sets sd_pid.
sd_start() {
    # v1 hierarchies (a hybrid host like this VM) are mounted again inside;
    # on a pure cgroup2 host systemd gets the cgroup2 tree.
    hierarchies=$(awk '$3 == "cgroup" {print $2 " " $4}' /proc/self/mounts)
    for t in sysinit basic shutdown multi-user; do
        [ -e "$work/units/$t.target" ] || printf '[Unit]\nDescription=stub\n' >"$work/units/$t.target"
    done
    cat >"$work/boot.sh" <<EOF
set -e
$1
if [ -n "$hierarchies" ]; then
    mount -t tmpfs -o mode=0755 tmpfs /sys/fs/cgroup
    echo "$hierarchies" | while read -r dir opts; do
        mkdir -p "\$dir"
        mount -t cgroup -o "\$opts" cgroup "\$dir"
    done
else
    mount -t cgroup2 cgroup2 /sys/fs/cgroup
fi
exec env -i container=secretshim-test SYSTEMD_UNIT_PATH=${sd_unit_path:-$work/units} PATH=/usr/sbin:/usr/bin:/sbin:/bin \\
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
        finish; exit 1
    fi
    ok "systemd started in a throwaway namespace (pid $sd_pid)"
}

# dev_script ROOT: shell code for sd_start that mounts a private /dev at
# ROOT/dev (a tmpfs with the usual nodes bound from the host's, its own
# devpts): journald makes /dev/log there, not on the host.
dev_script() {
    cat <<EOF
mkdir -p $work/host-dev && mount --bind /dev $work/host-dev
mount -t tmpfs -o mode=0755,nosuid tmpfs $1/dev
for d in null zero full random urandom tty; do touch $1/dev/\$d; mount --bind $work/host-dev/\$d $1/dev/\$d; done
umount $work/host-dev
mkdir $1/dev/pts $1/dev/shm
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts $1/dev/pts
ln -s pts/ptmx $1/dev/ptmx
ln -s /proc/self/fd $1/dev/fd
mount -t tmpfs -o mode=1777 tmpfs $1/dev/shm
EOF
}

# journald_units [UNIT...]: journald's units (the host's) in $work/units,
# and the test's target, which wants journald and the units named.
journald_units() {
    mkdir -p "$work/units"
    for u in systemd-journald.service systemd-journald.socket systemd-journald-dev-log.socket; do
        cp "/lib/systemd/system/$u" "$work/units/"
    done
    printf '[Unit]\nDescription=secretshim package test\nWants=systemd-journald.service %s\n' "$*" \
        >"$work/units/secretshim-test.target"
}
# agent_log: the agent's messages in the journal, every start of the unit.
# journald reads the service's stderr asynchronously: log_has [-E] TEXT
# polls for a line (fixed text, or an extended regex with -E), up to 5 s.
agent_log() { ns journalctl -q -o cat -u secretshimd.service; }
log_has() {
    mode=-F
    [ "$1" = -E ] && { mode=-E; shift; }
    i=0
    while [ $i -lt 50 ]; do
        agent_log | grep -q $mode -- "$1" && return 0
        sleep 0.1; i=$((i + 1))
    done
    return 1
}

# The agent's unit under that systemd.
state() { ns systemctl show -p ActiveState --value secretshimd 2>/dev/null; }
main_pid() { ns systemctl show -p MainPID --value secretshimd; }
substate() { ns systemctl show -p SubState --value secretshimd; }
wait_state() {
    i=0
    while [ $i -lt 300 ]; do
        [ "$(state)" = "$1" ] && return 0
        sleep 0.1; i=$((i + 1))
    done
    return 1
}
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
# How many fds systemd keeps for the unit: one view per running container.
stored_count() { ns systemctl show -p NFileDescriptorStore --value secretshimd; }
ctl() { ns secretshimctl "$@"; }
rt() { ns runc --root "$work/runc" "$@"; }
tasks_empty() {
    i=0
    while [ $i -lt 100 ]; do
        [ "$(ctl task ls --format json | tr -d ' \n')" = "[]" ] && return 0
        sleep 0.05; i=$((i + 1))
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
# both_readable C: in container C, root reads db_pass and uid 1000 the
# key at /etc/app/key, each the stored value (compared by digest, with the
# markers in $db and $key).
both_readable() {
    [ "$(rt exec "$1" /bin/busybox cat /run/secrets/db_pass | sha256sum | cut -c1-64)" = "$(digest "$db")" ] &&
        [ "$(rt exec --user 1000:1000 "$1" /bin/busybox cat /etc/app/key | sha256sum | cut -c1-64)" = "$(digest "$key")" ]
}
