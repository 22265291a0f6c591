"""Row 6: update propagation in cluster mode.

An admin's rotation (the transaction of `secretshimctl secret rotate`) is
acknowledged by etcd; the node's agent (source: etcd) gets the event on its
watch and swaps the file in every running container that holds the secret.
Timed here: etcd's acknowledgement -> the new content readable in the
container(s), through /proc/PID/root (bench/prop_timer.cpp does the
rotation in-process and polls). The agent runs with SECRETSHIM_TRACE_UPDATES
so each applied watch message logs its CLOCK_MONOTONIC times: etcd delivery,
the io thread's queue and the apply itself come apart from the total.

Everything is private: a 3-member etcd (scripts/etcd-cluster.sh, TLS and
RBAC) on a random loopback port range with its data in the bench's temp
dir, an agent with its own socket and state, runc containers under the
bench's runc root. All stopped by pid or id, also on failure.
"""
import concurrent.futures
import json
import os
import random
import shutil
import socket
import subprocess
import time

from ..agent import Agent
from ..table import median, pct
from ..util import REPO, loadavg, log

NODE = "node-1"
SIZE = 32


def free_base_port():
    """A base port such that base .. base+21 (3 members x client/peer) are free."""
    for _ in range(50):
        base = random.randrange(20000, 60000, 100)
        socks = []
        try:
            for i in range(3):
                for off in (0, 1):
                    s = socket.socket()
                    socks.append(s)
                    s.bind(("127.0.0.1", base + 10 * i + off))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port range for etcd")


def cluster_script(env, directory, *args, check=True):
    """scripts/etcd-cluster.sh ARGS DIR with env; raises on failure if check."""
    r = subprocess.run(["sh", os.path.join(REPO, "scripts", "etcd-cluster.sh"), *args, directory], env=env,
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if check and r.returncode != 0:
        raise RuntimeError("etcd-cluster.sh %s: %s" % (args[0], r.stderr.decode(errors="replace").strip()[-300:]))
    return r


class Propagation:
    def __init__(self, bench):
        self.b = bench
        self.q = bench.args.quick
        self.dir = os.path.join(bench.work, "prop")
        self.etcd = os.path.join(self.dir, "etcd")
        self.env = dict(os.environ, ETCD_BASE_PORT=str(free_base_port()), ETCD_NODES=NODE)
        self.agent = None
        self.started = []
        self.etcd_up = False

    # --- setup ---------------------------------------------------------------
    def cluster(self, *args, check=True):
        return cluster_script(self.env, self.etcd, *args, check=check)

    def admin(self, *args, data=None):
        r = subprocess.run([self.b.agent.ctlbin, "--cluster-config", self.admin_yaml, *args], input=data,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if r.returncode != 0:
            raise RuntimeError("secretshimctl %s: %s" % (" ".join(args[:2]), r.stderr.decode(errors="replace").strip()))
        return r.stdout.decode()

    def write_yaml(self, path, cert, extra):
        pki = os.path.join(self.etcd, "pki")
        env = dict(line.split("=", 1) for line in self.cluster("env").stdout.decode().split())
        with open(path, "w") as f:
            f.write("etcd:\n  endpoints: [%s]\n  ca: %s/ca.crt\n  cert: %s/%s.crt\n  key: %s/%s.key\n%s"
                    % (env["ETCD_ENDPOINTS"].replace(",", ", "), pki, pki, cert, pki, cert, extra))

    def setup(self):
        os.makedirs(self.dir, mode=0o700)
        t0 = time.monotonic()
        self.etcd_up = True  # stop even a half-started cluster
        self.cluster("start")
        admin_dir = os.path.join(self.dir, "admin")
        os.makedirs(admin_dir, mode=0o700)
        self.admin_yaml = os.path.join(self.dir, "admin.yaml")
        # The admin's signing key; the node trusts its public half.
        signing = os.path.join(admin_dir, "signing.key")
        subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", signing], check=True,
                       stderr=subprocess.DEVNULL)
        subprocess.run(["openssl", "pkey", "-in", signing, "-pubout", "-out", signing + ".pub"], check=True)
        self.write_yaml(self.admin_yaml, "admin", "  cluster_key: %s/cluster.key\n  signing_key: %s\n"
                        % (admin_dir, signing))
        agent_dir = os.path.join(self.dir, "agent")
        os.makedirs(os.path.join(agent_dir, "state"), mode=0o700)
        agent_yaml = os.path.join(self.dir, "agent.yaml")
        self.write_yaml(agent_yaml, NODE, "  node: %s\n  admin_keys: [%s.pub]\n" % (NODE, signing))
        with open(agent_yaml) as f:
            body = f.read()
        with open(agent_yaml, "w") as f:
            f.write("source: etcd\n" + body)
        pub = subprocess.run([self.b.agent.ctlbin, "node", "keygen", "--state-dir", os.path.join(agent_dir, "state")],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True).stdout.decode().strip()
        self.admin("node", "add", NODE, "--public-key", pub)
        for name in ("solo", "shared"):
            self.admin("secret", "create", name, "-", data=os.urandom(SIZE))
        # One container of task "tone" holds solo and shared; the others (task
        # "tall") hold shared only: solo is used by one container, shared by all.
        # Bound to containers started by root: the bench's runc bundles; "tall"
        # is held by up to 200 at once.
        self.admin("task", "assign", "tone", "--identity", "root", "--node", NODE, "--secret", "solo", "--secret", "shared")
        self.admin("task", "assign", "tall", "--identity", "root", "--max-containers", "1000", "--node", NODE,
                   "--secret", "shared")
        self.agent = Agent(self.b.build, agent_dir, extra=["--config", agent_yaml], binary=self.b.args.prop_agent,
                           env=dict(os.environ, SECRETSHIM_TRACE_UPDATES="1"))
        deadline = time.monotonic() + 30
        while '"connected": true' not in self.agent.ctl("status").stdout.decode():
            if time.monotonic() > deadline:
                raise RuntimeError("the cluster agent did not connect to etcd (see %s)" % self.agent.logf.name)
            time.sleep(0.05)
        log("row 6: etcd cluster, secrets and agent ready in %.1f s" % (time.monotonic() - t0))

    def start(self, count, task):
        bundle = self.b.bundle("prop-%s" % task, "", ["sleep", "100000"], task=task, sock=self.agent.sock)
        with concurrent.futures.ThreadPoolExecutor(4) as ex:
            got = list(ex.map(lambda _: self.b.start_detached(bundle, "pr"), range(count)))
        self.started.extend(got)
        return got

    def containers(self):
        """Containers the agent holds views for (the top-level `tasks` of
        `status`; `cluster.tasks` counts assignments)."""
        r = self.agent.ctl("status")
        try:
            return json.loads(r.stdout)["tasks"]
        except (ValueError, KeyError):
            return None

    # --- measurement ---------------------------------------------------------
    def traces(self, mark):
        """(received, start, applied) in seconds from the agent's trace lines since mark."""
        out = []
        with self.agent.cond:
            lines = [l for _, l in self.agent.lines[mark:] if "etcd: trace revision" in l]
        for l in lines:
            f = l.split()
            v = {f[i]: f[i + 1] for i in range(len(f) - 1)}
            out.append((int(v["received_ns"]) / 1e9, int(v["start_ns"]) / 1e9, int(v["applied_ns"]) / 1e9))
        return out

    def timed(self, secret, files, updates):
        """Runs prop_timer; returns per-update dicts of durations in seconds."""
        mark = self.agent.mark()
        prof = None
        if self.b.args.profile:  # --profile DIR: the cluster agent during each case
            os.makedirs(self.b.args.profile, exist_ok=True)
            prof = subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-F", "10000", "-g", "-p",
                                     str(self.agent.proc.pid), "-o",
                                     os.path.join(self.b.args.profile, "perf-prop-%s-%d.data" % (secret, len(files)))],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.5)
        c0 = self.agent.cpu_ns()
        r = subprocess.run([os.path.join(self.b.build, "bench", "prop_timer"), self.admin_yaml, secret,
                            str(updates), str(SIZE), *files], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if r.returncode != 0:
            raise RuntimeError("prop_timer: %s" % r.stderr.decode(errors="replace").strip()[-300:])
        cpu = (self.agent.cpu_ns() - c0) / 1e9
        if prof:
            prof.send_signal(2)
            prof.wait()
        rows = [[int(x) / 1e9 for x in line.split()] for line in r.stdout.decode().splitlines()]
        # The trace lines arrive through the agent's stderr pipe: wait for the last.
        deadline = time.monotonic() + 5
        while len(self.traces(mark)) < len(rows) and time.monotonic() < deadline:
            time.sleep(0.02)
        traces = self.traces(mark)
        out = []
        for k, (c0_, c1, r0, r1, first, last) in enumerate(rows):
            nxt = rows[k + 1][2] if k + 1 < len(rows) else float("inf")
            t = next((t for t in traces if r0 <= t[0] < nxt), None)
            out.append({"commit": c1 - c0_, "rotate": r1 - r0, "first": first - r1, "last": last - r1,
                        "recv": (t[0] - r1) if t else None, "queue": (t[1] - t[0]) if t else None,
                        "apply": (t[2] - t[1]) if t else None, "after": (last - t[2]) if t else None})
        return out, cpu

    def report(self, samples, cpu, n, what):
        tab = self.b.table
        pick = lambda k: [s[k] for s in samples if s[k] is not None]
        tab.single("etcd commit alone (put of a scratch key)", pick("commit"))
        tab.single("admin rotation in-process (claim, copies, switch) -> ack", pick("rotate"))
        if n == 1:
            tab.single("ack -> new content visible in the container", pick("last"))
        else:
            tab.single("ack -> visible in the first container", pick("first"))
            tab.single("ack -> visible in the LAST of %d (%s)" % (n, what), pick("last"))
        tab.single("  ack -> agent got the event (<0: before the ack)", pick("recv"))
        tab.single("  received -> apply started (io thread queue)", pick("queue"))
        tab.single("  apply: decrypt + write + rename, all containers", pick("apply"))
        tab.single("  applied -> seen by the poller", pick("after"))
        traced = len(pick("recv"))
        tab.text("agent CPU per update / trace lines / load", "%.3f ms / %d of %d / %s" % (
            cpu * 1000 / max(1, len(samples)), traced, len(samples), loadavg()))
        p99 = pct(pick("last"), .99) * 1000
        log("row 6 %s: ack -> visible median %.3f ms p99 %.3f ms (load %s)" % (
            what, median(pick("last")) * 1000, p99, loadavg()))

    def cli(self, path, runs):
        """The whole admin command: secretshimctl's process start, TLS, auth,
        reads and txn -> returned, and returned -> visible."""
        start_ret, ret_vis = [], []
        for i in range(runs):
            value = os.urandom(SIZE)
            t0 = time.monotonic()
            self.admin("secret", "rotate", "solo", "-", data=value)
            t1 = time.monotonic()
            while True:
                try:
                    with open(path, "rb") as f:
                        if f.read() == value:
                            break
                except OSError:
                    pass
                if time.monotonic() - t1 > 10:
                    raise RuntimeError("secretshimctl rotate %d: not visible after 10 s" % i)
            t2 = time.monotonic()
            start_ret.append(t1 - t0)
            ret_vis.append(t2 - t1)
            time.sleep(0.002 + random.random() * 0.008)
        self.b.table.single("secretshimctl secret rotate: start -> returned", start_ret)
        self.b.table.single("secretshimctl returned -> visible", ret_vis)

    def run(self):
        tab = self.b.table
        args = self.b.args
        updates = 5 if self.q else args.prop_updates
        held = 3 if self.q else args.prop_containers
        cli_runs = 2 if self.q else args.prop_cli_runs
        tab.section("6. update propagation (cluster): etcd ack of a rotation -> new content in running runc containers")
        try:
            self.setup()
            cid, pid, _ = self.start(1, "tone")[0]
            solo = "/proc/%d/root/run/secrets/solo" % pid
            tab.section("6a. one running container, %d updates of %d B" % (updates, SIZE))
            samples, cpu = self.timed("solo", [solo], updates)
            self.report(samples, cpu, 1, "1 container")
            self.cli(solo, cli_runs)
            self.start(held - 1, "tall")
            if self.containers() != held:
                raise RuntimeError("the cluster agent holds %s containers, expected %d" % (self.containers(), held))
            tab.section("6b. %d running containers; the rotated secret is used by one" % held)
            samples, cpu = self.timed("solo", [solo], updates)
            self.report(samples, cpu, 1, "1 of %d containers" % held)
            tab.section("6c. %d running containers; the rotated secret is used by all %d" % (held, held))
            files = ["/proc/%d/root/run/secrets/shared" % p for _, p, _ in self.started]
            samples, cpu = self.timed("shared", files, updates)
            self.report(samples, cpu, held, "all")
        finally:
            self.stop()

    def stop(self):
        with concurrent.futures.ThreadPoolExecutor(4) as ex:
            list(ex.map(lambda s: self.b.delete(s[0]), self.started))
        if self.agent:
            self.agent.stop()
        if self.etcd_up:
            self.cluster("stop", check=False)


def run(bench):
    if shutil.which("etcd") is None or shutil.which("etcdctl") is None:
        bench.table.section("6. update propagation: skipped (etcd-server and etcd-client are not installed)")
        return
    Propagation(bench).run()
