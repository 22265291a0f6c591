"""Row 7c: pod start through CRI with 10 secrets via NRI (containerd 1.7)
vs via the runtime wrapper (containerd 1.6) vs no secretshim.

CreateContainer + StartContainer, timed as kubelet would see them (row 7's
driver, row7_cri_driver.py), on four private containerds run by
tests/integration/cri/containerd.sh:

* 1.6, Debian 12's, with the packaged 1.6 snippet: handler
  `secretshim-wrapper` (runc through secretshim-runtime-cri) and handler
  `runc` (no secretshim);
* 1.7, Debian 13's (scripts/fetch-trixie.sh), with the packaged NRI table
  and secretshim-nri pre-launched from its plugin directory, pods on the
  default handler;
* 1.7 with the same NRI table and no plugin: NRI's own machinery;
* 1.7 again, without NRI: no secretshim.

Sides, each a container named `app` in a pod of its own (host network,
namespace "bench"); what it asks for is its pod's annotation
io.secretshim.secrets.app, the request NRI and the wrapper both read:

* nri-10:  1.7 + NRI, 10 secrets of 64 B granted by one rule;
* nri-0:   1.7 + NRI, nothing asked: what the plugin costs every pod of
           the node (containerd waits for its CreateContainer answer);
* wrap-10: 1.6, handler secretshim-wrapper, the same 10 secrets;
* runc16:  1.6, handler runc, nothing asked (no secretshim);
* nri-off: 1.7, NRI on and no plugin, nothing asked (no secretshim);
* runc17:  1.7 without NRI, nothing asked (no secretshim).

Two baselines, because containerd 1.7 and 1.6 differ on their own: NRI's
cost is nri-* - runc17, the wrapper's is wrap-10 - runc16; the two costs,
not the raw times, are what compares across versions. nri-off splits
NRI's cost into containerd's (nri-off - runc17) and our plugin's
(nri-0 - nri-off).

All four containerds run at once, and one round-robin goes over the six
sides (row 7's rotation, warm-up rounds discarded). Why at once rather than
one containerd after the other: the machine is shared and its load drifts
over minutes; run in turn, the 1.6 sides and the 1.7 sides would be
measured in different minutes and the NRI-vs-wrapper comparison would carry
that drift, while in one rotation every side sees the same minutes. The
price is three idle containerds beside the one working; an idle containerd
sleeps (its CRI event loop and NRI socket wait on events), and every side,
baselines included, pays that price alike.

After each timed start the container is stopped (timeout 0) and removed,
untimed, and the next run waits until the agent holds no task (one agent
serves both containerds that run secretshim, with the same 10 secrets). Each side
is first run once checked: the container's config.json has our two hooks
exactly when it asked, and it sees its secrets (SHA-256 of one compared in
memory) or no /run/secrets. The containerds are stopped by their
supervisors' ctrd_stop (row 7's), last started first: the first one made
the shared cgroup parents and removes them once they are empty; the NRI
plugin processes by the pids their launcher wrote.

Skipped, saying why, when Debian's mirror cannot be reached (no containerd
1.7), when secretshim-nri was not built, or when row 7's tools are missing.
Secret values are random bytes handed to secretshimctl on stdin; nothing
is printed.
"""
import hashlib
import json
import os
import re
import subprocess
import time

from ..util import REPO, loadavg, log
from .row7_cri import DRIVER, NAMESPACE, PAUSE, PY, SIZE, COUNT, describe, driver_call, missing, shut_down, wait_idle
from .row7_cri_driver import CRI_DIR

NAME = "app"  # every side's container; a name is free again once removed

# The supervisor: $1 containerd.sh, $2 the kind (wrapper, nri, nri-off, plain17), $3
# WORK, $4 the build, $5 the hook, $6 the agent's socket, $7 the pause image,
# $8 the unpacked trixie root (1.7 kinds). Prints "ready SOCK" once
# containerd answers, then waits for its stdin to close and stops everything.
SUPERVISOR = r'''
set -u
. "$1"
kind=$2 build=$4 hook=$5 sock=$6 pause=$7
ctrd_init "$3" || exit 1
plugin_pids=$CTRD_WORK/nri-plugin.pids
case $kind in
wrapper)
    # The 1.6 path: the packaged snippet, the wrapper under its CRI name,
    # which finds the hook and the agent in containerd's environment.
    ln -s "$build/plugin/secretshim-runtime" "$CTRD_WORK/secretshim-runtime-cri"
    ctrd_base_spec "$build/packaging/containerd/base-spec.json" "$CTRD_WORK/base-spec.json" "$hook" "$sock" || exit 1
    ctrd_snippet "$build/packaging/containerd/secretshim.toml" "$CTRD_WORK/secretshim.toml" \
        "$CTRD_WORK/base-spec.json" "$CTRD_WORK/secretshim-runtime-cri"
    ctrd_write_config "$pause" "$CTRD_WORK/secretshim.toml"
    SECRETSHIM_RUNTIME=runc SECRETSHIM_HOOK=$hook SECRETSHIM_SOCKET=$sock
    export SECRETSHIM_RUNTIME SECRETSHIM_HOOK SECRETSHIM_SOCKET ;;
nri|nri-off)
    # The packaged NRI table, its paths under WORK; containerd pre-launches
    # the plugin as 50-secretshim, which adds the agent's socket and the hook
    # (nri-off: no plugin).
    PATH=$8/usr/bin:$PATH; export PATH
    mkdir -p "$CTRD_DIR/nri-plugins" "$CTRD_DIR/nri-conf"
    sed -e "s|\"/var/run/nri/nri.sock\"|\"$CTRD_DIR/nri.sock\"|" \
        -e "s|\"/opt/nri/plugins\"|\"$CTRD_DIR/nri-plugins\"|" \
        -e "s|\"/etc/nri/conf.d\"|\"$CTRD_DIR/nri-conf\"|" "$build/packaging/containerd/nri.toml" >"$CTRD_WORK/nri.toml"
    printf '#!/bin/sh\necho $$ >>"%s"\nexec "%s" --socket "%s" --hook "%s" --runtime-socket "%s" 2>>"%s"\n' \
        "$plugin_pids" "$build/plugin/secretshim-nri" "$sock" "$hook" "$CTRD_DIR/nri.sock" \
        "$CTRD_WORK/nri-plugin.log" >"$CTRD_WORK/50-secretshim"
    chmod 755 "$CTRD_WORK/50-secretshim"
    [ "$kind" = nri-off ] || mv "$CTRD_WORK/50-secretshim" "$CTRD_DIR/nri-plugins/"
    CTRD_IMPORT=$CTRD_WORK/nri.toml ctrd_write_config "$pause" ;;
plain17)
    PATH=$8/usr/bin:$PATH; export PATH
    ctrd_write_config "$pause" ;;
esac
if ctrd_start; then
    trap '' INT  # a Ctrl-C: the harness closes our stdin, then we clean up
    echo "ready $CTRD_SOCK"
    read -r _ || true
fi
ctrd_stop
# The plugin and its standby exit when containerd closes their connections;
# any left over, by the pids its launcher wrote and the standby logged (only
# while the command line is still ours).
for p in $(cat "$plugin_pids" 2>/dev/null) \
         $(sed -n 's/^secretshim-nri: standby (pid \([0-9]*\)) connected to .*/\1/p' "$CTRD_WORK/nri-plugin.log" 2>/dev/null); do
    case $({ tr '\0' ' ' <"/proc/$p/cmdline"; } 2>/dev/null) in
        *"/plugin/secretshim-nri --socket $sock "*) kill "$p" 2>/dev/null ;;
    esac
done
'''


def trixie():
    """(the unpacked containerd 1.7 root, None), or (None, why row 7c is
    skipped), or raises when the fetch failed otherwise."""
    r = subprocess.run(["sh", os.path.join(REPO, "scripts", "fetch-trixie.sh"), "containerd"],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    err = r.stderr.decode(errors="replace").strip()
    if r.returncode != 0:
        if "cannot fetch the trixie package lists" in err:
            return None, "the Debian mirror is unreachable, no containerd 1.7: %s" % err[-200:]
        raise RuntimeError("row 7c: scripts/fetch-trixie.sh containerd: %s" % err[-400:])
    return r.stdout.decode().strip(), None


class Ctrd:
    """One private containerd: its supervisor and its CRI driver."""

    def __init__(self, row, kind):
        self.row = row
        self.kind = kind
        self.dir = os.path.join(row.dir, kind)  # short: unix socket paths
        self.sup = None
        self.drv = None
        self.sock = None
        self.pods = []
        self.live = set()

    def start(self, images=None):
        """containerd, the two images (built by images.sh, or imported from
        the archives another instance's images.sh made), the driver."""
        b = self.row.b
        os.makedirs(self.dir, mode=0o700)
        log_path = os.path.join(self.dir, "supervisor.log")
        with open(log_path, "w") as err:
            self.sup = subprocess.Popen(
                ["sh", "-c", SUPERVISOR, "sh", os.path.join(CRI_DIR, "containerd.sh"), self.kind, self.dir, b.build,
                 b.hook, b.agent.sock, PAUSE, self.row.trixie],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err)
        line = self.sup.stdout.readline().decode().split()
        if line[:1] != ["ready"]:
            with open(log_path) as f:
                raise RuntimeError("row 7c: containerd (%s) did not start: %s" % (self.kind, f.read().strip()[-400:]))
        self.sock = line[1]
        ctr = os.path.join(self.row.trixie, "usr", "bin", "ctr") if self.kind != "wrapper" else "ctr"
        if images is None:
            r = subprocess.run(["sh", os.path.join(CRI_DIR, "images.sh"), self.dir, self.sock],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        else:
            for tar in ("pause.tar", "busybox.tar"):
                r = subprocess.run([ctr, "-a", self.sock, "-n", "k8s.io", "images", "import",
                                    os.path.join(images, tar)],
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                if r.returncode != 0:
                    break
        if r.returncode != 0:
            raise RuntimeError("row 7c: images (%s): %s" % (
                self.kind, r.stderr.decode(errors="replace").strip()[-400:]))
        with open(os.path.join(self.dir, "driver.log"), "w") as err:
            self.drv = subprocess.Popen([PY, "-B", DRIVER, "--driver", self.sock,
                                         os.path.join(self.row.dir, "stubs")],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err)
        # CRI answers once NRI's pre-launched plugins have registered.
        deadline = time.monotonic() + 10
        while True:
            try:
                self.version = self.call("version").get("runtime_version", "?")
                break
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.25)

    def call(self, op, **kw):
        return driver_call(self, "row 7c (%s)" % self.kind, op, **kw)

    def pod(self, tag, handler, names):
        """A pod whose container `app` asks for names (none: nothing)."""
        ann = {"io.secretshim.secrets." + NAME: ";".join(names)} if names else {}
        pod = self.call("pod", name=tag, namespace=NAMESPACE, uid="uid-%s-%d" % (tag, os.getpid()),
                        handler=handler, annotations=ann)["pod"]
        self.pods.append(pod)
        return pod

    def stop(self):
        shut_down(self, "row 7c (%s)" % self.kind, self.row.b.failures)


class NriRow:
    def __init__(self, bench, root):
        self.b = bench
        self.q = bench.args.quick
        self.trixie = root
        self.dir = os.path.join(bench.work, "nri")
        self.ctrds = []
        self.digest = None

    def secrets(self):
        """COUNT secrets of SIZE bytes granted to namespace bench (one rule)."""
        names = ["nri%02d" % i for i in range(COUNT)]
        for i, name in enumerate(names):
            value = os.urandom(SIZE)
            r = self.b.agent.ctl("secret", "create", name, "-", "--grant", "kubernetes,namespace=%s" % NAMESPACE,
                                 data=value)
            if r.returncode != 0:
                raise RuntimeError("row 7c: secret %s: %s" % (name, r.stderr.decode(errors="replace").strip()))
            if i == 0:
                self.digest = hashlib.sha256(value).hexdigest()
        return names

    def setup(self):
        t0 = time.monotonic()
        os.makedirs(self.dir, mode=0o700)
        for kind in ("wrapper", "nri", "nri-off", "plain17"):
            c = Ctrd(self, kind)
            self.ctrds.append(c)
            c.start(images=None if kind == "wrapper" else os.path.join(self.ctrds[0].dir, "images"))
        self.c16, self.nri, self.nri_off, self.c17 = self.ctrds
        if not self.nri.version.startswith("1.7") or not self.c16.version.startswith("1.6"):
            raise RuntimeError("row 7c: containerd versions %s and %s, not 1.6 and 1.7" % (
                self.c16.version, self.nri.version))
        ten = self.secrets()
        self.sides = [  # (label, containerd, pod, secrets asked, hooks expected)
            ("nri-10", self.nri, self.nri.pod("nri10", "runc", ten), ten),
            ("nri-0", self.nri, self.nri.pod("nri0", "runc", []), []),
            ("wrap-10", self.c16, self.c16.pod("wrap10", "secretshim-wrapper", ten), ten),
            ("runc16", self.c16, self.c16.pod("runc16", "runc", []), []),
            ("nri-off", self.nri_off, self.nri_off.pod("nrioff", "runc", []), []),
            ("runc17", self.c17, self.c17.pod("runc17", "runc", []), []),
        ]
        log("row 7c: containerd %s (wrapper), %s (NRI, no plugin, no NRI), images, %d secrets, %d pods ready "
            "in %.1f s" % (self.c16.version, self.nri.version, COUNT, len(self.sides), time.monotonic() - t0))

    def once(self, side, check=False):
        """CreateContainer + StartContainer of `app` in the side's pod: its
        wall time and the agent's CPU time meanwhile (its cgroup's counter),
        in seconds. Then, untimed: the check (if asked),
        StopContainer (timeout 0), RemoveContainer, and a wait until the
        agent holds no task."""
        label, c, pod, names = side
        c0 = self.b.agent.cpu_ns()
        reply = c.call("run", pod=pod, name=NAME, annotations={})
        cpu = (self.b.agent.cpu_ns() - c0) / 1e9
        cid = reply["cid"]
        c.live.add(cid)
        try:
            if check:
                self.check(side, cid)
        finally:
            c.call("stop_rm", cid=cid)
            c.live.discard(cid)
            self.idle()
        return reply["create"] + reply["start"], cpu

    def idle(self):
        wait_idle(self.b.agent, "row 7c")

    def check(self, side, cid):
        """Our two hooks in config.json exactly when the container asked;
        its secrets there (one compared by digest) or no /run/secrets."""
        label, c, _, names = side
        with open(os.path.join(c.dir, "containerd", "state", "io.containerd.runtime.v2.task", "k8s.io", cid,
                               "config.json")) as f:
            hooks = json.load(f).get("hooks", {})
        paths = [h["path"] for stage in ("createRuntime", "poststop") for h in hooks.get(stage, [])]
        if paths != ([self.b.hook] * 2 if names else []):
            raise RuntimeError("row 7c: %s: container %s has hooks %s" % (label, cid, paths))
        if names:
            test = " && ".join("test -s /run/secrets/%s" % n for n in names)
            out = c.call("exec", cid=cid, cmd=["sh", "-c", "%s && sha256sum /run/secrets/%s" % (test, names[0])])
            tasks = self.b.agent.tasks() or []
            ok = (out["rc"] == 0 and out["stdout"][:64] == self.digest and len(tasks) == 1 and
                  sorted(tasks[0].get("secrets", [])) == sorted(names))
        else:
            out = c.call("exec", cid=cid, cmd=["sh", "-c", "test ! -e /run/secrets && "
                                               "! grep -q ' /run/secrets ' /proc/self/mountinfo"])
            ok = out["rc"] == 0 and self.b.agent.tasks() == []
        if not ok:
            raise RuntimeError("row 7c: %s: container %s did not receive what it asked for (%d secrets)" % (
                label, cid, len(names)))

    def run(self):
        tab = self.b.table
        runs = 3 if self.q else self.b.args.cri_runs
        warm = 1 if self.q else 3
        tab.section("7c. CreateContainer + StartContainer: %d x %d B via NRI (containerd 1.7) vs via the wrapper "
                    "(1.6) vs none" % (COUNT, SIZE))
        load0 = loadavg()
        try:
            self.setup()
            self.idle()
            for side in self.sides:  # each once, checked (and a warm-up)
                self.once(side, check=True)
            runc = subprocess.run(["runc", "--version"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            tab.text("versions; load at the start", "containerd %s (NRI, no plugin, no NRI) and %s (wrapper), "
                     "runc %s; %s" % (self.nri.version, self.c16.version,
                                      (runc.stdout.decode().split() + ["?"] * 3)[2], load0))
            plugin0 = self.plugin_cpu()
            res = dict(zip([s[0] for s in self.sides],
                           self.b.interleaved_n([lambda s=s: self.once(s) for s in self.sides], runs, warm)))
            plugin = (self.plugin_cpu() - plugin0) / (2 * (runs + warm))
            got = {k: [x[0] for x in v] for k, v in res.items()}
            interval = "  difference of medians, 95% bootstrap interval"
            tab.pair("NRI, %d x %d B vs 1.7 without NRI" % (COUNT, SIZE), got["runc17"], got["nri-10"], per=COUNT)
            tab.text(interval, describe(got["runc17"], got["nri-10"]))
            tab.pair("NRI, nothing asked vs 1.7 without NRI (every pod)", got["runc17"], got["nri-0"])
            tab.text(interval, describe(got["runc17"], got["nri-0"]))
            tab.pair("  NRI on, no plugin vs without NRI (containerd's)", got["runc17"], got["nri-off"])
            tab.text(interval, describe(got["runc17"], got["nri-off"]))
            tab.pair("  NRI, nothing asked vs NRI, no plugin (ours)", got["nri-off"], got["nri-0"])
            tab.text(interval, describe(got["nri-off"], got["nri-0"]))
            tab.pair("NRI, %d x %d B vs NRI, nothing asked" % (COUNT, SIZE), got["nri-0"], got["nri-10"], per=COUNT)
            tab.pair("wrapper (1.6), %d x %d B vs 1.6 handler runc" % (COUNT, SIZE), got["runc16"], got["wrap-10"],
                     per=COUNT)
            tab.text(interval, describe(got["runc16"], got["wrap-10"]))
            tab.pair("NRI (1.7) vs wrapper (1.6), %d x %d B each" % (COUNT, SIZE), got["wrap-10"], got["nri-10"])
            tab.pair("no secretshim: 1.7 vs 1.6, handler runc", got["runc16"], got["runc17"])
            cpu = lambda side: [x[1] for x in res[side]]
            tab.pair("  the agent's CPU per start, %d x %d B: NRI vs wrapper" % (COUNT, SIZE), cpu("wrap-10"),
                     cpu("nri-10"), base_name="wrapper")
            tab.single("  the agent's CPU per start, NRI, nothing asked", cpu("nri-0"))
            tab.text("  secretshim-nri's CPU per container, create to rm", "%.2f ms (mean of the NRI sides; "
                     "it and its standby, /proc stat, 10 ms ticks)" % (plugin * 1000))
            tab.text("  load before / after", "%s / %s" % (load0, loadavg()))
        finally:
            self.stop()

    def plugin_cpu(self):
        """The running secretshim-nri's user + system time, in seconds: the
        last pid its launcher wrote, and its standby (the pid it logged)."""
        with open(os.path.join(self.nri.dir, "nri-plugin.pids")) as f:
            pids = f.read().split()[-1:]
        with open(os.path.join(self.nri.dir, "nri-plugin.log")) as f:
            pids += re.findall(r"^secretshim-nri: standby \(pid (\d+)\) connected to ", f.read(), re.M)[-1:]
        total = 0
        for pid in pids:
            with open("/proc/%s/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        return total / os.sysconf("SC_CLK_TCK")

    def stop(self):
        """Last started first: the first containerd made the cgroup parents
        the others share, and removes them once they are empty."""
        errors = []
        for c in reversed(self.ctrds):
            try:
                c.stop()
            except RuntimeError as e:
                errors.append(str(e))
        if errors:
            raise RuntimeError("; ".join(errors))


def run(bench):
    title = "7c. CRI pod start via NRI vs via the wrapper vs none: skipped"
    lacking = missing()
    if lacking:
        bench.table.section("%s (%s not installed)" % (title, ", ".join(lacking)))
        return
    if not os.access(os.path.join(bench.build, "plugin", "secretshim-nri"), os.X_OK):
        bench.table.section("%s (%s/plugin/secretshim-nri not built)" % (title, bench.build))
        return
    root, why = trixie()
    if why:
        bench.table.section("%s (%s)" % (title, why))
        return
    NriRow(bench, root).run()
