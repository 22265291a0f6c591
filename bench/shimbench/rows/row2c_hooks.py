"""Row 2c: the hooks alone, without runc.

Our two hook processes with N secrets against bench/noop at the same two
stages: the part of row 2 that is ours, with far less noise than whole
container starts. The container is a stand-in: `sleep` in a mount
namespace of its own (a new one each round), whose rootfs is a temp dir
(the hook attaches there; the mounts go with the namespace). After each of
our rounds the agent's flush is waited for (untimed) and its CPU counted
with the hooks'.
"""
import json
import os
import subprocess

from ..bench import spawn_hook
from ..util import human


def run(bench):
    q = bench.args.quick
    bench.table.section("2c. the hooks alone: createRuntime + poststop with N secrets vs the no-op hook")
    counts = [1] if q else [int(c) for c in bench.args.counts.split(",") if int(c) <= 100]
    sizes = [64] if q else [int(c) for c in bench.args.sizes.split(",")]
    rootfs = os.path.join(bench.work, "stand-in-rootfs")
    os.makedirs(os.path.join(rootfs, "run"), exist_ok=True)
    bundle = os.path.join(bench.work, "stand-in")
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
            cid = bench.new_id("hooks")
            mark = bench.agent.mark()
            c0 = bench.agent.cpu_ns()
            state = {"ociVersion": "1.0.2", "id": cid, "status": "creating", "pid": init.pid,
                     "bundle": bundle, "annotations": {"io.secretshim.secrets": ann}}
            cw, cc = spawn_hook(program, bench.agent.sock, "createRuntime", state)
            state = dict(state, status="stopped")
            del state["pid"]
            pw, pc = spawn_hook(program, bench.agent.sock, "poststop", state)
            if program == bench.hook and bench.agent.wait_flushed(cid, mark) is None:
                raise RuntimeError("no flush logged for %s" % cid)
            return cw, pw, cc + pc + (bench.agent.cpu_ns() - c0) / 1e9
        finally:
            init.kill()
            init.wait()
            init.stdout.close()

    for size in sizes:
        for n in counts:
            ann = ";".join(bench.ensure_secrets(n, size))
            runs = 3 if q else max(bench.args.runs, 300)
            noop, ours = bench.interleaved(lambda: round_trip(bench.noop, ann),
                                          lambda: round_trip(bench.hook, ann), runs, 1 if q else 5)
            label = "%4d x %-6s" % (n, human(size))
            bench.table.pair("%s both hooks: wall" % label, [a + b for a, b, _ in noop],
                            [a + b for a, b, _ in ours], base_name="no-op hook", per=n)
            bench.table.pair("%s   createRuntime: wall" % label, [x[0] for x in noop], [x[0] for x in ours],
                            base_name="no-op hook")
            bench.table.pair("%s   poststop: wall" % label, [x[1] for x in noop], [x[1] for x in ours],
                            base_name="no-op hook")
            bench.table.pair("%s both hooks: CPU (+ agent)" % label, [x[2] for x in noop],
                            [x[2] for x in ours], base_name="no-op hook", per=n)
