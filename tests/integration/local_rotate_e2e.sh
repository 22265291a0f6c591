#!/bin/sh
# Local mode, day 2: `secretshimctl secret rotate` replaces a secret's value
# in the store and in every running container that holds it, at its
# /run/secrets file and at a single-file target alike, atomically (a reader
# loop inside the container sees only whole values); a container started
# later gets the new value; a refused rotation (over max_payload, over
# max_container_bytes) changes nothing. Labels given at create are shown by
# inspect and select with `secret ls --filter`.
# Usage: local_rotate_e2e.sh BUILD_DIR runc|crun
# Secret values are random markers compared as SHA-256 digests, never printed.
set -u
. "$(dirname "$0")/lib.sh"
build=$(cd "$1" && pwd)
runtime=$2
scripts=$(cd "$(dirname "$0")/../../scripts" && pwd)
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root"; exit 77; }
command -v "$runtime" >/dev/null || { echo "SKIP: $runtime not installed"; exit 77; }

hook=$build/plugin/secretshim-hook
work=$(mktemp -d /tmp/secretshim-rotate-XXXXXX)
sock=$work/agent.sock
ids=""

cleanup() {
    for id in $ids; do rt delete -f "$id" >/dev/null 2>&1; done
    stop_agent
    remove_work
}
trap cleanup EXIT

bundle() { b=$1; ann=$2; shift 2; python3 "$scripts/make_bundle.py" "$work/$b" "$hook" "$sock" "$ann" 0 "$@"; }
json_of() {  # json_of PYTHON-EXPRESSION-OF-d: reads JSON on stdin
    python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"
}
# The digests the container reads at its two targets, one line each.
reads() { rt exec c1 /bin/busybox sha256sum /run/secrets/db /etc/app/pw | cut -c1-64 | tr '\n' ' '; }
both() { d=$(digest "$1"); [ "$(reads)" = "$d $d " ]; }

# One container holds at most 2048 bytes of secrets, all running ones 2500.
sed -e 's/^max_container_bytes: .*/max_container_bytes: 2048/' -e 's/^max_node_bytes: .*/max_node_bytes: 2500/' \
    "$scripts/../packaging/secretshimd.yaml" >"$work/agent.yaml"
start_agent "$work/agent.yaml" || { echo "FAIL - agent did not start"; cat "$work/agent.log" >&2; exit 1; }

v1=$(marker)
printf %s "$v1" | ctl secret create db - --grant root --label tier=db --label team=payments >/dev/null
check "a secret created with labels and a grant: inspect shows them" \
    '[ "$(ctl secret inspect db | json_of "d[\"labels\"] == {\"tier\": \"db\", \"team\": \"payments\"} and d[\"grants\"] == [\"root\"] and d[\"version\"] == 1")" = True ]'
id0=$(ctl secret inspect db | json_of 'd["id"]')
printf %s "$(marker)" | ctl secret create other - --grant root --label tier=web >/dev/null
check "a bad label is refused in one line, nothing created" \
    '[ "$(printf x | ctl secret create bad - --label "no space=x" 2>&1 | wc -l)" = 1 ] &&
     ! ctl secret inspect bad >/dev/null 2>&1'
names() { ctl secret ls --format json "$@" | json_of '",".join(s["name"] for s in d)'; }
check "ls --filter label=KEY" '[ "$(names --filter label=tier)" = "db,other" ]'
check "ls --filter label=KEY=VALUE" '[ "$(names --filter label=tier=db)" = "db" ]'
check "ls --filter: every filter must match" \
    '[ "$(names --filter label=tier --filter label=team=payments)" = "db" ] && [ -z "$(names --filter label=tier=db --filter name=o)" ]'
check "ls --filter name=PREFIX" '[ "$(names --filter name=ot)" = "other" ]'
check "--label and --filter against the cluster are refused in one line, before anything is read" \
    '[ "$(ctl --endpoints https://127.0.0.1:9 secret create x "$work/none" --label a=b 2>&1)" = "secretshimctl: --label is for a node'"'"'s local store; cluster secrets carry no labels" ] &&
     [ "$(ctl --endpoints https://127.0.0.1:9 secret ls --filter label=a 2>&1)" = "secretshimctl: --filter is for a node'"'"'s local store; cluster secrets carry no labels" ]'
check "an unknown filter is refused in one line" \
    '! ctl secret ls --filter colour=red >/dev/null 2>&1 && [ "$(ctl secret ls --filter colour=red 2>&1 | wc -l)" = 1 ]'

# A running container holding the secret at /run/secrets/db and at a
# single-file target, with a reader loop that records the digest of every
# read of both (in its rootfs, read from the host afterwards).
bundle c1 "db;source=db,target=/etc/app/pw" sh -c '
    i=0; while [ $i -lt 4000 ] && [ ! -e /tmp/stop ]; do
        sha256sum /run/secrets/db /etc/app/pw | cut -c1-64 >>/tmp/reads; i=$((i + 1)); done
    touch /tmp/done; sleep 100'
ids="$ids c1"
rt run -d --bundle "$work/c1" c1 >/dev/null 2>"$work/c1.err" </dev/null
check "the running container reads the first value at both targets" 'both "$v1"'

allowed="$(digest "$v1")"
v=$v1
for n in 2 3 4 5 6; do
    v=$(marker)$n
    allowed="$allowed $(digest "$v")"
    out=$(printf %s "$v" | ctl secret rotate db -) || bad "rotation $n"
done
check "secret rotate says the version and how many containers got it" '[ "$out" = "db version 6: 1 running container(s) updated" ]'
check "after five rotations the container reads the last value at both targets" 'both "$v"'
touch "$work/c1/rootfs/tmp/stop"
wait_for 10 test -e "$work/c1/rootfs/tmp/done"
torn=$(grep -cvxF -f /dev/stdin "$work/c1/rootfs/tmp/reads" <<EOF
$(printf '%s\n' $allowed)
EOF
)
check "the reader inside saw only whole values ($(wc -l <"$work/c1/rootfs/tmp/reads") reads)" \
    '[ "$torn" = 0 ] && [ "$(wc -l <"$work/c1/rootfs/tmp/reads")" -gt 10 ]'
check "inspect: version 6, the same id, labels and grants kept, the new size" \
    '[ "$(ctl secret inspect db | json_of "(d[\"version\"], d[\"id\"], d[\"labels\"][\"team\"], d[\"grants\"], d[\"size\"]) == (6, \"$id0\", \"payments\", [\"root\"], ${#v})")" = True ]'

bundle c2 "db;source=db,target=/etc/app/pw" sh -c 'sha256sum /run/secrets/db /etc/app/pw | cut -c1-64 | tr "\n" " "'
ids="$ids c2"
check "a container started after the rotation gets the new value" \
    '[ "$(rt run --bundle "$work/c2" c2 2>/dev/null)" = "$(digest "$v") $(digest "$v") " ]'

# Refused rotations change nothing, and say why in one line.
head -c 512001 /dev/zero | tr '\0' 'x' >"$work/big"
err=$(ctl secret rotate db "$work/big" 2>&1); rc=$?
check "a value over max_payload is refused in one line" \
    '[ $rc != 0 ] && [ "$(printf "%s\n" "$err" | wc -l)" = 1 ] && printf %s "$err" | grep -qF "over the limit of 512000"'
head -c 1100 /dev/zero | tr '\0' 'y' >"$work/wide"
err=$(ctl secret rotate db "$work/wide" 2>&1); rc=$?
check "a value the running container cannot hold (max_container_bytes) is refused in one line" \
    '[ $rc != 0 ] && [ "$(printf "%s\n" "$err" | wc -l)" = 1 ] && printf %s "$err" | grep -qF "(max_container_bytes)"'
# A second running container holding it once: 900 bytes fit each
# container (1800 and 900) but not the node (2700 > 2500).
bundle c3 "db" sh -c 'sleep 100'
ids="$ids c3"
rt run -d --bundle "$work/c3" c3 >/dev/null 2>"$work/c3.err" </dev/null
head -c 900 /dev/zero | tr '\0' 'z' >"$work/node"
err=$(ctl secret rotate db "$work/node" 2>&1); rc=$?
check "a value the running containers together cannot hold (max_node_bytes) is refused in one line" \
    '[ $rc != 0 ] && [ "$(printf "%s\n" "$err" | wc -l)" = 1 ] && printf %s "$err" | grep -qF "(max_node_bytes)"'
rt delete -f c3 >/dev/null 2>&1
check "after the refusals: the store is still at version 6" '[ "$(ctl secret inspect db | json_of "d[\"version\"]")" = 6 ]'
check "after the refusals: the container still reads the last value" 'both "$v"'
check "rotating a secret that does not exist is refused" \
    '[ "$(printf x | ctl secret rotate nope - 2>&1)" = "secretshimctl: secret \"nope\" does not exist" ]'

check "one log line per rotation, naming the secret" \
    '[ "$(grep -c "secret \"db\" rotated to version" "$work/agent.log")" = 5 ]'

# An agent restarted while c1 runs re-adopts its view (from its mounts,
# without systemd's fd store) and rotates it the same way.
stop_agent
start_agent "$work/agent.yaml" || bad "the agent restarted"
v7=$(marker)7
out=$(printf %s "$v7" | ctl secret rotate db - 2>&1)
check "after an agent restart: the re-adopted container gets a rotation at both targets" \
    '[ "$out" = "db version 7: 1 running container(s) updated" ] && both "$v7"'
check "no value in the agent's log" '! grep -qF -e "$v1" -e "$v" -e "$v7" "$work/agent.log"'

rt delete -f c1 >/dev/null 2>&1
check "stopped: flushed" 'tasks_empty && no_view_mounts'
check "no value on disk (state dir, bundles)" '! grep -rqF -e "$v1" -e "$v" -e "$v7" "$work"'
stop_agent
echo "$checks checks, $failures failed"
finish
