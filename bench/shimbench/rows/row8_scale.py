"""Row 8: the cluster mode at scale.

Many registered nodes (an identity and a key each, no process), many
secrets, and some live agents on this machine, each a real `secretshimd`
with `source: etcd` watching the real 3-member etcd. Measured side by side
in one run: a rotation of a secret that every node holds, from the admin's
command to the last live agent holding the new version; assignments per
second; admin commands at 10 nodes vs at all of them; etcd's database size
per (secret, node) copy; the agents' RSS and idle CPU.

The bulk (nodes, secrets, assignments) is written in-process through
ClusterAdmin by bench/scale_setup.cpp; everything timed as an admin would
see it goes through the real `secretshimctl`. A rotation counts as applied
by an agent when its trace (SECRETSHIM_TRACE_UPDATES=1: one line per applied
watch message, CLOCK_MONOTONIC = time.monotonic()) shows a revision at or
above the master copy's mod_revision after the command returned: the
revision at which the rotation became visible to nodes.

Everything is private (the etcd of scripts/etcd-cluster.sh on a random
loopback port range, data in the bench's temp dir; agents with their own
state dir, socket and certificate) and stopped by pid, also on failure.
"""
import concurrent.futures
import json
import math
import os
import shutil
import signal
import subprocess
import time

from ..table import median, pct
from ..util import loadavg, log
from .row6_propagation import cluster_script, free_base_port

SIZE = 64  # bytes per secret value
SMALL = 10  # the node count the admin commands are first timed at
THREADS = 4  # scale_setup's connections for secrets and nodes


class LiveAgent:
    """A secretshimd with its stderr in a file (no reader thread each: the
    trace lines carry their own times); trace lines read incrementally."""

    def __init__(self, build, work, node, config, env):
        self.node = node
        self.sock = os.path.join(work, "agent.sock")
        self.logpath = os.path.join(work, "agent.log")
        with open(self.logpath, "ab") as logf:
            self.proc = subprocess.Popen(
                [os.path.join(build, "plugin", "secretshimd"), "--socket", self.sock, "--state-dir",
                 os.path.join(work, "state"), "--config", config],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=logf, env=env)
        self.log = open(self.logpath, "rb")
        self.rest = b""

    def tail(self):
        with open(self.logpath, "rb") as f:
            lines = f.read().decode(errors="replace").strip().splitlines()
        return lines[-1] if lines else "(empty log)"

    def traces(self):
        """(revision, applied_ns) of the trace lines written since the last call."""
        data = self.rest + self.log.read()
        cut = data.rfind(b"\n") + 1
        self.rest = data[cut:]
        out = []
        for line in data[:cut].decode(errors="replace").splitlines():
            if "etcd: trace revision" not in line:
                continue
            f = line.split()
            v = {f[i]: f[i + 1] for i in range(len(f) - 1)}
            out.append((int(v["revision"]), int(v["applied_ns"]) / 1e9))
        return out

    def cpu_seconds(self):
        """CPU time of its live threads, in ns resolution (/proc's utime and
        stime count 10 ms ticks: too coarse for an idle agent over 10 s)."""
        total = 0
        for tid in os.listdir("/proc/%d/task" % self.proc.pid):
            try:
                with open("/proc/%d/task/%s/schedstat" % (self.proc.pid, tid)) as f:
                    total += int(f.read().split()[0])
            except OSError:  # a thread that just exited
                pass
        return total / 1e9

    def rss_kib(self, field="VmRSS"):
        return rss_kib(self.proc.pid, field)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def reap(self, deadline):
        try:
            self.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def rss_kib(pid, field="VmRSS"):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def mib(kib):
    return "%.1f MiB" % (kib / 1024)


class Scale:
    def __init__(self, bench):
        self.b = bench
        a = bench.args
        q = a.quick
        self.nodes = 12 if q else a.scale_nodes
        self.secrets = 24 if q else a.scale_secrets
        self.live = 3 if q else a.scale_agents
        self.rotations = 3 if q else a.scale_rotations
        self.cli_runs = 2 if q else a.scale_cli_runs
        self.idle = 3 if q else 10
        if self.nodes <= SMALL:
            raise RuntimeError("--scale-nodes must be above %d (the admin commands are first timed at %d nodes)"
                               % (SMALL, SMALL))
        if not 1 <= self.live <= self.nodes:
            raise RuntimeError("--scale-agents must be 1 to --scale-nodes")
        # Each node's task holds "hot" and k others, spread over all the
        # secrets so that every secret is held by some node.
        self.per_node = a.scale_per_node or max(1, math.ceil(self.secrets / self.nodes))
        self.dir = os.path.join(bench.work, "scale")
        self.etcd = os.path.join(self.dir, "etcd")
        # ETCD_NODES: the script's own node users are not needed (node add
        # makes each node's user and role); one name, as the script wants one.
        self.env = dict(os.environ, ETCD_BASE_PORT=str(free_base_port()), ETCD_NODES="node-1")
        self.tool = os.path.join(bench.build, "bench", "scale_setup")
        self.agents = []
        self.etcd_up = False

    # --- plumbing ------------------------------------------------------------
    def cluster(self, *args, check=True):
        return cluster_script(self.env, self.etcd, *args, check=check)

    def admin(self, *args, data=None):
        """The real CLI; its wall time in seconds."""
        t0 = time.monotonic()
        r = subprocess.run([self.b.agent.ctlbin, "--cluster-config", self.admin_yaml, *args], input=data,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        t = time.monotonic() - t0
        if r.returncode != 0:
            err = r.stderr.decode(errors="replace").strip()
            raise RuntimeError("secretshimctl %s: %s" % (" ".join(args[:2]), err.removeprefix("secretshimctl: ")))
        return t

    def etcdctl(self, *args):
        pki = os.path.join(self.etcd, "pki")
        r = subprocess.run(["etcdctl", "--endpoints", self.endpoints, "--cacert", pki + "/ca.crt", "--cert",
                            pki + "/root.crt", "--key", pki + "/root.key", "--command-timeout", "60s", *args],
                           env=dict(os.environ, ETCDCTL_API="3"), stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if r.returncode != 0:
            raise RuntimeError("etcdctl %s: %s" % (args[0], r.stderr.decode(errors="replace").strip()[-300:]))
        return r.stdout.decode()

    def setup_tool(self, *args):
        """scale_setup's run: ([each operation's s...], count, wall s)."""
        r = subprocess.run([self.tool, self.admin_yaml, *args], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if r.returncode != 0:
            raise RuntimeError(r.stderr.decode(errors="replace").strip()[-500:])
        ops, total = [], None
        for line in r.stdout.decode().splitlines():
            f = line.split()
            if f[0] == "op":
                ops.append(int(f[2]) / 1e9)
            elif f[0] == "total":
                total = (int(f[2]), int(f[3]) / 1e9)
        return ops, total[0], total[1]

    def write_file(self, name, lines):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write("".join(l + "\n" for l in lines))
        return path

    def yaml(self, path, cert_dir, cert, extra):
        with open(path, "w") as f:
            f.write("etcd:\n  endpoints: [%s]\n  ca: %s/ca.crt\n  cert: %s/%s.crt\n  key: %s/%s.key\n%s"
                    % (self.endpoints.replace(",", ", "), os.path.join(self.etcd, "pki"), cert_dir, cert, cert_dir,
                       cert, extra))

    def node_cert(self, node):
        """A client certificate with CN=node from the cluster's CA, as
        etcd-cluster.sh makes them (a serial of its own: x509's
        -CAcreateserial would race between threads)."""
        pki = os.path.join(self.etcd, "pki")
        key, csr, crt, ext = (os.path.join(self.certs, node + s) for s in (".key", ".csr", ".crt", ".ext"))
        with open(ext, "w") as f:
            f.write("extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n")
        subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-keyout", key, "-out", csr, "-subj", "/CN=" + node], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", pki + "/ca.crt", "-CAkey", pki + "/ca.key",
                        "-set_serial", str(int.from_bytes(os.urandom(8), "big")), "-days", "2", "-extfile", ext,
                        "-out", crt], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.unlink(csr)
        os.unlink(ext)
        os.chmod(key, 0o600)

    # --- setup ---------------------------------------------------------------
    def node(self, i):
        return "node-%d" % i

    def state_dir(self, i):
        return os.path.join(self.dir, "agents", self.node(i), "state")

    def nodes_file(self, name, first, last):
        """Nodes first..last (1-based); a live agent's node with its state dir."""
        lines = []
        for i in range(first, last + 1):
            if i <= self.live:
                os.makedirs(self.state_dir(i), mode=0o700, exist_ok=True)
                lines.append("%s %s" % (self.node(i), self.state_dir(i)))
            else:
                lines.append(self.node(i))
        return self.write_file(name, lines)

    def assign_file(self, name, first, last):
        """Node i's task holds hot and per_node others, consecutive modulo
        the secret count (node i starts where node i-1 ended)."""
        lines = []
        for i in range(first, last + 1):
            held = ["s-%05d" % (((i - 1) * self.per_node + j) % self.secrets) for j in range(self.per_node)]
            lines.append(" ".join([self.node(i), "t-" + self.node(i), "hot"] + sorted(set(held))))
        return self.write_file(name, lines)

    def setup_cluster(self):
        os.makedirs(self.dir, mode=0o700)
        self.etcd_up = True  # stop even a half-started cluster
        self.cluster("start")
        self.endpoints = dict(l.split("=", 1) for l in self.cluster("env").stdout.decode().split())["ETCD_ENDPOINTS"]
        admin_dir = os.path.join(self.dir, "admin")
        os.makedirs(admin_dir, mode=0o700)
        signing = os.path.join(admin_dir, "signing.key")
        subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", signing], check=True,
                       stderr=subprocess.DEVNULL)
        subprocess.run(["openssl", "pkey", "-in", signing, "-pubout", "-out", signing + ".pub"], check=True)
        self.admin_yaml = os.path.join(self.dir, "admin.yaml")
        self.yaml(self.admin_yaml, os.path.join(self.etcd, "pki"), "admin",
                  "  cluster_key: %s/cluster.key\n  signing_key: %s\n" % (admin_dir, signing))
        self.admin_pub = signing + ".pub"
        self.certs = os.path.join(self.dir, "certs")
        os.makedirs(self.certs, mode=0o700)
        with concurrent.futures.ThreadPoolExecutor(4) as ex:
            list(ex.map(self.node_cert, [self.node(i) for i in range(1, self.live + 1)]))

    def db_size(self):
        """etcd's database size (mean of the members) after a compaction at
        the current revision and a defragmentation: what the live keys take."""
        status = json.loads(self.etcdctl("endpoint", "status", "-w", "json"))
        rev = max(s["Status"]["header"]["revision"] for s in status)
        self.etcdctl("compact", str(rev), "--physical")
        self.etcdctl("defrag")
        status = json.loads(self.etcdctl("endpoint", "status", "-w", "json"))
        return sum(s["Status"]["dbSize"] for s in status) / len(status)

    def mod_revision(self, name):
        out = json.loads(self.etcdctl("get", "/secretshim/secrets/" + name, "-w", "json"))
        return int(out["kvs"][0]["mod_revision"])

    # --- the measurements ------------------------------------------------------
    def commands(self, at, runs):
        """The admin commands (real CLI) at the current size, each `runs` times:
        {name: [seconds...]}."""
        out = {k: [] for k in ("assign", "unassign", "rotate", "secret ls", "task ls")}
        for r in range(runs):
            task = "probe-%d-%d" % (at, r)
            out["assign"].append(self.admin("task", "assign", task, "--node", self.node(2), "--identity", "root",
                                            "--secret", "probe"))
            out["unassign"].append(self.admin("task", "unassign", task))
            out["rotate"].append(self.admin("secret", "rotate", "solo", "-", data=os.urandom(SIZE)))
            out["secret ls"].append(self.admin("secret", "ls"))
            out["task ls"].append(self.admin("task", "ls"))
            # hot, held by every node: at 10 nodes the baseline of the
            # rotations timed with the agents (at all nodes) below.
            if at == SMALL:
                out.setdefault("rotate hot", []).append(self.admin("secret", "rotate", "hot", "-",
                                                                   data=os.urandom(SIZE)))
        return out

    def start_agents(self):
        env = dict(os.environ, SECRETSHIM_TRACE_UPDATES="1")
        for i in range(1, self.live + 1):
            node = self.node(i)
            work = os.path.dirname(self.state_dir(i))
            config = os.path.join(work, "agent.yaml")
            self.yaml(config, self.certs, node, "  node: %s\n  admin_keys: [%s]\n" % (node, self.admin_pub))
            with open(config) as f:
                body = f.read()
            with open(config, "w") as f:
                f.write("source: etcd\n" + body)
            self.agents.append(LiveAgent(self.b.build, work, node, config, env))
        # Each agent's socket, then each connected to etcd (its first read done).
        deadline = time.monotonic() + 60 + self.live
        waiting = list(self.agents)
        while waiting:
            for a in list(waiting):
                if a.proc.poll() is not None:
                    raise RuntimeError("the agent of %s exited: %s" % (a.node, a.tail()))
                if not os.path.exists(a.sock):
                    continue
                r = subprocess.run([self.b.agent.ctlbin, "--socket", a.sock, "status"], stdout=subprocess.PIPE,
                                   stderr=subprocess.DEVNULL)
                if b'"connected": true' in r.stdout:
                    waiting.remove(a)
            if waiting and time.monotonic() > deadline:
                raise RuntimeError("%d of %d agents did not connect to etcd (e.g. %s: %s)"
                                   % (len(waiting), self.live, waiting[0].node, waiting[0].tail()))
            time.sleep(0.05)
        for a in self.agents:
            a.traces()  # what the start logged: read past it

    def rotate_hot(self):
        """One rotation of hot through the CLI: (command, first agent, last
        agent) in seconds from the command's start."""
        t0 = time.monotonic()
        t_cmd = self.admin("secret", "rotate", "hot", "-", data=os.urandom(SIZE))
        rev = self.mod_revision("hot")
        applied = {}
        deadline = time.monotonic() + 60
        while len(applied) < len(self.agents):
            for a in self.agents:
                if a.node in applied:
                    continue
                for r, t in a.traces():
                    if r >= rev:
                        applied[a.node] = t
                        break
            if len(applied) < len(self.agents):
                if time.monotonic() > deadline:
                    missing = [a.node for a in self.agents if a.node not in applied]
                    raise RuntimeError("rotation at revision %d: %d of %d agents did not apply it within 60 s "
                                       "(e.g. %s)" % (rev, len(missing), len(self.agents), missing[0]))
                time.sleep(0.01)
        for a in self.agents:
            a.traces()  # the rest of this rotation's lines
        return t_cmd, min(applied.values()) - t0, max(applied.values()) - t0

    def run(self):
        tab = self.b.table
        n, s, k, live = self.nodes, self.secrets, self.per_node, self.live
        tab.section("8. scale (cluster): %d nodes, %d secrets (%d B), %d held per node + hot, %d live agents"
                    % (n, s, SIZE, k, live))
        try:
            t_setup = time.monotonic()
            self.setup_cluster()
            log("row 8: etcd cluster and %d agent certificates in %.1f s" % (live, time.monotonic() - t_setup))
            names = ["s-%05d" % i for i in range(s)] + ["hot", "solo", "probe"]
            _, count, wall = self.setup_tool("secrets", str(THREADS), str(SIZE), self.write_file("secrets", names))
            tab.text("setup: secret create, in-process, %d at once" % THREADS,
                     "%.0f /s (%d in %.1f s)" % (count / wall, count, wall))
            log("row 8: %d secrets in %.1f s" % (count, wall))

            # At 10 nodes.
            self.setup_tool("nodes", str(THREADS), self.nodes_file("nodes-small", 1, SMALL))
            self.setup_tool("assign", self.assign_file("assign-small", 1, SMALL))
            self.admin("task", "assign", "t-solo", "--node", self.node(1), "--identity", "root", "--secret", "solo")
            small = self.commands(SMALL, self.cli_runs)

            # Grow to n.
            ops, count, wall = self.setup_tool("nodes", str(THREADS), self.nodes_file("nodes", SMALL + 1, n))
            tab.text("setup: node add, in-process, %d at once" % THREADS,
                     "%.0f /s (%d in %.1f s; one: median %.1f ms)" % (count / wall, count, wall, median(ops) * 1000))
            log("row 8: %d more nodes in %.1f s" % (count, wall))
            before = self.db_size()
            ops, count, wall = self.setup_tool("assign", self.assign_file("assign", SMALL + 1, n))
            tenth = max(1, len(ops) // 10)
            tab.text("setup: task assign, in-process, one at a time",
                     "%.1f /s (%d in %.1f s; one: %.1f ms in the first tenth, %.1f ms in the last)"
                     % (count / wall, count, wall, median(ops[:tenth]) * 1000, median(ops[-tenth:]) * 1000))
            log("row 8: %d assignments in %.1f s" % (count, wall))
            after = self.db_size()
            copies = (n - SMALL) * (k + 1)
            tab.text("etcd db size per (secret, node) copy",
                     "%.0f B (compacted + defragmented: %.1f -> %.1f MiB for %d copies and %d task records)"
                     % ((after - before) / copies, before / 2**20, after / 2**20, copies, n - SMALL))
            large = self.commands(n, self.cli_runs)

            self.start_agents()
            log("row 8: %d agents connected; setup took %.1f s" % (live, time.monotonic() - t_setup))
            tab.text("setup: the whole row's setup", "%.1f s" % (time.monotonic() - t_setup))

            # Baseline: at 10 nodes; "secretshim": at n; ratio: n / 10.
            for what, label in (("assign", "task assign (new task, 1 secret)"),
                                ("unassign", "task unassign (that task)"),
                                ("rotate", "secret rotate (held by 1 node)"),
                                ("secret ls", "secret ls (all %d)" % (s + 3)),
                                ("task ls", "task ls (all %d)" % (n + 1))):
                tab.pair("%s: %d vs %d nodes" % (label, SMALL, n), small[what], large[what],
                         base_name="%d nodes" % SMALL)
            worst = max(median(large[w]) / median(small[w]) for w in ("assign", "unassign", "rotate"))
            tab.text("target: those 3 at %d nodes within 2x of %d" % (n, SMALL),
                     "%s (worst ratio %.2f)" % ("met" if worst <= 2 else "MISSED", worst))

            self.rotations_of_hot(n, small["rotate hot"])
            self.idle_agents()
        finally:
            self.stop()

    def rotations_of_hot(self, n, at_small):
        tab = self.b.table
        cmd, first, last = [], [], []
        try:
            for _ in range(self.rotations):
                c, f, l = self.rotate_hot()
                cmd.append(c)
                first.append(f)
                last.append(l)
        except RuntimeError as e:
            tab.text("secret rotate hot (held by all %d nodes)" % n, "FAILED: %s" % e)
            self.b.failures.append("row 8: rotation of a secret held by %d nodes: %s" % (n, e))
            return
        tab.pair("rotate hot (held by all): CLI, %d vs %d nodes" % (SMALL, n), at_small, cmd,
                 base_name="%d nodes" % SMALL)
        tab.single("  start -> first of %d agents applied it" % len(self.agents), first)
        tab.single("  start -> LAST of %d agents applied it" % len(self.agents), last)
        tab.text("target: rotation to the LAST agent < 2 s (p99)",
                 "%s (p99 %.0f ms, load %s)" % ("met" if pct(last, .99) < 2 else "MISSED", pct(last, .99) * 1000,
                                                loadavg()))
        log("row 8: rotation of hot -> last of %d agents: median %.0f ms, p99 %.0f ms" % (
            len(self.agents), median(last) * 1000, pct(last, .99) * 1000))

    def idle_agents(self):
        tab = self.b.table
        time.sleep(1)
        c0 = [a.cpu_seconds() for a in self.agents]
        t0 = time.monotonic()
        time.sleep(self.idle)
        dt = time.monotonic() - t0
        cpu = [(a.cpu_seconds() - c) / dt * 1000 for a, c in zip(self.agents, c0)]  # ms of CPU per s
        rss = [a.rss_kib() for a in self.agents]
        # The shared libraries' pages count in every agent's RSS; its own
        # memory is the anonymous part.
        anon = [a.rss_kib("RssAnon") for a in self.agents]
        tab.text("agents: RSS, median / max", "%s / %s" % (mib(median(rss)), mib(max(rss))))
        tab.text("agents: RssAnon, median / max / all %d" % len(anon),
                 "%s / %s / %s" % (mib(median(anon)), mib(max(anon)), mib(sum(anon))))
        tab.text("agents: idle CPU over %.0f s, median/max/all" % dt,
                 "%.3f / %.3f / %.3f ms of CPU per s" % (median(cpu), max(cpu), sum(cpu)))
        members = []
        for i in (1, 2, 3):
            try:
                with open(os.path.join(self.etcd, "m%d.pid" % i)) as f:
                    members.append(rss_kib(int(f.read())))
            except (OSError, ValueError):
                pass
        if members:
            tab.text("etcd members: RSS each", " / ".join(mib(m) for m in members))

    def stop(self):
        for a in self.agents:
            a.stop()
        deadline = time.monotonic() + 20
        for a in self.agents:
            a.reap(deadline)
        if self.etcd_up:
            self.cluster("stop", check=False)


def run(bench):
    if shutil.which("etcd") is None or shutil.which("etcdctl") is None:
        bench.table.section("8. scale (cluster): skipped (etcd-server and etcd-client are not installed)")
        return
    Scale(bench).run()
