#!/bin/sh
# End to end with a real OCI runtime: the agent, the CLI and the hook
# deliver local secrets into real containers, and flush them when the
# container exits. Usage: runtime_e2e.sh BUILD_DIR runc|crun
# Secret values are random markers compared in the shell, never printed.
set -u
. "$(dirname "$0")/lib.sh"
build=$(cd "$1" && pwd)
runtime=$2
scripts=$(cd "$(dirname "$0")/../../scripts" && pwd)
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root"; exit 77; }
command -v "$runtime" >/dev/null || { echo "SKIP: $runtime not installed"; exit 77; }

hook=$build/plugin/secretshim-hook
agentbin=$build/plugin/secretshimd
ctlbin=$build/plugin/secretshimctl
work=$(mktemp -d /tmp/secretshim-e2e-XXXXXX)
sock=$work/agent.sock
ids=""

cleanup() {
    for id in $ids; do rt delete -f "$id" >/dev/null 2>&1; done
    rt_root=$work/state-rt2; rt delete -f twin >/dev/null 2>&1; rt_root=
    stop_agent
    remove_work
}
trap cleanup EXIT

# bundle NAME ANNOTATION ARGS...: a busybox bundle with our hooks
bundle() { b=$1; ann=$2; shift 2; python3 "$scripts/make_bundle.py" "$work/$b" "$hook" "$sock" "$ann" "${E2E_UID:-0}" "$@"; }

run() { id=$1; shift; ids="$ids $id"; rt run --bundle "$work/$id" "$id" "$@"; }

start_agent || { echo "FAIL - agent did not start"; cat "$work/agent.log" >&2; exit 1; }
db=$(marker); api=$(marker)
printf %s "$db" | ctl secret create db_pass - --grant root >/dev/null
printf %s "$api" | ctl secret create api_key /dev/stdin --grant root >/dev/null  # the FILE form
check "secrets created" '[ "$(ctl secret ls --format json | python3 -c "import json,sys; print(len(json.load(sys.stdin)))")" = 2 ]'

# Default target, custom target with owner and mode, the same secret twice.
bundle c1 "db_pass;source=api_key,target=/etc/app/key,uid=1000,gid=0,mode=0440;source=db_pass,target=again,uid=7,mode=0440" \
    sh -c 'sha256sum /run/secrets/db_pass /etc/app/key | cut -c1-64;
           stat -c "%a %u %g" /run/secrets/db_pass /etc/app/key /run/secrets/again;
           grep -E " /run/secrets | /etc/app/key " /proc/self/mountinfo'
out=$(run c1 2>"$work/c1.err"); rc=$?
check "container with secrets runs" '[ $rc = 0 ]'
check "default target holds the secret" '[ "$(echo "$out" | sed -n 1p)" = "$(digest "$db")" ]'
check "custom target holds the secret" '[ "$(echo "$out" | sed -n 2p)" = "$(digest "$api")" ]' 
check "owner and mode of each reference" '[ "$(echo "$out" | sed -n 3,5p | tr "\n" " ")" = "444 0 0 440 1000 0 440 7 0 " ]'
check "mounts are ro,nosuid,nodev,noexec" '[ "$(echo "$out" | grep -c "ro,nosuid,nodev,noexec")" = 2 ]'
check "flushed after exit (task ls empty)" tasks_empty
check "no view left in any mount table" no_view_mounts
check "no marker on disk (state dir, bundles)" '! grep -rqF -e "$db" -e "$api" "$work"'
check "no marker in the agent's memory once no task holds it" 'python3 "$(dirname "$0")/scan_memory.py" "$agent_pid" "$db" "$api"'
env "SCAN_PROBE=$db" sleep 30 & probe=$!
check "the memory scanner finds a marker where there is one" '! python3 "$(dirname "$0")/scan_memory.py" "$probe" "$db" >/dev/null'
kill "$probe"; wait "$probe" 2>/dev/null

# A non-root uid reads its 0400 file; another uid is refused.
E2E_UID=1000 bundle c2 "source=api_key,target=/etc/app/key,uid=1000,gid=1000,mode=0400" sh -c 'sha256sum /etc/app/key | cut -c1-64'
out=$(run c2 2>/dev/null)
check "uid 1000 reads its 0400 secret" '[ "$out" = "$(digest "$api")" ]'
E2E_UID=1001 bundle c2b "source=api_key,target=/etc/app/key,uid=1000,gid=1000,mode=0400" sh -c 'cat /etc/app/key 2>/dev/null; echo "rc=$?"'
out=$(run c2b 2>/dev/null)
check "uid 1001 is refused" '[ "$out" = "rc=1" ]'

# The hook registered at prestart (the older stage) works the same.
HOOK_STAGE=prestart bundle c2p "db_pass" sh -c 'sha256sum /run/secrets/db_pass | cut -c1-64'
out=$(run c2p 2>/dev/null)
check "hook at prestart delivers the secret" '[ "$out" = "$(digest "$db")" ]'

# A container without the annotation never reaches the agent.
bundle c3 "" sh -c 'test ! -e /run/secrets'
run c3 >/dev/null 2>&1; check "no annotation: runs, no secrets" '[ $? = 0 ]'

# SIGKILL of the init, and no runtime delete: the pidfd watch flushes.
bundle c4 "db_pass" sh -c 'sleep 100'
ids="$ids c4"
rt run -d --bundle "$work/c4" c4 >/dev/null 2>&1 </dev/null
check "detached container holds its secret" '[ "$(ctl task ls --format json | grep -c "\"c4\"")" = 1 ]'
check "rm of a secret in use is refused" 'ctl secret rm db_pass 2>&1 | grep -qF "is in use by a running task"'
kill -9 "$(rt state c4 | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])')"
check "SIGKILLed init: flushed within a second" tasks_empty

# poststop tells the agent and returns without waiting for the flush: the
# agent still gets the message after the hook has exited, and flushes a
# container whose init is still running (no pidfd event to do it).
bundle c4p "db_pass" sh -c 'sleep 100'
ids="$ids c4p"
rt run -d --bundle "$work/c4p" c4p >/dev/null 2>&1 </dev/null
check "detached container c4p holds its secret" '[ "$(ctl task ls --format json | grep -c "\"c4p\"")" = 1 ]'
printf '{"ociVersion":"1.0.2","id":"c4p","status":"stopped","bundle":"%s","annotations":{"io.secretshim.secrets":"db_pass"}}' "$work/c4p" |
    "$hook" --socket "$sock" poststop; rc=$?
check "poststop hook: exits 0, and the agent flushes after it is gone" '[ $rc = 0 ] && tasks_empty && grep -qF "\"c4p\": released by poststop" "$work/agent.log"'
rt delete -f c4p >/dev/null 2>&1

# The same container id under two runc roots, as two containerd namespaces
# run it: two tasks, told apart by their bundles, each with its own secret
# at the same target. A poststop names its own container: the other keeps
# its secret. (Before tasks were keyed by bundle too, the second was refused
# its secrets, and a poststop flushed whichever held the id.)
tw1=$(marker); tw2=$(marker)
printf %s "$tw1" | ctl secret create twin_1 - --grant root >/dev/null
printf %s "$tw2" | ctl secret create twin_2 - --grant root >/dev/null
bundle twin1 "source=twin_1,target=mine" sh -c 'sleep 100'
bundle twin2 "source=twin_2,target=mine" sh -c 'sleep 100'
rt2() { rt_root=$work/state-rt2; rt "$@"; rc2=$?; rt_root=; return $rc2; }
ids="$ids twin"
rt run -d --bundle "$work/twin1" twin >/dev/null 2>"$work/twin1.err" </dev/null
rt2 run -d --bundle "$work/twin2" twin >/dev/null 2>"$work/twin2.err" </dev/null
mine() { "$1" exec twin /bin/busybox sha256sum /run/secrets/mine | cut -c1-64; }
twins() { ctl task ls --format json | grep -c '"id": "twin"'; }
check "the same id under two runc roots: both run, each reads its own secret" \
    '[ "$(mine rt)" = "$(digest "$tw1")" ] && [ "$(mine rt2)" = "$(digest "$tw2")" ] && [ "$(twins)" = 2 ]' ||
    cat "$work/twin2.err" "$work/twin2.hookerr" 2>/dev/null | tr -d '\\' | grep -o 'secretshim-hook: .*' | head -1
# The second's poststop, while both inits still run (only the release can
# flush then): it alone goes.
printf '{"ociVersion":"1.0.2","id":"twin","status":"stopped","bundle":"%s","annotations":{"io.secretshim.secrets":"twin_2"}}' "$work/twin2" |
    "$hook" --socket "$sock" poststop
one_twin() { [ "$(twins)" = 1 ]; }
check "the poststop of one (its bundle) releases it alone" \
    'wait_for 2 one_twin && ctl task ls --format json | grep -qF "\"bundle\": \"$work/twin1\"" && [ "$(mine rt)" = "$(digest "$tw1")" ]'
rt2 delete -f twin >/dev/null 2>&1
check "the other stopped and deleted: the first still reads its secret" '[ "$(mine rt)" = "$(digest "$tw1")" ] && one_twin'
rt delete -f twin >/dev/null 2>&1
check "then it stops too: flushed" 'tasks_empty && no_view_mounts'

# Grants: the annotation only asks. A secret without a grant reaches
# nobody, with the very line a missing secret gets (no enumeration).
secret3=$(marker)
printf %s "$secret3" | ctl secret create ungranted - >/dev/null
check "a secret created without --grant lists no grant" \
    '[ "$(ctl secret inspect ungranted | python3 -c "import json,sys; print(json.load(sys.stdin)[\"grants\"])")" = "[]" ]'
bundle g1 "ungranted" sh -c 'echo RAN'
out=$(run g1 2>"$work/g1.err"); rc=$?
bundle g2 "missing" sh -c 'echo RAN'
run g2 >/dev/null 2>"$work/g2.err"
# The hook's line (runc quotes it with backslashes, crun keeps it in .hookerr)
# with the container and the secret's name taken out.
hookline() { cat "$work/$1.err" "$work/$1.hookerr" 2>/dev/null | tr -d '\\' | grep -o 'secretshim-hook: container .*' |
    head -1 | sed -e "s/container $1:/container ID:/" -e "s/\"$2\"/NAME/" -e 's/n"$//'; }
check "a secret with no grant: the container does not start" '[ $rc != 0 ] && [ -z "$out" ] && tasks_empty && no_view_mounts'
check "its line is the one a missing secret gets" \
    '[ -n "$(hookline g1 ungranted)" ] && [ "$(hookline g1 ungranted)" = "$(hookline g2 missing)" ]' ||
    { hookline g1 ungranted; hookline g2 missing; }
echo "# $(hookline g1 ungranted)"
# Granted to root: delivered. Granted to a Kubernetes namespace only: a
# root-started container is not that identity.
ctl secret grant ungranted 'kubernetes,namespace=tenant-a'
bundle g3 "ungranted" sh -c 'echo RAN'
check "granted to another identity only: still refused" '! run g3 >/dev/null 2>&1 && tasks_empty'
ctl secret grant ungranted root
bundle g4 "ungranted" sh -c 'sha256sum /run/secrets/ungranted | cut -c1-64'
check "granted to root: delivered" '[ "$(run g4 2>/dev/null)" = "$(digest "$secret3")" ]'
check "secret grant refuses a rule the secret has" 'ctl secret grant ungranted root 2>&1 | grep -qF "is already granted to root"'
check "secret grant refuses a malformed rule, in one line" \
    '[ "$(ctl secret grant ungranted "kubernetes,pod=x" 2>&1)" = "secretshimctl: grant rule \"kubernetes,pod=x\": a kubernetes rule needs namespace=" ]'
check "secret inspect shows the grants" \
    '[ "$(ctl secret inspect ungranted | python3 -c "import json,sys; print(\",\".join(json.load(sys.stdin)[\"grants\"]))")" = "kubernetes,namespace=tenant-a,root" ]'
# A pinned grant: only the reference as pinned.
ctl secret grant api_key 'root,target=/etc/pinned/key,uid=1000,mode=0400'
ctl secret revoke api_key root
bundle g5 "source=api_key,target=/etc/pinned/key,uid=0,mode=0444" sh -c 'echo RAN'
check "pinned: another owner or mode is refused" '! run g5 >/dev/null 2>&1 && tasks_empty'
E2E_UID=1000 bundle g6 "source=api_key,target=/etc/pinned/key,uid=1000,mode=0400" sh -c 'sha256sum /etc/pinned/key | cut -c1-64'
check "pinned: the reference as pinned is delivered" '[ "$(run g6 2>/dev/null)" = "$(digest "$api")" ]'
ctl secret revoke api_key 'root,mode=0400,target=/etc/pinned/key,uid=1000'  # the same rule, spelled otherwise
ctl secret grant api_key root
# A Kubernetes spec with the hook registered for root-started containers:
# its pod author must not pass for root.
bundle g7 "db_pass" sh -c 'echo RAN'
python3 - "$work/g7/config.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
d["annotations"]["io.kubernetes.cri.container-type"] = "container"
json.dump(d, open(sys.argv[1], "w"))
PY
out=$(run g7 2>"$work/g7.err"); rc=$?
check "a Kubernetes container under --integration bundle is refused" \
    '[ $rc != 0 ] && [ -z "$out" ] && cat "$work/g7.err" "$work/g7.hookerr" 2>/dev/null | grep -qF "a Kubernetes container, but the hook is registered with --integration bundle"'

# A revoked grant reaches a running container within milliseconds: its file
# (and a single-file target's mount) disappears; what else it holds stays.
bundle r1 "ungranted;source=ungranted,target=/etc/app/u;db_pass" sh -c 'sleep 100'
ids="$ids r1"
rt run -d --bundle "$work/r1" r1 >/dev/null 2>&1 </dev/null
check "running container holds the secret at both targets" \
    '[ "$(rt exec r1 /bin/busybox cat /run/secrets/ungranted)" = "$secret3" ] && [ "$(rt exec r1 /bin/busybox cat /etc/app/u)" = "$secret3" ]'
start_ns=$(date +%s%N)
ctl secret revoke ungranted root
gone() { ! rt exec r1 /bin/busybox test -e /run/secrets/ungranted && ! rt exec r1 /bin/busybox grep -q " /etc/app/u " /proc/self/mountinfo; }
check "revoked: /run/secrets/ungranted and the /etc/app/u mount are gone from the running container" gone
echo "# revocation reached the container within $(( ($(date +%s%N) - start_ns) / 1000000 )) ms (the revoke command and two runc exec included)"
check "revoked: what else it holds stays" '[ "$(rt exec r1 /bin/busybox cat /run/secrets/db_pass)" = "$db" ]'
check "revoked: task ls no longer lists the secret" '! ctl task ls --format json | grep -q "\"ungranted\""'
check "revoked: the agent logs it" 'grep -qF "\"r1\": /run/secrets/ungranted revoked" "$work/agent.log"'
rt delete -f r1 >/dev/null 2>&1
check "revocation test flushed" tasks_empty

# Restart: SIGKILL the agent while a container runs. The container keeps
# its secrets; the new agent re-adopts it and still flushes on exit.
bundle c5 "db_pass;source=api_key,target=/etc/app/key" sh -c 'sleep 100'
ids="$ids c5"
rt run -d --bundle "$work/c5" c5 >/dev/null 2>&1 </dev/null
kill -9 "$agent_pid"; wait "$agent_pid" 2>/dev/null; agent_pid=
check "agent killed: the container still reads its secrets" '[ "$(rt exec c5 /bin/busybox cat /run/secrets/db_pass)" = "$db" ] && [ "$(rt exec c5 /bin/busybox cat /etc/app/key)" = "$api" ]'
start_agent
check "restarted agent re-adopts the running container" '[ "$(ctl task ls --format json | grep -c "\"c5\"")" = 1 ]'
check "re-adopted: still readable" '[ "$(rt exec c5 /bin/busybox cat /run/secrets/db_pass)" = "$db" ]'
check "re-adopted: rm of its secret refused" 'ctl secret rm api_key 2>&1 | grep -qF "is in use by a running task"'
# Who it is survives the restart: a grant revoked now still reaches it.
ctl secret revoke api_key root
check "re-adopted: a revoked grant removes the file from it" \
    '! rt exec c5 /bin/busybox grep -q " /etc/app/key " /proc/self/mountinfo && [ "$(rt exec c5 /bin/busybox cat /run/secrets/db_pass)" = "$db" ]'
ctl secret grant api_key root
kill -9 "$(rt state c5 | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])')"
check "re-adopted container flushed on exit" tasks_empty
check "no view left after the restart" no_view_mounts

# A graceful stop (SIGTERM: systemctl stop/restart, a package upgrade)
# leaves running containers their secrets too.
bundle c5t "db_pass;source=api_key,target=/etc/app/key" sh -c 'sleep 100'
ids="$ids c5t"
rt run -d --bundle "$work/c5t" c5t >/dev/null 2>&1 </dev/null
kill -TERM "$agent_pid"; wait "$agent_pid" 2>/dev/null; agent_pid=
check "agent stopped (SIGTERM): the container still reads its secrets" '[ "$(rt exec c5t /bin/busybox cat /run/secrets/db_pass)" = "$db" ] && [ "$(rt exec c5t /bin/busybox cat /etc/app/key)" = "$api" ]'
start_agent
check "SIGTERM restart: re-adopted and still readable" '[ "$(ctl task ls --format json | grep -c "\"c5t\"")" = 1 ] && [ "$(rt exec c5t /bin/busybox cat /etc/app/key)" = "$api" ]'
rt delete -f c5t >/dev/null 2>&1
check "SIGTERM restart: flushed on exit" tasks_empty

# Re-adoption takes only the agent's own tmpfs: a container with
# CAP_SYS_ADMIN mounts a tmpfs of its own over /run/secrets, with a FIFO
# named like its secret, and the agent is restarted. Before, the agent
# re-adopted it and, at the container's exit, blocked forever opening the
# FIFO: no container on the node could start with secrets any more.
bundle f1 "db_pass" sh -c 'mount -t tmpfs -o mode=0755 none /run/secrets && mkfifo /run/secrets/db_pass && touch /run/ready && sleep 100'
python3 - "$work/f1/config.json" <<'PY'
import json, sys
spec = json.load(open(sys.argv[1]))
spec["process"]["capabilities"] = {k: ["CAP_SYS_ADMIN"] for k in ("bounding", "effective", "permitted")}
json.dump(spec, open(sys.argv[1], "w"))
PY
ids="$ids f1"
rt run -d --bundle "$work/f1" f1 >/dev/null 2>"$work/f1.err" </dev/null
i=0; while ! rt exec f1 /bin/busybox test -e /run/ready 2>/dev/null && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
check "the container put its own tmpfs and a FIFO over /run/secrets" 'rt exec f1 /bin/busybox test -p /run/secrets/db_pass' ||
    cat "$work/f1.err"
kill -9 "$agent_pid"; wait "$agent_pid" 2>/dev/null; agent_pid=
start_agent
check "re-adoption refuses a tmpfs that is not the view the agent built, and says so" \
    'grep -qF "\"f1\": cannot re-adopt its secrets: /run/secrets in the container is not the view the agent built" "$work/agent.log"'
kill -9 "$(pid_of f1)"
sleep 0.3
check "after the container exits, the agent still answers within 1 s" 'timeout 1 "$ctlbin" --socket "$sock" status >/dev/null'
bundle f2 "db_pass" sh -c 'sha256sum /run/secrets/db_pass | cut -c1-64'
check "... and starts the next container with its secret" '[ "$(run f2 2>/dev/null)" = "$(digest "$db")" ]'
rt delete -f f1 >/dev/null 2>&1

# Memory: five references to a 400 KB secret raise Shmem while the
# container runs; after it exits Shmem is back (within noise).
shmem() { awk '/^Shmem:/ {print $2}' /proc/meminfo; }
head -c 400000 /dev/urandom | ctl secret create big - --grant root >/dev/null
before=$(shmem)
bundle c6 "big;source=big,target=b2;source=big,target=b3;source=big,target=b4;source=big,target=/srv/b5" sh -c 'sleep 100'
ids="$ids c6"
rt run -d --bundle "$work/c6" c6 >/dev/null 2>&1 </dev/null
during=$(shmem)
# The view's own tmpfs, as the container sees it: exact, unlike Shmem,
# which anything else on the machine moves too.
used=$(rt exec c6 /bin/busybox df -k /run/secrets | awk 'NR == 2 {print $3}')
check "the view's tmpfs holds five 400 KB files (${used} KiB used)" '[ "${used:-0}" -ge 1950 ]'
check "Shmem rose while the container runs ($((during - before)) KiB)" '[ $((during - before)) -ge 1500 ]'
kill -9 "$(rt state c6 | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])')"
check "big container flushed" tasks_empty
rt delete -f c6 >/dev/null 2>&1
check "Shmem back after the flush" '[ $(($(shmem) - before)) -lt 1024 ]'

# Concurrency: 20 containers at once, each with its own secret.
n=1
while [ $n -le 20 ]; do
    eval "m$n=\$(marker)"
    eval "printf %s \"\$m$n\"" | ctl secret create "s$n" - --grant root >/dev/null
    bundle "p$n" "s$n;source=s$n,target=/etc/s,mode=0400" sh -c "sha256sum /run/secrets/s$n /etc/s | cut -c1-64"
    n=$((n + 1))
done
n=1
pids=
while [ $n -le 20 ]; do (run "p$n" >"$work/p$n.out" 2>"$work/p$n.err"; echo "rc=$?" >>"$work/p$n.err") & pids="$pids $!"; n=$((n + 1)); done
for p in $pids; do wait "$p"; done
good=0; n=1
while [ $n -le 20 ]; do
    eval "want=\$(digest \"\$m$n\")"
    if [ "$(sed -n 1p "$work/p$n.out")" = "$want" ] && [ "$(sed -n 2p "$work/p$n.out")" = "$want" ]; then
        good=$((good + 1))
    else
        echo "# p$n: $(cat "$work/p$n.err" "$work/p$n.hookerr" 2>/dev/null | tail -3 | tr '\n' ' ')"
    fi
    n=$((n + 1))
done
check "20 concurrent containers each read their own secret ($good/20)" '[ $good = 20 ]'
check "all 20 flushed" tasks_empty
check "no view left after the concurrent run" no_view_mounts

# Slow and malformed clients cannot stall the hook: hold five silent
# connections open, send garbage on another, and start a container.
python3 - "$sock" <<'PY' &
import socket, sys, time
held = []
for _ in range(5):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(sys.argv[1])
    held.append(s)
g = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
g.connect(sys.argv[1])
g.send(b"\xff{not json")
time.sleep(4)
PY
slow_pid=$!
sleep 0.3
bundle q1 "db_pass" sh -c 'sha256sum /run/secrets/db_pass | cut -c1-64'
out=$(run q1 2>/dev/null)
check "a container starts while slow and malformed clients are connected" '[ "$out" = "$(digest "$db")" ]'
wait "$slow_pid"

# The image cannot redirect a mount outside its rootfs.
mkdir -p "$work/hostdir"
bundle e1 "source=db_pass,target=/etc/app/pw" sh -c 'sha256sum /etc/app/pw | cut -c1-64'
ln -s "../../../../../../../../$work/hostdir" "$work/e1/rootfs/etc/app"
mkdir -p "$work/e1/rootfs/$work/hostdir"
out=$(run e1 2>/dev/null)
check "a symlinked target lands inside the rootfs" '[ "$out" = "$(digest "$db")" ] && [ -f "$work/e1/rootfs/$work/hostdir/pw" ]'
check "nothing created in the host directory" '[ -z "$(ls -A "$work/hostdir")" ]'

# Bad input: each refused with one line, and the container never runs.
refused() { # name annotation expected-substring
    bundle "$1" "$2" sh -c 'echo RAN'
    out=$(run "$1" 2>"$work/$1.err"); rc=$?
    # runc quotes the hook's line with backslashes; crun keeps it in .hookerr.
    if [ $rc != 0 ] && [ -z "$out" ] && cat "$work/$1.err" "$work/$1.hookerr" 2>/dev/null | tr -d '\\' | grep -qF "$3" && no_view_mounts; then ok "refused: $1"; else bad "refused: $1"; cat "$work/$1.err"; fi
}
refused bad1 "nope" 'secret "nope" is not granted to a container started by root (bundle)'
refused bad2 "source=db_pass,bogus=1" 'unknown key'
refused bad3 "source=db_pass,target=/proc/x" 'is under /proc'
refused bad5 "source=db_pass,target=../../etc/x" 'is not clean'
# A target the image made a FIFO: refused at attach, and the directory
# mount attached before it is taken down again.
bundle bad7 "db_pass;source=db_pass,target=/etc/fifo" sh -c 'echo RAN'
mkfifo "$work/bad7/rootfs/etc/fifo"
out=$(run bad7 2>"$work/bad7.err"); rc=$?
check "refused: a FIFO target, nothing left mounted" '[ $rc != 0 ] && [ -z "$out" ] && cat "$work/bad7.err" "$work/bad7.hookerr" 2>/dev/null | grep -qF "/etc/fifo in the container is a FIFO, not a regular file" && no_view_mounts'
check "the agent flushed the refused view" tasks_empty
ctl secret bogus >/dev/null 2>&1; rc=$?
check "CLI usage error exits 2" '[ $rc = 2 ]'
ctl secret inspect nope >/dev/null 2>&1; rc=$?
check "CLI error exits 1" '[ $rc = 1 ]'
head -c 600000 /dev/zero | tr '\0' x | ctl secret create huge - 2>"$work/huge.err"
check "an oversized secret is refused at create" 'grep -qF "over the limit of 512000" "$work/huge.err"'
ctl secret rm api_key >/dev/null 2>&1
check "unused secret removed" '! ctl secret inspect api_key >/dev/null 2>&1'
check "non-root client refused" '[ -n "$(setpriv --reuid=65534 --regid=65534 --clear-groups '"$ctlbin"' --socket '"$sock"' status 2>&1 >/dev/null | grep -i "permission denied")" ]'

chmod 0711 "$work"; chmod 0666 "$sock"  # let the peer-credential check itself refuse
check "non-root peer refused by SO_PEERCRED" '[ -n "$(setpriv --reuid=65534 --regid=65534 --clear-groups "$ctlbin" --socket "$sock" status 2>&1 | grep -F "serves root only (client uid 65534)")" ]'
# The other way round: a socket served by someone else than root gets no
# request from the CLI or the hook.
mkdir -p "$work/fake"; chown 65534:65534 "$work/fake"
setpriv --reuid=65534 --regid=65534 --clear-groups /usr/bin/python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.bind(sys.argv[1]); s.listen(4)
time.sleep(10)' "$work/fake/agent.sock" &
fake_pid=$!
i=0; while [ ! -S "$work/fake/agent.sock" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
check "a socket served by a non-root process: the CLI refuses to talk to it" \
    '[ "$("$ctlbin" --socket "$work/fake/agent.sock" status 2>&1)" = "secretshimctl: the secretshim agent at $work/fake/agent.sock is not root'"'"'s (uid 65534): refusing to talk to it" ]'
python3 "$scripts/make_bundle.py" "$work/fk" "$hook" "$work/fake/agent.sock" "db_pass" 0 sh -c 'echo RAN' >/dev/null
ids="$ids fk"
out=$(rt run --bundle "$work/fk" fk 2>"$work/fk.err"); rc=$?
check "... and the hook neither: the container does not start" \
    '[ $rc != 0 ] && [ -z "$out" ] && cat "$work/fk.err" "$work/fk.hookerr" 2>/dev/null | grep -qF "is not root"'
kill "$fake_pid" 2>/dev/null; wait "$fake_pid" 2>/dev/null

# Limits before decryption: 1024 references to a 500 KiB secret (500 MiB of
# plaintext the agent would hold) are refused in one line before anything
# is decrypted; the agent keeps serving and its memory does not grow.
head -c 512000 /dev/urandom | ctl secret create big500 - --grant root >/dev/null
refs=$(i=0; while [ $i -lt 1024 ]; do printf 'source=big500,target=t%d;' $i; i=$((i + 1)); done)
rss() { awk '/^VmRSS:/ {print $2}' "/proc/$agent_pid/status"; }
rss_before=$(rss)
bundle cap1 "$refs" sh -c 'echo RAN'
out=$(run cap1 2>"$work/cap1.err"); rc=$?
check "1024 x 500 KiB references: refused in one line, before anything is decrypted" \
    '[ $rc != 0 ] && [ -z "$out" ] && cat "$work/cap1.err" "$work/cap1.hookerr" 2>/dev/null | tr -d "\\\\" | grep -qF "container cap1: the container asks for 524288000 bytes of secrets, over the limit of 67108864 (max_container_bytes)"' ||
    head -c 400 "$work/cap1.err"
bundle cap2 "db_pass" sh -c 'sha256sum /run/secrets/db_pass | cut -c1-64'
check "... and a normal container starts right after" '[ "$(run cap2 2>/dev/null)" = "$(digest "$db")" ]'
# Measured: +0.4 MiB here in the plain build; under ASan +2.0 MiB with
# its quarantine off and +2.4 MiB with it on (its allocator keeps what the
# refused request's 1024 references cost in copies resident). Either is far
# below the 500 MiB a decryption before the check would add.
slack=2048; [ -z "${ASAN_OPTIONS:-}" ] || slack=8192
check "... the agent's memory unchanged (VmRSS $rss_before -> $(rss) KiB)" '[ $(( $(rss) - rss_before )) -lt $slack ]'
check "status shows the limits and what is held" \
    'ctl status | python3 -c "import json,sys; s=json.load(sys.stdin); l=s[\"limits\"]; sys.exit(0 if l[\"max_container_bytes\"]==67108864 and l[\"max_container_files\"]==1024 and l[\"max_node_bytes\"]==268435456 and s[\"held_bytes\"]==0 else 1)"'
ctl secret rm big500 >/dev/null
check "status says whether views are kept out of swap and freed pages zeroed" \
    'ctl status | python3 -c "import json,sys; m=json.load(sys.stdin)[\"memory\"]; sys.exit(0 if m[\"noswap\"] is True and m[\"allow_swap\"] is False and m[\"init_on_free\"] in (\"on\", \"off\", \"unknown\") else 1)"'

# A lower payload limit from a config file: a stored secret over it is refused.
kill "$agent_pid"; wait "$agent_pid"; rc=$?; agent_pid=
check "SIGTERM: the agent exits 0 and removes its socket" '[ $rc = 0 ] && [ ! -e "$sock" ]'
printf 'max_payload: 16\n' > "$work/agent.yaml"
start_agent "$work/agent.yaml"
refused bad6 "db_pass" 'over the limit of 16'
# The node's limit: what running containers hold counts, until they exit.
kill "$agent_pid"; wait "$agent_pid" 2>/dev/null; agent_pid=
printf 'max_node_bytes: 60\n' > "$work/agent.yaml"
start_agent "$work/agent.yaml"
bundle n1 "db_pass;source=db_pass,target=again" sh -c 'sleep 100'
ids="$ids n1"
rt run -d --bundle "$work/n1" n1 >/dev/null 2>&1 </dev/null
bundle n2 "db_pass;source=db_pass,target=again" sh -c 'echo RAN'
out=$(run n2 2>"$work/n2.err"); rc=$?
check "the node's limit: a second container that would pass it is refused in one line" \
    '[ $rc != 0 ] && [ -z "$out" ] && cat "$work/n2.err" "$work/n2.hookerr" 2>/dev/null | tr -d "\\\\" | grep -qF "container n2: the node holds 48 bytes of secrets for running containers: 48 more would pass its limit of 60 (max_node_bytes)"'
rt delete -f n1 >/dev/null 2>&1
tasks_empty
bundle n3 "db_pass;source=db_pass,target=again" sh -c 'sha256sum /run/secrets/again | cut -c1-64'
check "the node's limit: once the holder exited, the same request is served" '[ "$(run n3 2>/dev/null)" = "$(digest "$db")" ]'
printf 'max_payload: 16\nbogus: 1\n' > "$work/bad.yaml"
check "unknown config key refused with file and line" '"$agentbin" --config "$work/bad.yaml" --socket "$work/x.sock" --state-dir "$work/state" 2>&1 | grep -qF "$work/bad.yaml:2: unknown key \"bogus\""'

kill "$agent_pid"; wait "$agent_pid" 2>/dev/null; agent_pid=
refused bad4 "db_pass" 'cannot reach the secretshim agent'

echo "$failures failure(s)"
# The agent logs names, never values: safe to show when something failed.
[ $failures = 0 ] || { echo "--- agent log"; cat "$work/agent.log"; }
[ $failures = 0 ]
