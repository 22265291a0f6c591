#!/bin/sh
# Cluster mode's audit trail in a real journal (run by with_cluster.sh
# against a real 3-member etcd; a journald of the script's own, as in
# tests/integration/journal_e2e.sh): a container of a task is attached with
# its task named; a rotation is one update entry; a grant added to the
# running task is an add, one taken away a revoke; a task unassigned
# revokes the rest; another node's task is refused; the flush names the
# task. No value anywhere in the journal.
# Usage: cluster_journal.sh BUILD_DIR. Values are random markers, never printed.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../integration/lib.sh"
build=$(cd "$1" && pwd)
scripts=$(cd "$here/../../scripts" && pwd)
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root"; exit 77; }
command -v runc >/dev/null || { echo "FAIL - runc is not installed (scripts/setup.sh installs it)"; exit 1; }
[ -x "$journald" ] || { echo "FAIL - $journald is not there (scripts/setup.sh installs systemd)"; exit 1; }
if [ -z "${JOURNAL_E2E_INNER:-}" ]; then
    exec env JOURNAL_E2E_INNER=1 unshare -m --propagation private sh "$0" "$@"
fi
runtime=runc
hook=$build/plugin/secretshim-hook
ctlbin=$build/plugin/secretshimctl
work=$(mktemp -d /tmp/secretshim-cluster-journal-XXXXXX)
sock=$work/agent.sock
ids=""

cleanup() {
    for id in $ids; do rt delete -f "$id" >/dev/null 2>&1; done
    stop_agent
    stop_journald
    remove_work
}
trap cleanup EXIT
start_journald || exit 1

admin() { "$ctlbin" --endpoints "$ETCD_ENDPOINTS" --cacert "$ETCD_PKI/ca.crt" --cert "$ETCD_PKI/admin.crt" \
    --key "$ETCD_PKI/admin.key" \
    --cluster-key "$work/admin/cluster.key" --signing-key "$work/admin/signing.key" "$@"; }
connected() { ctl status 2>/dev/null | python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin)["cluster"]["connected"] else 1)' 2>/dev/null; }

mkdir -m 700 "$work/admin" "$work/state"
openssl genpkey -algorithm ed25519 -out "$work/admin/signing.key" 2>/dev/null
openssl pkey -in "$work/admin/signing.key" -pubout -out "$work/admin/signing.pub"
cat >"$work/agent.yaml" <<YAML
log_target: journal
source: etcd
etcd:
  endpoints: [$(echo "$ETCD_ENDPOINTS" | sed 's/,/, /g')]
  ca: $ETCD_PKI/ca.crt
  cert: $ETCD_PKI/node-1.crt
  key: $ETCD_PKI/node-1.key
  node: node-1
  admin_keys: [$work/admin/signing.pub]
YAML
pub=$("$ctlbin" node keygen --state-dir "$work/state")
admin node add node-1 --public-key "$pub" >/dev/null
admin node add node-2 --key-out "$work/admin/node-2.key" >/dev/null
v1=$(marker); v2=$(marker); x1=$(marker)
printf %s "$v1" | admin secret create db - >/dev/null
printf %s "$x1" | admin secret create extra - >/dev/null
admin task assign t1 --identity root --node node-1 --secret db >/dev/null
admin task assign t9 --identity root --node node-2 --secret extra >/dev/null

start_agent "$work/agent.yaml" || { echo "FAIL - agent did not start"; cat "$work/agent.log"; exit 1; }
check "agent connects to etcd" 'wait_for 20 connected'

bundle c1 t1 sh -c 'sleep 100'
start_detached c1
check "attach: the container, its secret, who it is and its task" \
    'has_entry SECRETSHIM_EVENT=attach CONTAINER_ID=c1 SECRETSHIM_SECRETS=db SECRETSHIM_IDENTITY=root SECRETSHIM_TASK=t1'
bundle c2 t9 sh -c 'echo RAN'
rt run --bundle "$work/c2" c2 >/dev/null 2>&1; ids="$ids c2"
check "refuse: another node's task, not_granted, the task named" \
    'has_entry SECRETSHIM_EVENT=refuse CONTAINER_ID=c2 PRIORITY=4 SECRETSHIM_REASON=not_granted SECRETSHIM_TASK=t9'

printf %s "$v2" | admin secret rotate db - >/dev/null
check "update: a rotation reached the running container, one entry" \
    'has_entry SECRETSHIM_EVENT=update CONTAINER_ID=c1 SECRETSHIM_SECRETS=db SECRETSHIM_TASK=t1 PRIORITY=6'
admin task assign t1 --identity root --node node-1 --secret db --secret extra >/dev/null
check "add: a grant added to the running task" \
    'has_entry SECRETSHIM_EVENT=add CONTAINER_ID=c1 SECRETSHIM_SECRETS=extra SECRETSHIM_TASK=t1 SECRETSHIM_IDENTITY=root'
admin task assign t1 --identity root --node node-1 --secret db >/dev/null
check "revoke: a grant taken from the running task" \
    'has_entry SECRETSHIM_EVENT=revoke CONTAINER_ID=c1 SECRETSHIM_SECRETS=extra SECRETSHIM_TASK=t1'
admin task unassign t1 >/dev/null
check "revoke: the task unassigned takes the rest" \
    'has_entry SECRETSHIM_EVENT=revoke CONTAINER_ID=c1 SECRETSHIM_SECRETS=db SECRETSHIM_TASK=t1'
rt delete -f c1 >/dev/null 2>&1
check "flush: the stopped container, its task" 'has_entry SECRETSHIM_EVENT=flush CONTAINER_ID=c1 SECRETSHIM_TASK=t1'
check "-p err: nothing in the good case" '[ -z "$(entries -p err)" ]'
check "no secret's value in the journal" '! journal_holds "$v1" "$v2" "$x1"'
probe=$(marker)
printf 'MESSAGE=probe\nPROBE=%s\n' "$probe" | logger --journald
check "the search finds a marker that is there" 'wait_for 5 journal_holds "$probe"'

echo "$checks checks, $failures failed"
[ "$failures" = 0 ] || {
    echo "--- the agent's journal entries"; journalctl -D "$jdir" --no-pager -o verbose SYSLOG_IDENTIFIER=secretshimd
    echo "--- agent log"; cat "$work/agent.log"
}
finish
