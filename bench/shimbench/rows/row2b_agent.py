"""Row 2b: the agent alone, without runc or the hook.

A client speaks the hook's protocol (plugin/protocol/messages.hpp) for a
sleeping child process, so the numbers carry no container-start noise.
"""
import json
import os
import socket
import subprocess
import time

from ..table import median, ms
from ..util import human


def run(bench):
    q = bench.args.quick
    bench.table.section("2b. the agent alone: hook protocol for N secrets (create -> reply, attached -> ack, release -> ack)")
    counts = [1] if q else [int(c) for c in bench.args.counts.split(",")]
    sizes = [64] if q else [int(c) for c in bench.args.sizes.split(",")]
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
        agent = agent or bench.agent
        cid = bench.new_id("direct")
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
                ann = ";".join(bench.ensure_secrets(n, size))
                runs = 3 if q else (bench.args.runs // 2 if n >= 1000 else bench.args.runs)
                label = "%4d x %-6s" % (n, human(size))
                if bench.other:  # before/after of an optimisation, interleaved
                    old, new = bench.interleaved(lambda: once(ann, bench.other), lambda: once(ann),
                                                runs, 3)
                    for k, what in enumerate(("create", "attached", "release")):
                        bench.table.pair("%s %s: old agent vs new" % (label, what),
                                        [x[k] for x in old], [x[k] for x in new], base_name="old agent")
                    bench.table.pair("%s total: old agent vs new" % label, [sum(x[:3]) for x in old],
                                    [sum(x[:3]) for x in new], base_name="old agent")
                    bench.table.pair("%s agent CPU: old vs new" % label, [x[3] for x in old],
                                    [x[3] for x in new], base_name="old agent", per=n)
                    continue
                samples = [once(ann) for _ in range(runs + (0 if q else 3))][0 if q else 3:]
                total = [a + b + c for a, b, c, _ in samples]
                bench.table.single("%s create+attached+release" % label, total,
                                  note="= %.3f ms per secret" % (ms(median(total)) / n))
                pad = " " * len(label)
                bench.table.single("%s   create (decrypt, build the view)" % pad, [x[0] for x in samples])
                bench.table.single("%s   attached (task record saved)" % pad, [x[1] for x in samples])
                bench.table.single("%s   release (flush)" % pad, [x[2] for x in samples])
                bench.table.single("%s   agent CPU time, all three" % pad, [x[3] for x in samples])
    finally:
        os.close(pidfd)
        child.kill()
        child.wait()
