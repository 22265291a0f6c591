"""Row 5 (--docker): time to a running task with N secrets, Docker
swarm (`docker service create`) next to secretshim + `runc run -d`.

Starts its own containerd and dockerd (data-root, exec-root, pidfile and
sockets under the bench's temp dir; --iptables=false --bridge=none: no
change to the host's firewall or bridges), a one-node swarm on loopback
with its own ports, imports a busybox image from the bench's rootfs, and
stops both daemons by pid afterwards. Uses Debian's binaries by full path
(/usr/bin/docker, /usr/sbin/dockerd); installs docker.io with apt only when
they are missing. Skips with a notice when dockerd cannot start.
"""
import json
import os
import random
import signal
import subprocess
import tarfile
import threading
import time

DOCKER = "/usr/bin/docker"
DOCKERD = "/usr/sbin/dockerd"
CONTAINERD = "/usr/bin/containerd"


class DockerColumn:
    def __init__(self, bench):
        self.bench = bench
        self.dir = os.path.join(bench.work, "docker")
        self.sock = os.path.join(self.dir, "docker.sock")
        self.procs = []  # (name, Popen) started here, stopped by pid
        self.events = []
        self.cond = threading.Condition()

    # --- daemons -----------------------------------------------------------
    def docker(self, *args, data=None, check=True):
        r = subprocess.run([DOCKER, "-H", "unix://" + self.sock, *args], input=data,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if check and r.returncode != 0:
            raise RuntimeError("docker %s: %s" % (args[0], r.stderr.decode(errors="replace").strip()[-300:]))
        return r.stdout.decode()

    def install(self):
        if os.access(DOCKERD, os.X_OK) and os.access(DOCKER, os.X_OK):
            return True
        print("# installing docker.io with apt (requested by --docker)", flush=True)
        r = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "docker.io"],
                           env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"),
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        return r.returncode == 0 and os.access(DOCKERD, os.X_OK)

    def start(self):
        os.makedirs(self.dir)
        cd = os.path.join(self.dir, "containerd")
        os.makedirs(cd)
        cd_sock = os.path.join(cd, "containerd.sock")
        with open(os.path.join(cd, "config.toml"), "w") as f:
            f.write('version = 2\nroot = "%s/root"\nstate = "%s/state"\n'
                    'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
                    '[grpc]\n  address = "%s"\n' % (cd, cd, cd_sock))
        log = open(os.path.join(self.dir, "daemons.log"), "a")
        self.procs.append(("containerd", subprocess.Popen(
            [CONTAINERD, "--config", os.path.join(cd, "config.toml")], stdout=log, stderr=log)))
        if not self.wait(lambda: os.path.exists(cd_sock), 20):
            return "containerd did not start"
        self.procs.append(("dockerd", subprocess.Popen(
            [DOCKERD, "--data-root", os.path.join(self.dir, "data"), "--exec-root", os.path.join(self.dir, "exec"),
             "--pidfile", os.path.join(self.dir, "dockerd.pid"), "-H", "unix://" + self.sock,
             "--containerd", cd_sock, "--iptables=false", "--ip6tables=false", "--ip-masq=false",
             "--bridge=none", "--userland-proxy=false"],
            stdout=log, stderr=log)))
        ok = self.wait(lambda: subprocess.run([DOCKER, "-H", "unix://" + self.sock, "version"],
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0, 60)
        if not ok:
            return "dockerd did not start (see %s)" % log.name
        # A one-node swarm on loopback, on ports of its own.
        port = random.randint(20000, 29000)
        r = subprocess.run([DOCKER, "-H", "unix://" + self.sock, "swarm", "init", "--advertise-addr", "127.0.0.1",
                            "--listen-addr", "127.0.0.1:%d" % port, "--data-path-addr", "127.0.0.1",
                            "--data-path-port", str(port + 1)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if r.returncode != 0:
            return "docker swarm init failed: " + r.stderr.decode(errors="replace").strip()[-200:]
        return None

    @staticmethod
    def wait(pred, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if pred():
                return True
            time.sleep(0.2)
        return False

    def stop(self):
        for name, p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        # dockerd leaves its exec-root mounts (netns, overlay) lazily unmounted by now;
        # anything still mounted under our dir goes before the dir is removed.
        mounts = []
        with open("/proc/self/mountinfo") as f:
            for line in f:
                mp = line.split()[4]
                if mp.startswith(self.dir + "/"):
                    mounts.append(mp)
        for mp in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", mp], stderr=subprocess.DEVNULL)

    # --- events ---------------------------------------------------------------
    def watch_events(self):
        p = subprocess.Popen([DOCKER, "-H", "unix://" + self.sock, "events", "--filter", "type=container",
                              "--filter", "event=start", "--format", "{{json .}}"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.procs.append(("docker events", p))

        def read():
            for line in p.stdout:
                now = time.monotonic()
                try:
                    ev = json.loads(line)
                except ValueError:
                    continue
                svc = ev.get("Actor", {}).get("Attributes", {}).get("com.docker.swarm.service.name")
                with self.cond:
                    self.events.append((now, svc))
                    self.cond.notify_all()

        threading.Thread(target=read, daemon=True).start()
        time.sleep(0.5)

    def wait_started(self, service, timeout=60):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for t, svc in self.events:
                    if svc == service:
                        return t
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)

    # --- the row ----------------------------------------------------------
    def image(self):
        tar = os.path.join(self.dir, "rootfs.tar")
        with tarfile.open(tar, "w") as t:
            t.add(self.bench.rootfs, arcname=".")
        with open(tar, "rb") as f:
            self.docker("import", "-", "ssbench/busybox:latest", data=f.read())
        return "ssbench/busybox:latest"

    def docker_secrets(self, n):
        names = ["ssb_d%03d" % i for i in range(n)]
        have = set(self.docker("secret", "ls", "--format", "{{.Name}}").split())
        for name in names:
            if name not in have:
                self.docker("secret", "create", name, "-", data=os.urandom(64))
        return names

    def docker_task(self, image, secrets, seq):
        svc = "ssb%d-%d" % (os.getpid(), seq)
        args = ["service", "create", "-d", "--quiet", "--name", svc, "--restart-condition", "none"]
        for s in secrets:
            args += ["--secret", s]
        t0 = time.monotonic()
        self.docker(*args, image, "sleep", "100000")
        t1 = self.wait_started(svc)
        self.docker("service", "rm", svc, check=False)
        # Wait until its container is gone, so tasks never pile up.
        self.wait(lambda: not self.docker("ps", "-aq", "--filter", "label=com.docker.swarm.service.name=" + svc,
                                          check=False).strip(), 30)
        if t1 is None:
            raise RuntimeError("docker task of %s did not start within 60 s" % svc)
        return t1 - t0

    def shim_task(self, bundle):
        cid, _, t = self.bench.start_detached(bundle, "dk")
        self.bench.delete(cid)
        return t

    def run(self):
        b = self.bench
        if not self.install():
            b.table.text("Docker column skipped", "docker.io could not be installed")
            return
        try:
            err = self.start()
            if err:
                b.table.text("Docker column skipped", err)
                print("# Docker column skipped: " + err, flush=True)
                return
            image = self.image()
            self.watch_events()
            runs = 2 if b.args.quick else b.args.docker_runs
            seq = 0
            for n in (0, 10, 100):
                dsec = self.docker_secrets(n)
                names = b.ensure_secrets(n, 64) if n else []
                bundle = b.bundle("dk-%d" % n, ";".join(names), ["sleep", "100000"], hooks=bool(n))
                dk, sh = [], []
                for i in range(runs + 1):  # the first pair is a warm-up
                    seq += 1
                    if i % 2:
                        x, y = self.docker_task(image, dsec, seq), self.shim_task(bundle)
                    else:
                        y, x = self.shim_task(bundle), self.docker_task(image, dsec, seq)
                    if i:
                        dk.append(x)
                        sh.append(y)
                b.table.pair("%3d x 64 B: docker (baseline) vs %s" % (n, "secretshim+runc" if n else "bare runc"),
                             dk, sh)
        finally:
            self.stop()


def run(bench):
    bench.table.section("5. time to a running task: docker service create vs secretshim + runc run -d")
    DockerColumn(bench).run()
