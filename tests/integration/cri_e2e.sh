#!/bin/sh
# Kubernetes through containerd 1.6's CRI, driven over gRPC as kubelet would
# (tests/integration/cri/: no kubelet, crictl or CNI here), on a private
# containerd with the packaged CRI snippet (both handlers) and the agent on
# the local store. Pods in namespaces tenant-a and tenant-b:
#  * tenant-a's container "app", named by its pod's annotation, gets the
#    secret granted to tenant-a; the pod's sidecar, not named, gets nothing;
#  * tenant-b naming tenant-a's secret is refused, with the line a missing
#    secret gets; so is a pod annotation, or a CRI client, spoofing the
#    namespace; the plain io.secretshim.secrets is refused in a pod;
#  * StopContainer and RemovePodSandbox flush; a revoked grant leaves a
#    running container.
# Usage: cri_e2e.sh BUILD_DIR
# Secret values are random markers compared as SHA-256 digests, never printed.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
. "$here/cri/containerd.sh"
build=$(cd "$1" && pwd)
scripts=$(cd "$here/../../scripts" && pwd)
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root"; exit 77; }
for t in containerd ctr runc buildah protoc grpc_python_plugin; do
    command -v $t >/dev/null || { echo "SKIP: $t not installed"; exit 77; }
done
/usr/bin/python3 -c 'import grpc, google.protobuf' 2>/dev/null || { echo "SKIP: python3-grpcio missing"; exit 77; }

hook=$build/plugin/secretshim-hook
work=$(mktemp -d /tmp/ss-cri-XXXXXX)  # short: unix socket paths
sock=$work/agent.sock
img=localhost/secretshim-busybox:latest
cleanup() {
    ctrd_stop
    stop_agent
    remove_work
}
trap cleanup EXIT
trap "exit 1" INT TERM HUP PIPE
view_grep='" secretshim " /proc/self/mountinfo'  # $work holds containerd's own mounts
cri() { CRI_STUB_DIR=$work/stubs /usr/bin/python3 "$here/cri/cri.py" "$CTRD_SOCK" "$@"; }

# --- containerd with the packaged snippet: the base spec's hooks name this
# build's hook and our socket; the wrapper handler's binary is this build's
# wrapper under its CRI name. One more handler, "open", lets every pod and
# container annotation through (an admin's mistake): containerd's own
# io.kubernetes.cri.* values must still win.
ctrd_init "$work"
ctrd_base_spec "$build/packaging/containerd/base-spec.json" "$work/base-spec.json" "$hook" "$sock"
mkdir -p "$work/bin"
ln -s "$build/plugin/secretshim-runtime" "$work/bin/secretshim-runtime-cri"
ctrd_snippet "$build/packaging/containerd/secretshim.toml" "$work/secretshim.toml" "$work/base-spec.json" \
    "$work/bin/secretshim-runtime-cri"
cat >>"$work/secretshim.toml" <<EOF

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.open]
  runtime_type = "io.containerd.runc.v2"
  base_runtime_spec = "$work/base-spec.json"
  pod_annotations = ["*"]
  container_annotations = ["*"]
EOF
ctrd_write_config localhost/secretshim-pause:latest "$work/secretshim.toml"
# The wrapper (started by the shim) finds the hook and the agent through
# containerd's environment.
SECRETSHIM_HOOK=$hook SECRETSHIM_SOCKET=$sock ctrd_start || exit 1
sh "$here/cri/images.sh" "$work" "$CTRD_SOCK" >/dev/null
check "pause and busybox images imported" 'cri images | grep -qF "$img"'

start_agent || { echo "FAIL - agent did not start"; exit 1; }
a=$(marker); b=$(marker)
printf %s "$a" | ctl secret create ta_db - --grant 'kubernetes,namespace=tenant-a,container=app' >/dev/null
printf %s "$b" | ctl secret create tb_db - --grant 'kubernetes,namespace=tenant-b' >/dev/null

# run_pod NAME NAMESPACE UID HANDLER [K=V...]: the pod's id.
run_pod() {
    n=$1 ns=$2 uid=$3 h=$4; shift 4
    set -- $(for kv in "$@"; do printf -- '--annotation %s ' "$kv"; done)
    cri run-pod --name "$n" --namespace "$ns" --uid "$uid" --handler "$h" "$@"
}
# start_ctr POD NAME [create options...]: created and started; its id, or
# nothing (StartContainer's error in $work/NAME.err).
start_ctr() {
    p=$1 n=$2; shift 2
    c=$(cri create "$p" --name "$n" --image "$img" "$@" -- sleep 100000 2>"$work/$n.err") || return 1
    cri start "$c" 2>"$work/$n.err" && echo "$c"
}
in_ctr() { cri exec --raw "$1" -- /bin/sh -c "$2"; }
# The hook's line out of StartContainer's error, with the container's id
# and the secret's name taken out.
hookline() { grep -o 'secretshim-hook: container [0-9a-f]*: [^\\]*' "$work/$1.err" |
    sed -e 's/container [0-9a-f]*:/container ID:/' -e "s/\"$2\"/NAME/"; }

# --- tenant-a: "app" is named, the sidecar is not.
poda=$(run_pod web tenant-a uid-a1 secretshim io.secretshim.secrets.app=ta_db)
app=$(start_ctr "$poda" app)
check "tenant-a: app started" '[ -n "$app" ]' || cat "$work/app.err"
check "tenant-a: app reads tenant-a's secret" '[ "$(in_ctr "$app" "sha256sum /run/secrets/ta_db | cut -c1-64")" = "$(digest "$a")" ]'
check "tenant-a: read-only, nosuid, nodev, noexec" \
    'in_ctr "$app" "grep -q \" /run/secrets ro,nosuid,nodev,noexec\" /proc/self/mountinfo"'
check "the agent saw who it is" 'grep -qF "attached secrets ta_db" "$work/agent.log" &&
    python3 -c "import json,sys; r=[json.load(open(f)) for f in sys.argv[1:]]; i=r[0][\"identity\"]; sys.exit(0 if len(r)==1 and i[\"integration\"]==\"containerd-cri\" and i[\"namespace\"]==\"tenant-a\" and i[\"pod\"]==\"web\" and i[\"pod_uid\"]==\"uid-a1\" and i[\"container\"]==\"app\" else 1)" "$work"/tasks/*.task'
side=$(start_ctr "$poda" sidecar)
check "tenant-a: the sidecar the pod does not name starts" '[ -n "$side" ]' || cat "$work/sidecar.err"
check "tenant-a: ... and receives nothing" \
    '[ "$(in_ctr "$side" "ls /run/secrets 2>/dev/null | wc -l; grep -c secrets /proc/self/mountinfo")" = "$(printf "0\n0")" ]'
check "only app is a task" '[ "$(ctl task ls --format json | grep -c "\"id\"")" = 1 ]'
cri stop "$app" >/dev/null
check "StopContainer flushes" tasks_empty
check "StopContainer: no view left" no_view_mounts

# --- tenant-b names tenant-a's secret: refused, with the line a missing
# secret gets (a container annotation names the second container).
podb=$(run_pod web tenant-b uid-b1 secretshim io.secretshim.secrets.app=ta_db)
out=$(start_ctr "$podb" app)
check "tenant-b: naming tenant-a's secret, the container does not start" '[ -z "$out" ] && tasks_empty'
check "tenant-b: the line names the container, the secret and \"not granted\"" \
    'grep -qF "secret \"ta_db\" is not granted to kubernetes pod tenant-b/web container app" "$work/app.err"' || cat "$work/app.err"
out=$(start_ctr "$podb" app2 --annotation io.secretshim.secrets.app2=nope)
check "tenant-b: a secret that does not exist gets the very same line" \
    '[ -z "$out" ] && [ -n "$(hookline app ta_db)" ] && [ "$(hookline app ta_db | sed s/app/C/g)" = "$(hookline app2 nope | sed s/app2/C/g)" ]' ||
    { hookline app ta_db; hookline app2 nope; }
echo "# $(hookline app ta_db)"
b1=$(start_ctr "$podb" app3 --annotation io.secretshim.secrets.app3=tb_db)
check "tenant-b: its own secret is delivered" '[ "$(in_ctr "$b1" "sha256sum /run/secrets/tb_db | cut -c1-64")" = "$(digest "$b")" ]'
cri rm-pod "$podb" >/dev/null
check "RemovePodSandbox with a running container flushes it" tasks_empty

# --- Spoofing the namespace: through pod and container annotations (on a
# handler that lets every annotation through), then through the CRI
# client's copy of the sandbox config.
pods=$(run_pod web tenant-b uid-b2 open io.kubernetes.cri.sandbox-namespace=tenant-a io.secretshim.secrets.app=ta_db)
out=$(start_ctr "$pods" app --annotation io.kubernetes.cri.sandbox-namespace=tenant-a)
check "a pod annotation spoofing io.kubernetes.cri.sandbox-namespace changes nothing: refused as tenant-b" \
    '[ -z "$out" ] && grep -qF "secret \"ta_db\" is not granted to kubernetes pod tenant-b/web container app" "$work/app.err"' ||
    cat "$work/app.err"
podb2=$(run_pod web tenant-b uid-b3 secretshim io.secretshim.secrets.app=ta_db)
cri pod-config "$podb2" | /usr/bin/python3 -c 'import json,sys; c=json.load(sys.stdin); c["metadata"]["namespace"]="tenant-a"; print(json.dumps(c))' >"$work/lie.json"
out=$(start_ctr "$podb2" app --pod-config "@$work/lie.json")
check "a CRI client sending another namespace than its pod's is refused (the sandbox's own spec decides)" \
    '[ -z "$out" ] && grep -qF "the container names pod tenant-a/web (uid uid-b3), but its sandbox belongs to pod tenant-b/web (uid uid-b3)" "$work/app.err"' ||
    cat "$work/app.err"
check "spoofs: nothing attached" 'tasks_empty && no_view_mounts'

# --- The plain key reaches every container of a pod: refused.
podp=$(run_pod plain tenant-a uid-a2 secretshim io.secretshim.secrets=ta_db)
out=$(start_ctr "$podp" app)
check "a pod with the plain io.secretshim.secrets is refused, naming the per-container key" \
    '[ -z "$out" ] && grep -qF "the annotation io.secretshim.secrets would reach every container of the pod" "$work/app.err"' ||
    cat "$work/app.err"

# --- The wrapper handler, and a grant revoked while the container runs.
podw=$(run_pod wrapped tenant-a uid-a3 secretshim-wrapper io.secretshim.secrets.app=ta_db)
w=$(start_ctr "$podw" app)
check "secretshim-wrapper handler: app gets its secret" '[ "$(in_ctr "$w" "sha256sum /run/secrets/ta_db | cut -c1-64")" = "$(digest "$a")" ]' ||
    cat "$work/app.err"
ctl secret revoke ta_db 'kubernetes,namespace=tenant-a,container=app'
check "a revoked grant: the file leaves the running pod's container at once" 'in_ctr "$w" "test ! -e /run/secrets/ta_db"'
cri rm-pod "$podw" >/dev/null
check "all flushed, no view left" 'tasks_empty && no_view_mounts'
for p in $poda $pods $podb2 $podp; do cri rm-pod "$p" >/dev/null 2>&1; done

echo "$failures failure(s)"
[ $failures = 0 ] || { echo "--- agent log"; cat "$work/agent.log"; echo "--- containerd log (tail)"; tail -20 "$CTRD_LOG"; }
[ $failures = 0 ]
