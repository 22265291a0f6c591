"""The fixtures every row shares: the work dir and busybox rootfs, bundles,
runc runs timed or detached, secrets created on first use, interleaved
sides, perf profiles, and the cleanup of everything started."""
import concurrent.futures
import json
import os
import resource
import shutil
import signal
import subprocess
import tempfile
import time

from .table import Table
from .util import log


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
