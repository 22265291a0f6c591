#!/bin/sh
# SIGHUP reloads the agent's configuration with a real runc container
# running: a changed limit holds for the next container, a key that cannot
# change live (the socket) and a file that no longer parses are refused in
# one line and change nothing, and the running container keeps its view.
# Usage: reload_e2e.sh BUILD_DIR. Secret values are random markers
# compared in the shell, never printed.
set -u
. "$(dirname "$0")/lib.sh"
build=$(cd "$1" && pwd)
runtime=runc
scripts=$(cd "$(dirname "$0")/../../scripts" && pwd)
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root"; exit 77; }
command -v runc >/dev/null || { echo "SKIP: runc not installed"; exit 77; }

hook=$build/plugin/secretshim-hook
work=$(mktemp -d /tmp/secretshim-reload-XXXXXX)
sock=$work/agent.sock
ids=""
cleanup() {
    for id in $ids; do rt delete -f "$id" >/dev/null 2>&1; done
    stop_agent
    remove_work
}
trap cleanup EXIT
bundle() { b=$1; ann=$2; shift 2; python3 "$scripts/make_bundle.py" "$work/$b" "$hook" "$sock" "$ann" 0 "$@"; }
run() { id=$1; shift; ids="$ids $id"; rt run --bundle "$work/$id" "$id" "$@"; }
config=$work/agent.yaml
# configure TEXT: the config file is TEXT (the flags give the socket and
# the state dir).
configure() { printf '%s\n' "$1" >"$config.new" && mv "$config.new" "$config"; }
# hangup PATTERN: SIGHUP, then true once the agent's log has a new line
# matching PATTERN (fixed string).
hangup() {
    before=$(wc -l <"$work/agent.log")
    kill -HUP "$agent_pid"
    i=0
    while [ $i -lt 100 ]; do
        tail -n +"$((before + 1))" "$work/agent.log" | grep -qF -- "$1" && return 0
        sleep 0.05; i=$((i + 1))
    done
    return 1
}

configure "max_container_files: 1"
start_agent "$config" || { echo "FAIL - agent did not start"; cat "$work/agent.log" >&2; exit 1; }
one=$(marker); two=$(marker)  # not $b: bundle() sets it
printf %s "$one" | ctl secret create one - --grant root >/dev/null
printf %s "$two" | ctl secret create two - --grant root >/dev/null

bundle held "one" sh -c 'sleep 100'
ids="$ids held"
rt run -d --bundle "$work/held" held >/dev/null 2>&1 </dev/null
check "a running container holds its secret" '[ "$(ctl task ls --format json | grep -c "\"held\"")" = 1 ]'
bundle two1 "one;two" sh -c 'cat /run/secrets/two >/dev/null'
check "two files over max_container_files: 1: refused" '! run two1 >/dev/null 2>"$work/two1.err" && grep -qF "over the limit of 1 (max_container_files)" "$work/two1.err"'
rt delete -f two1 >/dev/null 2>&1

configure "max_container_files: 2"
check "SIGHUP: the limit is reloaded, in one line" 'hangup "reloaded $config: changed max_container_files"'
check "the agent still runs (same pid)" 'kill -0 "$agent_pid"'
bundle two2 "one;two" sh -c 'sha256sum /run/secrets/one /run/secrets/two | cut -c1-64'
out=$(run two2 2>"$work/two2.err")
check "two files under the reloaded limit: served" '[ "$out" = "$(digest "$one")
$(digest "$two")" ]'
check "status shows the new limit" 'ctl status | grep -q "\"max_container_files\": 2,\?$"'

configure "max_container_files: 2
max_payload: 10
runtime_dir: $work/other"
check "max_payload and runtime_dir cannot change live: named, kept" \
    'hangup "reload: runtime_dir, max_payload cannot change while the agent runs (restart it): kept"'
check "... and keep their running values" 'printf %s "$one" | ctl secret create three - >/dev/null && [ ! -e "$work/other" ]'

printf 'max_container_files: [\n' >"$config"
check "a file that no longer parses: refused in one line" 'hangup "reload refused, the running configuration is kept: $config:"'
bundle two3 "one;two" sh -c 'true'
check "... and the reloaded limit still holds" 'run two3 >/dev/null 2>&1'

# The container started before every reload still reads its secret.
check "the running container's view is untouched" '[ "$(rt exec held /bin/sh -c "sha256sum /run/secrets/one" | cut -c1-64)" = "$(digest "$one")" ]'
rt kill held KILL >/dev/null 2>&1
check "and is flushed when it exits" tasks_empty
check "no marker in the agent's log" '! grep -qF -e "$one" -e "$two" "$work/agent.log"'
stop_agent
finish
