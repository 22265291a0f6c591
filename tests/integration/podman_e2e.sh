#!/bin/sh
# Podman end to end: the packaged hooks.d file (checked first: one invalid
# file in a hooks directory stops every container on the node) runs the
# hook at createRuntime and poststop for containers that carry a secretshim
# annotation, and only for them. Podman's storage lives under a temp dir.
# A container's identity is its name (from the conmon Podman started, never
# from an annotation): the secrets are granted to podman,name=web-*, and a
# hostile image whose manifest asks for a secret (Podman 4.3 copies image
# annotations into the spec) gets nothing unless its container's name is
# granted, nor can it steer a pinned grant to a target of its choosing.
# Usage: podman_e2e.sh BUILD_DIR INSTALLED_HOOK_PATH
# Secret values are random markers compared as SHA-256 digests, never printed.
set -u
. "$(dirname "$0")/lib.sh"
build=$(cd "$1" && pwd)
installed_hook=$2
here=$(cd "$(dirname "$0")" && pwd)
scripts=$(cd "$here/../../scripts" && pwd)
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root"; exit 77; }
command -v podman >/dev/null || { echo "SKIP: podman not installed"; exit 77; }

hook=$build/plugin/secretshim-hook
work=$(mktemp -d /tmp/secretshim-podman-XXXXXX)
sock=$work/agent.sock
packaged=$build/packaging/hooks.d/secretshim.json

# Podman on this VM: runc, and explicit ulimits (docs/platform-notes.md); no journald.
cat >"$work/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
runtime = "runc"
events_logger = "none"
cgroup_manager = "cgroupfs"
CONF
pm() {
    CONTAINERS_CONF=$work/containers.conf $pm_in podman --root "$work/root" --runroot "$work/runroot" \
        --storage-driver vfs --tmpdir "$work/tmp" --hooks-dir "${hooks_dir:-$work/hooks}" "$@"
}
pm_in=
# podman load writes root's blob-info cache to /var/lib/containers: not here.
pm_load() {
    pm_in="in_private_varlib $work/varlib"
    pm load -q -i "$1"; rc=$?
    pm_in=
    return $rc
}
cleanup() {
    pm rm -af >/dev/null 2>&1
    stop_agent
    remove_work  # Podman's vfs storage may leave mounts (shm, overlay of /run) below $work
}
trap cleanup EXIT
trap "exit 1" INT TERM HUP PIPE  # so that cleanup runs on a signal too
# Views live in the containers' namespaces only: none on the host, none left under $work.
view_grep='-e " secretshim " -e " $work/" /proc/self/mountinfo'  # for no_view_mounts

# 1. The packaged file, as installed.
python3 "$here/check_hooks_json.py" podman "$packaged" "$installed_hook" || failures=$((failures + 1))
# CRI-O's, which CRI-O loads with the same code (containers/common pkg/hooks).
python3 "$here/check_hooks_json.py" cri-o "$build/packaging/hooks.d/secretshim-crio.json" "$installed_hook" ||
    failures=$((failures + 1))

# 2. A copy for this test: the packaged file with only the hook's path and
# socket changed.
mkdir -p "$work/hooks" "$work/rootfs/bin" "$work/rootfs/etc" "$work/rootfs/run"
python3 - "$packaged" "$work/hooks/secretshim.json" "$work/hook-logged" "$sock" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
doc["hook"]["path"] = sys.argv[3]
doc["hook"]["args"] = ["secretshim-hook", "--socket", sys.argv[4]] + doc["hook"]["args"][1:]
json.dump(doc, open(sys.argv[2], "w"), indent=1)
PY
# The hook, behind a script that notes each stage's status and container
# (and, in hook-bundles.log, the bundle too).
cat >"$work/hook-logged" <<SH
#!/bin/sh
state=\$(cat)
printf '%s\n' "\$state" | grep -o '"id":"[^"]*"\|"status":"[^"]*"' | tr '\n' ' ' >>"$work/hook-calls.log"
echo >>"$work/hook-calls.log"
printf '%s\n' "\$state" | grep -o '"id":"[^"]*"\|"status":"[^"]*"\|"bundle":"[^"]*"' | tr '\n' ' ' >>"$work/hook-bundles.log"
echo >>"$work/hook-bundles.log"
printf '%s' "\$state" | exec "$hook" "\$@"
SH
chmod +x "$work/hook-logged"
cp /bin/busybox "$work/rootfs/bin/busybox"
ln -s busybox "$work/rootfs/bin/sh"

start_agent
db=$(marker); api=$(marker)
printf %s "$db" | ctl secret create db_pass - --grant 'podman,name=web-*' >/dev/null
printf %s "$api" | ctl secret create api_key - --grant 'podman,name=web-*' >/dev/null

# A container that asks for secrets: a default and a custom target.
# --rootfs takes no value: the first argument after the options is the rootfs.
# Podman 4.3 splits --annotation values at commas (a CSV list): a reference
# with options is quoted as one CSV field.
out=$(pm run --rm --network none --name web-1 \
      --annotation '"io.secretshim.secrets=db_pass;source=api_key,target=/etc/app/key,uid=1000,mode=0400"' \
      --rootfs "$work/rootfs" /bin/sh -c 'sha256sum /run/secrets/db_pass /etc/app/key | cut -c1-64;
                  stat -c "%a %u" /run/secrets/db_pass /etc/app/key;
                  grep -cE " (/run/secrets|/etc/app/key) ro,nosuid,nodev,noexec[, ]" /proc/self/mountinfo' 2>"$work/run1.err")
rc=$?
check "podman run with the annotation succeeds" '[ $rc = 0 ]' || cat "$work/run1.err"
check "podman: /run/secrets/db_pass holds the secret" '[ "$(echo "$out" | sed -n 1p)" = "$(digest "$db")" ]'
check "podman: /etc/app/key holds the secret" '[ "$(echo "$out" | sed -n 2p)" = "$(digest "$api")" ]'
check "podman: owner and mode" '[ "$(echo "$out" | sed -n 3,4p | tr "\n" " ")" = "444 0 400 1000 " ]'
check "podman: both mounts ro,nosuid,nodev,noexec" '[ "$(echo "$out" | sed -n 5p)" = 2 ]' || echo "$out" | sed 1,4d
check "podman: flushed after exit (task ls empty)" tasks_empty
check "podman: no view left in any mount table" no_view_mounts

# Detached: the task is listed while it runs; podman stop runs poststop
# (the hook's "auto" stage tells it from createRuntime by the state).
cid=$(pm run -d --network none --name web-2 --annotation "io.secretshim.secrets=db_pass" --rootfs "$work/rootfs" \
      /bin/sh -c 'sleep 100' 2>"$work/run2.err")
check "podman: a running container is a task" '[ -n "$cid" ] && [ "$(ctl task ls --format json | grep -c "\"$cid\"")" = 1 ]' || cat "$work/run2.err"
check "podman exec reads the secret" '[ "$(pm exec "$cid" /bin/sh -c "sha256sum /run/secrets/db_pass" | cut -c1-64)" = "$(digest "$db")" ]'
# The hook's "auto" stage: a "stopped" state is poststop, which flushes at
# once (Podman runs poststop itself after the exit, when the pidfd watch
# has usually flushed already; this checks the path on its own).
# The state names the container's bundle, as Podman's own does: a task is
# its id and bundle (plugin/agent/task_key.hpp).
cbundle=$(ctl task ls --format json | python3 -c 'import json,sys; print(next(t["bundle"] for t in json.load(sys.stdin) if t["id"] == sys.argv[1]))' "$cid")
printf '{"ociVersion":"1.0.2","id":"%s","status":"stopped","bundle":"/x","annotations":{"io.secretshim.secrets":"db_pass"}}' "$cid" |
    "$hook" --socket "$sock" auto
sleep 0.2  # the hook does not wait for the agent
check "a poststop naming another bundle releases nothing" '[ "$(ctl task ls --format json | grep -c "\"$cid\"")" = 1 ]'
printf '{"ociVersion":"1.0.2","id":"%s","status":"stopped","bundle":"%s","annotations":{"io.secretshim.secrets":"db_pass"}}' "$cid" "$cbundle" |
    "$hook" --socket "$sock" auto
check "hook auto + a stopped state = poststop: flushed while still running" 'tasks_empty && grep -qF "$cid\": released by poststop" "$work/agent.log"'
pm stop -t 0 "$cid" >/dev/null 2>&1
pm rm "$cid" >/dev/null 2>&1
check "podman stop and rm: nothing left" 'no_view_mounts && [ -z "$(pm ps -aq)" ]'
check "podman ran the hook at createRuntime and, after the exit, at poststop" \
    'grep -qxF "\"id\":\"$cid\" \"status\":\"creating\" " "$work/hook-calls.log" && grep -qxF "\"id\":\"$cid\" \"status\":\"stopped\" " "$work/hook-calls.log"' || cat "$work/hook-calls.log"
# Podman runs poststop itself, with a state of its own making: it must name
# the bundle runc gave createRuntime, or its release would find no task.
bundle_at() { grep -F "\"id\":\"$cid\"" "$work/hook-bundles.log" | grep -F "\"status\":\"$1\"" | grep -o '"bundle":"[^"]*"'; }
check "podman's poststop names the bundle its createRuntime did" \
    '[ -n "$(bundle_at creating)" ] && [ "$(bundle_at creating)" = "$(bundle_at stopped)" ]' || cat "$work/hook-bundles.log"

# A user namespace (--uidmap/--gidmap): a secret's uid is a container id,
# the file carries the host id it maps to.
cp -a "$work/rootfs" "$work/rootfs-userns"
chown -R 100000:100000 "$work/rootfs-userns"
chmod 0711 "$work"
out=$(pm run --rm --network none --name web-3 --uidmap 0:100000:65536 --gidmap 0:100000:65536 \
      --annotation '"io.secretshim.secrets=source=api_key,target=/etc/app/key,uid=1000,gid=1000,mode=0400"' \
      --rootfs "$work/rootfs-userns" /bin/sh -c 'sha256sum /etc/app/key | cut -c1-64; stat -c "%u %g %a" /etc/app/key; cat /proc/self/uid_map' 2>"$work/userns.err")
check "podman --uidmap: the secret is readable, owned by container uid 1000" \
    '[ "$(echo "$out" | sed -n 1,2p | tr "\n" " ")" = "$(digest "$api") 1000 1000 400 " ] && echo "$out" | sed -n 3p | grep -qE "^ *0 +100000 +65536$"' || cat "$work/userns.err"
check "podman --uidmap: flushed" tasks_empty

# A container without the annotation: the hook is not even run.
out=$(pm run --rm --network none --rootfs "$work/rootfs" /bin/sh -c 'grep -c " /run/secrets " /proc/self/mountinfo' 2>&1)
check "podman: no annotation, runs without secrets" '[ "$out" = 0 ]'

# A bad annotation: refused with the hook's one line, nothing left behind.
out=$(pm run --rm --network none --name web-4 --annotation "io.secretshim.secrets=nope" --rootfs "$work/rootfs" \
      /bin/sh -c 'echo RAN' 2>"$work/bad.err"); rc=$?
check "podman: a secret that does not exist is refused" '[ $rc != 0 ] && [ -z "$out" ]'
check "podman: the error names the container, the secret and why" \
    'grep -qF "secretshim-hook: container " "$work/bad.err" && grep -qF "secret \"nope\" is not granted to podman container web-4" "$work/bad.err"'
echo "# podman said: $(cat "$work/bad.err")"
check "podman: refused container leaves no view and no task" 'no_view_mounts && tasks_empty'
check "podman: refused container not left running" '[ -z "$(pm ps -q)" ]'

# A name the grant does not cover: the same line as for a missing secret
# (nothing tells it that db_pass exists).
pm run --rm --network none --name other-1 --annotation "io.secretshim.secrets=db_pass" --rootfs "$work/rootfs" \
    /bin/sh -c 'echo RAN' >"$work/other.out" 2>"$work/other.err"; rc=$?
pm run --rm --network none --name other-2 --annotation "io.secretshim.secrets=nope" --rootfs "$work/rootfs" \
    /bin/sh -c 'echo RAN' >>"$work/other.out" 2>"$work/other-nope.err"
line() { grep -o 'secretshim-hook: container [0-9a-f]*: .*' "$1" | head -1 | sed -e 's/container [0-9a-f]*:/container ID:/' -e "s/$2/NAME/g"; }
check "podman: a container whose name is not granted is refused" '[ $rc != 0 ] && [ ! -s "$work/other.out" ] && tasks_empty'
check "podman: ungranted and missing secrets get one and the same line" \
    '[ -n "$(line "$work/other.err" "db_pass")" ] && [ "$(line "$work/other.err" db_pass | sed s/other-1/C/)" = "$(line "$work/other-nope.err" nope | sed s/other-2/C/)" ]' ||
    { cat "$work/other.err" "$work/other-nope.err"; }

# A hostile image: its manifest asks for db_pass (Podman 4.3 copies an
# image's annotations into the spec, and the packaged hooks.d file fires on
# them). Run with a plain `podman run`, it gets a generated name: refused.
oci_image "$work/buildah" "$work/rootfs" localhost/hostile:latest "$work/hostile.tar" \
    "io.secretshim.secrets=db_pass" "io.kubernetes.cri.sandbox-namespace=tenant-a" &&
    pm_load "$work/hostile.tar" >/dev/null 2>"$work/load.err"
check "a hostile OCI image built with buildah, loaded into Podman" 'pm image exists localhost/hostile:latest' || cat "$work/load.err"
out=$(pm run --rm --network none localhost/hostile:latest -c 'sha256sum /run/secrets/db_pass 2>&1; echo RAN' 2>"$work/hostile.err"); rc=$?
check "hostile image, plain podman run: refused, nothing ran" '[ $rc != 0 ] && [ -z "$out" ]'
check "hostile image: refused as not granted to its (generated) name" 'grep -qE "secret \"db_pass\" is not granted to podman container [a-z]+_[a-z]+" "$work/hostile.err"' ||
    cat "$work/hostile.err"
check "hostile image: the hook did run for it (the image's annotation reached the spec)" \
    '[ "$(grep -c "status\":\"creating" "$work/hook-calls.log")" -ge 1 ] && grep -q "not granted" "$work/agent.log"'
out=$(pm run --rm --network none --name web-img localhost/hostile:latest -c 'sha256sum /run/secrets/db_pass | cut -c1-64' 2>"$work/hostile2.err")
check "hostile image under a granted name gets db_pass (the name decides, not the image)" '[ "$out" = "$(digest "$db")" ]' ||
    cat "$work/hostile2.err"
check "hostile image: flushed" tasks_empty

# A pinned grant: the image asks for the secret at a target of its choosing.
pin=$(marker)
printf %s "$pin" | ctl secret create pinned - --grant 'podman,name=web-*,target=/run/secrets/pinned,mode=0400' >/dev/null
oci_image "$work/buildah" "$work/rootfs" localhost/steer:latest "$work/steer.tar" \
    "io.secretshim.secrets=source=pinned,target=/etc/leak,mode=0444" && pm_load "$work/steer.tar" >/dev/null 2>&1
out=$(pm run --rm --network none --name web-steer localhost/steer:latest -c 'echo RAN' 2>"$work/steer.err"); rc=$?
check "a pinned grant: an image steering the secret to /etc/leak is refused" \
    '[ $rc != 0 ] && [ -z "$out" ] && grep -qF "secret \"pinned\" is not granted to podman container web-steer" "$work/steer.err"'
out=$(pm run --rm --network none --name web-pin \
      --annotation '"io.secretshim.secrets=source=pinned,target=/run/secrets/pinned,mode=0400"' --rootfs "$work/rootfs" \
      /bin/sh -c 'sha256sum /run/secrets/pinned | cut -c1-64; stat -c %a /run/secrets/pinned' 2>"$work/pin.err")
check "a pinned grant: the reference as pinned is delivered" '[ "$(echo $out)" = "$(digest "$pin") 400" ]' || cat "$work/pin.err"
check "pinned: flushed" tasks_empty

# Unquoted, Podman splits the reference: refused with a hint, rather than
# delivered with the default target, owner and mode.
out=$(pm run --rm --network none --name web-5 --annotation "io.secretshim.secrets=source=api_key,target=/etc/app/key,mode=0400" \
      --rootfs "$work/rootfs" /bin/sh -c 'echo RAN' 2>"$work/split.err"); rc=$?
check "podman: a reference split at commas is refused with a hint" '[ $rc != 0 ] && [ -z "$out" ] && grep -qF "looks like a piece of a secret reference split at a comma" "$work/split.err" && tasks_empty'

# Why the packaged file is checked: one invalid file in a hooks directory
# makes every podman run fail, with or without secrets.
mkdir -p "$work/broken"
cp "$work/hooks/secretshim.json" "$work/broken/"
echo '{"version": "1.0.0", "hook": {' >"$work/broken/zz-invalid.json"
hooks_dir=$work/broken pm run --rm --network none --rootfs "$work/rootfs" /bin/true >/dev/null 2>&1; rc=$?
check "an invalid hooks.d file breaks every podman run (why ours is checked)" '[ $rc != 0 ]'

echo "$failures failure(s)"
[ $failures = 0 ] || { echo "--- agent log"; cat "$work/agent.log"; }
[ $failures = 0 ]
