#!/bin/sh
# containerd 1.6 end to end, on a private containerd (its own root, state
# and socket under a temp dir, started and killed by pid):
#  * the packaged CRI snippets load: the config fragment is imported, the
#    CRI plugin loads the base spec (and refuses a broken one);
#  * the runtime wrapper, as `ctr run --runc-binary`, delivers secrets with
#    runc and with crun, only to containers that ask, and flushes them;
#  * the same container id in two containerd namespaces at once: each
#    gets its own secret, and stopping one leaves the other's intact;
#  * the wrapper's own errors: one line, config.json untouched.
# Usage: containerd_e2e.sh BUILD_DIR
# Secret values are random markers compared as SHA-256 digests, never printed.
set -u
. "$(dirname "$0")/lib.sh"
build=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
scripts=$(cd "$here/../../scripts" && pwd)
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root"; exit 77; }
for t in containerd ctr umoci runc; do
    command -v $t >/dev/null || { echo "SKIP: $t not installed"; exit 77; }
done

hook=$build/plugin/secretshim-hook
wrapper=$build/plugin/secretshim-runtime
work=$(mktemp -d /tmp/secretshim-containerd-XXXXXX)
sock=$work/agent.sock
csock=$work/containerd.sock
image=localhost/secretshim-busybox:latest
agent_state=$work/agent-state  # $work/state is containerd's
cd_pid=
ids=""
twin=twin-$$  # the id run in two namespaces at once (section 4)

c() { ctr --address "$csock" "$@"; }
stop_containerd() {
    [ -n "$cd_pid" ] || return 0
    kill "$cd_pid" 2>/dev/null
    wait "$cd_pid" 2>/dev/null
    cd_pid=
}
cleanup() {
    if [ -n "$cd_pid" ]; then
        for id in $ids; do c task kill -s KILL "$id" >/dev/null 2>&1; c task delete -f "$id" >/dev/null 2>&1; c container delete "$id" >/dev/null 2>&1; done
        for ns in ns1 ns2; do
            c -n $ns task kill -s KILL "$twin" >/dev/null 2>&1; c -n $ns task delete -f "$twin" >/dev/null 2>&1
            c -n $ns container delete "$twin" >/dev/null 2>&1
        done
    fi
    rmdir /run/containerd/runc/ns1 /run/containerd/runc/ns2 2>/dev/null  # runc's state dirs of those namespaces, if empty
    stop_containerd
    stop_agent
    remove_work  # containerd's snapshots and shim mounts below $work
}
trap cleanup EXIT
trap "exit 1" INT TERM HUP PIPE  # so that cleanup runs on a signal too
view_grep='" secretshim " /proc/self/mountinfo'  # for no_view_mounts: $work holds containerd's own mounts

# start_containerd CONFIG: a private containerd, its environment telling
# the wrapper (started by the shim) where the hook and the agent are.
start_containerd() {
    SECRETSHIM_HOOK=$hook SECRETSHIM_SOCKET=$sock containerd --config "$1" >>"$work/containerd.log" 2>&1 &
    cd_pid=$!
    i=0
    while ! c version >/dev/null 2>&1; do
        i=$((i + 1))
        [ $i -lt 200 ] && kill -0 "$cd_pid" 2>/dev/null || return 1
        sleep 0.05
    done
}
# write_config FILE [SNIPPET]: root, state and sockets under $work, a CRI
# section as an admin's config.toml has one (a runc handler), and the
# snippet appended the way the packaged file says.
write_config() {
    cat >"$1" <<CONF
version = 2
root = "$work/root"
state = "$work/state"
[grpc]
  address = "$csock"
[ttrpc]
  address = "$csock.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  disable_cgroup = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$work/cni-bin"
    conf_dir = "$work/cni-conf"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
CONF
    [ -z "${2:-}" ] || cat "$2" >>"$1"
}

# --- 1. The packaged CRI snippets.
snippet=$build/packaging/containerd/secretshim.toml
base_spec=$build/packaging/containerd/base-spec.json
check "base spec: valid JSON, our hooks at createRuntime and poststop" 'python3 - "$base_spec" <<PY
import json, sys
d = json.load(open(sys.argv[1]))
h = d["hooks"]
ok = d["ociVersion"].startswith("1.") and d["root"]["path"] == "rootfs" and "cgroupsPath" not in d["linux"]
for stage in ("createRuntime", "poststop"):
    e = h[stage][0]
    ok = ok and len(h[stage]) == 1 and e["path"].endswith("/secretshim/secretshim-hook") and e["path"].startswith("/")
    ok = ok and e["args"] == ["secretshim-hook", "--integration", "containerd-cri", stage] and e["timeout"] > 0
sys.exit(0 if ok and set(h) == {"createRuntime", "poststop"} else 1)
PY'
# A copy naming this build's files instead of the installed ones (the
# wrapper under its CRI name, as meson installs the link).
ln -s "$wrapper" "$work/secretshim-runtime-cri"
sed -e "s|\"[^\"]*/secretshim/containerd/base-spec.json\"|\"$base_spec\"|" \
    -e "s|\"[^\"]*/secretshim/secretshim-runtime-cri\"|\"$work/secretshim-runtime-cri\"|" "$snippet" >"$work/secretshim.toml"
check "snippet copy differs from the packaged one only in paths" '[ "$(diff "$snippet" "$work/secretshim.toml" | grep -c "^>")" = 2 ]'
write_config "$work/config.toml" "$work/secretshim.toml"
containerd --config "$work/config.toml" config dump >"$work/dump.toml" 2>"$work/dump.err"
check "containerd config dump: the snippet appended, the rest of the CRI section kept" \
    'grep -qF "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]" "$work/dump.toml" &&
     grep -qF "disable_cgroup = true" "$work/dump.toml" &&
     grep -qF "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.secretshim]" "$work/dump.toml" &&
     grep -qF "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.secretshim-wrapper.options]" "$work/dump.toml" &&
     grep -qF "BinaryName = \"$work/secretshim-runtime-cri\"" "$work/dump.toml" &&
     grep -qF "base_runtime_spec = \"$base_spec\"" "$work/dump.toml" &&
     [ "$(grep -cF "pod_annotations = [\"io.secretshim.*\"]" "$work/dump.toml")" = 2 ]' || cat "$work/dump.err"
# The CRI plugin loads every handler's base spec at start: broken, it fails.
echo '{"ociVersion": ' >"$work/broken-spec.json"
sed "s|\"$base_spec\"|\"$work/broken-spec.json\"|" "$work/secretshim.toml" >"$work/broken.toml"
write_config "$work/config-broken.toml" "$work/broken.toml"
start_containerd "$work/config-broken.toml"
check "a broken base spec fails containerd's CRI plugin (so the check below can fail)" \
    'c plugins ls | grep -E "io.containerd.grpc.v1 +cri " | grep -q error'
stop_containerd
start_containerd "$work/config.toml" || { cat "$work/containerd.log"; exit 1; }
check "containerd's CRI plugin loads our snippet and base spec" \
    'c plugins ls | grep -E "io.containerd.grpc.v1 +cri " | grep -qw ok' || c plugins ls | grep cri

# --- 2. An image from busybox-static, built with umoci.
mkdir -p "$work/cni-bin" "$work/cni-conf"
umoci init --layout "$work/oci" && umoci new --image "$work/oci:latest" &&
    umoci unpack --image "$work/oci:latest" "$work/unpacked" >/dev/null &&
    mkdir -p "$work/unpacked/rootfs/bin" "$work/unpacked/rootfs/etc" &&
    cp /bin/busybox "$work/unpacked/rootfs/bin/busybox" && ln -s busybox "$work/unpacked/rootfs/bin/sh" &&
    umoci repack --image "$work/oci:latest" "$work/unpacked" &&
    umoci config --image "$work/oci:latest" --config.cmd /bin/sh &&
    (cd "$work/oci" && tar -cf "$work/image.tar" .) &&
    c images import --base-name localhost/secretshim-busybox "$work/image.tar" >/dev/null
check "image built with umoci and imported" 'c images ls -q | grep -qx "$image"'

start_agent
db=$(marker); api=$(marker)
printf %s "$db" | ctl secret create db_pass - --grant root >/dev/null
printf %s "$api" | ctl secret create api_key - --grant root >/dev/null

# crun 1.8 refuses this VM's hybrid cgroup layout: the wrapper's real
# runtime is crun in a private mount namespace without cgroup2 (docs/platform-notes.md).
cat >"$work/crun" <<'SH'
#!/bin/sh
exec unshare -m --propagation private sh -c 'umount -l /sys/fs/cgroup/unified 2>/dev/null; exec crun --cgroup-manager=disabled "$@"' sh "$@"
SH
cat >"$work/wrapper-crun" <<SH
#!/bin/sh
SECRETSHIM_RUNTIME=$work/crun exec "$wrapper" "\$@"
SH
chmod +x "$work/crun" "$work/wrapper-crun"

# --- 3. ctr run through the wrapper, for runc and crun.
for rt in runc crun; do
    if [ $rt = crun ]; then
        command -v crun >/dev/null || { skip "crun via the wrapper: crun is not installed"; continue; }
        binary=$work/wrapper-crun
    else
        binary=$wrapper
    fi
    id=s-$rt; ids="$ids $id"
    out=$(c run --rm --runc-binary "$binary" \
          --annotation "io.secretshim.secrets=db_pass;source=api_key,target=/etc/app/key,uid=1000,mode=0400" \
          "$image" "$id" /bin/sh -c 'sha256sum /run/secrets/db_pass /etc/app/key | cut -c1-64;
              stat -c "%a %u" /run/secrets/db_pass /etc/app/key;
              grep -cE " (/run/secrets|/etc/app/key) ro,nosuid,nodev,noexec[, ]" /proc/self/mountinfo' 2>"$work/$id.err")
    rc=$?
    check "$rt via the wrapper: ctr run with the annotation succeeds" '[ $rc = 0 ]' || cat "$work/$id.err"
    check "$rt via the wrapper: /run/secrets/db_pass holds the secret" '[ "$(echo "$out" | sed -n 1p)" = "$(digest "$db")" ]'
    check "$rt via the wrapper: /etc/app/key holds the secret" '[ "$(echo "$out" | sed -n 2p)" = "$(digest "$api")" ]'
    check "$rt via the wrapper: owner, mode and mount flags" '[ "$(echo "$out" | sed -n 3,5p | tr "\n" " ")" = "444 0 400 1000 2 " ]'
    check "$rt via the wrapper: flushed after exit" tasks_empty

    # Detached: the bundle's config.json has our hooks; a container
    # without the annotation keeps its config.json as containerd wrote it.
    id=d-$rt; ids="$ids $id"
    c run -d --runc-binary "$binary" --annotation "io.secretshim.secrets=db_pass" "$image" "$id" /bin/sh -c 'sleep 100' >/dev/null 2>"$work/$id.err"
    bundle=$work/state/io.containerd.runtime.v2.task/default/$id
    check "$rt via the wrapper: hooks added to the annotated container's config.json, for --integration containerd" \
        'python3 -c "import json,sys; h=json.load(open(sys.argv[1]))[\"hooks\"]; a=h[\"createRuntime\"][-1][\"args\"]; sys.exit(0 if h[\"createRuntime\"][-1][\"path\"] == sys.argv[2] and h[\"poststop\"][-1][\"args\"][-1] == \"poststop\" and a[1:3] == [\"--integration\", \"containerd\"] else 1)" "$bundle/config.json" "$hook"'
    check "$rt via the wrapper: a running container is a task" '[ "$(ctl task ls --format json | grep -c "\"$id\"")" = 1 ]'
    c task kill -s KILL "$id" >/dev/null 2>&1
    check "$rt via the wrapper: killed, flushed" tasks_empty
    c task delete "$id" >/dev/null 2>&1; c container delete "$id" >/dev/null 2>&1

    id=n-$rt; ids="$ids $id"
    c run -d --runc-binary "$binary" "$image" "$id" /bin/sh -c 'sleep 100' >/dev/null 2>"$work/$id.err"
    bundle=$work/state/io.containerd.runtime.v2.task/default/$id
    check "$rt via the wrapper: no annotation, config.json has no hooks" \
        '[ -f "$bundle/config.json" ] && ! grep -q "\"hooks\"" "$bundle/config.json"'
    check "$rt via the wrapper: no annotation, no secrets mounted" \
        '[ "$(c task exec --exec-id e1 "$id" /bin/sh -c "grep -c \" /run/secrets \" /proc/self/mountinfo")" = 0 ]'
    c task kill -s KILL "$id" >/dev/null 2>&1; sleep 0.2
    c task delete "$id" >/dev/null 2>&1; c container delete "$id" >/dev/null 2>&1

    # A bad annotation: refused with the hook's one line, nothing left.
    id=b-$rt; ids="$ids $id"
    out=$(c run --rm --runc-binary "$binary" --annotation "io.secretshim.secrets=nope" "$image" "$id" /bin/sh -c 'echo RAN' 2>"$work/$id.err"); rc=$?
    check "$rt via the wrapper: bad annotation refused" '[ $rc != 0 ] && [ -z "$out" ]'
    check "$rt via the wrapper: the error names the secret and why" \
        'cat "$work/$id.err" "$work/agent.log" | tr -d "\\\\" | grep -qF "\"$id\": refused: secret \"nope\" is not granted to a container started by root (containerd)" ||
         tr -d "\\\\" <"$work/$id.err" | grep -qF "container $id: secret \"nope\" is not granted to a container started by root (containerd)"'
    echo "# ctr said: $(head -c 600 "$work/$id.err")"
    check "$rt via the wrapper: refused, no view and no task" 'no_view_mounts && tasks_empty'
    c container delete "$id" >/dev/null 2>&1
done

# --- 4. The same container id in two containerd namespaces at once, each
# asking for its own secret at the same target: two tasks, told apart by
# their bundles (.../io.containerd.runtime.v2.task/<namespace>/<id>).
# Stopping the one in ns2 (its exit, then its poststop at task delete)
# leaves ns1's secret intact; stopping ns1 flushes it. Before tasks were
# keyed by bundle, ns2's container was refused its secrets while ns1's ran,
# and its poststop flushed ns1's.
t1=$(marker); t2=$(marker)
printf %s "$t1" | ctl secret create twin_1 - --grant root >/dev/null
printf %s "$t2" | ctl secret create twin_2 - --grant root >/dev/null
for ns in ns1 ns2; do
    c -n $ns images import --base-name localhost/secretshim-busybox "$work/image.tar" >/dev/null
    c -n $ns run -d --runc-binary "$wrapper" --annotation "io.secretshim.secrets=source=twin_${ns#ns},target=mine" \
        "$image" "$twin" /bin/sh -c 'sleep 100' >/dev/null 2>"$work/$ns.err"
done
# What a container reads at /run/secrets/mine, as a digest.
mine() { c -n "$1" task exec --exec-id "r$2" "$twin" /bin/sh -c 'sha256sum /run/secrets/mine' 2>/dev/null | cut -c1-64; }
twins() { ctl task ls --format json | grep -c "\"id\": \"$twin\""; }
check "the same id in ns1 and ns2: both run, each reads its own secret" \
    '[ "$(mine ns1 1)" = "$(digest "$t1")" ] && [ "$(mine ns2 1)" = "$(digest "$t2")" ] && [ "$(twins)" = 2 ]' ||
    tr -d '\\' <"$work/ns2.err" | head -c 600
check "task ls --format json tells them apart by bundle" \
    'ctl task ls --format json | grep -qF "\"bundle\": \"$work/state/io.containerd.runtime.v2.task/ns1/$twin\"" &&
     ctl task ls --format json | grep -qF "\"bundle\": \"$work/state/io.containerd.runtime.v2.task/ns2/$twin\""'
c -n ns2 task kill -s KILL "$twin" >/dev/null 2>&1
one_twin() { [ "$(twins)" = 1 ]; }
check "ns2's container killed: its task flushed, ns1's kept" 'wait_for 2 one_twin'
c -n ns2 task delete "$twin" >/dev/null 2>&1  # runc delete: the poststop hook, with ns2's bundle
c -n ns2 container delete "$twin" >/dev/null 2>&1
sleep 0.3  # the hook does not wait for the agent: give its release time to arrive
check "ns2's container deleted (poststop ran): ns1's still reads its secret intact" \
    '[ "$(mine ns1 2)" = "$(digest "$t1")" ] && one_twin'
c -n ns1 task kill -s KILL "$twin" >/dev/null 2>&1
check "ns1's container killed: flushed, no view left" 'tasks_empty && no_view_mounts'
c -n ns1 task delete "$twin" >/dev/null 2>&1; c -n ns1 container delete "$twin" >/dev/null 2>&1
check "each flushed once, at its own exit" '[ "$(grep -cF "\"$twin\": exited, secrets flushed" "$work/agent.log")" = 2 ]'

# --- 5. The wrapper on its own: one-line errors, config.json untouched.
mkdir -p "$work/bundle"
printf '{"ociVersion":"1.0.2","annotations":{"io.secretshim.secrets":"a"},"hooks":"oops"}' >"$work/bundle/config.json"
chmod 0640 "$work/bundle/config.json"
before=$(sha256sum <"$work/bundle/config.json")
err=$(SECRETSHIM_RUNTIME=/bin/true "$wrapper" --root /x create --bundle "$work/bundle" w1 2>&1); rc=$?
check "wrapper: malformed hooks refused in one line, config.json untouched" \
    '[ $rc = 1 ] && [ "$err" = "secretshim-runtime: bundle \"$work/bundle\": config.json: hooks is not an object" ] && [ "$(sha256sum <"$work/bundle/config.json")" = "$before" ]'
printf '{"ociVersion": ' >"$work/bundle/config.json"
err=$(SECRETSHIM_RUNTIME=/bin/true "$wrapper" create -b "$work/bundle" w1 2>&1); rc=$?
check "wrapper: invalid JSON refused in one line" '[ $rc = 1 ] && [ "$err" = "secretshim-runtime: bundle \"$work/bundle\": config.json is not valid JSON" ]'
printf '{"ociVersion":"1.0.2","annotations":{"io.secretshim.secrets":"a"}}' >"$work/bundle/config.json"
chmod 0640 "$work/bundle/config.json"
(cd "$work/bundle" && SECRETSHIM_RUNTIME=/bin/true SECRETSHIM_HOOK=/opt/h "$wrapper" create w1)
check "wrapper: no --bundle means the working directory; mode kept; no temp file left" \
    '[ "$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[\"hooks\"][\"createRuntime\"][0][\"path\"])" "$work/bundle/config.json")" = /opt/h ] &&
     [ "$(stat -c %a "$work/bundle/config.json")" = 640 ] && [ "$(ls -A "$work/bundle")" = config.json ]'
err=$(SECRETSHIM_RUNTIME=runc/x "$wrapper" state w1 2>&1); rc=$?
check "wrapper: a relative runtime path is refused" '[ $rc = 1 ] && [ "$err" = "secretshim-runtime: the runtime \"runc/x\" is not an absolute path" ]'
err=$(SECRETSHIM_RUNTIME=$wrapper "$wrapper" state w1 2>&1); rc=$?
check "wrapper: itself as the runtime is refused" '[ $rc = 1 ] && echo "$err" | grep -qF "is this wrapper itself"'
mkdir -p "$work/pathdir"; ln -s "$wrapper" "$work/pathdir/runc"
err=$(PATH="$work/pathdir:relative:/usr/sbin:/usr/bin:/sbin:/bin" "$work/pathdir/runc" --version 2>&1 | head -1)
check "wrapper installed as runc in PATH finds the real runc, not itself" 'echo "$err" | grep -q "^runc version"'
out=$(SECRETSHIM_RUNTIME=/nonexistent "$wrapper" --secretshim-runtime=/bin/echo --root /r state w1 2>&1)
check "wrapper: --secretshim-runtime= overrides the environment and is not passed on" '[ "$out" = "--root /r state w1" ]'
err=$(PATH=/nonexistent "$wrapper" state w1 2>&1); rc=$?
check "wrapper: a runtime missing from PATH is refused" '[ $rc = 1 ] && [ "$err" = "secretshim-runtime: the runtime \"runc\" was not found in PATH" ]'

echo "$failures failure(s)"
[ $failures = 0 ] || { echo "--- agent log"; cat "$work/agent.log"; echo "--- containerd log (tail)"; tail -20 "$work/containerd.log"; }
finish
