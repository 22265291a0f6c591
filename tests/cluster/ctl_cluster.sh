#!/bin/sh
# secretshimctl's cluster commands against a real cluster (run by
# with_cluster.sh): node registration, secret create/ls/inspect/rotate/rm,
# task assign/unassign, idempotent repeats, refusals with one clear line,
# and no plaintext marker anywhere in etcd's data directories.
set -eu
ctl_bin=$1
work=$(mktemp -d /tmp/secretshim-ctl-cluster-XXXXXX)
trap 'rm -rf "$work"' EXIT
checks=0
fails=0
ok() { checks=$((checks + 1)); echo "ok - $1"; }
bad() { checks=$((checks + 1)); fails=$((fails + 1)); echo "FAIL - $1"; }
check() { desc=$1; shift; if "$@" >/dev/null 2>&1; then ok "$desc"; else bad "$desc"; fi; }
refused() {  # refused DESC PATTERN CMD...: fails with one line matching PATTERN
    desc=$1; pattern=$2; shift 2
    if "$@" >"$work/out" 2>"$work/err"; then bad "$desc (accepted)"; return; fi
    if [ "$(wc -l <"$work/err")" = 1 ] && grep -q -- "$pattern" "$work/err"; then ok "$desc"; else bad "$desc: $(cat "$work/err")"; fi
}
ctl() { "$ctl_bin" --endpoints "$ETCD_ENDPOINTS" --cacert "$ETCD_PKI/ca.crt" --cert "$ETCD_PKI/admin.crt" \
    --key "$ETCD_PKI/admin.key" \
    --cluster-key "$work/admin/cluster.key" --signing-key "$work/admin/signing.key" "$@"; }
etcdctl_root() { ETCDCTL_API=3 etcdctl --endpoints "$ETCD_ENDPOINTS" --cacert "$ETCD_PKI/ca.crt" \
    --cert "$ETCD_PKI/root.crt" --key "$ETCD_PKI/root.key" "$@"; }
# A copy's key names its version in 20 digits.
V1=00000000000000000001
V2=00000000000000000002
mkdir -m 700 "$work/admin" "$work/node1"
openssl genpkey -algorithm ed25519 -out "$work/admin/signing.key" 2>/dev/null

marker="ctl-cluster-MARKER-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
printf '%s' "$marker" >"$work/v1"
printf '%s-2' "$marker" >"$work/v2"

pub=$("$ctl_bin" node keygen --state-dir "$work/node1")
check "node keygen prints a 32-byte public key" test "$(printf '%s' "$pub" | base64 -d | wc -c)" = 32
check "node keygen is stable" test "$("$ctl_bin" node keygen --state-dir "$work/node1")" = "$pub"
check "node add with the node's public key" ctl node add node-1 --public-key "$pub"
check "node add again is a no-op" ctl node add node-1 --public-key "$pub"
# Rotating the admin key: node add with the new key signs the registration
# again (and back with the old one, which the rest of this test uses).
signer() { etcdctl_root get --print-value-only /secretshim/registry/node-1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["signer"])'; }
openssl genpkey -algorithm ed25519 -out "$work/admin/new-signing.key" 2>/dev/null
was=$(signer)
"$ctl_bin" --endpoints "$ETCD_ENDPOINTS" --cacert "$ETCD_PKI/ca.crt" --cert "$ETCD_PKI/admin.crt" --key "$ETCD_PKI/admin.key" \
    --signing-key "$work/admin/new-signing.key" \
    node add node-1 --public-key "$pub" >/dev/null
check "node add with a new signing key signs the registration again" sh -c "[ -n \"\$1\" ] && [ -n \"\$2\" ] && [ \"\$1\" != \"\$2\" ]" sh "$was" "$(signer)"
ctl node add node-1 --public-key "$pub" >/dev/null
check "... and with the old one again" test "$(signer)" = "$was"
check "node add prints the node's config" sh -c "\"\$@\" node add node-1 --public-key $pub | grep -q 'source: etcd'" sh "$ctl_bin" \
    --endpoints "$ETCD_ENDPOINTS" --cacert "$ETCD_PKI/ca.crt" --cert "$ETCD_PKI/admin.crt" --key "$ETCD_PKI/admin.key" \
    --signing-key "$work/admin/signing.key"
refused "node add without the admin signing key is refused" "needs the admin signing key (--signing-key or etcd.signing_key)" \
    "$ctl_bin" --endpoints "$ETCD_ENDPOINTS" --cacert "$ETCD_PKI/ca.crt" --cert "$ETCD_PKI/admin.crt" \
    --key "$ETCD_PKI/admin.key" node add node-5 --public-key "$pub"
# A registration written straight into etcd (by whoever can write there):
# no copy is ever sealed to its key.
etcdctl_root put /secretshim/registry/node-3 "{\"node\":\"node-3\",\"public_key\":\"$pub\"}" >/dev/null
check "node add with a generated key pair" ctl node add node-2 --key-out "$work/admin/node-2.key"
refused "node add with another key is refused" "already registered" ctl node add node-2 --public-key "$pub"
refused "a node name with a slash is refused" "invalid" ctl node add "a/b" --public-key "$pub"
refused "a node name with dot-dot is refused" "invalid" ctl node add ".." --public-key "$pub"

id=$(ctl secret create db "$work/v1")
check "secret create prints an id" test -n "$id"
refused "secret create twice is refused" "already exists" ctl secret create db "$work/v1"
check "secret create from stdin" sh -c "printf other | \"\$@\" secret create other -" sh "$ctl_bin" \
    --endpoints "$ETCD_ENDPOINTS" --cacert "$ETCD_PKI/ca.crt" --cert "$ETCD_PKI/admin.crt" --key "$ETCD_PKI/admin.key" \
    --cluster-key "$work/admin/cluster.key"
check "the cluster key is 0600" test "$(stat -c %a "$work/admin/cluster.key")" = 600
check "secret ls lists both" sh -c "$(printf '%s' '"$@"') secret ls | grep -c '^db \|^other ' | grep -qx 2" sh "$ctl_bin" \
    --endpoints "$ETCD_ENDPOINTS" --cacert "$ETCD_PKI/ca.crt" --cert "$ETCD_PKI/admin.crt" --key "$ETCD_PKI/admin.key"
ctl secret inspect db >"$work/inspect"
check "secret inspect shows version 1 and the id" sh -c "grep -q '\"version\": 1' $work/inspect && grep -q $id $work/inspect"
refused "assign to an unregistered node is refused" "not registered" ctl task assign t1 --identity root --node node-9 --secret db
refused "assign of a missing secret is refused" "not found" ctl task assign t1 --identity root --node node-1 --secret nope
refused "assign to a node whose registration no admin signed is refused" \
    "node \"node-3\"'s registration is not trusted: not signed by an admin key" ctl task assign t1 --identity root --node node-3 --secret db
# A key others can read is refused before it is used.
cp "$ETCD_PKI/admin.key" "$work/shared.key"; chmod 0644 "$work/shared.key"
refused "a client key readable by others is refused" \
    "^secretshimctl: etcd: the client key \"$work/shared.key\" is accessible by group or others (mode 0644); expected 0600\$" \
    "$ctl_bin" --endpoints "$ETCD_ENDPOINTS" --cacert "$ETCD_PKI/ca.crt" --cert "$ETCD_PKI/admin.crt" \
    --key "$work/shared.key" secret ls
refused "secret create --grant is refused against the cluster" "^secretshimctl: --grant is for a node's local store; in the cluster a task is bound to its containers: task assign --identity RULE$" \
    ctl secret create y "$work/v1" --grant root
rc=0; ctl task assign t1 --node node-1 --secret db >/dev/null 2>"$work/err" || rc=$?
if [ $rc = 2 ] && grep -q -- "--identity is required" "$work/err"; then ok "assign without --identity: a usage error (exit 2)"
else bad "assign without --identity: a usage error (exit 2): rc $rc, $(cat "$work/err")"; fi
refused "assign with a pinned identity is refused" "pins a target, owner or mode" ctl task assign t1 --identity 'root,mode=0400' --node node-1 --secret db
refused "assign with a malformed identity is refused" 'grant rule "everyone": it must start with kubernetes, podman or root' ctl task assign t1 --identity everyone --node node-1 --secret db
refused "assign with a bad spec is refused" 'mode "9z" is not octal' ctl task assign t1 --identity root --node node-1 --secret "source=db,mode=9z"
check "task assign" ctl task assign t1 --identity root --node node-1 --secret db --secret "source=other,target=/etc/other,mode=0400"
check "task assign again is a no-op" ctl task assign t1 --identity root --node node-1 --secret db --secret "source=other,target=/etc/other,mode=0400"
refused "the same task on another node is refused" "assigned to node" ctl task assign t1 --identity root --node node-2 --secret db
many=$(i=0; while [ $i -le 100 ]; do printf ' --secret x%s' $i; i=$((i + 1)); done)
# shellcheck disable=SC2086
refused "a task of 101 secrets is refused (one transaction guards them all)" \
    "a task holds 101 secrets: at most 100 (one etcd transaction guards them all)" \
    ctl task assign tbig --identity root --node node-1 $many
etcdctl_root get --prefix /secretshim/nodes/node-1/ --keys-only >"$work/keys"
check "the index by secret: db and other are held by t1 on node-1" sh -c '[ "$0" = node-1 ] && [ "$1" = node-1 ]' \
    "$(etcdctl_root get --print-value-only /secretshim/holders/db/t1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["node"])')" \
    "$(etcdctl_root get --print-value-only /secretshim/holders/other/t1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["node"])')"
check "node-1 holds the task and both copies (version 1)" sh -c "grep -qx /secretshim/nodes/node-1/tasks/t1 $work/keys && grep -qx /secretshim/nodes/node-1/secrets/db/$V1 $work/keys && grep -qx /secretshim/nodes/node-1/secrets/other/$V1 $work/keys"
check "the task is placed in the admins' index" test "$(etcdctl_root get --print-value-only /secretshim/tasks/t1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["node"])')" = node-1
dbid=$(etcdctl_root get --print-value-only /secretshim/secrets/db | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
published() { etcdctl_root get --print-value-only "/secretshim/published/$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["version"])'; }
check "db is published at version 1 (by its id)" test "$(published "$dbid")" = 1
refused "secret rm while assigned is refused" "assigned to task" ctl secret rm db
check "secret rotate" ctl secret rotate db "$work/v2"
check "db is published at version 2" test "$(published "$dbid")" = 2
check "node-1's copy is at version 2, version 1's is deleted" \
    test "$(etcdctl_root get --prefix --keys-only /secretshim/nodes/node-1/secrets/db/ | grep .)" = "/secretshim/nodes/node-1/secrets/db/$V2"
check "no rotation left under way" sh -c '! printf %s "$0" | grep -q "\"staging\":"' "$(etcdctl_root get --print-value-only /secretshim/secrets/db)"
check "revoke by re-assigning without it" ctl task assign t1 --identity root --node node-1 --secret db
check "the revoked copy is gone, and its holder record" sh -c '[ -z "$0" ] && [ -z "$1" ]' \
    "$(etcdctl_root get --prefix --keys-only /secretshim/nodes/node-1/secrets/other/)" "$(etcdctl_root get --keys-only /secretshim/holders/other/t1)"
check "task ls shows the assignment" sh -c "\"\$@\" task ls | grep -q '^t1 .*node-1'" sh "$ctl_bin" \
    --endpoints "$ETCD_ENDPOINTS" --cacert "$ETCD_PKI/ca.crt" --cert "$ETCD_PKI/admin.crt" --key "$ETCD_PKI/admin.key"
check "task unassign" ctl task unassign t1
refused "unassign twice says so" "not assigned" ctl task unassign t1
check "the node's prefix is empty" test -z "$(etcdctl_root get --prefix /secretshim/nodes/node-1/ --keys-only)"
check "secret rm after unassign" ctl secret rm db
refused "rm of a missing secret" "not found" ctl secret rm db
refused "no cluster key: a clear error" "cluster key" "$ctl_bin" --endpoints "$ETCD_ENDPOINTS" --cacert "$ETCD_PKI/ca.crt" \
    --cert "$ETCD_PKI/admin.crt" --key "$ETCD_PKI/admin.key" \
    secret rotate other "$work/v1"
refused "a node user cannot write" "permission denied" "$ctl_bin" --endpoints "$ETCD_ENDPOINTS" --cacert "$ETCD_PKI/ca.crt" \
    --cert "$ETCD_PKI/node-1.crt" --key "$ETCD_PKI/node-1.key" \
    --cluster-key "$work/admin/cluster.key" secret create x "$work/v1"
# node rm: the node's etcd user and role first, then its keys. node add
# made both (node-7 is not one of the test cluster's own users).
check "node add node-7" ctl node add node-7 --key-out "$work/node-7.key"
etcdctl_root role get node-7 >"$work/role" 2>&1 || true
check "node add made node-7's role: read its prefix and the published versions, nothing else" \
    sh -c "grep -qF '(prefix /secretshim/nodes/node-7/)' '$work/role' && grep -qF '(prefix /secretshim/published/)' '$work/role' && [ \"\$(grep -c prefix '$work/role')\" = 2 ]"
check "node-7's user exists" etcdctl_root user get node-7
check "a secret for node-7" ctl secret create n7 "$work/v1"
check "a task assigned to node-7" ctl task assign t7 --identity root --node node-7 --secret n7
check "node-7 holds its task and copy" test "$(etcdctl_root get --prefix /secretshim/nodes/node-7/ --keys-only | grep -c .)" = 2
check "node ls and task ls list node-7 and t7" sh -c '"$@" node ls | grep -q "^node-7 " && "$@" task ls | grep -q "^t7 "' sh \
    "$ctl_bin" --endpoints "$ETCD_ENDPOINTS" --cacert "$ETCD_PKI/ca.crt" --cert "$ETCD_PKI/admin.crt" --key "$ETCD_PKI/admin.key"
ctl node rm node-7 >"$work/rm.out" 2>&1 || true
check "node rm node-7 says what it did" grep -qx "node node-7 removed: its etcd user and role revoked, 5 key(s) deleted" "$work/rm.out"
check "node-7's etcd user is gone" sh -c '! ETCDCTL_API=3 etcdctl --endpoints "$ETCD_ENDPOINTS" --cacert "$ETCD_PKI/ca.crt" --cert "$ETCD_PKI/root.crt" --key "$ETCD_PKI/root.key" user get node-7'
check "node-7's role is gone" sh -c '! ETCDCTL_API=3 etcdctl --endpoints "$ETCD_ENDPOINTS" --cacert "$ETCD_PKI/ca.crt" --cert "$ETCD_PKI/root.crt" --key "$ETCD_PKI/root.key" role get node-7'
check "node-7's prefix and registration are gone" sh -c \
    'test -z "$(ETCDCTL_API=3 etcdctl --endpoints "$ETCD_ENDPOINTS" --cacert "$ETCD_PKI/ca.crt" --cert "$ETCD_PKI/root.crt" --key "$ETCD_PKI/root.key" get --prefix --keys-only /secretshim/ | grep node-7)"'
check "node ls no longer lists node-7" sh -c '! "$@" node ls | grep -q "^node-7 "' sh "$ctl_bin" --endpoints "$ETCD_ENDPOINTS" \
    --cacert "$ETCD_PKI/ca.crt" --cert "$ETCD_PKI/admin.crt" --key "$ETCD_PKI/admin.key"
check "node rm again: nothing left, no error" ctl node rm node-7
check "the task is gone with it" sh -c '! "$@" task ls | grep -q "^t7 "' sh "$ctl_bin" --endpoints "$ETCD_ENDPOINTS" \
    --cacert "$ETCD_PKI/ca.crt" --cert "$ETCD_PKI/admin.crt" --key "$ETCD_PKI/admin.key"
check "secret rm n7 after node rm (no task holds it)" ctl secret rm n7

# A reinstalled node (a new key pair): node add --replace takes the new key
# and seals every copy its tasks hold again.
mkdir -m 700 "$work/node8a" "$work/node8b"
pub8a=$("$ctl_bin" node keygen --state-dir "$work/node8a")
pub8b=$("$ctl_bin" node keygen --state-dir "$work/node8b")
check "node add node-8" ctl node add node-8 --public-key "$pub8a"
check "a secret and a task for node-8" sh -c '"$@" secret create n8 "$0/v1" && "$@" task assign t8 --identity root --node node-8 --secret n8' \
    "$work" "$ctl_bin" --endpoints "$ETCD_ENDPOINTS" --cacert "$ETCD_PKI/ca.crt" --cert "$ETCD_PKI/admin.crt" \
    --key "$ETCD_PKI/admin.key" --cluster-key "$work/admin/cluster.key" --signing-key "$work/admin/signing.key"
refused "node add with another key is refused, naming --replace" \
    "already registered with another key (a reinstalled node: node add --replace)" ctl node add node-8 --public-key "$pub8b"
# Whoever can write to etcd alters node-8's task record (more containers):
# --replace must not assign it again, which would sign it as the admin's.
etcdctl_root get --print-value-only /secretshim/nodes/node-8/tasks/t8 |
    python3 -c 'import json,sys; t=json.load(sys.stdin); t["max_containers"]=99; print(json.dumps(t), end="")' >"$work/t8-forged"
etcdctl_root put /secretshim/nodes/node-8/tasks/t8 -- "$(cat "$work/t8-forged")" >/dev/null
refused "node add --replace refuses a task record no admin signed, by key" \
    "node \"node-8\": the task record \"/secretshim/nodes/node-8/tasks/t8\" is not signed by a trusted admin key" \
    ctl node add node-8 --public-key "$pub8b" --replace
check "... and leaves the altered record as it found it, unsigned by us" \
    test "$(etcdctl_root get --print-value-only /secretshim/nodes/node-8/tasks/t8)" = "$(cat "$work/t8-forged")"
check "the admin assigns t8 again (signed)" ctl task assign t8 --identity root --node node-8 --secret n8
before=$(etcdctl_root get --print-value-only /secretshim/nodes/node-8/secrets/n8/$V1)
ctl node add node-8 --public-key "$pub8b" --replace >"$work/r8" 2>&1 || cat "$work/r8"
check "node add --replace, run again, takes the new key" grep -q "^node node-8 registered" "$work/r8"
check "node ls shows the new key" sh -c '"$@" node ls | grep -q "^node-8 *$0\$"' "$pub8b" "$ctl_bin" --endpoints "$ETCD_ENDPOINTS" \
    --cacert "$ETCD_PKI/ca.crt" --cert "$ETCD_PKI/admin.crt" --key "$ETCD_PKI/admin.key"
after=$(etcdctl_root get --print-value-only /secretshim/nodes/node-8/secrets/n8/$V1)
epk() { printf '%s' "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["sealed"]["epk"])'; }
check "its copy was sealed again, to another ephemeral key" sh -c '[ -n "$0" ] && [ -n "$1" ] && [ "$0" != "$1" ]' \
    "$(epk "$before")" "$(epk "$after")"
check "the task is still node-8's" test -n "$(etcdctl_root get --keys-only /secretshim/nodes/node-8/tasks/t8)"
check "node add --replace again: nothing to change, no error" ctl node add node-8 --public-key "$pub8b" --replace
check "node-8 removed" ctl node rm node-8
check "n8 removed" ctl secret rm n8

# Cluster-key rotation: every master sealed again to the new key; the old
# key opens none of them after, the new one opens all; a second run has
# nothing left to do.
check "secrets k1 and k2" sh -c '"$@" secret create k1 "$0/v1" && "$@" secret create k2 "$0/v2"' \
    "$work" "$ctl_bin" --endpoints "$ETCD_ENDPOINTS" --cacert "$ETCD_PKI/ca.crt" --cert "$ETCD_PKI/admin.crt" \
    --key "$ETCD_PKI/admin.key" --cluster-key "$work/admin/cluster.key" --signing-key "$work/admin/signing.key"
masters=$(etcdctl_root get --prefix --keys-only /secretshim/secrets/ | grep -c .)
ctl secret rekey "$work/admin/cluster2.key" >"$work/rekey" 2>&1 || cat "$work/rekey"
check "secret rekey seals all $masters master(s) again" grep -q "^$masters secret(s) sealed again to $work/admin/cluster2.key (0 already were)" "$work/rekey"
check "the new cluster key is 0600" test "$(stat -c %a "$work/admin/cluster2.key")" = 600
ctl2() { "$ctl_bin" --endpoints "$ETCD_ENDPOINTS" --cacert "$ETCD_PKI/ca.crt" --cert "$ETCD_PKI/admin.crt" \
    --key "$ETCD_PKI/admin.key" --cluster-key "$work/admin/cluster2.key" --signing-key "$work/admin/signing.key" "$@"; }
refused "the old cluster key opens none of them" "secret \"k1\": the cluster key cannot decrypt it" \
    ctl task assign tk --identity root --node node-1 --secret k1
check "the new one does" ctl2 task assign tk --identity root --node node-1 --secret k1 --secret k2
ctl2 secret rekey "$work/admin/cluster2.key" >"$work/rekey2" 2>&1 || cat "$work/rekey2"
check "secret rekey again: nothing left to do" grep -q "^0 secret(s) sealed again to $work/admin/cluster2.key ($masters already were)" "$work/rekey2"
# A master neither key opens (sealed under a third): rekey stops there, by name.
check "a secret k3 under a third cluster key" "$ctl_bin" --endpoints "$ETCD_ENDPOINTS" --cacert "$ETCD_PKI/ca.crt" \
    --cert "$ETCD_PKI/admin.crt" --key "$ETCD_PKI/admin.key" --cluster-key "$work/admin/cluster3.key" secret create k3 "$work/v1"
refused "rekey stops at a master neither key opens, by name" \
    'secret "k3": neither the cluster key nor the new one decrypts it' ctl2 secret rekey "$work/admin/cluster4.key"
check "k3 removed" ctl secret rm k3
check "clean up tk, k1, k2" sh -c '"$@" task unassign tk && "$@" secret rm k1 && "$@" secret rm k2' sh "$ctl_bin" \
    --endpoints "$ETCD_ENDPOINTS" --cacert "$ETCD_PKI/ca.crt" --cert "$ETCD_PKI/admin.crt" --key "$ETCD_PKI/admin.key"

# Records planted by whoever can write to etcd (no admin signed them): a
# placement, which task ls marks, and a holder naming node-2 for p1, at
# which a rotation of p1 stops rather than seal p1 to node-2.
check "a secret p1 and a task tp on node-1" sh -c '"$@" secret create p1 "$0/v1" && "$@" task assign tp --identity root --node node-1 --secret p1' \
    "$work" "$ctl_bin" --endpoints "$ETCD_ENDPOINTS" --cacert "$ETCD_PKI/ca.crt" --cert "$ETCD_PKI/admin.crt" \
    --key "$ETCD_PKI/admin.key" --cluster-key "$work/admin/cluster.key" --signing-key "$work/admin/signing.key"
etcdctl_root put /secretshim/tasks/tplant '{"task":"tplant","node":"node-2","secrets":"p1","identity":"root"}' >/dev/null
etcdctl_root put /secretshim/holders/p1/tplant '{"secret":"p1","task":"tplant","node":"node-2"}' >/dev/null
ctl task ls >"$work/tasks" 2>&1 || true
check "task ls marks the planted placement" sh -c "grep '^tplant ' '$work/tasks' | grep -q 'not signed by a trusted admin key'"
refused "a rotation of p1 stops at the planted holder, by key" \
    "the holder record \"/secretshim/holders/p1/tplant\" is not an admin's" ctl secret rotate p1 "$work/v2"
refused "secret rm p1 counts the planted holder (refused, not deleted)" 'secret "p1" is assigned to task' ctl secret rm p1
check "node-2 got no copy of p1" test -z "$(etcdctl_root get --prefix --keys-only /secretshim/nodes/node-2/secrets/p1/)"
ctl secret ls >"$work/secrets" 2>&1 || true
check "secret ls shows the rotation that stopped" grep -q "^p1 .*(rotating to version 2)" "$work/secrets"
etcdctl_root del /secretshim/tasks/tplant >/dev/null
etcdctl_root del /secretshim/holders/p1/tplant >/dev/null
check "the planted records gone, the next rotation takes over" ctl secret rotate p1 "$work/v2"
etcdctl_root get --print-value-only /secretshim/secrets/p1 >"$work/p1.json"
check "p1 is at version 2, published, no rotation left" sh -c 'python3 -c "import json,sys; m=json.load(open(sys.argv[1])); sys.exit(not (m[\"version\"] == 2 and \"staging\" not in m))" "$0" && [ "$1" = 2 ]' \
    "$work/p1.json" "$(published "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$work/p1.json")")"
check "clean up tp, p1" sh -c '"$@" task unassign tp && "$@" secret rm p1' sh "$ctl_bin" \
    --endpoints "$ETCD_ENDPOINTS" --cacert "$ETCD_PKI/ca.crt" --cert "$ETCD_PKI/admin.crt" --key "$ETCD_PKI/admin.key"
refused "node keygen --promote without a next key pair says how to make one" \
    "cluster-node.key.next does not exist (make it first: secretshimctl node keygen --rotate)" \
    "$ctl_bin" node keygen --promote --state-dir "$work/node1"

# Services: the grants are the service's; its tasks, placed on any node,
# receive them; an update reaches every task; a placed task moves; rm takes
# its tasks with it.
check "secrets s1 and s2" sh -c '"$@" secret create s1 "$0/v1" && "$@" secret create s2 "$0/v2"' \
    "$work" "$ctl_bin" --endpoints "$ETCD_ENDPOINTS" --cacert "$ETCD_PKI/ca.crt" --cert "$ETCD_PKI/admin.crt" \
    --key "$ETCD_PKI/admin.key" --cluster-key "$work/admin/cluster.key" --signing-key "$work/admin/signing.key"
refused "service create with a missing secret is refused" 'secret "nosuch" not found' \
    ctl service create web --identity root --secret nosuch
check "service create web" ctl service create web --identity root --secret s1
refused "service create web again is refused" "already exists (service update changes its grants)" \
    ctl service create web --identity root --secret s1
refused "task place of a missing service is refused" 'service "nosuch" not found' \
    ctl task place web.1 --service nosuch --node node-1
# Whoever can write to etcd widens the service's record: task place refuses
# it; service update replaces it with the admin's.
etcdctl_root get --print-value-only /secretshim/services/web >"$work/web-good"
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); r["secrets"]="s1;s2"; print(json.dumps(r), end="")' \
    "$work/web-good" >"$work/web-forged"
etcdctl_root put /secretshim/services/web -- "$(cat "$work/web-forged")" >/dev/null
refused "task place refuses a service record no admin signed" \
    "service \"web\"'s record is not signed by a trusted admin key" ctl task place web.1 --service web --node node-1
check "service update replaces the altered record with the admin's" ctl service update web --identity root --secret s1
check "task place web.1 on node-1" ctl task place web.1 --service web --node node-1
check "task place web.2 on node-2" ctl task place web.2 --service web --node node-2
check "node-1 and node-2 hold their task and a copy of s1" sh -c '[ "$0" = 2 ] && [ "$1" = 2 ]' \
    "$(etcdctl_root get --prefix --keys-only /secretshim/nodes/node-1/ | grep -c -e tasks/web.1 -e secrets/s1/)" \
    "$(etcdctl_root get --prefix --keys-only /secretshim/nodes/node-2/ | grep -c -e tasks/web.2 -e secrets/s1/)"
refused "task assign of a service's task is refused" 'task "web.1" is a task of service "web"' \
    ctl task assign web.1 --identity root --node node-1 --secret s2
refused "task place to a node not registered is refused" 'node "node-99" is not registered' \
    ctl task place web.2 --service web --node node-99
check "... and the task stays where it was, with its copy" \
    test "$(etcdctl_root get --prefix --keys-only /secretshim/nodes/node-2/ | grep -c -e tasks/web.2 -e secrets/s1/)" = 2
ctl service update web --identity root --secret s2 --max-containers 3 >"$work/update" 2>&1 || true
check "service update: both tasks placed again" grep -qx "service web updated: 2 task(s) placed again with its grants" "$work/update"
check "... node-1 now holds s2, not s1, with the new limit" sh -c '[ -n "$0" ] && [ -z "$1" ] && printf %s "$2" | grep -q "\"max_containers\":3" && printf %s "$2" | grep -q "\"secrets\":\"s2\""' \
    "$(etcdctl_root get --prefix --keys-only /secretshim/nodes/node-1/secrets/s2/)" \
    "$(etcdctl_root get --prefix --keys-only /secretshim/nodes/node-1/secrets/s1/)" \
    "$(etcdctl_root get --print-value-only /secretshim/nodes/node-1/tasks/web.1)"
ctl task place web.2 --service web --node node-1 >"$work/move" 2>&1 || true
check "task place web.2 on node-1 moves it" grep -qx "task web.2 of service web placed on node node-1 (moved from node node-2)" "$work/move"
check "... node-2 holds nothing of it any more" test -z "$(etcdctl_root get --prefix --keys-only /secretshim/nodes/node-2/)"
check "... node-1 holds both tasks, one copy" test "$(etcdctl_root get --prefix --keys-only /secretshim/nodes/node-1/ | grep -c .)" = 3
ctl service ls >"$work/services" 2>&1 || true
check "service ls: web, root, 2 tasks, s2" sh -c "grep -q '^web  *root  *2  *s2\$' '$work/services'"
ctl task ls >"$work/tasks" 2>&1 || true
check "task ls names the service" sh -c "grep -q '^web.2  *node-1  *web ' '$work/tasks'"
ctl service rm web >"$work/srm" 2>&1 || true
check "service rm web takes its 2 tasks" grep -qx "service web removed with its 2 task(s)" "$work/srm"
check "... node-1's prefix is empty, no placement left" sh -c '[ -z "$0" ] && [ -z "$1" ] && [ -z "$2" ]' \
    "$(etcdctl_root get --prefix --keys-only /secretshim/nodes/node-1/)" "$(etcdctl_root get --prefix --keys-only /secretshim/tasks/)" \
    "$(etcdctl_root get --prefix --keys-only /secretshim/services/)"
refused "service rm again: not found" 'service "web" not found' ctl service rm web
check "clean up s1, s2" sh -c '"$@" secret rm s1 && "$@" secret rm s2' sh "$ctl_bin" \
    --endpoints "$ETCD_ENDPOINTS" --cacert "$ETCD_PKI/ca.crt" --cert "$ETCD_PKI/admin.crt" --key "$ETCD_PKI/admin.key"

# Plaintext never reaches etcd: not in its data directories, not in any value.
if grep -r -a -q -F "$marker" "$ETCD_DIR"/m1 "$ETCD_DIR"/m2 "$ETCD_DIR"/m3; then bad "a marker is in etcd's data"; else ok "no marker in etcd's data directories"; fi

echo "$checks checks, $fails failed"
[ "$fails" = 0 ]
