#!/bin/sh
# The agent's log in a real journal: a systemd-journald of the test's own,
# in a private mount namespace with a tmpfs over /run (volatile storage in
# /run/log/journal; journald creates its sockets itself when no systemd
# hands them over). The agent, runc and secretshimctl run in that namespace:
# an attach, a refusal, grants, a revocation from a running container and
# flushes must each be one native journal entry with its priority and
# fields (docs/admin-guide.md, "Logs and audit"), and no secret's value may
# be anywhere in the journal. Then log_target auto: native entries when
# JOURNAL_STREAM names the agent's stderr, plain lines when it names
# another stream; and log_level. Usage: journal_e2e.sh BUILD_DIR
# Secret values are random markers compared in the shell, never printed.
set -u
. "$(dirname "$0")/lib.sh"
build=$(cd "$1" && pwd)
runtime=runc
scripts=$(cd "$(dirname "$0")/../../scripts" && pwd)
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root"; exit 77; }
command -v runc >/dev/null || { echo "FAIL - runc is not installed (scripts/setup.sh installs it)"; exit 1; }
[ -x "$journald" ] || { echo "FAIL - $journald is not there (scripts/setup.sh installs systemd)"; exit 1; }

# Everything below runs in a mount namespace of its own: the tmpfs over
# /run hides the host's journal socket, if it has one, and goes with it.
if [ -z "${JOURNAL_E2E_INNER:-}" ]; then
    exec env JOURNAL_E2E_INNER=1 unshare -m --propagation private sh "$0" "$@"
fi

hook=$build/plugin/secretshim-hook
work=$(mktemp -d /tmp/secretshim-journal-XXXXXX)
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

running() { ctl task ls --format json | grep -q "\"$1\""; }

bundle() { b=$1; ann=$2; shift 2; python3 "$scripts/make_bundle.py" "$work/$b" "$hook" "$sock" "$ann" 0 "$@"; }
run() { id=$1; shift; ids="$ids $id"; rt run --bundle "$work/$id" "$id" "$@"; }

printf 'log_target: journal\n' >"$work/journal.yaml"
start_agent "$work/journal.yaml" || { echo "FAIL - agent did not start"; cat "$work/agent.log" >&2; exit 1; }
m1=$(marker); m2=$(marker)
printf %s "$m1" | ctl secret create db_pass - --grant root >/dev/null
printf %s "$m2" | ctl secret create api_key - >/dev/null

# An attach (and its flush), a refusal.
bundle c1 "db_pass" sh -c 'sha256sum /run/secrets/db_pass | cut -c1-64'
out=$(run c1 2>"$work/c1.err")
check "a container with a granted secret reads it" '[ "$out" = "$(digest "$m1")" ]'
check "flushed after exit" tasks_empty
bundle c2 "api_key" sh -c 'echo RAN'
run c2 >/dev/null 2>&1; rc=$?
check "a container asking for an ungranted secret does not start" '[ $rc != 0 ]'
bundle c2b "source=db_pass,colour=blue" sh -c 'echo RAN'
run c2b >/dev/null 2>&1; rc=$?
check "a container with a malformed annotation does not start" '[ $rc != 0 ]'
# A grant, a revoked grant, and a revocation from a running container.
ctl secret grant api_key podman,name=web-1 >/dev/null
ctl secret revoke api_key podman,name=web-1 >/dev/null
bundle c3 "db_pass" sh -c 'sleep 100'
ids="$ids c3"
rt run -d --bundle "$work/c3" c3 >/dev/null 2>&1 </dev/null
check "a detached container holds its secret" 'wait_for 5 running c3'
# A restart of the agent: it takes c3's secrets back.
stop_agent
start_agent "$work/journal.yaml" || bad "the agent did not start again"
check "adopt: the restarted agent took the running container's secrets back, and knows who it is" \
    'has_entry SECRETSHIM_EVENT=adopt CONTAINER_ID=c3 SECRETSHIM_SECRETS=db_pass SECRETSHIM_IDENTITY=root'
m3=$(marker)
printf %s "$m3" | ctl secret rotate db_pass - >/dev/null
check "rotate: the secret named, at info" 'has_entry SECRETSHIM_EVENT=rotate SECRETSHIM_SECRETS=db_pass PRIORITY=6'
ctl secret revoke db_pass root >/dev/null
rt delete -f c3 >/dev/null 2>&1
check "c3 flushed" tasks_empty

check "attach: one entry with the container, the secret, the identity and priority info" \
    'has_entry SECRETSHIM_EVENT=attach CONTAINER_ID=c1 SECRETSHIM_SECRETS=db_pass SECRETSHIM_IDENTITY=root \
        SECRETSHIM_INTEGRATION=bundle PRIORITY=6'
check "attach: its MESSAGE is the line stderr would show, without a doubled tag" \
    '[ "$(entries SECRETSHIM_EVENT=attach CONTAINER_ID=c1 | field_of MESSAGE)" = "container \"c1\": attached secrets db_pass (noswap)" ]'
check "refuse: warning, reason not_granted, the container, what it asked for, who it is" \
    'has_entry SECRETSHIM_EVENT=refuse CONTAINER_ID=c2 PRIORITY=4 SECRETSHIM_REASON=not_granted \
        SECRETSHIM_SECRETS=api_key SECRETSHIM_IDENTITY=root'
check "refuse: a malformed annotation is reason invalid" \
    'has_entry SECRETSHIM_EVENT=refuse CONTAINER_ID=c2b PRIORITY=4 SECRETSHIM_REASON=bad_request SECRETSHIM_IDENTITY=root'
check "create: one entry per secret, its rules" \
    'has_entry SECRETSHIM_EVENT=create SECRETSHIM_SECRETS=db_pass SECRETSHIM_RULE=root &&
     has_entry SECRETSHIM_EVENT=create SECRETSHIM_SECRETS=api_key'
check "grant and ungrant: the secret and the rule" \
    'has_entry SECRETSHIM_EVENT=grant SECRETSHIM_SECRETS=api_key SECRETSHIM_RULE=podman,name=web-1 &&
     has_entry SECRETSHIM_EVENT=ungrant SECRETSHIM_SECRETS=api_key SECRETSHIM_RULE=podman,name=web-1 &&
     has_entry SECRETSHIM_EVENT=ungrant SECRETSHIM_SECRETS=db_pass SECRETSHIM_RULE=root'
check "revoke: the running container lost the secret whose grant went" \
    'has_entry SECRETSHIM_EVENT=revoke CONTAINER_ID=c3 SECRETSHIM_SECRETS=db_pass SECRETSHIM_IDENTITY=root'
check "flush: one entry per stopped container" \
    'has_entry SECRETSHIM_EVENT=flush CONTAINER_ID=c1 SECRETSHIM_SECRETS=db_pass &&
     has_entry SECRETSHIM_EVENT=flush CONTAINER_ID=c3'
check "no misleading code location (always the logger's own)" '[ -z "$(entries | field_of CODE_FILE)" ]'
check "every event is one of the documented set" \
    '[ -z "$(entries | field_of SECRETSHIM_EVENT | sort -u | grep -vxE "create|grant|ungrant|remove|rotate|attach|add|update|revoke|flush|adopt|refuse")" ]'
check "-p err: nothing in the good case" '[ -z "$(entries -p err)" ] && [ -n "$(entries -p info)" ]'
check "the lines went to the journal, not to stderr" '! grep -q "attached secrets" "$work/agent.log"'
# No value anywhere in the journal, every field of every entry (the
# journal's export format); a probe entry shows that the search finds a
# marker where there is one.
check "no secret's value in the journal" '! journal_holds "$m1" "$m2" "$m3"'
probe=$(marker)
printf 'MESSAGE=probe\nPROBE=%s\n' "$probe" | logger --journald
check "the search finds a marker that is there" 'wait_for 5 journal_holds "$probe"'
stop_agent

# log_target auto under a journal stream, as systemd starts the unit:
# stderr is journald's stream socket and JOURNAL_STREAM names it. Native
# entries; log_level warning drops the info lines.
printf 'log_level: warning\n' >"$work/auto.yaml"
rm -f "$sock"
systemd-cat -t secretshimd-stream sh -c 'JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2) exec "$@"' sh \
    "$build/plugin/secretshimd" --config "$work/auto.yaml" --socket "$sock" --state-dir "$work/state" &
agent_pid=$!
wait_for 5 test -S "$sock" || bad "the agent under a journal stream did not start"
bundle c4 "api_key" sh -c 'echo RAN'
run c4 >/dev/null 2>&1
check "auto under a journal stream: a native entry (fields, transport journal)" \
    'has_entry SECRETSHIM_EVENT=refuse CONTAINER_ID=c4 _TRANSPORT=journal'
check "auto under a journal stream: nothing through the stream (no doubled tag)" \
    '[ -z "$(journalctl -D "$jdir" --no-pager -o json SYSLOG_IDENTIFIER=secretshimd-stream)" ]'
check "log_level warning: only warnings and errors from this agent (its serving line is info)" \
    '[ -n "$(entries _PID="$agent_pid")" ] && [ -z "$(entries _PID="$agent_pid" | field_of PRIORITY | grep -vx -e 3 -e 4)" ]'
# A reload (SIGHUP) lowers the level to info at once: its own line shows.
printf 'log_level: info\n' >"$work/auto.yaml"
kill -HUP "$agent_pid"
check "reload: log_level changes live (the reload's own info line is logged)" \
    'has_entry _PID="$agent_pid" PRIORITY=6 "MESSAGE=reloaded $work/auto.yaml: changed log_level"'
kill "$agent_pid" 2>/dev/null; wait "$agent_pid" 2>/dev/null; agent_pid=
printf 'log_level: warning\n' >"$work/auto.yaml"

# JOURNAL_STREAM inherited, but stderr is a file: plain lines on stderr.
: >"$work/agent.log"
JOURNAL_STREAM=$(stat -L -c %d:%i /run/systemd/journal/stdout)
export JOURNAL_STREAM
start_agent "$work/auto.yaml"
unset JOURNAL_STREAM
bundle c5 "api_key" sh -c 'echo RAN'
run c5 >/dev/null 2>&1
check "auto with JOURNAL_STREAM naming another stream: the line on stderr, as before" \
    'wait_for 5 grep -q "^secretshimd: container \"c5\": refused: secret \"api_key\" is not granted to" "$work/agent.log" &&
     [ -z "$(entries CONTAINER_ID=c5)" ]'
stop_agent

echo "$checks checks, $failures failed"
# The agent logs names, never values: safe to show when something failed.
[ "$failures" = 0 ] || {
    echo "--- the agent's journal entries"; journalctl -D "$jdir" --no-pager -o verbose SYSLOG_IDENTIFIER=secretshimd
    echo "--- agent log"; cat "$work/agent.log"
}
finish
