# containerd.sh: run a private containerd (the one on PATH: Debian 12's 1.6, or
# 1.7 from scripts/fetch-trixie.sh) with its CRI plugin for tests.
# POSIX sh, to be sourced:
#     . tests/integration/cri/containerd.sh
#     ctrd_init "$work"                          # variables below, mkdirs
#     ctrd_base_spec PACKAGED.json "$work/base-spec.json" HOOK AGENT_SOCK
#     ctrd_snippet PACKAGED.toml "$work/s.toml" BASE_SPEC [WRAPPER]   # optional
#     ctrd_write_config PAUSE_REF ["$work/s.toml"]
#     ctrd_start || exit 1
#     ctrd_restart                               # optional: containers keep running
#     ... images.sh "$work" "$CTRD_SOCK"; cri.py "$CTRD_SOCK" ...
#     ctrd_cleanup                               # in an EXIT trap
# Everything lives under WORK/containerd (root, state, sockets, runc state,
# logs in $CTRD_LOG); only the shims' sockets go to /run/containerd/s/.
# Nothing is ever killed by name: containerd by its pid, its shims by pid
# (found by the -address argument naming our socket).
# Keep WORK short: unix socket paths are limited to 107 bytes.

# ctrd_init WORK
ctrd_init() {
    CTRD_WORK=$(cd "$1" && pwd) || return 1
    CTRD_DIR=$CTRD_WORK/containerd
    CTRD_SOCK=$CTRD_DIR/containerd.sock
    CTRD_CONFIG=$CTRD_DIR/config.toml
    CTRD_LOG=$CTRD_DIR/containerd.log
    CTRD_RUNC_ROOT=$CTRD_DIR/runc     # the shim adds /<namespace>
    CTRD_PID=
    CTRD_MADE_RUN_DIR=
    CTRD_MADE_CGROUPS=
    mkdir -p "$CTRD_DIR/cni-bin" "$CTRD_DIR/cni-conf" "$CTRD_RUNC_ROOT"
}

# ctrd_base_spec SRC DEST HOOK SOCK: a copy of the packaged base spec
# (build/packaging/containerd/base-spec.json) whose hooks run HOOK (this
# build's) with `--socket SOCK` (the agent's) after argv[0].
ctrd_base_spec() {
    /usr/bin/python3 - "$@" <<'PY'
import json, sys
spec = json.load(open(sys.argv[1]))
for stage in ("createRuntime", "poststop"):
    h = spec["hooks"][stage][0]
    h["path"] = sys.argv[3]
    h["args"] = h["args"][:1] + ["--socket", sys.argv[4]] + h["args"][1:]
json.dump(spec, open(sys.argv[2], "w"))
PY
}

# ctrd_snippet SRC DEST BASE_SPEC [WRAPPER]: a copy of the packaged CRI
# snippet (build/packaging/containerd/secretshim.toml) naming BASE_SPEC
# and WRAPPER instead of the installed files (as containerd_e2e.sh does).
ctrd_snippet() {
    sed -e "s|\"[^\"]*/secretshim/containerd/base-spec.json\"|\"$3\"|" \
        -e "s|\"[^\"]*/secretshim/secretshim-runtime-cri\"|\"${4:-/nonexistent/secretshim-runtime-cri}\"|" "$1" >"$2"
}

# ctrd_write_config PAUSE_REF [SNIPPET]: $CTRD_CONFIG, with SNIPPET appended
# the way the packaged file says. Every runtime handler the snippet defines
# gets options.Root = $CTRD_RUNC_ROOT (so runc's state stays under WORK).
# CTRD_DISABLE_CGROUP=true sets the CRI plugin's disable_cgroup;
# CTRD_IMPORT=FILE makes FILE a drop-in (config.toml's imports).
ctrd_write_config() {
    _imports=
    [ -z "${CTRD_IMPORT:-}" ] || _imports="imports = [\"$CTRD_IMPORT\"]"
    cat >"$CTRD_CONFIG" <<EOF
$_imports
version = 2
root = "$CTRD_DIR/root"
state = "$CTRD_DIR/state"
[grpc]
  address = "$CTRD_SOCK"
[ttrpc]
  address = "$CTRD_SOCK.ttrpc"
[debug]
  address = "$CTRD_SOCK.debug"
[plugins."io.containerd.internal.v1.opt"]
  path = "$CTRD_DIR/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$1"
  # Root here lacks CAP_SYS_RESOURCE: without this, RunPodSandbox fails
  # ("can't get final child's PID from pipe: EOF").
  restrict_oom_score_adj = true
  disable_cgroup = ${CTRD_DISABLE_CGROUP:-false}
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CTRD_DIR/cni-bin"
    conf_dir = "$CTRD_DIR/cni-conf"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
    Root = "$CTRD_RUNC_ROOT"
EOF
    [ -n "${2:-}" ] || return 0
    # Two passes: a Root line after each options table the snippet has, and
    # an options table for each handler that has none.
    awk -v root="$CTRD_RUNC_ROOT" '
        function handler(line,   s) {
            s = line; sub(/^[ \t]*\[plugins\."io\.containerd\.grpc\.v1\.cri"\.containerd\.runtimes\./, "", s)
            sub(/\][ \t]*$/, "", s); return s
        }
        /^[ \t]*\[plugins\."io\.containerd\.grpc\.v1\.cri"\.containerd\.runtimes\.[^].]+\][ \t]*$/ {
            if (NR == FNR) { h[handler($0)] = 1; order[++n] = handler($0) }
        }
        /^[ \t]*\[plugins\."io\.containerd\.grpc\.v1\.cri"\.containerd\.runtimes\.[^].]+\.options\][ \t]*$/ {
            name = handler($0); sub(/\.options$/, "", name)
            if (NR == FNR) { opts[name] = 1; next }
            print; print "    Root = \"" root "\""; next
        }
        NR == FNR { next }
        { print }
        END {
            for (i = 1; i <= n; i++) if (!(order[i] in opts)) {
                print ""
                print "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes." order[i] ".options]"
                print "  Root = \"" root "\""
            }
        }' "$2" "$2" >>"$CTRD_CONFIG"
}

# ctrd_start: containerd in the background (its environment is ours);
# waits for the socket. Sets CTRD_PID.
ctrd_start() {
    [ -d /run/containerd ] || CTRD_MADE_RUN_DIR=1
    # containerd's cgroupsPath is /<namespace>/<id>: runc makes those cgroups
    # in every hierarchy; remember which namespace parents we will make
    # (added to, so that a restart does not forget the first start's).
    for _g in /sys/fs/cgroup/*/; do
        for _n in k8s.io default; do
            [ -d "${_g}$_n" ] || CTRD_MADE_CGROUPS="$CTRD_MADE_CGROUPS ${_g}$_n"
        done
    done
    containerd --config "$CTRD_CONFIG" >>"$CTRD_LOG" 2>&1 &
    CTRD_PID=$!
    _i=0
    until ctr -a "$CTRD_SOCK" version >/dev/null 2>&1; do
        _i=$((_i + 1))
        if [ $_i -gt 200 ] || ! _ctrd_alive "$CTRD_PID"; then
            echo "containerd did not start; log tail:" >&2
            tail -5 "$CTRD_LOG" >&2
            return 1
        fi
        sleep 0.05
    done
}

# ctrd_restart: containerd alone stopped (SIGTERM, by pid) and started
# again, as a service restart does: its shims and containers keep running.
ctrd_restart() {
    if [ -n "$CTRD_PID" ]; then
        kill -TERM "$CTRD_PID" 2>/dev/null
        _ctrd_wait_gone 10 "$CTRD_PID" || kill -KILL "$CTRD_PID" 2>/dev/null
        wait "$CTRD_PID" 2>/dev/null
        CTRD_PID=
    fi
    ctrd_start
}

# _ctrd_alive PID: the process exists and is not a zombie.
_ctrd_alive() {
    [ -r "/proc/$1/stat" ] || return 1
    case $(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null) in Z*|X*|"") return 1 ;; esac
    return 0
}

# _ctrd_wait_gone SECONDS PID...: poll until the processes are gone.
_ctrd_wait_gone() {
    _n=$(($1 * 20)); shift
    while [ $_n -gt 0 ]; do
        _left=
        for _p in "$@"; do _ctrd_alive "$_p" && _left="$_left $_p"; done
        [ -n "$_left" ] || return 0
        sleep 0.05; _n=$((_n - 1))
    done
    return 1
}

# ctrd_shims: pids of the shims of this containerd (their -address names
# our socket).
ctrd_shims() {
    for _d in /proc/[0-9]*; do
        _c=$({ tr '\0' ' ' <"$_d/cmdline"; } 2>/dev/null) || continue
        case " $_c" in *" -address $CTRD_SOCK "*) echo "${_d#/proc/}" ;; esac
    done
}

# ctrd_stop: delete every task through containerd (poststop hooks run,
# shims exit), stop containerd by pid, kill leftover shims by pid, force-
# delete leftover runc containers of our runc root, remove their shim
# sockets, unmount everything left under WORK.
ctrd_stop() {
    [ -n "${CTRD_DIR:-}" ] || return 0
    _tasks=$CTRD_DIR/state/io.containerd.runtime.v2.task
    _addrs=$(cat "$_tasks"/*/*/address 2>/dev/null)
    _ids=$(cd "$_tasks" 2>/dev/null && ls -d -- */* 2>/dev/null)  # NS/ID
    if [ -n "$CTRD_PID" ] && _ctrd_alive "$CTRD_PID"; then
        for _ns in $(ctr -a "$CTRD_SOCK" namespaces ls -q 2>/dev/null); do
            for _t in $(ctr -a "$CTRD_SOCK" -n "$_ns" tasks ls -q 2>/dev/null); do
                ctr -a "$CTRD_SOCK" -n "$_ns" tasks delete -f "$_t" >/dev/null 2>&1
            done
            for _t in $(ctr -a "$CTRD_SOCK" -n "$_ns" containers ls -q 2>/dev/null); do
                ctr -a "$CTRD_SOCK" -n "$_ns" containers delete "$_t" >/dev/null 2>&1
            done
        done
    fi
    _shims=$(ctrd_shims)
    if [ -n "$CTRD_PID" ]; then
        kill -TERM "$CTRD_PID" 2>/dev/null
        _ctrd_wait_gone 10 "$CTRD_PID" || kill -KILL "$CTRD_PID" 2>/dev/null
        wait "$CTRD_PID" 2>/dev/null
        CTRD_PID=
    fi
    if [ -n "$_shims" ]; then
        # shellcheck disable=SC2086
        _ctrd_wait_gone 2 $_shims || {
            for _p in $_shims; do kill -TERM "$_p" 2>/dev/null; done
            _ctrd_wait_gone 3 $_shims || for _p in $_shims; do kill -KILL "$_p" 2>/dev/null; done
            _ctrd_wait_gone 3 $_shims
        }
    fi
    for _ns_dir in "$CTRD_RUNC_ROOT"/*; do
        [ -d "$_ns_dir" ] || continue
        for _id in $(runc --root "$_ns_dir" list -q 2>/dev/null); do
            runc --root "$_ns_dir" delete --force "$_id" >/dev/null 2>&1
        done
    done
    for _a in $_addrs; do
        _s=${_a#unix://}
        case $_s in /run/containerd/s/*) [ -S "$_s" ] && rm -f "$_s" ;; esac
    done
    if [ -n "$CTRD_MADE_RUN_DIR" ]; then
        rmdir /run/containerd/s /run/containerd 2>/dev/null
    fi
    # Cgroups of containers that runc could not delete, then the parents
    # we made (rmdir only removes empty cgroups).
    for _i in $_ids; do
        for _g in /sys/fs/cgroup/*/; do
            [ ! -d "${_g}${_i}" ] || rmdir "${_g}${_i}" 2>/dev/null
        done
    done
    for _g in $CTRD_MADE_CGROUPS; do [ ! -d "$_g" ] || rmdir "$_g" 2>/dev/null; done
    CTRD_MADE_CGROUPS=
    ctrd_unmount "$CTRD_WORK"
}

# ctrd_unmount DIR: unmount every mount at or below DIR (deepest first).
ctrd_unmount() {
    for _try in 1 2 3 4 5; do
        _m=$(awk -v d="$1" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r)
        [ -n "$_m" ] || return 0
        for _p in $_m; do umount "$_p" 2>/dev/null || umount -l "$_p" 2>/dev/null; done
    done
    echo "ctrd_unmount: still mounted under $1" >&2
    return 1
}

# ctrd_cleanup: ctrd_stop, then remove WORK.
ctrd_cleanup() {
    [ -n "${CTRD_WORK:-}" ] || return 0
    ctrd_stop
    rm -rf "$CTRD_WORK"
    CTRD_WORK="" CTRD_DIR=""
}
