#!/bin/sh
# The package's whole life on a node, for real and without touching the
# host: dpkg installs, upgrades, removes and purges it inside a throwaway
# PID and mount namespace whose root is an overlay over the host's / (the
# upper layer on a tmpfs), with a real systemd as PID 1 and journald. The
# maintainer scripts run as on a node: debhelper's snippets enable, start,
# restart and stop the unit through deb-systemd-helper and
# deb-systemd-invoke (this machine's Docker-build policy-rc.d, which
# forbids that, is deleted in the overlay first). Checked:
#  * install: the unit enabled and running, logging to the journal;
#  * a runc container served with its secrets (the journal's attach entry
#    names it); `systemctl reload` keeps
#    the agent's process and the container's secrets;
#  * an upgrade in place to a higher version: the agent is restarted, not
#    stopped before the unpack (the running container's view comes back
#    from systemd's fd store, which a stop would have emptied), the
#    container keeps its secrets and is still flushed when it exits;
#  * a containerd (private root and sockets) whose config.toml has the
#    packaged CRI tables appended, as docs/admin-guide.md says: its CRI
#    plugin loads after install, upgrade and `dpkg -r` (the base spec it
#    names is a conffile, kept); after `dpkg -P` postrm warns that
#    config.toml still names it, CRI fails without it (so the check can
#    fail), and with the tables deleted by the documented line it loads;
#  * why not a drop-in: containerd 1.6 replaces config.toml's whole CRI
#    section with an imported file's (config dump);
#  * purge: nothing of ours left in the overlay's upper layer or /run, no
#    secret's value in the journal.
# Usage: lifecycle_test.sh SOURCE_DIR BUILD_DIR
# SECRETSHIM_DEB=FILE uses an already built package (development).
set -u
src=$(cd "$1" && pwd)
build=$(cd "$2" && pwd)
work=$(mktemp -d /tmp/secretshim-lifecycle-XXXXXX)
# The overlay's upper layer (a tmpfs mounted there inside the namespace);
# not below $work, which the namespace sees through a bind mount.
ovl=$(mktemp -d /tmp/secretshim-lifecycle-ovl-XXXXXX)
. "$src/tests/packaging/lib.sh"
rt_ids="c1 c2"
remove_ovl() { rmdir "$ovl"; }
pkg_cleanup_hooks=remove_ovl
pkg_setup dpkg dpkg-deb containerd ctr journalctl

# --- two packages: as built, and the same with a higher version -------------
pkg_build
dpkg-deb -R "$deb" "$work/v2"
v1=$(sed -n 's/^Version: //p' "$work/v2/DEBIAN/control")
v2=$v1+lifecycle1
sed -i "s/^Version: .*/Version: $v2/" "$work/v2/DEBIAN/control"
deb2=$work/out/secretshim_${v2}_upgrade.deb
dpkg-deb -b "$work/v2" "$deb2" >/dev/null
check "a second package with a higher version ($v2)" 'dpkg --compare-versions "$v2" gt "$v1" && [ -f "$deb2" ]'
# debhelper's snippets: the unit is stopped before the unpack only on
# remove (prerm), and restarted after the upgrade (postinst).
dpkg-deb -e "$deb" "$work/control"
check "maintainer scripts: prerm stops the unit only on remove, postinst restarts it on upgrade" \
    'grep -q "\"\$1\" = remove" "$work/control/prerm" && grep -q "deb-systemd-invoke stop .secretshimd.service" "$work/control/prerm" &&
     grep -q "_dh_action=restart" "$work/control/postinst" && ! grep -q "\$1\" = upgrade" "$work/control/prerm"'

# --- the node: systemd and journald over an overlay of / --------------------
# PID 1 loads units from $work/units: journald's (copied from the host), a
# target that wants journald, stubs, and a link to the path where dpkg
# installs the packaged unit (dangling until then); and from
# /etc/systemd/system, emptied in the overlay before it boots (no host
# service starts), where deb-systemd-helper enables the unit: PID 1 then
# calls it enabled, which deb-systemd-invoke wants before it starts it.
units=$work/units
sd_unit_path=$units:/etc/systemd/system
mkdir -p "$work/runc"
journald_units
ln -s /lib/systemd/system/secretshimd.service "$units/secretshimd.service"
# The root: an overlay with / as its lower layer, then pivot_root into it;
# /dev a tmpfs with a few nodes (journald makes /dev/log: not the host's),
# /run a tmpfs, $work the real directory, and the upper layer shown at $ovl.
sd_start "mount -t tmpfs -o mode=0700 tmpfs $ovl
mkdir $ovl/upper $ovl/work $ovl/root
new=$ovl/root
mount -t overlay overlay -o lowerdir=/,upperdir=$ovl/upper,workdir=$ovl/work \$new
rm -rf \$new/etc/systemd/system && mkdir \$new/etc/systemd/system
mount -t proc proc \$new/proc
mount --rbind /sys \$new/sys
$(dev_script \$new)
mount -t tmpfs -o mode=0755 tmpfs \$new/run
mount --bind $work \$new$work
mount --bind $ovl/upper \$new$ovl
mkdir \$new/run/oldroot
cd \$new
pivot_root . run/oldroot
cd /
umount -l /run/oldroot
rmdir /run/oldroot"
check "journald runs under it" 'i=0; while [ "$(ns systemctl show -p ActiveState --value systemd-journald 2>/dev/null)" != active ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    [ "$(ns systemctl show -p ActiveState --value systemd-journald)" = active ]' ||
    sed 's/^/# systemd: /' "$work/systemd.log" | tail -20
check "the overlay is the namespace's root; the host's / is untouched by a write" \
    'ns touch /.secretshim-lifecycle-probe && ns test -e "$ovl/.secretshim-lifecycle-probe" && [ ! -e /.secretshim-lifecycle-probe ] &&
     ns rm /.secretshim-lifecycle-probe'
ns rm -f /usr/sbin/policy-rc.d   # a node's apt starts services
# A host with the package installed: the node starts without it.
! ns dpkg -s secretshim >/dev/null 2>&1 || ns dpkg -P secretshim >/dev/null 2>&1

# --- install -------------------------------------------------------------------
ns dpkg -i "$deb" >"$work/install.out" 2>&1
check "dpkg -i: installed ($v1)" '[ "$(ns dpkg-query -W -f "\${Status} \${Version}" secretshim)" = "install ok installed $v1" ]' ||
    sed 's/^/# dpkg: /' "$work/install.out"
check "postinst enabled and started the unit (deb-systemd-helper, deb-systemd-invoke)" \
    '[ "$(ns systemctl is-enabled secretshimd)" = enabled ] && wait_state active' ||
    { sed 's/^/# dpkg: /' "$work/install.out"; ns systemctl status --no-pager secretshimd 2>&1 | sed 's/^/# /'; }
check "journalctl -u secretshimd shows the agent's log" 'log_has "serving /run/secretshim/agent.sock"' ||
    ns journalctl --no-pager -n 20 | sed 's/^/# journal: /'

# The node's containerd: Debian's config.toml with a private root, state and
# sockets, an imports glob, and the packaged tables appended as the docs say.
cdsock=$work/containerd.sock
mkdir -p "$work/cni-bin" "$work/cni-conf"
ns sh -c 'cat >/etc/containerd/config.toml' <<EOF
version = 2
imports = ["/etc/containerd/conf.d/*.toml"]
root = "$work/containerd-root"
state = "/run/containerd-test"
[grpc]
  address = "$cdsock"
[ttrpc]
  address = "$cdsock.ttrpc"
[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "$work/cni-bin"
      conf_dir = "$work/cni-conf"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.internal.v1.opt"]
    path = "$work/containerd-opt"
EOF
ns cp /etc/containerd/config.toml "$work/config.toml.before"
# The tables replace CRI's built-in handlers: appended to a config.toml
# without a runc table (Debian's stock one), runc's is gone.
grep -v "containerd.runtimes.runc\]\|runtime_type" "$work/config.toml.before" >"$work/config-norunc.toml"
ns sh -c 'cat /usr/share/secretshim/containerd/secretshim.toml >>'"$work/config-norunc.toml"
ns containerd --config "$work/config-norunc.toml" config dump >"$work/dump-norunc.toml" 2>&1
check "why config.toml needs a runc table: without it, the appended tables leave CRI no runc handler" \
    'grep -qF "default_runtime_name = \"runc\"" "$work/dump-norunc.toml" &&
     ! grep -qF "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]" "$work/dump-norunc.toml"'
# cri_state: the CRI plugin's status ("ok", "error") after a fresh start
# of containerd (a transient unit of the namespace's systemd).
cri_state() {
    ns systemctl stop test-containerd.service >/dev/null 2>&1
    ns systemctl reset-failed test-containerd.service >/dev/null 2>&1
    ns systemd-run --quiet --unit=test-containerd containerd --config /etc/containerd/config.toml || return 1
    i=0
    while ! ns ctr --address "$cdsock" version >/dev/null 2>&1; do
        i=$((i + 1)); [ $i -lt 200 ] || return 1
        sleep 0.05
    done
    ns ctr --address "$cdsock" plugins ls | awk '$1 == "io.containerd.grpc.v1" && $2 == "cri" {print $NF}'
}
ns sh -c 'cat /usr/share/secretshim/containerd/secretshim.toml >>/etc/containerd/config.toml'
check "installed: containerd with the appended tables starts, its CRI plugin ok" '[ "$(cri_state)" = ok ]' ||
    ns journalctl -q -o cat -u test-containerd | grep -i error | tail -5 | sed 's/^/# containerd: /'
# A drop-in holding the tables (through the imports glob) would replace
# the whole CRI section: the rest of config.toml's is lost.
ns sh -c 'mkdir -p /etc/containerd/conf.d && cp /usr/share/secretshim/containerd/secretshim.toml /etc/containerd/conf.d/secretshim.toml &&
    containerd --config /etc/containerd/config.toml config dump >'"$work/dump.toml"'; rm -r /etc/containerd/conf.d'
check "why not a drop-in: an imported CRI table replaces config.toml's CRI section (containerd 1.6)" \
    'grep -qF "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.secretshim]" "$work/dump.toml" &&
     ! grep -qF "$work/cni-bin" "$work/dump.toml" && ! grep -qF "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]" "$work/dump.toml"'

# --- a container with secrets ---------------------------------------------------
db=$(marker); key=$(marker)
printf %s "$db" | ctl secret create db_pass - --grant root >/dev/null
printf %s "$key" | ctl secret create api_key - --grant root >/dev/null
python3 "$src/scripts/make_bundle.py" "$work/c1" /usr/libexec/secretshim/secretshim-hook /run/secretshim/agent.sock \
    "db_pass;source=api_key,target=/etc/app/key,uid=1000,gid=1000,mode=0440" 0 sh -c 'while :; do sleep 1; done'
rt run -d --bundle "$work/c1" c1 >"$work/c1.out" 2>&1 </dev/null
check "a container started with its secrets, its view in the fd store" 'both_readable c1 && [ "$(stored_count)" = 1 ]' ||
    sed 's/^/# /' "$work/c1.out"

# The agent writes native journal entries with fields: its audit trail
# names the container that got its secrets.
check "journalctl -u secretshimd SECRETSHIM_EVENT=attach names the container" \
    'i=0; until ns journalctl -q -o export -u secretshimd SECRETSHIM_EVENT=attach | grep -qxF CONTAINER_ID=c1 || [ $i -ge 50 ]; do
         sleep 0.1; i=$((i + 1)); done
     ns journalctl -q -o export -u secretshimd SECRETSHIM_EVENT=attach | grep -qxF CONTAINER_ID=c1'

# --- reload ------------------------------------------------------------------------
# ExecReload= sends SIGHUP: the agent reads its configuration again in the
# same process (before SIGHUP reload, the signal killed it).
pid=$(main_pid)
ns systemctl reload secretshimd
check "systemctl reload: the same process, still active" 'sleep 0.5; [ "$(state)" = active ] && [ "$(main_pid)" = "$pid" ]'
check "systemctl reload: the agent read its configuration again" 'log_has "reloaded /etc/secretshim/secretshimd.yaml"' ||
    agent_log | tail -3 | sed 's/^/# agent: /'
check "systemctl reload: the container keeps its secrets, its view stays in the fd store" 'both_readable c1 && [ "$(stored_count)" = 1 ]'

# --- upgrade in place --------------------------------------------------------------
pid=$(main_pid)
ns dpkg -i "$deb2" >"$work/upgrade.out" 2>&1
check "dpkg -i of the higher version: upgraded in place ($v2)" \
    '[ "$(ns dpkg-query -W -f "\${Status} \${Version}" secretshim)" = "install ok installed $v2" ]' ||
    sed 's/^/# dpkg: /' "$work/upgrade.out"
check "upgrade: the agent restarted (a new process, active)" 'wait_state active && [ "$(main_pid)" != "$pid" ]'
check "upgrade: restarted, not stopped before the unpack (the view came back from the fd store)" \
    'log_has "container \"c1\": re-adopted secrets db_pass,api_key from the fd store" && [ "$(stored_count)" = 1 ] &&
     ! agent_log | grep -qF "container \"c1\": re-adopted secrets db_pass,api_key from its mounts"'
check "upgrade: the running container keeps its secrets" 'both_readable c1'
check "upgrade: containerd restarts, its CRI plugin ok" '[ "$(cri_state)" = ok ]'
rt kill c1 KILL
check "upgrade: the container's view is still flushed when it exits" 'tasks_empty && [ "$(stored_count)" = 0 ]'
rt delete -f c1 >/dev/null 2>&1

# --- remove ----------------------------------------------------------------------
ns dpkg -r secretshim >"$work/remove.out" 2>&1
check "dpkg -r: removed, configuration kept" \
    '[ "$(ns dpkg-query -W -f "\${Status}" secretshim)" = "deinstall ok config-files" ]' || sed 's/^/# dpkg: /' "$work/remove.out"
check "dpkg -r: the agent stopped, its programs gone" \
    '[ "$(state)" != active ] && ! ns test -e /usr/sbin/secretshimd && ! ns test -e /usr/libexec/secretshim/secretshim-hook'
check "dpkg -r: the state (node key, secrets), the config and the base spec kept" \
    'ns test -f /var/lib/secretshim/node.key && ns test -f /etc/secretshim/secretshimd.yaml &&
     ns test -f /etc/secretshim/containerd/base-spec.json'
check "dpkg -r: containerd restarts cleanly, its CRI plugin ok (the base spec is still there)" '[ "$(cri_state)" = ok ]'
# A container that asks for secrets does not start without the hook.
python3 "$src/scripts/make_bundle.py" "$work/c2" /usr/libexec/secretshim/secretshim-hook /run/secretshim/agent.sock \
    db_pass 0 sh -c 'while :; do sleep 1; done'
check "dpkg -r: a container that asks for secrets does not start" '! rt run -d --bundle "$work/c2" c2 >"$work/c2.out" 2>&1 </dev/null'
rt delete -f c2 >/dev/null 2>&1

# --- purge -------------------------------------------------------------------------
ns dpkg -P secretshim >"$work/purge.out" 2>&1
check "dpkg -P: purged" '! ns dpkg-query -W -f "\${Status}" secretshim >/dev/null 2>&1 ||
    [ "$(ns dpkg-query -W -f "\${Status}" secretshim 2>/dev/null)" = "unknown ok not-installed" ]' || sed 's/^/# dpkg: /' "$work/purge.out"
check "dpkg -P: postrm says that config.toml still names the purged base spec" \
    'grep -qF "secretshim: /etc/containerd/config.toml still names /etc/secretshim/containerd/base-spec.json" "$work/purge.out"'
check "dpkg -P with the tables left: containerd's CRI plugin fails (why postrm warns)" '[ "$(cri_state)" = error ]'
# docs/admin-guide.md, "Uninstall": the line that deletes the tables.
ns sed -i '/^# secretshim for containerd 1.6/,/^# end of secretshim/d' /etc/containerd/config.toml
check "the documented line deletes the appended tables, and only them" 'ns cmp -s /etc/containerd/config.toml "$work/config.toml.before"'
check "tables deleted: containerd restarts cleanly, its CRI plugin ok" '[ "$(cri_state)" = ok ]'
ns systemctl stop test-containerd.service
# Every file written in the overlay is in its upper layer (a whiteout, a
# character device, marks a host file deleted there: not ours); the host's
# own files (the lower layer) are not ours either.
left=$(ns find "$ovl" /run -mindepth 1 -name '*secretshim*' ! -type c 2>/dev/null)
check "dpkg -P: nothing of ours left (state, key, records, conffiles, units, links, dpkg's lists)" '[ -z "$left" ]' ||
    echo "$left" | sed 's/^/# left: /'
check "no secret's value in the journal" 'ns journalctl -o export >"$work/journal.export" && [ -s "$work/journal.export" ] &&
    ! grep -qF -e "$db" -e "$key" "$work/journal.export"'
rm -f "$work/journal.export"

[ "$failures" = 0 ] || agent_log | tail -40 | sed 's/^/# agent: /'
finish
