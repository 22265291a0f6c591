"""Row 7: Kubernetes through containerd's CRI.

CreateContainer + StartContainer, timed as kubelet would see them, on a
private containerd 1.6 with the packaged snippet (handler `secretshim`: the
base spec registers our hook for every container of the handler), driven
over CRI's gRPC API by tests/integration/cri/cri.py:

* 7a: a container asking for nothing (the hook's fast path) vs one asking
  for 10 secrets of 64 B granted by one rule, and the plain `runc` handler
  (no hook at all) as a third side: the any-hook floor;
* 7b: the same 10 secrets vs 10 others, each carrying 100 grant rules whose
  matching one is the last (99 rules checked and missed first): the grant
  check should not show.

One pod per handler (host network, namespace "bench") serves every run:
each container has a name of its own (app-N) and, if it asks, its own
container annotation io.secretshim.secrets.app-N. After each timed start the
container is stopped (timeout 0) and removed, untimed, and the next run
waits until the agent holds no task, so a flush never overlaps a timed start.

The containerd is set up, started and stopped by the sh functions of
tests/integration/cri/containerd.sh, run by a supervising `sh` that holds
it as its child: it stops it (ctrd_stop: tasks, containerd by pid, its
shims by pid, runc state, shim sockets, cgroups, mounts) when its stdin
closes, also when the bench dies. The gRPC calls are made by
row7_cri_driver.py, a process under Debian's /usr/bin/python3
(python3-grpcio), which the bench's interpreter may not have; the driver
times each call itself and answers in JSON lines.

Secret values are random bytes handed to secretshimctl on stdin; the
containers' check compares a SHA-256 digest in memory; nothing is printed.
"""
import concurrent.futures
import hashlib
import json
import os
import random
import shutil
import subprocess
import time

from ..table import median
from ..util import loadavg, log
from .row7_cri_driver import CRI_DIR

DRIVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "row7_cri_driver.py")
PY = "/usr/bin/python3"  # Debian's: python3-grpcio and python3-protobuf (cri.py)
PAUSE = "localhost/secretshim-pause:latest"
NAMESPACE = "bench"
SIZE = 64
COUNT = 10
RULES = 100  # per secret in 7b, the matching one last (--quick: 10)

# The supervisor: $1 containerd.sh, $2 WORK, $3 the build, $4 the hook,
# $5 the agent's socket, $6 the pause image. Prints "ready SOCK" once
# containerd answers, then waits for its stdin to close (the harness is done,
# or died) and stops everything it started.
SUPERVISOR = r'''
set -u
. "$1"
ctrd_init "$2" || exit 1
ctrd_base_spec "$3/packaging/containerd/base-spec.json" "$CTRD_WORK/base-spec.json" "$4" "$5" || exit 1
ctrd_snippet "$3/packaging/containerd/secretshim.toml" "$CTRD_WORK/secretshim.toml" "$CTRD_WORK/base-spec.json"
ctrd_write_config "$6" "$CTRD_WORK/secretshim.toml"
if ctrd_start; then
    trap '' INT  # a Ctrl-C: the harness closes our stdin, then we clean up
    echo "ready $CTRD_SOCK"
    read -r _ || true
fi
ctrd_stop
'''


def missing():
    """What row 7 needs and the machine lacks (Debian packages), or []."""
    out = []
    for tool, pkg in (("containerd", "containerd"), ("ctr", "containerd"), ("buildah", "buildah"),
                      ("protoc", "protobuf-compiler"), ("grpc_python_plugin", "protobuf-compiler-grpc"),
                      ("unshare", "util-linux")):
        if shutil.which(tool) is None and pkg not in out:
            out.append(pkg)
    if not os.access(PY, os.X_OK) or subprocess.run(
            [PY, "-c", "import grpc, google.protobuf"], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL).returncode != 0:
        out.append("python3-grpcio and python3-protobuf")
    if not os.access("/bin/busybox", os.X_OK) or subprocess.run(
            ["/bin/busybox", "--list"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode != 0:
        out.append("busybox-static")
    return out


def interval(base, shim, seed=7, rounds=2000):
    """95% bootstrap interval of median(shim) - median(base), in seconds."""
    rng = random.Random(seed)
    d = sorted(median(rng.choices(shim, k=len(shim))) - median(rng.choices(base, k=len(base)))
               for _ in range(rounds))
    return d[int(0.025 * rounds)], d[int(0.975 * rounds)]


def driver_call(owner, label, op, **kw):
    """One request to owner's CRI driver (row7_cri_driver.py) and its reply;
    owner holds drv and dir (where driver.log is)."""
    owner.drv.stdin.write((json.dumps(dict(kw, op=op)) + "\n").encode())
    owner.drv.stdin.flush()
    line = owner.drv.stdout.readline()
    if not line:
        with open(os.path.join(owner.dir, "driver.log"), errors="replace") as f:
            raise RuntimeError("%s: the CRI driver exited: %s" % (label, f.read().strip()[-400:]))
    reply = json.loads(line)
    if "error" in reply:
        raise RuntimeError("%s: %s: %s" % (label, op, reply["error"][-400:]))
    return reply


def wait_idle(agent, label, timeout=30.0):
    """Until the agent holds no task: the flush of the last run is over
    before the next timed start."""
    deadline = time.monotonic() + timeout
    while agent.tasks() != []:
        if time.monotonic() > deadline:
            raise RuntimeError("%s: the agent still holds a task %.0f s after StopContainer" % (label, timeout))
        time.sleep(0.02)


def ended(proc, timeout):
    """Closes proc's stdin (it exits at EOF) and waits for it, killing it
    after timeout seconds; its stdout is closed either way. False if it had
    to be killed."""
    try:
        proc.stdin.close()
    except OSError:
        pass
    try:
        proc.wait(timeout=timeout)
        return True
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return False
    finally:
        proc.stdout.close()


def shut_down(owner, label, failures):
    """Containers, pods, the driver, then containerd (by the supervisor's
    ctrd_stop): by id and pid, also after a failure. owner holds drv, sup,
    live (container ids), pods, dir and call(); a cleanup that failed is
    added to failures."""
    if owner.drv and owner.drv.poll() is None:
        for cid in list(owner.live):
            try:
                owner.call("stop_rm", cid=cid)
                owner.live.discard(cid)
            except (RuntimeError, OSError, ValueError):
                pass
        for pod in owner.pods:
            try:
                owner.call("rm_pod", pod=pod)
            except (RuntimeError, OSError, ValueError):
                pass
    if owner.drv:
        ended(owner.drv, 30)  # the driver exits at EOF
    if owner.sup:
        if not ended(owner.sup, 120):
            raise RuntimeError("%s: containerd's cleanup did not finish (see %s)" % (label, owner.dir))
        if owner.sup.returncode != 0:
            failures.append("%s: containerd's cleanup (ctrd_stop) exited %d" % (label, owner.sup.returncode))


class CriRow:
    def __init__(self, bench):
        self.b = bench
        self.q = bench.args.quick
        self.dir = os.path.join(bench.work, "cri")  # short: unix socket paths
        self.ctrd_dir = os.path.join(self.dir, "containerd")
        self.sup = None
        self.drv = None
        self.pods = []
        self.live = set()
        self.seq = 0
        self.digest = {}  # first secret of a set -> SHA-256 of its value (compared, never printed)

    # --- the driver ----------------------------------------------------------
    def call(self, op, **kw):
        return driver_call(self, "row 7", op, **kw)

    # --- setup ---------------------------------------------------------------
    def setup(self):
        t0 = time.monotonic()
        os.makedirs(self.dir, mode=0o700)
        log_path = os.path.join(self.dir, "supervisor.log")
        with open(log_path, "w") as err:
            self.sup = subprocess.Popen(
                ["sh", "-c", SUPERVISOR, "sh", os.path.join(CRI_DIR, "containerd.sh"), self.dir, self.b.build,
                 self.b.hook, self.b.agent.sock, PAUSE],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err)
        line = self.sup.stdout.readline().decode().split()
        if line[:1] != ["ready"]:
            with open(log_path) as f:
                raise RuntimeError("row 7: containerd did not start: %s" % f.read().strip()[-400:])
        self.sock = line[1]
        r = subprocess.run(["sh", os.path.join(CRI_DIR, "images.sh"), self.dir, self.sock],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if r.returncode != 0:
            raise RuntimeError("row 7: images.sh: %s" % r.stderr.decode(errors="replace").strip()[-400:])
        with open(os.path.join(self.dir, "driver.log"), "w") as err:
            self.drv = subprocess.Popen([PY, "-B", DRIVER, "--driver", self.sock,
                                         os.path.join(self.dir, "stubs")],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err)
        self.version = self.call("version")
        self.one_rule = self.secrets("k", 1)
        self.many_rules = self.secrets("g", 10 if self.q else RULES)
        self.pod = self.run_pod("bench", "secretshim")
        self.pod_runc = self.run_pod("bench-runc", "runc")
        log("row 7: containerd %s, images, %d secrets and 2 pods ready in %.1f s" % (
            self.version.get("runtime_version", "?"), 2 * COUNT, time.monotonic() - t0))

    def secrets(self, tag, rules):
        """COUNT secrets of SIZE bytes that namespace bench may receive: with
        rules > 1, each carries rules - 1 grants to other namespaces first
        (secretshimctl secret grant) and the matching one last."""
        match = "kubernetes,namespace=%s" % NAMESPACE
        names = ["cri%s%d_%02d" % (tag, rules, i) for i in range(COUNT)]
        ctl = self.b.agent.ctl

        def create(name):
            value = os.urandom(SIZE)
            order = ["kubernetes,namespace=other-%d" % i for i in range(rules - 1)] + [match]
            r = ctl("secret", "create", name, "-", "--grant", order[0], data=value)
            for rule in order[1:]:
                if r.returncode == 0:
                    r = ctl("secret", "grant", name, rule)
            if r.returncode != 0:
                raise RuntimeError("row 7: secret %s: %s" % (name, r.stderr.decode(errors="replace").strip()))
            got = json.loads(ctl("secret", "inspect", name).stdout)["grants"]
            if len(got) != rules or got[-1] != match:
                raise RuntimeError("row 7: secret %s has %d grants, the last %r" % (name, len(got), got[-1:]))
            return hashlib.sha256(value).hexdigest()

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            digests = list(pool.map(create, names))
        self.digest[names[0]] = digests[0]
        return names

    def run_pod(self, name, handler):
        pod = self.call("pod", name=name, namespace=NAMESPACE, uid="uid-%s-%d" % (name, os.getpid()),
                        handler=handler)["pod"]
        self.pods.append(pod)
        return pod

    # --- one run -------------------------------------------------------------
    def once(self, pod, names, check=None):
        """CreateContainer + StartContainer of a new `sleep` container in
        pod, asking for names (its own container annotation): its wall time
        and the agent's CPU time meanwhile (the grant check, the decryption,
        the view; its cgroup's counter), in seconds. Then, untimed:
        check(cid), StopContainer (timeout 0), RemoveContainer, and a wait
        until the agent holds no task (its flush done)."""
        self.seq += 1
        name = "app-%d" % self.seq
        ann = {"io.secretshim.secrets." + name: ";".join(names)} if names else {}
        c0 = self.b.agent.cpu_ns()
        reply = self.call("run", pod=pod, name=name, annotations=ann)
        cpu = (self.b.agent.cpu_ns() - c0) / 1e9
        cid = reply["cid"]
        self.live.add(cid)
        try:
            if check:
                check(cid, names)
        finally:
            self.call("stop_rm", cid=cid)
            self.live.discard(cid)
            self.idle()
        return reply["create"] + reply["start"], cpu

    def idle(self):
        wait_idle(self.b.agent, "row 7")

    def check(self, hooked):
        """A check of one run (untimed): the bundle has our hooks (or none,
        runc handler); the container sees exactly what it asked for."""
        def run(cid, names):
            with open(os.path.join(self.ctrd_dir, "state", "io.containerd.runtime.v2.task", "k8s.io", cid,
                                   "config.json")) as f:
                hooks = json.load(f).get("hooks", {})
            paths = [h["path"] for stage in ("createRuntime", "poststop") for h in hooks.get(stage, [])]
            if paths != ([self.b.hook] * 2 if hooked else []):
                raise RuntimeError("row 7: container %s has hooks %s" % (cid, paths))
            if names:
                test = " && ".join("test -s /run/secrets/%s" % n for n in names)
                out = self.call("exec", cid=cid, cmd=["sh", "-c", "%s && sha256sum /run/secrets/%s" % (test, names[0])])
                ok = out["rc"] == 0 and out["stdout"][:64] == self.digest[names[0]]
                tasks = self.b.agent.tasks() or []
                ok = ok and len(tasks) == 1 and sorted(tasks[0].get("secrets", [])) == sorted(names)
            else:
                out = self.call("exec", cid=cid, cmd=["sh", "-c", "test ! -e /run/secrets && "
                                                      "! grep -q ' /run/secrets ' /proc/self/mountinfo"])
                ok = out["rc"] == 0 and self.b.agent.tasks() == []
            if not ok:
                raise RuntimeError("row 7: container %s did not receive what it asked for (%d secrets)" % (
                    cid, len(names)))
        return run

    # --- the row -------------------------------------------------------------
    def run(self):
        tab = self.b.table
        runs = 3 if self.q else self.b.args.cri_runs
        warm = 1 if self.q else 3
        tab.section("7. Kubernetes through containerd's CRI: CreateContainer + StartContainer, one pod per handler")
        load0 = loadavg()
        try:
            self.setup()
            one, many = self.one_rule, self.many_rules
            rules = 10 if self.q else RULES
            self.idle()
            # Each side once, checked (and a warm-up).
            self.once(self.pod_runc, [], self.check(False))
            self.once(self.pod, [], self.check(True))
            self.once(self.pod, one, self.check(True))
            self.once(self.pod, many, self.check(True))

            runc = subprocess.run(["runc", "--version"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            tab.text("versions; load at the start", "containerd %s, runc %s; %s" % (
                self.version.get("runtime_version", "?"), (runc.stdout.decode().split() + ["?"] * 3)[2], load0))
            tab.section("7a. 0 vs %d x %d B secrets (one grant rule each); handler runc (no hook)" % (COUNT, SIZE))
            plain, zero, ten = self.b.interleaved_n([lambda: self.once(self.pod_runc, []),
                                                     lambda: self.once(self.pod, []),
                                                     lambda: self.once(self.pod, one)], runs, warm)
            wall = lambda side: [x[0] for x in side]
            tab.pair("%d x %d B vs 0 secrets (hook fast path)" % (COUNT, SIZE), wall(zero), wall(ten), per=COUNT)
            tab.single("  the agent's CPU per start, %d x %d B" % (COUNT, SIZE), [x[1] for x in ten])
            tab.pair("0 secrets (hook fast path) vs handler runc", wall(plain), wall(zero))
            tab.text("  difference of medians, 95% bootstrap interval", describe(wall(plain), wall(zero)))
            tab.pair("%d x %d B vs handler runc (no hook)" % (COUNT, SIZE), wall(plain), wall(ten), per=COUNT)

            tab.section("7b. the grant check: %d x %d B, %d grant rules each (%d miss, the match last) vs 1 rule"
                        % (COUNT, SIZE, rules, rules - 1))
            a, b = self.b.interleaved(lambda: self.once(self.pod, one), lambda: self.once(self.pod, many),
                                      runs, warm)
            tab.pair("%d secrets: %d grant rules each vs 1" % (COUNT, rules), wall(a), wall(b))
            tab.text("  difference of medians, 95% bootstrap interval", describe(wall(a), wall(b)))
            tab.pair("  the agent's CPU per start", [x[1] for x in a], [x[1] for x in b])
            tab.text("  load before / after", "%s / %s" % (load0, loadavg()))
        finally:
            self.stop()

    def stop(self):
        shut_down(self, "row 7", self.b.failures)


def describe(base, shim):
    """The bootstrap interval of the difference of medians, read."""
    if min(len(base), len(shim)) < 10:
        return "(not computed: %d runs per side)" % len(shim)
    lo, hi = interval(base, shim)
    return "[%+.3f, %+.3f] ms: %s" % (lo * 1000, hi * 1000, "contains 0, within noise" if lo <= 0 <= hi
                                      else "excludes 0")


def run(bench):
    lacking = missing()
    if lacking:
        bench.table.section("7. Kubernetes through containerd's CRI: skipped (%s not installed)" % ", ".join(lacking))
        return
    CriRow(bench).run()
