#!/bin/sh
# The main job, end to end on this node (as root): installs what is
# missing, builds, starts the agent on a temporary state directory, creates
# a demo secret, runs a busybox container under runc with the hook, shows
# what the container sees, lets it exit, shows the secret flushed, and
# cleans up everything it started. The secret's value is never printed:
# the container shows its SHA-256, next to the digest of what was stored.
set -eu
cd "$(dirname "$0")/.."
sh scripts/setup.sh
build=${BUILD_DIR:-build}
[ -f "$build/build.ninja" ] || meson setup "$build" >/dev/null
meson compile -C "$build" >/dev/null

work=$(mktemp -d /tmp/secretshim-demo-XXXXXX)
sock=$work/agent.sock
agent_pid=
cleanup() {
    runc --root "$work/runc" delete -f demo >/dev/null 2>&1 || true
    if [ -n "$agent_pid" ]; then kill "$agent_pid" 2>/dev/null || true; wait "$agent_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT INT TERM
ctl() { "$build/plugin/secretshimctl" --socket "$sock" "$@"; }
step() { printf '\n== %s\n' "$*"; }

step "start the agent (state in $work/state)"
"$build/plugin/secretshimd" --socket "$sock" --state-dir "$work/state" &
agent_pid=$!
i=0; while [ ! -S "$sock" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done

step "create the secret db_pass (a random value, never shown), granted to containers root starts"
# Only in this shell's memory and pipes: plaintext never goes to disk.
value=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf %s "$value" | ctl secret create db_pass - --grant root >/dev/null
echo "stored digest:   $(printf %s "$value" | sha256sum | cut -c1-64)"
ctl secret ls

step "run a busybox container under runc that asks for db_pass twice"
python3 scripts/make_bundle.py "$work/demo" "$PWD/$build/plugin/secretshim-hook" "$sock" \
    "db_pass;source=db_pass,target=/etc/app/password,uid=1000,gid=1000,mode=0400" 0 \
    sh -c 'echo "container digest: $(sha256sum < /run/secrets/db_pass | cut -c1-64)";
           echo "--- ls -l /run/secrets /etc/app/password"; ls -ln /run/secrets /etc/app/password;
           echo "--- the mounts, from /proc/self/mountinfo";
           grep -E " /run/secrets | /etc/app/password " /proc/self/mountinfo | cut -d" " -f5,6,9-'
runc --root "$work/runc" run --bundle "$work/demo" demo | tee "$work/demo.out"
grep -q "container digest: $(printf %s "$value" | sha256sum | cut -c1-64)" "$work/demo.out" ||
    { echo "the container did not see the stored secret"; exit 1; }

step "a container asking for a secret not granted to it does not start"
head -c 24 /dev/urandom | ctl secret create not_yours - >/dev/null  # no --grant: it reaches nobody
python3 scripts/make_bundle.py "$work/denied" "$PWD/$build/plugin/secretshim-hook" "$sock" "not_yours" 0 \
    sh -c 'echo "this must not run"'
if runc --root "$work/runc" run --bundle "$work/denied" denied >"$work/denied.out" 2>"$work/denied.err"; then
    echo "the container ran without a grant!"; exit 1
fi
sed -n 's/.*stderr: \(secretshim-hook: .*\)\\n".*/\1/p' "$work/denied.err" | tr -d '\\'  # runc quotes it
runc --root "$work/runc" delete -f denied >/dev/null 2>&1 || true

step "the container has exited: the agent flushed its view"
ctl task ls
if grep -qs "$work/" /proc/[0-9]*/mountinfo; then echo "a view is still mounted!"; exit 1; fi
echo "no secrets view left in any mount table"

