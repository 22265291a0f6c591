"""secretshimd as the rows drive it: started on a private socket, its log
read and time-stamped, its CPU, memory and fds read from /proc and cgroups."""
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time


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
