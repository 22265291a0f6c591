#!/usr/bin/env python3
"""secretshim benchmarks: the cost of secretshim next to the runtime alone
(and, with --docker, next to Docker swarm secrets), each row against a
baseline measured in the same run, runs interleaved so that drift on a
shared machine hits both sides alike. Prints one table.

usage: bench/run.sh [--quick] [--docker] [--build DIR] [--only ROWS] [--held N]

Secret values are random bytes handed to secretshimctl on stdin; they are
never printed. Everything started here (agent, containers, dockerd) is
stopped by its pid or id on exit, also on failure.
"""
import argparse
import concurrent.futures
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

SKIP = 77


def log(msg):
    print("# " + msg, file=sys.stderr, flush=True)


def pct(samples, q):
    s = sorted(samples)
    return s[int(q * (len(s) - 1))]


def median(samples):
    return pct(samples, 0.5)


def ms(seconds):
    return seconds * 1000.0


class Table:
    """Rows of (what, n, baseline samples, secretshim samples, per-unit divisor)."""

    def __init__(self):
        self.rows = []

    def pair(self, name, base, shim, per=None, base_name="runc", unit="ms"):
        self.rows.append(("pair", name, base, shim, per, base_name, unit))

    def single(self, name, samples, unit="ms", note=""):
        self.rows.append(("single", name, samples, note, unit))

    def text(self, name, value):
        self.rows.append(("text", name, value))

    def section(self, title):
        self.rows.append(("section", title))

    def render(self):
        out = []
        head = "%-52s %5s  %-22s  %-22s  %9s  %6s  %10s" % (
            "row", "runs", "baseline med/p90/p99", "secretshim med/p90/p99", "added", "ratio", "per secret")
        out.append(head)
        out.append("-" * len(head))
        for r in self.rows:
            if r[0] == "section":
                out.append("[%s]" % r[1])
            elif r[0] == "text":
                out.append("%-52s %s" % (r[1], r[2]))
            elif r[0] == "single":
                _, name, s, note, unit = r
                f = 1000.0 if unit == "ms" else 1.0
                out.append("%-52s %5d  %-22s  %-22s  %9s  %6s  %10s %s" % (
                    name, len(s), "", "%.3f/%.3f/%.3f" % (median(s) * f, pct(s, .9) * f, pct(s, .99) * f),
                    "", "", "", note))
            else:
                _, name, base, shim, per, base_name, unit = r
                f = 1000.0
                added = (median(shim) - median(base)) * f
                per_s = "%.4f" % (added / per) if per else ""
                out.append("%-52s %5d  %-22s  %-22s  %9.3f  %6.3f  %10s" % (
                    name, len(shim),
                    "%.2f/%.2f/%.2f" % (median(base) * f, pct(base, .9) * f, pct(base, .99) * f),
                    "%.2f/%.2f/%.2f" % (median(shim) * f, pct(shim, .9) * f, pct(shim, .99) * f),
                    added, median(shim) / median(base), per_s))
        out.append("times in ms; added = secretshim median - baseline median; ratio = secretshim / baseline median")
        return "\n".join(out)


def spawn_hook(program, sock, stage, state):
    """Wall and CPU time (wait4), in seconds, of one hook process with
    `state` on its stdin, started as runc does (posix_spawn: a fork()ed
    Python child would charge it with tearing down a copy of the
    interpreter). Also used by bench/hook_cpu.py."""
    r, w = os.pipe()
    t0 = time.perf_counter()
    pid = os.posix_spawn(program, [program, "--socket", sock, stage], {},
                         file_actions=[(os.POSIX_SPAWN_DUP2, r, 0), (os.POSIX_SPAWN_CLOSE, w)])
    os.close(r)
    try:
        os.write(w, json.dumps(state).encode())
    except BrokenPipeError:  # bench/noop does not read its state; runc allows that
        pass
    os.close(w)
    _, status, ru = os.wait4(pid, 0)
    wall = time.perf_counter() - t0
    if status != 0:
        raise RuntimeError("%s %s failed (status %d)" % (program, stage, status))
    return wall, ru.ru_utime + ru.ru_stime


class Agent:
    """secretshimd on a private socket and state dir; its stderr is read by a
    thread that stamps each line with the monotonic clock."""

    def __init__(self, build, work, wrapper=(), binary=None, extra=(), env=None):
        os.makedirs(work, exist_ok=True)
        self.sock = os.path.join(work, "agent.sock")
        self.ctlbin = os.path.join(build, "plugin", "secretshimctl")
        self.logf = open(os.path.join(work, "agent.log"), "a")
        self.lines = []
        self.cond = threading.Condition()
        # Task records on a tmpfs, as /run/secretshim is on a node (here /run
        # may be a disk); an older agent given to --compare-agent gets it too
        # if it has --runtime-dir, so that both save their records alike.
        self.runtime = None
        takes_runtime = binary is None or "--runtime-dir" in subprocess.run(
            [binary, "--help"], capture_output=True, text=True).stdout
        if takes_runtime and os.path.isdir("/dev/shm"):
            self.runtime = tempfile.mkdtemp(prefix="secretshim-bench-run-", dir="/dev/shm")
        self.proc = subprocess.Popen(
            [*wrapper, binary or os.path.join(build, "plugin", "secretshimd"), "--socket", self.sock,
             "--state-dir", os.path.join(work, "state"),
             *(["--runtime-dir", self.runtime] if self.runtime else []), *extra],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        self.cgroup = self._cpu_cgroup()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        for _ in range(600):
            if os.path.exists(self.sock):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError("the agent did not start (see %s)" % self.logf.name)

    def _read(self):
        for raw in self.proc.stderr:
            now = time.monotonic()
            line = raw.decode(errors="replace").rstrip("\n")
            self.logf.write(line + "\n")
            self.logf.flush()
            with self.cond:
                self.lines.append((now, line))
                self.cond.notify_all()

    def mark(self):
        with self.cond:
            return len(self.lines)

    def wait_line(self, needle, start, timeout=30.0, also=""):
        """The (time, line) of the first line from index `start` containing
        needle (and `also`), or None after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self.cond:
            i = start
            while True:
                while i < len(self.lines):
                    if needle in self.lines[i][1] and also in self.lines[i][1]:
                        return self.lines[i]
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)

    def count(self, needle, start=0):
        with self.cond:
            return sum(1 for _, l in self.lines[start:] if needle in l)

    def ctl(self, *args, data=None):
        return subprocess.run([self.ctlbin, "--socket", self.sock, *args], input=data,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)

    def tasks(self):
        r = self.ctl("task", "ls", "--format", "json")
        return json.loads(r.stdout) if r.returncode == 0 else None

    def task_count(self):
        """Tasks held, from `status` (`task ls` of hundreds of tasks does not
        fit in one 64 KiB message: see docs/benchmarks.md)."""
        r = self.ctl("status")  # prints the agent's JSON reply
        m = re.search(rb'"?tasks"?\s*[:=]?\s*(\d+)', r.stdout)
        return int(m.group(1)) if m else None

    def wait_flushed(self, cid, start, timeout=30.0):
        """The (time, line) of the agent's flush line for container `cid`
        from index `start` (after its exit or its poststop), or None."""
        return self.wait_line('container "%s": ' % cid, start, timeout, also="secrets flushed")

    def wait_no_tasks(self, timeout=30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.task_count() == 0:
                return True
            time.sleep(0.1)
        return False

    def status(self, field):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        return 0

    def cpu_seconds(self):
        with open("/proc/%d/stat" % self.proc.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def _cpu_cgroup(self):
        """A cgroup of its own for the agent, whose CPU counter includes
        threads that have exited (a view filled on two threads) and the
        agent's helper processes: (path, file, ns per unit), or None."""
        for root, counter, scale in (("/sys/fs/cgroup/cpuacct", "cpuacct.usage", 1),
                                     ("/sys/fs/cgroup/unified", "cpu.stat", 1000),
                                     ("/sys/fs/cgroup", "cpu.stat", 1000)):
            if not os.path.exists(os.path.join(root, "cgroup.procs")):
                continue
            path = os.path.join(root, "secretshim-bench-%d" % self.proc.pid)
            try:
                os.mkdir(path)
                with open(os.path.join(path, "cgroup.procs"), "w") as f:
                    f.write(str(self.proc.pid))
                if os.path.exists(os.path.join(path, counter)):
                    return path, counter, scale
            except OSError:
                pass
            try:
                os.rmdir(path)
            except OSError:
                pass
        return None

    def cpu_ns(self):
        """CPU time of the agent, in ns: its cgroup's counter, or where no
        cgroup could be made the schedstat of its live threads."""
        if self.cgroup:
            path, counter, scale = self.cgroup
            with open(os.path.join(path, counter)) as f:
                text = f.read()
            if counter == "cpu.stat":
                text = text.split("usage_usec", 1)[1]
            return int(text.split()[0]) * scale
        total = 0
        for tid in os.listdir("/proc/%d/task" % self.proc.pid):
            try:
                with open("/proc/%d/task/%s/schedstat" % (self.proc.pid, tid)) as f:
                    total += int(f.read().split()[0])
            except OSError:
                pass
        return total

    def fds(self):
        return len(os.listdir("/proc/%d/fd" % self.proc.pid))

    def stop(self):
        if self.proc.poll() is None:
            pid = self.proc.pid
            try:  # under a tracer (--agent-wrapper strace ...): the agent is its child
                with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
                    pid = int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                pass
            os.kill(pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.reader.join(timeout=5)
        self.logf.close()
        if self.cgroup:  # empty once the agent and its helpers are gone
            for _ in range(50):
                try:
                    os.rmdir(self.cgroup[0])
                    break
                except OSError:
                    time.sleep(0.1)
        if self.runtime:
            shutil.rmtree(self.runtime, ignore_errors=True)


class Bench:
    def __init__(self, args):
        self.args = args
        self.build = os.path.abspath(args.build)
        self.hook = os.path.join(self.build, "plugin", "secretshim-hook")
        self.noop = os.path.join(self.build, "bench", "noop")  # the floors: a static no-op program
        self.wrapper = os.path.join(self.build, "plugin", "secretshim-runtime")
        self.work = tempfile.mkdtemp(prefix="secretshim-bench-")
        self.runc_root = os.path.join(self.work, "runc")
        self.rootfs = os.path.join(self.work, "rootfs")
        self.live = set()  # container ids that may need a delete
        self.seq = 0
        self.agent = None
        self.other = None  # --compare-agent: an older secretshimd, row 2b only
        self.table = Table()
        self.secrets = {}  # (count, size) -> names created so far
        self.failures = []
        self.cpu = {}  # tag -> CPU seconds of each timed run (runc + hook + container + agent)
        self._make_rootfs()

    # --- setup -----------------------------------------------------------
    def _make_rootfs(self):
        for d in ("bin", "etc", "dev", "proc", "run", "tmp"):
            os.makedirs(os.path.join(self.rootfs, d), exist_ok=True)
        shutil.copy("/bin/busybox", os.path.join(self.rootfs, "bin", "busybox"))
        for tool in ("sh", "sleep", "true", "test", "cat"):
            os.symlink("busybox", os.path.join(self.rootfs, "bin", tool))

    def new_id(self, tag):
        self.seq += 1
        return "ssb-%d-%s-%d" % (os.getpid(), tag, self.seq)

    def bundle(self, name, annotation, args, hooks=True, task=None, sock=None, noop_hooks=False):
        """A bundle (config.json only; the rootfs is shared) like
        scripts/make_bundle.py lays out, with or without our hooks;
        noop_hooks registers bench/noop at the same stages instead (the
        floor of any OCI hook)."""
        path = os.path.join(self.work, "bundles", name)
        os.makedirs(path, exist_ok=True)
        if noop_hooks:
            entry = lambda stage: {"path": self.noop, "args": ["noop", stage], "timeout": 10}
        else:
            entry = lambda stage: {"path": self.hook,
                                   "args": ["secretshim-hook", "--socket", sock or self.agent.sock, stage],
                                   "timeout": 10}
        spec = {
            "ociVersion": "1.0.2",
            "root": {"path": self.rootfs},
            "process": {"terminal": False, "user": {"uid": 0, "gid": 0}, "cwd": "/", "args": args,
                        "env": ["PATH=/bin"], "noNewPrivileges": True},
            "hostname": "bench",
            # /dev of its own: runc makes device nodes and the ptmx symlink
            # in it, which concurrent containers on one shared rootfs race on.
            "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
                       {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
                        "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
                       {"destination": "/run", "type": "tmpfs", "source": "tmpfs",
                        "options": ["nosuid", "nodev", "mode=755"]}],
            "linux": {"namespaces": [{"type": t} for t in ("pid", "ipc", "uts", "mount")]},
            "annotations": {},
        }
        if hooks:
            spec["hooks"] = {"createRuntime": [entry("createRuntime")], "poststop": [entry("poststop")]}
        if annotation:
            spec["annotations"]["io.secretshim.secrets"] = annotation
        if task:  # cluster mode (row 6): the container's task assignment
            spec["annotations"]["io.secretshim.task"] = task
        with open(os.path.join(path, "config.json"), "w") as f:
            json.dump(spec, f)
        return path

    def ensure_secrets(self, count, size):
        """Names of `count` secrets of `size` bytes, created on first use."""
        prefix = "s%d_" % size
        have = self.secrets.setdefault(size, [])
        missing = ["%s%04d" % (prefix, i) for i in range(len(have), count)]

        def create(name):
            value = os.urandom(size)
            for agent in filter(None, (self.agent, self.other)):
                r = agent.ctl("secret", "create", name, "-", "--grant", "root", data=value)
                if r.returncode != 0:
                    raise RuntimeError("creating secret %s: %s" % (name, r.stderr.decode().strip()))
            return name

        if missing:
            t0 = time.monotonic()
            with concurrent.futures.ThreadPoolExecutor(4) as pool:
                have.extend(pool.map(create, missing))
            log("created %d secrets of %d B in %.1f s" % (len(missing), size, time.monotonic() - t0))
        return have[:count]

    # --- runc ------------------------------------------------------------
    def runc(self, *args, check=True, **kw):
        r = subprocess.run(["runc", "--root", self.runc_root, *args], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)
        if check and r.returncode != 0:
            raise RuntimeError("runc %s: %s" % (" ".join(args[:2]), r.stderr.decode(errors="replace").strip()))
        return r

    def timed_run(self, bundle, tag, wrapper=False, task=False):
        """Wall time of `runc run` (create, hooks, start, the process, delete);
        with wrapper, of `secretshim-runtime run`, which execs runc. With
        task (a container with secrets), the agent's flush is waited for
        after the wall time is taken and before its CPU is read: the poststop
        hook does not wait for it, so it may still be running when runc
        returns, and it belongs to this run's CPU (not to the next run's
        time)."""
        cid = self.new_id(tag)
        self.live.add(cid)
        mark = self.agent.mark()
        # CPU time as well as wall time: on a loaded machine the wall time
        # mostly measures the others; CPU time is what this start cost.
        # runc reaps its children (runc init, the hooks, the container), so
        # RUSAGE_CHILDREN covers them all; the agent's comes from schedstat.
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        a0 = self.agent.cpu_ns()
        t0 = time.perf_counter()
        r = subprocess.run([self.wrapper if wrapper else "runc", "--root", self.runc_root, "run", "--bundle", bundle,
                            cid], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           env=self.wrapper_env if wrapper else None)
        t = time.perf_counter() - t0
        if task and r.returncode == 0 and self.agent.wait_flushed(cid, mark) is None:
            raise RuntimeError("no flush logged for %s" % cid)
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime) + (self.agent.cpu_ns() - a0) / 1e9
        self.cpu.setdefault(tag, []).append(cpu)
        if r.returncode != 0:
            raise RuntimeError("runc run %s failed: %s" % (cid, r.stderr.decode(errors="replace").strip()[-300:]))
        self.live.discard(cid)
        return t

    def interleaved(self, a, b, runs, warmup):
        """Runs a() and b() alternately (AB, BA, AB, ...); the first `warmup`
        pairs are discarded."""
        return self.interleaved_n([a, b], runs, warmup)

    def interleaved_n(self, fns, runs, warmup):
        """Runs the functions in turn, the first of each round rotating
        (A B C, B C A, C A B, ...); the first `warmup` rounds are
        discarded. One list of samples per function."""
        out = [[] for _ in fns]
        for i in range(warmup + runs):
            for k in range(len(fns)):
                j = (i + k) % len(fns)
                x = fns[j]()
                if i >= warmup:
                    out[j].append(x)
        return out

    @property
    def wrapper_env(self):
        """secretshim-runtime's settings (containerd passes them to the shim)."""
        return dict(os.environ, SECRETSHIM_RUNTIME="runc", SECRETSHIM_HOOK=self.hook,
                    SECRETSHIM_SOCKET=self.agent.sock)

    def start_detached(self, bundle, tag):
        cid = self.new_id(tag)
        self.live.add(cid)
        # The container inherits runc's stdio: never a pipe we wait on.
        with tempfile.TemporaryFile() as err:
            t0 = time.perf_counter()
            r = subprocess.run(["runc", "--root", self.runc_root, "run", "-d", "--bundle", bundle, cid],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
            t = time.perf_counter() - t0
            if r.returncode != 0:
                err.seek(0)
                raise RuntimeError("runc run -d %s failed: %s" % (cid, err.read().decode(errors="replace").strip()[-300:]))
        pid = json.loads(self.runc("state", cid).stdout)["pid"]
        return cid, pid, t

    def start_profile(self, name):
        """--profile DIR: perf samples (cpu-clock, call graphs) of the agent
        during the measured runs of one row, in DIR/name."""
        if not self.args.profile:
            return None
        os.makedirs(self.args.profile, exist_ok=True)
        p = subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-F", "10000", "-g", "-p",
                              str(self.agent.proc.pid), "-o", os.path.join(self.args.profile, name)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        return p

    def stop_profile(self, p):
        if p:
            p.send_signal(signal.SIGINT)
            p.wait()

    def delete(self, cid):
        self.runc("delete", "-f", cid, check=False)
        self.live.discard(cid)

    def cleanup(self):
        ids = list(self.live)
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            list(pool.map(self.delete, ids))
        for agent in filter(None, (self.agent, self.other)):
            agent.stop()
        if not self.args.keep:
            shutil.rmtree(self.work, ignore_errors=True)

    # --- rows --------------------------------------------------------------
    def hook_fastpath(self):
        q = self.args.quick
        self.table.section("1. hook fast path: a container without secrets")
        state = os.path.join(self.work, "state.json")
        with open(state, "w") as f:
            json.dump({"ociVersion": "1.0.2-dev", "id": "bench", "status": "creating", "pid": 1,
                       "bundle": "/nonexistent", "annotations": {"org.opencontainers.image.ref.name": "busybox"}}, f)
        runs = 20 if q else self.args.spawn_runs
        bare = self.bundle("fast-bare", "", ["/bin/true"], hooks=False)
        # Four programs in turn (rotating): the hook, /bin/true (dynamic,
        # what any small tool costs), bench/noop (static, like the hook: the
        # floor of any process start) and secretshim-runtime for the bundle
        # without annotation, made to exec /bin/true instead of runc (its
        # own share: read config.json, find no annotation, exec); each line
        # the round's wall and CPU times in us.
        env = dict(self.wrapper_env, SECRETSHIM_RUNTIME="/bin/true")
        out = subprocess.run([os.path.join(self.build, "bench", "spawn_timer"), str(runs), state, "--raw", "--",
                              self.hook, "createRuntime", "--", "/bin/true", "--", self.noop, "--",
                              self.wrapper, "--root", self.runc_root, "run", "--bundle", bare, "bench"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True, env=env).stdout.decode()
        cols = list(zip(*[[float(x) / 1e6 for x in line.split()] for line in out.splitlines()]))
        hook, hook_cpu, true, true_cpu, noop, noop_cpu, wrap, wrap_cpu = cols
        self.table.pair("hook process vs /bin/true (spawn+wait)", true, hook)
        self.table.pair("hook process vs no-op static program: wall", noop, hook)
        self.table.pair("hook process vs no-op static program: CPU", noop_cpu, hook_cpu)
        self.table.pair("secretshim-runtime -> /bin/true vs /bin/true: wall", true, wrap)
        self.table.pair("secretshim-runtime -> /bin/true vs /bin/true: CPU", true_cpu, wrap_cpu)
        runs = 3 if q else self.args.runs
        floor = self.bundle("fast-noop", "", ["/bin/true"], noop_hooks=True)
        hooked = self.bundle("fast-hook", "", ["/bin/true"], hooks=True)
        warm = 1 if q else 3
        self.cpu = {}
        # Four sides in turn: bare runc, runc with a no-op hook at the same
        # two stages (what any OCI hook costs), with our hooks, and runc
        # through secretshim-runtime (containerd's wrapper) with no hooks.
        b, f, h, w = self.interleaved_n([lambda: self.timed_run(bare, "fb"), lambda: self.timed_run(floor, "fn"),
                                         lambda: self.timed_run(hooked, "fh"),
                                         lambda: self.timed_run(bare, "fw", wrapper=True)], runs, warm)
        cpu = {k: v[warm:] for k, v in self.cpu.items()}
        self.table.pair("runc run, hook installed, no annotation: wall", b, h)
        self.table.pair("runc run, hook installed, no annotation: CPU", cpu["fb"], cpu["fh"])
        self.table.pair("runc run, no-op hook (any-hook floor) vs bare: wall", b, f)
        self.table.pair("runc run, no-op hook (any-hook floor) vs bare: CPU", cpu["fb"], cpu["fn"])
        self.table.pair("  hook installed, added over the floor: wall", f, h, base_name="no-op hook")
        self.table.pair("  hook installed, added over the floor: CPU", cpu["fn"], cpu["fh"], base_name="no-op hook")
        self.table.pair("secretshim-runtime -> runc, no annotation: wall", b, w)
        self.table.pair("secretshim-runtime -> runc, no annotation: CPU", cpu["fb"], cpu["fw"])

    def start_with_secrets(self):
        q = self.args.quick
        self.table.section("2. runc run with N secrets vs bare runc run (same container)")
        counts = [1] if q else [int(c) for c in self.args.counts.split(",")]
        sizes = [64] if q else [int(c) for c in self.args.sizes.split(",")]
        for size in sizes:
            for n in counts:
                names = self.ensure_secrets(n, size)
                ann = ";".join(names)
                bare = self.bundle("bare", "", ["/bin/true"], hooks=False)
                shim = self.bundle("s%d-%d" % (n, size), ann, ["/bin/true"], hooks=True)
                # The same config.json (annotation included) with a no-op
                # hook at both stages: the floor of any OCI hook.
                floor = self.bundle("n%d-%d" % (n, size), ann, ["/bin/true"], noop_hooks=True)
                # One checked run first: the container really sees its secrets.
                check = self.bundle("c%d-%d" % (n, size), ann,
                                    ["sh", "-c", "test -s /run/secrets/%s && test -s /run/secrets/%s"
                                     % (names[0], names[-1])])
                self.timed_run(check, "chk")
                runs = 3 if q else (self.args.runs // 2 if n >= 1000 else self.args.runs)
                prof = self.start_profile("perf-%d-%d.data" % (n, size))
                self.cpu = {}
                warm = 1 if q else 2
                b, f, s = self.interleaved_n([lambda: self.timed_run(bare, "b"), lambda: self.timed_run(floor, "n"),
                                              lambda: self.timed_run(shim, "s", task=True)], runs, warm)
                self.stop_profile(prof)
                cpu = {k: v[warm:] for k, v in self.cpu.items()}
                label = "%4d x %-6s" % (n, human(size))
                self.table.pair("%s wall" % label, b, s, per=n)
                self.table.pair("%s CPU (runc+hook+agent)" % label, cpu["b"], cpu["s"], per=n)
                self.table.pair("%s wall, added over the any-hook floor" % label, f, s, per=n,
                                base_name="no-op hook")
                self.table.pair("%s CPU, added over the any-hook floor" % label, cpu["n"], cpu["s"], per=n,
                                base_name="no-op hook")

    def agent_direct(self):
        """The agent's share alone, without runc or the hook: a client speaks
        the hook's protocol (plugin/protocol/messages.hpp) for a sleeping
        child process, so the numbers carry no container-start noise."""
        import socket
        q = self.args.quick
        self.table.section("2b. the agent alone: hook protocol for N secrets (create -> reply, attached -> ack, release -> ack)")
        counts = [1] if q else [int(c) for c in self.args.counts.split(",")]
        sizes = [64] if q else [int(c) for c in self.args.sizes.split(",")]
        child = subprocess.Popen(["sleep", "100000"])
        pidfd = os.pidfd_open(child.pid)

        def request(sock, body, fds=()):
            data = json.dumps(body).encode()
            if fds:
                socket.send_fds(sock, [data], list(fds))
            else:
                sock.send(data)
            msg, got, _, _ = socket.recv_fds(sock, 65536, 253)
            for fd in got:
                os.close(fd)
            reply = json.loads(msg)
            if not reply.get("ok"):
                raise RuntimeError("agent refused: %s" % reply.get("error"))

        def once(ann, agent=None):
            agent = agent or self.agent
            cid = self.new_id("direct")
            c0 = agent.cpu_ns()
            with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as sock:
                sock.connect(agent.sock)
                t0 = time.perf_counter()
                request(sock, {"op": "create", "id": cid, "secrets": ann, "identity": {"integration": "bundle"}}, [pidfd])
                t1 = time.perf_counter()
                request(sock, {"op": "attached", "ok": True})
                t2 = time.perf_counter()
            with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as sock:
                sock.connect(agent.sock)
                t3 = time.perf_counter()
                request(sock, {"op": "release", "id": cid})
                t4 = time.perf_counter()
            return t1 - t0, t2 - t1, t4 - t3, (agent.cpu_ns() - c0) / 1e9

        try:
            for size in sizes:
                for n in counts:
                    ann = ";".join(self.ensure_secrets(n, size))
                    runs = 3 if q else (self.args.runs // 2 if n >= 1000 else self.args.runs)
                    label = "%4d x %-6s" % (n, human(size))
                    if self.other:  # before/after of an optimisation, interleaved
                        old, new = self.interleaved(lambda: once(ann, self.other), lambda: once(ann),
                                                    runs, 3)
                        for k, what in enumerate(("create", "attached", "release")):
                            self.table.pair("%s %s: old agent vs new" % (label, what),
                                            [x[k] for x in old], [x[k] for x in new], base_name="old agent")
                        self.table.pair("%s total: old agent vs new" % label, [sum(x[:3]) for x in old],
                                        [sum(x[:3]) for x in new], base_name="old agent")
                        self.table.pair("%s agent CPU: old vs new" % label, [x[3] for x in old],
                                        [x[3] for x in new], base_name="old agent", per=n)
                        continue
                    samples = [once(ann) for _ in range(runs + (0 if q else 3))][0 if q else 3:]
                    total = [a + b + c for a, b, c, _ in samples]
                    self.table.single("%s create+attached+release" % label, total,
                                      note="= %.3f ms per secret" % (ms(median(total)) / n))
                    pad = " " * len(label)
                    self.table.single("%s   create (decrypt, build the view)" % pad, [x[0] for x in samples])
                    self.table.single("%s   attached (task record saved)" % pad, [x[1] for x in samples])
                    self.table.single("%s   release (flush)" % pad, [x[2] for x in samples])
                    self.table.single("%s   agent CPU time, all three" % pad, [x[3] for x in samples])
        finally:
            os.close(pidfd)
            child.kill()
            child.wait()

    def hooks_alone(self):
        """Our two hook processes with N secrets against bench/noop at the
        same two stages, without runc: the part of row 2 that is ours, with
        far less noise than whole container starts. The container is a
        stand-in: `sleep` in a mount namespace of its own (a new one each
        round), whose rootfs is a temp dir (the hook attaches there; the
        mounts go with the namespace).
        After each of our rounds the agent's flush is waited for (untimed)
        and its CPU counted with the hooks'."""
        q = self.args.quick
        self.table.section("2c. the hooks alone: createRuntime + poststop with N secrets vs the no-op hook")
        counts = [1] if q else [int(c) for c in self.args.counts.split(",") if int(c) <= 100]
        sizes = [64] if q else [int(c) for c in self.args.sizes.split(",")]
        rootfs = os.path.join(self.work, "stand-in-rootfs")
        os.makedirs(os.path.join(rootfs, "run"), exist_ok=True)
        bundle = os.path.join(self.work, "stand-in")
        os.makedirs(bundle, exist_ok=True)
        with open(os.path.join(bundle, "config.json"), "w") as f:
            json.dump({"ociVersion": "1.0.2", "root": {"path": rootfs},
                       "process": {"args": ["true"], "cwd": "/", "capabilities": {"bounding": ["CAP_KILL"]}}}, f)
        def stand_in():
            """A fresh stand-in init, its mount namespace made: no mounts
            of earlier rounds pile up where the hook attaches."""
            init = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c",
                                     "echo ready; exec sleep 100000"], stdout=subprocess.PIPE)
            init.stdout.readline()
            return init

        def round_trip(program, ann):
            init = stand_in()
            try:
                cid = self.new_id("hooks")
                mark = self.agent.mark()
                c0 = self.agent.cpu_ns()
                state = {"ociVersion": "1.0.2", "id": cid, "status": "creating", "pid": init.pid,
                         "bundle": bundle, "annotations": {"io.secretshim.secrets": ann}}
                cw, cc = spawn_hook(program, self.agent.sock, "createRuntime", state)
                state = dict(state, status="stopped")
                del state["pid"]
                pw, pc = spawn_hook(program, self.agent.sock, "poststop", state)
                if program == self.hook and self.agent.wait_flushed(cid, mark) is None:
                    raise RuntimeError("no flush logged for %s" % cid)
                return cw, pw, cc + pc + (self.agent.cpu_ns() - c0) / 1e9
            finally:
                init.kill()
                init.wait()
                init.stdout.close()

        for size in sizes:
            for n in counts:
                ann = ";".join(self.ensure_secrets(n, size))
                runs = 3 if q else max(self.args.runs, 300)
                noop, ours = self.interleaved(lambda: round_trip(self.noop, ann),
                                              lambda: round_trip(self.hook, ann), runs, 1 if q else 5)
                label = "%4d x %-6s" % (n, human(size))
                self.table.pair("%s both hooks: wall" % label, [a + b for a, b, _ in noop],
                                [a + b for a, b, _ in ours], base_name="no-op hook", per=n)
                self.table.pair("%s   createRuntime: wall" % label, [x[0] for x in noop], [x[0] for x in ours],
                                base_name="no-op hook")
                self.table.pair("%s   poststop: wall" % label, [x[1] for x in noop], [x[1] for x in ours],
                                base_name="no-op hook")
                self.table.pair("%s both hooks: CPU (+ agent)" % label, [x[2] for x in noop],
                                [x[2] for x in ours], base_name="no-op hook", per=n)

    def flush(self):
        q = self.args.quick
        self.table.section("3. flush: SIGKILL of the init -> agent logged the view flushed")
        cases = [(1, 64)] if q else [(10, 64), (100, 65536)]
        for n, size in cases:
            names = self.ensure_secrets(n, size)
            b = self.bundle("flush-%d-%d" % (n, size), ";".join(names), ["sleep", "100000"])
            lat, own = [], []
            runs = 3 if q else self.args.runs
            for i in range(runs + (0 if q else 2)):
                cid, pid, _ = self.start_detached(b, "fl")
                mark = self.agent.mark()
                time.sleep(0.02)
                t0 = time.monotonic()
                os.kill(pid, signal.SIGKILL)
                hit = self.agent.wait_line('container "%s": exited, secrets flushed' % cid, mark, 30)
                if hit is None:
                    raise RuntimeError("no flush logged for %s" % cid)
                m = re.search(r"flushed in (\d+) us", hit[1])
                if i >= (0 if q else 2):
                    lat.append(hit[0] - t0)
                    own.append(int(m.group(1)) / 1e6 if m else 0.0)
                self.delete(cid)
            label = "%d x %s" % (n, human(size))
            self.table.single("exit -> flushed, %s" % label, lat)
            self.table.single("  of which the flush itself (agent log)", own)

    def scale(self):
        q = self.args.quick
        conc = 3 if q else self.args.concurrent
        self.table.section("4a. %d concurrent runc run, 10 x 64 B secrets each" % conc)
        pool = self.ensure_secrets(10 if q else max(10, min(1000, conc * 10)), 64)
        bundles_b, bundles_s = [], []
        for i in range(conc):
            names = [pool[(10 * i + k) % len(pool)] for k in range(10)]
            test = " && ".join("test -s /run/secrets/%s" % n for n in names)
            bundles_s.append(self.bundle("cc-s-%d" % i, ";".join(names), ["sh", "-c", test]))
            bundles_b.append(self.bundle("cc-b-%d" % i, "", ["sh", "-c", "true"], hooks=False))

        def burst(bundles, tag):
            procs = []
            t0 = time.perf_counter()
            for b in bundles:
                cid = self.new_id(tag)
                self.live.add(cid)
                procs.append((cid, time.perf_counter(), subprocess.Popen(
                    ["runc", "--root", self.runc_root, "run", "--bundle", b, cid], stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)))
            lat, failed = [], []
            for cid, start, p in procs:
                err = p.communicate()[1]
                lat.append(time.perf_counter() - start)
                if p.returncode != 0:
                    failed.append("%s: %s" % (cid, err.decode(errors="replace").strip()[-200:]))
                else:
                    self.live.discard(cid)
            return time.perf_counter() - t0, lat, failed

        mark = self.agent.mark()
        wall_b, lat_b, fail_b = burst(bundles_b, "cb")
        wall_s, lat_s, fail_s = burst(bundles_s, "cs")
        flushed = self.agent.wait_no_tasks(60)
        n_flushed = self.agent.count("secrets flushed", mark)
        self.table.pair("per container (launch -> exit)", lat_b, lat_s)
        self.table.text("whole burst, bare / secretshim", "%.2f s / %.2f s" % (wall_b, wall_s))
        self.table.text("failures, bare / secretshim", "%d / %d" % (len(fail_b), len(fail_s)))
        self.table.text("all flushed after (task ls empty)", "%s (%d flush lines)" % (
            "yes" if flushed else "NO", n_flushed))
        for f in (fail_b + fail_s)[:5]:
            log("failed: " + f)
        if fail_s or fail_b or not flushed:
            self.failures.append("concurrent starts: %d/%d failed, flushed=%s" % (len(fail_b), len(fail_s), flushed))

        held = 3 if q else self.args.held
        self.table.section("4b. %d running containers held by one agent, 10 x 64 B secrets each" % held)
        time.sleep(1)
        rss0, fds0, shmem0 = self.agent.status("VmRSS"), self.agent.fds(), meminfo("Shmem")
        c0, w0 = self.agent.cpu_seconds(), time.monotonic()
        time.sleep(2 if q else 10)
        idle0 = (self.agent.cpu_seconds() - c0) / (time.monotonic() - w0)
        bundles = []
        for i in range(held):
            names = [pool[(10 * i + k) % len(pool)] for k in range(10)]
            bundles.append(self.bundle("held-%d" % i, ";".join(names), ["sleep", "100000"]))
        started, errors = [], []

        def start(b):
            try:
                return self.start_detached(b, "hd")
            except RuntimeError as e:
                errors.append(str(e))
                return None

        t0 = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(4) as ex:
            started = [r for r in ex.map(start, bundles) if r]
        t_start = time.monotonic() - t0
        held_now = self.agent.task_count()
        listed = self.agent.ctl("task", "ls", "--format", "json")
        if listed.returncode != 0:
            self.table.text("secretshimctl task ls with N held", "FAILS: " + listed.stderr.decode(errors="replace").strip()[-120:])
        time.sleep(1)
        rss1, fds1, shmem1 = self.agent.status("VmRSS"), self.agent.fds(), meminfo("Shmem")
        c1, w1 = self.agent.cpu_seconds(), time.monotonic()
        time.sleep(2 if q else 10)
        idle1 = (self.agent.cpu_seconds() - c1) / (time.monotonic() - w1)
        n = max(1, len(started))
        self.table.text("started / held by the agent", "%d / %d (in %.1f s, %d errors)" % (
            len(started), held_now or 0, t_start, len(errors)))
        self.table.text("agent RSS idle, 0 -> N held", "%d KiB -> %d KiB (%.1f KiB per view)" % (
            rss0, rss1, (rss1 - rss0) / n))
        self.table.text("agent CPU while idle, 0 -> N held", "%.3f%% -> %.3f%% of one core" % (
            idle0 * 100, idle1 * 100))
        self.table.text("agent fds, 0 -> N held", "%d -> %d (%.1f per view)" % (fds0, fds1, (fds1 - fds0) / n))
        self.table.text("tmpfs pages (Shmem, machine-wide)", "+%d KiB (%.1f KiB per view; shared machine)" % (
            shmem1 - shmem0, (shmem1 - shmem0) / n))
        for e in errors[:5]:
            log("failed: " + e)
        if errors or held_now != len(started):
            self.failures.append("held containers: %d errors, %d started, %s held" % (
                len(errors), len(started), held_now))
        mark = self.agent.mark()
        t0 = time.monotonic()
        for cid, pid, _ in started:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        flushed = self.agent.wait_no_tasks(120)
        with self.agent.cond:  # the last flush line's own time stamp
            stamps = [t for t, l in self.agent.lines[mark:] if "secrets flushed" in l]
        self.table.text("SIGKILL all -> all flushed", "%s in %.3f s (%d flush lines)" % (
            "yes" if flushed else "NO", (max(stamps) - t0) if stamps else -1, len(stamps)))
        if not flushed:
            self.failures.append("held containers not all flushed")
        with concurrent.futures.ThreadPoolExecutor(4) as ex:
            list(ex.map(lambda s: self.delete(s[0]), started))

    def propagation(self):
        sys.dont_write_bytecode = True  # no __pycache__ in the source tree
        from propagation import Propagation  # bench/propagation.py
        if shutil.which("etcd") is None or shutil.which("etcdctl") is None:
            self.table.section("6. update propagation: skipped (etcd-server and etcd-client are not installed)")
            return
        Propagation(self, Agent).run()

    def cri(self):
        sys.dont_write_bytecode = True  # no __pycache__ in the source tree
        from cri_row import CriRow, missing  # bench/cri_row.py
        lacking = missing()
        if lacking:
            self.table.section("7. Kubernetes through containerd's CRI: skipped (%s not installed)" % ", ".join(lacking))
            return
        CriRow(self).run()

    def docker(self):
        from docker_column import DockerColumn  # bench/docker_column.py
        self.table.section("5. time to a running task: docker service create vs secretshim + runc run -d")
        DockerColumn(self).run()


def human(size):
    return "%d KiB" % (size // 1024) if size >= 1024 and size % 1024 == 0 else "%d B" % size


def meminfo(field):
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def machine():
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    load = open("/proc/loadavg").read().split()[:3]
    return "%s, %d cpus, kernel %s, %d MiB RAM, load %s" % (
        cpu, os.cpu_count(), os.uname().release, meminfo("MemTotal") // 1024, " ".join(load))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smallest size: 3 runs of 0 and 1 secret (a smoke test)")
    p.add_argument("--docker", action="store_true", help="add the Docker swarm column (installs docker.io with apt if missing)")
    p.add_argument("--build", default=os.environ.get("BUILD_DIR", "build"), help="meson build dir (default build)")
    p.add_argument("--runs", type=int, default=60, help="measured runs per side of each runc row (default 60)")
    p.add_argument("--spawn-runs", type=int, default=2000, help="runs of the hook process (default 2000)")
    p.add_argument("--concurrent", type=int, default=200, help="concurrent starts in row 4a (default 200)")
    p.add_argument("--held", type=int, default=500, help="containers held in row 4b (default 500)")
    p.add_argument("--docker-runs", type=int, default=10, help="runs per Docker row (default 10)")
    p.add_argument("--prop-updates", type=int, default=200, help="rotations per case in row 6 (default 200)")
    p.add_argument("--prop-containers", type=int, default=200, help="running containers in row 6b/6c (default 200)")
    p.add_argument("--prop-cli-runs", type=int, default=20, help="timed secretshimctl rotations in row 6a (default 20)")
    p.add_argument("--prop-agent", metavar="SECRETSHIMD", help="row 6 with this other agent binary (before/after)")
    p.add_argument("--cri-runs", type=int, default=30, help="measured runs per side of row 7 (default 30)")
    p.add_argument("--only", default="1,2,3,4,5,6,7", help="rows to run, e.g. 1,2 (default all)")
    p.add_argument("--agent-wrapper", default="", help="a command to run the agent under, e.g. "
                   "'valgrind --tool=callgrind' or 'strace -c -o FILE' (for profiling)")
    p.add_argument("--compare-agent", metavar="SECRETSHIMD",
                   help="row 2b against this other (older) agent binary too, interleaved: before/after")
    p.add_argument("--profile", metavar="DIR", help="record perf profiles of the agent for row 2 into DIR")
    p.add_argument("--counts", default="1,10,100,1000", help="secret counts of row 2 (default 1,10,100,1000)")
    p.add_argument("--sizes", default="64,65536", help="secret sizes of row 2 in bytes (default 64,65536)")
    p.add_argument("--keep", action="store_true", help="keep the work dir (agent.log) for a look")
    args = p.parse_args()
    if os.geteuid() != 0:
        print("SKIP: the benchmarks need root (runc, mounts)")
        return SKIP
    if shutil.which("runc") is None:
        print("SKIP: runc is not installed")
        return SKIP
    for prog in ("plugin/secretshimd", "plugin/secretshimctl", "plugin/secretshim-hook", "plugin/secretshim-runtime",
                 "bench/spawn_timer", "bench/prop_timer", "bench/noop"):
        if not os.access(os.path.join(args.build, prog), os.X_OK):
            print("bench: %s/%s is missing: build first (meson setup build && meson compile -C build)"
                  % (args.build, prog), file=sys.stderr)
            return 2
    rows = set(args.only.split(","))
    bench = Bench(args)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    status = 0
    try:
        bench.agent = Agent(bench.build, bench.work, args.agent_wrapper.split())
        if args.compare_agent:
            bench.other = Agent(bench.build, os.path.join(bench.work, "old"), binary=args.compare_agent)
        if "1" in rows:
            bench.hook_fastpath()
        if "2" in rows:
            bench.start_with_secrets()
        if "2" in rows or "2b" in rows:
            bench.agent_direct()
        if "2" in rows or "2c" in rows:
            bench.hooks_alone()
        if "3" in rows:
            bench.flush()
        if "4" in rows:
            bench.scale()
        if "6" in rows:
            bench.propagation()
        if "7" in rows:
            bench.cri()
        if "5" in rows and args.docker:
            bench.docker()
    except (RuntimeError, subprocess.CalledProcessError, OSError) as e:
        print("bench: %s" % e, file=sys.stderr)
        status = 1
    finally:
        print("secretshim benchmarks, %s" % started)
        print("machine: %s" % machine())
        print("command: %s" % " ".join(["bench/run.sh"] + sys.argv[1:]))
        print(bench.table.render())
        if "5" in rows and not args.docker and not args.quick:
            print("(Docker column skipped: run with --docker)")
        bench.cleanup()
    for f in bench.failures:
        print("FAILED: " + f)
    return 1 if bench.failures else status


if __name__ == "__main__":
    sys.exit(main())
