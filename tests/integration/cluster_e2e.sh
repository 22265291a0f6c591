#!/bin/sh
# Cluster mode end to end (run by tests/cluster/with_cluster.sh against a
# real 3-member etcd with TLS and RBAC): secretshimctl assigns, secretshimd
# (source: etcd) delivers into real runc containers tied to their task by
# io.secretshim.task; rotation reaches a running container atomically,
# and the init of a task assigned --signal gets it;
# unassigned or foreign tasks are refused; a copy moved from another node's
# prefix does not decrypt; with two of three members down running
# containers keep their secrets and new ones get "control plane
# unreachable"; everything recovers with quorum. Measures admin write ->
# new value visible in the container.
# Usage: cluster_e2e.sh BUILD_DIR. Values are random markers compared by digest.
set -u
. "$(dirname "$0")/lib.sh"
build=$(cd "$1" && pwd)
scripts=$(cd "$(dirname "$0")/../../scripts" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root"; exit 77; }
command -v runc >/dev/null || { echo "SKIP: runc not installed"; exit 77; }
runtime=runc
hook=$build/plugin/secretshim-hook
agentbin=$build/plugin/secretshimd
ctlbin=$build/plugin/secretshimctl
work=$(mktemp -d /tmp/secretshim-cluster-e2e-XXXXXX)
sock=$work/agent.sock
ids=""

trap cleanup_cluster EXIT

admin() { "$ctlbin" --endpoints "$ETCD_ENDPOINTS" --cacert "$ETCD_PKI/ca.crt" --cert "$ETCD_PKI/admin.crt" \
    --key "$ETCD_PKI/admin.key" \
    --cluster-key "$work/admin/cluster.key" --signing-key "$work/admin/signing.key" "$@"; }
status_json() { "$ctlbin" --socket "$sock" status 2>/dev/null; }
connected() { status_json | python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin)["cluster"]["connected"] else 1)' 2>/dev/null; }
in_container() { rt exec "$1" /bin/busybox sh -c "$2"; }

mkdir -m 700 "$work/admin" "$work/state"
# The admin's signing key; nodes trust its public half (etcd.admin_keys).
openssl genpkey -algorithm ed25519 -out "$work/admin/signing.key" 2>/dev/null
openssl pkey -in "$work/admin/signing.key" -pubout -out "$work/admin/signing.pub"
cat >"$work/agent.yaml" <<YAML
source: etcd
etcd:
  endpoints: [$(echo "$ETCD_ENDPOINTS" | sed 's/,/, /g')]
  ca: $ETCD_PKI/ca.crt
  cert: $ETCD_PKI/node-1.crt
  key: $ETCD_PKI/node-1.key
  node: node-1
  admin_keys: [$work/admin/signing.pub]
YAML

# The node's key pair is made on the node; the admin registers its public half.
pub=$("$ctlbin" node keygen --state-dir "$work/state")
admin node add node-1 --public-key "$pub" >/dev/null
admin node add node-2 --key-out "$work/admin/node-2.key" >/dev/null
v1=$(marker); v2=$(marker); other=$(marker)
printf %s "$v1" | admin secret create db - >/dev/null
printf %s "$other" | admin secret create other - >/dev/null
admin task assign t1 --identity root --node node-1 --secret db --secret "source=db,target=/etc/app/db,mode=0400" >/dev/null
admin task assign t4 --identity root --node node-1 --secret other >/dev/null
admin task assign t9 --identity root --node node-2 --secret other >/dev/null

rm -f "$sock"
"$agentbin" --config "$work/agent.yaml" --socket "$sock" --state-dir "$work/state" 2>>"$work/agent.log" &
agent_pid=$!
check "agent starts and connects to etcd" 'wait_for 20 connected'
# Idle, on members with etcd's default flags (no progress-notify interval):
# the watch stays on its member, probing it with progress requests, and
# nothing is logged.
sleep 15
check "idle for 15 s on a stock etcd: still connected, no watch line logged" \
    'connected && ! grep -q "etcd https://" "$work/agent.log"' || grep "etcd https://" "$work/agent.log"

# The container asks for more through its own annotation: ignored.
ANN="other" bundle c1 t1 sh -c 'while :; do sha256sum /run/secrets/db | cut -c1-64 >>/tmp/reads; done'
start_detached c1
check "container of task t1 runs" '[ "$(rt state c1 2>/dev/null | grep -c running)" = 1 ]'
check "it reads its assigned secret" '[ "$(in_container c1 "sha256sum /run/secrets/db" | cut -c1-64)" = "$(digest "$v1")" ]'
check "and the single-file target" '[ "$(in_container c1 "sha256sum /etc/app/db" | cut -c1-64)" = "$(digest "$v1")" ]'
check "its own annotation cannot widen the grant" 'in_container c1 "test ! -e /run/secrets/other"'

# Rotation reaches the running container; its reader never sees a torn value.
admin secret rotate db - >/dev/null <<EOF2
$v2
EOF2
v2nl="$v2
"
check "rotated value visible in the running container" 'wait_for 10 sh -c "[ \"\$(runc --root $work/state-rt exec c1 /bin/busybox sha256sum /run/secrets/db | cut -c1-64)\" = \"$(digest "$v2nl")\" ]"'
check "single-file target rotated too" '[ "$(in_container c1 "sha256sum /etc/app/db" | cut -c1-64)" = "$(digest "$v2nl")" ]'
sleep 0.3
in_container c1 "sort -u /tmp/reads" >"$work/reads"
check "no torn read: only the old and new digests were seen ($(wc -l <"$work/reads") distinct)" \
    '[ -z "$(grep -v -x -e "$(digest "$v1")" -e "$(digest "$v2nl")" "$work/reads")" ] && [ "$(wc -l <"$work/reads")" -le 2 ]'

# Propagation delay: admin write committed -> new content in the container.
rounds=${CLUSTER_BENCH_ROUNDS:-40}
python3 - "$ctlbin" "$(pid_of c1)" "$rounds" "$work" >"$work/bench" 2>&1 <<'PY'
import hashlib, os, subprocess, sys, time
ctl, pid, rounds, work = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
env = os.environ
base = [ctl, "--endpoints", env["ETCD_ENDPOINTS"], "--cacert", env["ETCD_PKI"] + "/ca.crt",
        "--cert", env["ETCD_PKI"] + "/admin.crt", "--key", env["ETCD_PKI"] + "/admin.key", "--cluster-key", work + "/admin/cluster.key",
        "--signing-key", work + "/admin/signing.key"]
path = "/proc/%s/root/run/secrets/db" % pid
commit, total = [], []
for i in range(rounds):
    value = os.urandom(16).hex().encode()
    want = hashlib.sha256(value).digest()
    t0 = time.monotonic()
    subprocess.run(base + ["secret", "rotate", "db", "-"], input=value, check=True, stdout=subprocess.DEVNULL)
    t1 = time.monotonic()
    while True:
        with open(path, "rb") as f:
            if hashlib.sha256(f.read()).digest() == want:
                break
        if time.monotonic() - t1 > 10:
            sys.exit("update %d not seen in 10 s" % i)
    t2 = time.monotonic()
    commit.append((t2 - t1) * 1000)
    total.append((t2 - t0) * 1000)
def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]
print("cluster propagation over %d updates: ctl returned -> visible median %.2f ms p99 %.2f ms; "
      "ctl start -> visible median %.1f ms p99 %.1f ms" % (rounds, pct(commit, 50), pct(commit, 99),
                                                           pct(total, 50), pct(total, 99)))
PY
brc=$?
check "propagation benchmark ran ($(tail -1 "$work/bench"))" '[ $brc = 0 ]'
echo "# $(tail -1 "$work/bench")"

# The change signal: the init of a task assigned with --signal gets it when
# its secrets change (a rotation, a new grant); the init of a task without
# one gets nothing. Both inits trap SIGUSR1 (10) and note each in
# /tmp/signalled, read back here.
sig1=$(marker); sig2=$(marker)
printf %s "$sig1" | admin secret create sig - >/dev/null
admin task assign tsig --identity root --node node-1 --secret sig --signal 10 >/dev/null
admin task assign tnosig --identity root --node node-1 --secret sig >/dev/null
trapper='trap "echo >>/tmp/signalled" USR1; : >/tmp/ready; while :; do sleep 1 & wait $!; done'
bundle csig tsig sh -c "$trapper"
bundle cnosig tnosig sh -c "$trapper"
start_detached csig
start_detached cnosig
ready() { in_container "$1" "test -e /tmp/ready"; }
check "signal: both trapping containers run" 'wait_for 10 ready csig && wait_for 10 ready cnosig'
printf %s "$sig2" | admin secret rotate sig - >/dev/null
rotated() { [ "$(in_container "$1" "sha256sum /run/secrets/sig" | cut -c1-64)" = "$(digest "$sig2")" ]; }
signals() { in_container "$1" "cat /tmp/signalled 2>/dev/null | wc -l" | tr -d " "; }
signalled() { [ "$(signals "$1")" -ge "$2" ]; }
check "signal: the rotation reaches both containers" 'wait_for 10 rotated csig && wait_for 10 rotated cnosig'
check "signal: the init of the task assigned --signal 10 gets it after the rotation" 'wait_for 5 signalled csig 1'
admin task assign tsig --identity root --node node-1 --secret sig --secret "source=sig,target=/run/secrets/sig2" --signal 10 >/dev/null
check "signal: ... and again after a new grant" 'wait_for 10 signalled csig 2'
check "signal: the init of the task without --signal got none" '[ "$(signals cnosig)" = 0 ]'
rt delete -f csig >/dev/null 2>&1; rt delete -f cnosig >/dev/null 2>&1

# Signed records: someone who can write to etcd as its root
# user but lacks the admin's signing key cannot change what the node
# applies. Each refusal is logged by key; the running container keeps what
# it has.
# db's copy on node-1 at its published version (the highest one held: the
# older are deleted after a rotation), and db's published version.
dbkey() { etcdctl_root get --prefix --keys-only /secretshim/nodes/node-1/secrets/db/ | grep . | tail -n 1; }
pubkey=/secretshim/published/$(etcdctl_root get --print-value-only /secretshim/secrets/db | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
t1key=/secretshim/nodes/node-1/tasks/t1
db_now() { in_container c1 "sha256sum /run/secrets/db" | cut -c1-64; }
refusals() { grep -c -F "etcd: refused key \"$1\": $2" "$work/agent.log"; }
refused_since() { [ "$(refusals "$1" "$2")" -gt "$3" ]; }
rotate_db() {  # a new value, seen in c1
    was=$(db_now)
    printf %s "$(marker)" | admin secret rotate db - >/dev/null
    wait_for 10 sh -c "[ \"\$(runc --root $work/state-rt exec c1 /bin/busybox sha256sum /run/secrets/db | cut -c1-64)\" != $was ]"
}
field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }
openssl genpkey -algorithm ed25519 -out "$work/attacker.key" 2>/dev/null

# A forged copy in place of the one in use: sealed to the node's public key
# (anyone can), signed by another key, or not signed.
dbkey=$(dbkey)
etcdctl_root get --print-value-only "$dbkey" >"$work/db-cur"
held=$(db_now)
marker >"$work/forged-value"
forge() { "$build/tests/cluster/forge_copy" node-1 "$pub" db "$(field "$work/db-cur" id)" \
    "$(field "$work/db-cur" version)" "$work/forged-value" "$@"; }
n=$(refusals "$dbkey" "signed by an unknown key")
forge "$work/attacker.key" | etcdctl_root put "$dbkey" >/dev/null
check "signed: a forged copy (another key) is refused by key, the container unchanged" \
    'wait_for 5 refused_since "$dbkey" "signed by an unknown key" $n && [ "$(db_now)" = "$held" ]'
n=$(refusals "$dbkey" "not signed by an admin key")
forge | etcdctl_root put "$dbkey" >/dev/null
check "signed: an unsigned copy is refused by key, the container unchanged" \
    'wait_for 5 refused_since "$dbkey" "not signed by an admin key" $n && [ "$(db_now)" = "$held" ]'
etcdctl_root put "$dbkey" <"$work/db-cur" >/dev/null   # the admin's own copy back (same serial: accepted)

# A forged task record: a target that would publish the secret, and a
# signal, added to the admin's record.
etcdctl_root get --print-value-only $t1key >"$work/t1-cur"
python3 - "$work/t1-cur" >"$work/t1-forged" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
r["secrets"] += ";source=db,target=/run/secrets/leak"
r["signal"] = 9
print(json.dumps(r), end="")
PY
n=$(refusals $t1key "its signature does not verify")
etcdctl_root put $t1key <"$work/t1-forged" >/dev/null
check "signed: a forged task record is refused by key" 'wait_for 5 refused_since $t1key "its signature does not verify" $n'
check "signed: ... no new target, no signal: the container runs as it was" \
    'in_container c1 "test ! -e /run/secrets/leak" && [ "$(rt state c1 | grep -c running)" = 1 ] && [ "$(db_now)" = "$held" ]'
etcdctl_root put $t1key <"$work/t1-cur" >/dev/null   # the admin's own record back (same serial: accepted)

# Replays. Of a copy: the same version's copy as it was before the task
# was assigned again (an older serial at that key).
etcdctl_root get --print-value-only "$dbkey" >"$work/db-same-old"
admin task assign t1 --identity root --node node-1 --secret db --secret "source=db,target=/etc/app/db,mode=0400" >/dev/null
n=$(refusals "$dbkey" "serial")
etcdctl_root put "$dbkey" <"$work/db-same-old" >/dev/null
check "signed: a replayed older copy of the same version is refused by key" \
    'wait_for 5 refused_since "$dbkey" "serial" $n && grep -q "a replayed record" "$work/agent.log" && [ "$(db_now)" = "$held" ]'
# Of the published version: an older one put back, then put back after a
# delete, then put back while the agent is down (the highest serial it
# accepted is on disk). Its copy put back too: a node uses no version but
# the published one.
# old_version: db's published version and its node-1 copy saved in
# pub-old and db-old; two rotations later, a newer value in c1 ($after).
old_version() {
    rotate_db
    etcdctl_root get --print-value-only $pubkey >"$work/pub-old"
    etcdctl_root get --print-value-only "$(dbkey)" >"$work/db-old"
    oldkey=$(dbkey)
    rotate_db
    after=$(db_now)
    n=$(refusals $pubkey "serial")
}
old_version
etcdctl_root put "$oldkey" <"$work/db-old" >/dev/null
etcdctl_root put $pubkey <"$work/pub-old" >/dev/null
check "signed: a replayed older published version is refused by key, its copy unused" \
    'wait_for 5 refused_since $pubkey "serial" $n && [ "$(db_now)" = "$after" ]'
old_version
etcdctl_root del $pubkey >/dev/null
etcdctl_root put "$oldkey" <"$work/db-old" >/dev/null
etcdctl_root put $pubkey <"$work/pub-old" >/dev/null
check "signed: delete-then-put of an older published version is refused, the container unchanged" \
    'wait_for 5 refused_since $pubkey "serial" $n && [ "$(db_now)" = "$after" ]'
old_version
kill -9 "$agent_pid"; wait "$agent_pid" 2>/dev/null
etcdctl_root put "$oldkey" <"$work/db-old" >/dev/null
etcdctl_root put $pubkey <"$work/pub-old" >/dev/null
rm -f "$sock"
"$agentbin" --config "$work/agent.yaml" --socket "$sock" --state-dir "$work/state" 2>>"$work/agent.log" &
agent_pid=$!
check "signed: replayed while the agent was down: refused after its restart" \
    'wait_for 20 connected && wait_for 5 refused_since $pubkey "serial" $n && [ "$(db_now)" = "$after" ]'
check "signed: the serials it accepted are on disk, names and numbers only" \
    'python3 -c "import json,sys; d=json.load(open(sys.argv[1])); sys.exit(not all(isinstance(v,int) for v in d.values()) or sys.argv[2] not in d)" "$work/state/cluster-serials.json" $pubkey'
rotate_db
check "signed: the admin's next rotation is applied" '[ "$(db_now)" != "$after" ]'

# A new grant appears in the running container; a revoked one disappears
# (a revoked single-file target is emptied: its mount stays until restart).
admin task assign t1 --identity root --node node-1 --secret db --secret "source=db,target=/etc/app/db,mode=0400" --secret other >/dev/null
check "a new grant appears in the running container" 'wait_for 10 sh -c "[ \"\$(runc --root $work/state-rt exec c1 /bin/busybox sha256sum /run/secrets/other 2>/dev/null | cut -c1-64)\" = \"$(digest "$other")\" ]"'
admin task assign t1 --identity root --node node-1 --secret db >/dev/null
check "a revoked grant disappears from the running container" 'wait_for 10 runc --root "$work/state-rt" exec c1 /bin/busybox test ! -e /run/secrets/other'
check "a revoked single-file target is emptied" 'wait_for 10 runc --root "$work/state-rt" exec c1 /bin/busybox sh -c "test ! -s /etc/app/db"'
check "the remaining grant is untouched" '[ "$(in_container c1 "test -s /run/secrets/db && echo y")" = y ]'

# Live mounts: the revoked single-file target above is detached in
# the running container, not just emptied; a new grant whose target is
# outside /run/secrets is attached live as a read-only mount of its own.
mount_at() { awk -v t="$2" '$5 == t { print $6 }' "/proc/$1/mountinfo"; }   # PID TARGET -> its options
c1pid=$(pid_of c1)
check "live: the revoked single-file target is no longer a mount in the container" \
    'wait_for 10 sh -c "[ -z \"\$(awk -v t=/etc/app/db '\''\$5 == t'\'' /proc/$c1pid/mountinfo)\" ]"'
check "live: nothing of the secret is readable at the revoked target" \
    '[ "$(in_container c1 "cat /etc/app/db 2>/dev/null | wc -c" | tr -d " ")" = 0 ]'
admin task assign t1 --identity root --node node-1 --secret db --secret "source=other,target=/etc/app/late,mode=0440" >/dev/null
check "live: a new grant outside /run/secrets is readable in the running container" \
    'wait_for 10 sh -c "[ \"\$(runc --root $work/state-rt exec c1 /bin/busybox sha256sum /etc/app/late 2>/dev/null | cut -c1-64)\" = \"$(digest "$other")\" ]"'
check "live: it is a read-only mount of its own ($(mount_at "$c1pid" /etc/app/late))" \
    'case "$(mount_at "$c1pid" /etc/app/late)" in ro,nosuid,nodev,noexec*) true ;; *) false ;; esac'
check "live: with the granted mode" '[ "$(in_container c1 "stat -c %a /etc/app/late")" = 440 ]'

# Live mounts in user namespaces: owners are mapped to host ids,
# the placeholder belongs to the container's root; a container whose mounts
# the hook locked (CAP_SYS_ADMIN in its own user namespace) gets no live
# mount: one line, the container as it was.
admin task assign t6 --identity root --max-containers 2 --node node-1 --secret other >/dev/null
chmod 0711 "$work"  # the containers' root (host uid 100000) walks to their rootfs
USERNS=100000:65536 bundle c9 t6 sh -c 'sleep 100'
chown -R 100000:100000 "$work/c9/rootfs"
start_detached c9
USERNS=100000:65536 bundle c10 t6 sh -c 'sleep 100'
chown -R 100000:100000 "$work/c10/rootfs"
python3 - "$work/c10/config.json" <<'PY'
import json, sys
spec = json.load(open(sys.argv[1]))
spec["process"]["capabilities"] = {k: ["CAP_SYS_ADMIN"] for k in ("bounding", "effective", "permitted")}
json.dump(spec, open(sys.argv[1], "w"))
PY
start_detached c10
check "userns live: both containers of t6 run" '[ -n "$(pid_of c9)" ] && [ -n "$(pid_of c10)" ]' || cat "$work/c9.err" "$work/c10.err"
c9pid=$(pid_of c9); c10pid=$(pid_of c10)
admin task assign t6 --identity root --max-containers 2 --node node-1 --secret other --secret "source=other,target=/etc/u/f,uid=1000,gid=1000,mode=0400" >/dev/null
check "userns live: uid 1000 reads its new 0400 file" \
    'wait_for 10 sh -c "[ \"\$(runc --root $work/state-rt exec --user 1000:1000 c9 /bin/busybox sha256sum /etc/u/f 2>/dev/null | cut -c1-64)\" = \"$(digest "$other")\" ]"'
check "userns live: owners are container ids inside" '[ "$(rt exec c9 /bin/busybox stat -c "%u %g %a" /etc/u/f)" = "1000 1000 400" ]'
check "userns live: host ids outside, the placeholder's parent is the container root's" \
    '[ "$(stat -c "%u %g" "/proc/$c9pid/root/etc/u/f" "/proc/$c9pid/root/etc/u" | tr "\n" " ")" = "101000 101000 100000 100000 " ]'
check "userns live: a locked container is refused the new mount in one line" \
    'wait_for 10 grep -q "\"c10\": /etc/u/f not granted: needs a restart of the task: .*could not be locked" "$work/agent.log"'
check "userns live: ... and left as it was" '[ -z "$(mount_at "$c10pid" /etc/u/f)" ] && [ ! -e "/proc/$c10pid/root/etc/u" ]'
rt delete -f c9 >/dev/null 2>&1; rt delete -f c10 >/dev/null 2>&1

# Unassigned, foreign and unannotated tasks are refused in one line.
bundle c2 t9 true
check "a task of another node is refused" '! rt run --bundle "$work/c2" c2 >/dev/null 2>"$work/c2.err" && grep -q "is not granted to a container started by root" "$work/c2.err"'

# Bindings: a task belongs to the identity it is assigned for, and to at
# most --max-containers of its containers at once.
admin task assign tb1 --identity 'kubernetes,namespace=tenant-a' --node node-1 --secret other >/dev/null
bundle cb1 tb1 true
hookline() { tr -d '\\' <"$work/$1.err" | grep -o 'secretshim-hook: container .*' | sed -e "s/container $1:/container ID:/" -e "s/\"$2\"/NAME/" -e 's/n"$//'; }
check "a container claiming a task bound to another identity is refused" \
    'wait_for 5 sh -c "! runc --root $work/state-rt run --bundle $work/cb1 cb1 >/dev/null 2>$work/cb1.err" && [ -n "$(hookline cb1 tb1)" ]'
check "... in the very line a task not assigned to this node gets" '[ "$(hookline cb1 tb1)" = "$(hookline c2 t9)" ]' ||
    { hookline cb1 tb1; hookline c2 t9; }
admin task assign tb2 --identity root --node node-1 --secret other --secret "source=other,target=/etc/app/b2" >/dev/null
bundle cb2 tb2 sh -c 'sleep 100'
bundle cb3 tb2 true
check "the first claim of a task (max 1) starts" 'wait_for 5 sh -c "runc --root $work/state-rt run -d --bundle $work/cb2 cb2 >/dev/null 2>&1 </dev/null"'
ids="$ids cb2 cb3"
check "a second claim past the count is refused in one line" \
    '! rt run --bundle "$work/cb3" cb3 >/dev/null 2>"$work/cb3.err" && tr -d "\\\\" <"$work/cb3.err" | grep -qF "task \"tb2\" is held by 1 container(s), its limit (max_containers 1)"'
admin task assign tb2 --identity 'podman,name=web-*' --node node-1 --secret other --secret "source=other,target=/etc/app/b2" >/dev/null
check "a cluster binding moved to another identity: its files leave the running container" \
    'wait_for 5 sh -c "! runc --root $work/state-rt exec cb2 /bin/busybox test -e /run/secrets/other && ! runc --root $work/state-rt exec cb2 /bin/busybox grep -q \" /etc/app/b2 \" /proc/self/mountinfo"'
check "... and the agent says why" 'grep -qF "\"cb2\": task tb2 is bound to podman,name=web-* now, not to a container started by root (bundle)" "$work/agent.log"'
admin task assign tb2 --identity root --node node-1 --secret other >/dev/null
check "bound to it again: the running container gets it back" \
    'wait_for 5 sh -c "[ \"\$(runc --root $work/state-rt exec cb2 /bin/busybox cat /run/secrets/other)\" = \"$other\" ]"'
rt delete -f cb2 >/dev/null 2>&1
admin task unassign tb1 >/dev/null; admin task unassign tb2 >/dev/null
ids="$ids c2"
ANN="db" bundle c3 "" true
check "no io.secretshim.task on a cluster node is refused" '! rt run --bundle "$work/c3" c3 >/dev/null 2>"$work/c3.err" && grep -q "io.secretshim.task" "$work/c3.err"'
check "the local store's commands are refused on a cluster node" \
    '[ "$(printf x | ctl secret create local - --grant root 2>&1)" = "secretshimctl: this node takes its secrets from etcd (source: etcd): manage them with secretshimctl --cluster-config FILE" ]'
ids="$ids c3"

# A per-node copy moved from node-2's prefix does not decrypt on node-1.
movedkey=$(etcdctl_root get --prefix --keys-only /secretshim/nodes/node-2/secrets/other/ | grep . | tail -n 1)
etcdctl_root get --print-value-only "$movedkey" >"$work/moved"
movedkey=/secretshim/nodes/node-1/secrets/other/${movedkey##*/}
etcdctl_root put "$movedkey" <"$work/moved" >/dev/null
check "a copy moved from another node is refused" 'wait_for 5 grep -qF "refused key \"$movedkey\": its signature does not verify" "$work/agent.log"'
admin task assign t4 --identity root --node node-1 --secret other >/dev/null   # restores a good copy

# Disconnect: two of three members down.
bundle c4 t4 sh -c 'sleep 100'
start_detached c4
check "container of t4 runs" '[ "$(in_container c4 "sha256sum /run/secrets/other" | cut -c1-64)" = "$(digest "$other")" ]'
admin task assign t5 --identity root --node node-1 --secret other >/dev/null
# The agent must hold t5's assignment before the members go down, or the
# refusal below would prove nothing: wait until it applied etcd's revision.
rev=$(etcdctl_root get /secretshim/nodes/node-1/tasks/t5 -w json | python3 -c 'import json,sys; print(json.load(sys.stdin)["header"]["revision"])')
applied_at_least() { [ "$(status_json | python3 -c 'import json,sys; print(json.load(sys.stdin)["cluster"]["revision"])' 2>/dev/null || echo 0)" -ge "$1" ]; }
check "the agent applied t5's assignment (revision $rev) before the members go down" 'wait_for 5 applied_at_least "$rev"'
sh "$ETCD_CLUSTER_SCRIPT" signal "$ETCD_DIR" m2 KILL
sh "$ETCD_CLUSTER_SCRIPT" signal "$ETCD_DIR" m3 KILL
check "the agent notices the lost quorum" 'wait_for 30 sh -c "! \"\$0\" --socket \"\$1\" status | grep -q \"\\\"connected\\\": true\"" "$ctlbin" "$sock"'
status_json >"$work/status"
check "status shows the state, revision and time since contact" 'grep -q "\"revision\"" "$work/status" && grep -q "since_contact_ms" "$work/status"'
check "running containers keep their secrets" '[ "$(in_container c4 "sha256sum /run/secrets/other" | cut -c1-64)" = "$(digest "$other")" ] && [ "$(in_container c1 "test -s /run/secrets/db && echo y")" = y ]'
bundle c5 t5 true
check "a new task is refused: control plane unreachable" '! rt run --bundle "$work/c5" c5 >/dev/null 2>"$work/c5.err" && grep -q "control plane unreachable" "$work/c5.err"'
ids="$ids c5"
sh "$ETCD_CLUSTER_SCRIPT" restart "$ETCD_DIR" m2
sh "$ETCD_CLUSTER_SCRIPT" restart "$ETCD_DIR" m3
check "the agent reconnects when quorum returns" 'wait_for 60 connected'
bundle c6 t5 sh -c 'sha256sum /run/secrets/other | cut -c1-64'
check "then the new task starts with its secret" '[ "$(rt run --bundle "$work/c6" c6 2>/dev/null)" = "$(digest "$other")" ]'
ids="$ids c6"

# The agent SIGKILLed and restarted: running containers keep their secrets,
# and the new agent serves new containers from etcd again.
kill -9 "$agent_pid"; wait "$agent_pid" 2>/dev/null
rm -f "$sock"
"$agentbin" --config "$work/agent.yaml" --socket "$sock" --state-dir "$work/state" 2>>"$work/agent.log" &
agent_pid=$!
check "agent restarted: connects again" 'wait_for 20 connected'
check "agent restarted: running containers still read their secrets" '[ "$(in_container c4 "sha256sum /run/secrets/other" | cut -c1-64)" = "$(digest "$other")" ]'
bundle c8 t5 sh -c 'sha256sum /run/secrets/other | cut -c1-64'
check "agent restarted: a new container gets its secret" '[ "$(rt run --bundle "$work/c8" c8 2>/dev/null)" = "$(digest "$other")" ]'
ids="$ids c8"

# Live updates reach containers re-adopted after the SIGKILL above:
# a rotation (directory and single-file targets, no torn read), a revoked
# single-file target detached, a new grant.
c1pid=$(pid_of c1)
live3=$(marker); live4=$(marker)
check "re-adopted: c1 still shows its live-granted file" \
    '[ "$(in_container c1 "sha256sum /etc/app/late" | cut -c1-64)" = "$(digest "$other")" ]'
before=$(in_container c1 "sha256sum /run/secrets/db" | cut -c1-64)
in_container c1 ": >/tmp/reads"
printf %s "$live3" | admin secret rotate db - >/dev/null
check "re-adopted: a rotation reaches /run/secrets" \
    'wait_for 10 sh -c "[ \"\$(runc --root $work/state-rt exec c1 /bin/busybox sha256sum /run/secrets/db | cut -c1-64)\" = \"$(digest "$live3")\" ]"'
sleep 0.3
in_container c1 "sort -u /tmp/reads" >"$work/reads3"
check "re-adopted: no torn read ($(wc -l <"$work/reads3") distinct digests, $(in_container c1 "wc -l </tmp/reads") reads)" \
    '[ -s "$work/reads3" ] && [ -z "$(grep -v -x -e "$before" -e "$(digest "$live3")" "$work/reads3")" ]'
printf %s "$live4" | admin secret rotate other - >/dev/null
check "re-adopted: a rotation reaches a single-file target" \
    'wait_for 10 sh -c "[ \"\$(runc --root $work/state-rt exec c1 /bin/busybox sha256sum /etc/app/late | cut -c1-64)\" = \"$(digest "$live4")\" ]"'
check "re-adopted: and the other re-adopted container" \
    'wait_for 10 sh -c "[ \"\$(runc --root $work/state-rt exec c4 /bin/busybox sha256sum /run/secrets/other | cut -c1-64)\" = \"$(digest "$live4")\" ]"'
admin task assign t1 --identity root --node node-1 --secret db --secret "source=db,target=/run/secrets/again,mode=0400" >/dev/null
check "re-adopted: a new grant appears" \
    'wait_for 10 sh -c "[ \"\$(runc --root $work/state-rt exec c1 /bin/busybox sha256sum /run/secrets/again 2>/dev/null | cut -c1-64)\" = \"$(digest "$live3")\" ]"'
check "re-adopted: a revoked single-file target is detached" '[ -z "$(mount_at "$c1pid" /etc/app/late)" ]'
check "re-adopted: nothing of it is readable there" '[ "$(in_container c1 "cat /etc/app/late 2>/dev/null | wc -c" | tr -d " ")" = 0 ]'
# A hostile container cannot steer a revocation onto another mount: it moves
# the directory holding its live-granted file away and puts a symlink to its
# /proc (a mount root) at the target. The agent detaches only a mount of its
# own file: /proc stays, the moved secret is zeroed, one line says why.
admin task assign t1 --identity root --node node-1 --secret db --secret "source=db,target=/run/secrets/again,mode=0400" \
    --secret "source=other,target=/etc/trap/f,mode=0400" >/dev/null
wait_for 10 sh -c "[ -n \"\$(awk -v t=/etc/trap/f '\$5 == t' /proc/$c1pid/mountinfo)\" ]"
in_container c1 "mv /etc/trap /etc/trap.old && mkdir /etc/trap && ln -s /proc /etc/trap/f"
check "hostile: the file mount moved away before the revocation" '[ -n "$(mount_at "$c1pid" /etc/trap.old/f)" ]'
admin task assign t1 --identity root --node node-1 --secret db --secret "source=db,target=/run/secrets/again,mode=0400" >/dev/null
check "hostile: the revocation refuses the planted symlink in one line" \
    'wait_for 10 grep -q "/etc/trap/f revoked, with an error: .*is no longer our secret.s mount" "$work/agent.log"'
check "hostile: the container's /proc is still mounted" '[ -n "$(mount_at "$c1pid" /proc)" ]'
check "hostile: the moved secret is zeroed" '[ "$(in_container c1 "cat /etc/trap.old/f | wc -c" | tr -d " ")" = 0 ]'
check "re-adopted: no live-update marker in etcd, the state directory or the log" \
    '! grep -r -a -q -F -e "$live3" -e "$live4" "$ETCD_DIR"/m1 "$ETCD_DIR"/m2 "$ETCD_DIR"/m3 "$work/state" "$work/agent.log"'

# The node's key rotated while c1 runs: the next key pair made on the node,
# its public half registered (node add --replace seals every copy again),
# a rotation then reaches c1 through the next key, and --promote makes it
# the node's key pair.
pubnext=$("$ctlbin" node keygen --rotate --state-dir "$work/state")
check "node keygen --rotate makes a next key pair, another key" '[ -n "$pubnext" ] && [ "$pubnext" != "$pub" ]'
check "node add --replace registers it" 'admin node add node-1 --public-key "$pubnext" --replace >/dev/null'
live5=$(marker)
printf %s "$live5" | admin secret rotate db - >/dev/null
check "key rotated: a rotation reaches c1 (its copy sealed to the next key)" \
    'wait_for 10 sh -c "[ \"\$(runc --root $work/state-rt exec c1 /bin/busybox sha256sum /run/secrets/db | cut -c1-64)\" = \"$(digest "$live5")\" ]"'
check "the agent said it opens copies with the next key too" 'grep -q "cluster-node.key.next is there" "$work/agent.log"'
check "no copy was skipped for not decrypting" '! grep -q "does not decrypt with this node.s key" "$work/agent.log"'
check "node keygen --promote: the next key pair is the node's" \
    '[ "$("$ctlbin" node keygen --promote --state-dir "$work/state")" = "$pubnext" ] && [ "$("$ctlbin" node keygen --state-dir "$work/state")" = "$pubnext" ] && [ ! -e "$work/state/cluster-node.key.next" ]'
check "no key-rotation marker in etcd or the log" \
    '! grep -r -a -q -F -e "$live5" "$ETCD_DIR"/m1 "$ETCD_DIR"/m2 "$ETCD_DIR"/m3 "$work/agent.log"'

# Unassigned: revoked from the running container (as swarm removes a
# secret from a service's tasks), and the next start is refused.
check "before: c1 holds db at two targets" '[ "$(in_container c1 "test -s /run/secrets/db && test -s /run/secrets/again && echo y")" = y ]'
admin task unassign t1 >/dev/null
check "unassigned: both are gone from the running container" \
    'wait_for 10 runc --root "$work/state-rt" exec c1 /bin/busybox sh -c "test ! -e /run/secrets/db && test ! -e /run/secrets/again"'
check "unassigned: one line says so" 'grep -q "container \"c1\": task t1 was unassigned: its 2 secret(s) revoked" "$work/agent.log"'
check "unassigned: the container still runs" '[ "$(rt state c1 | grep -c running)" = 1 ]'
bundle c7 t1 true
check "an unassigned task is refused at its next start" 'wait_for 5 sh -c "! runc --root $work/state-rt run --bundle $work/c7 c7 >/dev/null 2>$work/c7.err" && grep -q "is not granted to a container started by root" "$work/c7.err"'
ids="$ids c7"

# A service, as swarm's: its task placed on this node gets the service's
# grants; an update of the service reaches the running container; the task
# moved to node-2 leaves it (revoked here).
admin service create api --identity root --secret other >/dev/null
admin task place api.1 --service api --node node-1 >/dev/null
bundle cs1 api.1 sh -c 'sleep 300'
start_detached cs1
check "service: its task's container reads the service's grant" \
    '[ "$(in_container cs1 "sha256sum /run/secrets/other" | cut -c1-64)" = "$(digest "$live4")" ]'
admin service update api --identity root --secret other --secret "source=db,target=/run/secrets/db" >/dev/null
check "service update: the new grant reaches the running container" \
    'wait_for 10 sh -c "[ \"\$(runc --root $work/state-rt exec cs1 /bin/busybox sha256sum /run/secrets/db 2>/dev/null | cut -c1-64)\" = \"$(digest "$live5")\" ]"'
admin task place api.1 --service api --node node-2 >/dev/null
check "task moved to node-2: revoked from this node's container" \
    'wait_for 10 runc --root "$work/state-rt" exec cs1 /bin/busybox sh -c "test ! -e /run/secrets/other && test ! -e /run/secrets/db"'
bundle cs2 api.1 true
check "... and a new container of it here is refused" \
    '! rt run --bundle "$work/cs2" cs2 >/dev/null 2>"$work/cs2.err" && grep -q "is not granted to a container started by root" "$work/cs2.err"'
ids="$ids cs1 cs2"
admin service rm api >/dev/null

rt delete -f c1 >/dev/null 2>&1; rt delete -f c4 >/dev/null 2>&1
check "no marker in etcd's data directories" '! grep -r -a -q -F -e "$v1" -e "$v2" -e "$other" "$ETCD_DIR"/m1 "$ETCD_DIR"/m2 "$ETCD_DIR"/m3'
check "no marker in the agent's state directory" '! grep -r -a -q -F -e "$v1" -e "$v2" -e "$other" "$work/state"'
check "no marker in the agent's log" '! grep -q -F -e "$v1" -e "$v2" -e "$other" "$work/agent.log"'

if [ "$failures" != 0 ]; then echo "--- agent log"; tail -40 "$work/agent.log"; fi
echo "$checks checks, $failures failed"
[ "$failures" = 0 ]
