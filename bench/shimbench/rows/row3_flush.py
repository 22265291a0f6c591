"""Row 3: the flush, from SIGKILL of the init to the agent's log line."""
import os
import re
import signal
import time

from ..util import human


def run(bench):
    q = bench.args.quick
    bench.table.section("3. flush: SIGKILL of the init -> agent logged the view flushed")
    cases = [(1, 64)] if q else [(10, 64), (100, 65536)]
    for n, size in cases:
        names = bench.ensure_secrets(n, size)
        b = bench.bundle("flush-%d-%d" % (n, size), ";".join(names), ["sleep", "100000"])
        lat, own = [], []
        runs = 3 if q else bench.args.runs
        for i in range(runs + (0 if q else 2)):
            cid, pid, _ = bench.start_detached(b, "fl")
            mark = bench.agent.mark()
            time.sleep(0.02)
            t0 = time.monotonic()
            os.kill(pid, signal.SIGKILL)
            hit = bench.agent.wait_line('container "%s": exited, secrets flushed' % cid, mark, 30)
            if hit is None:
                raise RuntimeError("no flush logged for %s" % cid)
            m = re.search(r"flushed in (\d+) us", hit[1])
            if i >= (0 if q else 2):
                lat.append(hit[0] - t0)
                own.append(int(m.group(1)) / 1e6 if m else 0.0)
            bench.delete(cid)
        label = "%d x %s" % (n, human(size))
        bench.table.single("exit -> flushed, %s" % label, lat)
        bench.table.single("  of which the flush itself (agent log)", own)
