"""Row 4: concurrent starts (4a) and many containers held by one agent (4b)."""
import concurrent.futures
import os
import signal
import subprocess
import time

from ..util import log, meminfo


def run(bench):
    q = bench.args.quick
    conc = 3 if q else bench.args.concurrent
    bench.table.section("4a. %d concurrent runc run, 10 x 64 B secrets each" % conc)
    pool = bench.ensure_secrets(10 if q else max(10, min(1000, conc * 10)), 64)
    bundles_b, bundles_s = [], []
    for i in range(conc):
        names = [pool[(10 * i + k) % len(pool)] for k in range(10)]
        test = " && ".join("test -s /run/secrets/%s" % n for n in names)
        bundles_s.append(bench.bundle("cc-s-%d" % i, ";".join(names), ["sh", "-c", test]))
        bundles_b.append(bench.bundle("cc-b-%d" % i, "", ["sh", "-c", "true"], hooks=False))

    def burst(bundles, tag):
        procs = []
        t0 = time.perf_counter()
        for b in bundles:
            cid = bench.new_id(tag)
            bench.live.add(cid)
            procs.append((cid, time.perf_counter(), subprocess.Popen(
                ["runc", "--root", bench.runc_root, "run", "--bundle", b, cid], stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)))
        lat, failed = [], []
        for cid, start, p in procs:
            err = p.communicate()[1]
            lat.append(time.perf_counter() - start)
            if p.returncode != 0:
                failed.append("%s: %s" % (cid, err.decode(errors="replace").strip()[-200:]))
            else:
                bench.live.discard(cid)
        return time.perf_counter() - t0, lat, failed

    mark = bench.agent.mark()
    wall_b, lat_b, fail_b = burst(bundles_b, "cb")
    wall_s, lat_s, fail_s = burst(bundles_s, "cs")
    flushed = bench.agent.wait_no_tasks(60)
    n_flushed = bench.agent.count("secrets flushed", mark)
    bench.table.pair("per container (launch -> exit)", lat_b, lat_s)
    bench.table.text("whole burst, bare / secretshim", "%.2f s / %.2f s" % (wall_b, wall_s))
    bench.table.text("failures, bare / secretshim", "%d / %d" % (len(fail_b), len(fail_s)))
    bench.table.text("all flushed after (task ls empty)", "%s (%d flush lines)" % (
        "yes" if flushed else "NO", n_flushed))
    for f in (fail_b + fail_s)[:5]:
        log("failed: " + f)
    if fail_s or fail_b or not flushed:
        bench.failures.append("concurrent starts: %d/%d failed, flushed=%s" % (len(fail_b), len(fail_s), flushed))

    held = 3 if q else bench.args.held
    bench.table.section("4b. %d running containers held by one agent, 10 x 64 B secrets each" % held)
    time.sleep(1)
    rss0, fds0, shmem0 = bench.agent.status("VmRSS"), bench.agent.fds(), meminfo("Shmem")
    c0, w0 = bench.agent.cpu_seconds(), time.monotonic()
    time.sleep(2 if q else 10)
    idle0 = (bench.agent.cpu_seconds() - c0) / (time.monotonic() - w0)
    bundles = []
    for i in range(held):
        names = [pool[(10 * i + k) % len(pool)] for k in range(10)]
        bundles.append(bench.bundle("held-%d" % i, ";".join(names), ["sleep", "100000"]))
    started, errors = [], []

    def start(b):
        try:
            return bench.start_detached(b, "hd")
        except RuntimeError as e:
            errors.append(str(e))
            return None

    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        started = [r for r in ex.map(start, bundles) if r]
    t_start = time.monotonic() - t0
    held_now = bench.agent.task_count()
    listed = bench.agent.ctl("task", "ls", "--format", "json")
    if listed.returncode != 0:
        bench.table.text("secretshimctl task ls with N held", "FAILS: " + listed.stderr.decode(errors="replace").strip()[-120:])
    time.sleep(1)
    rss1, fds1, shmem1 = bench.agent.status("VmRSS"), bench.agent.fds(), meminfo("Shmem")
    c1, w1 = bench.agent.cpu_seconds(), time.monotonic()
    time.sleep(2 if q else 10)
    idle1 = (bench.agent.cpu_seconds() - c1) / (time.monotonic() - w1)
    n = max(1, len(started))
    bench.table.text("started / held by the agent", "%d / %d (in %.1f s, %d errors)" % (
        len(started), held_now or 0, t_start, len(errors)))
    bench.table.text("agent RSS idle, 0 -> N held", "%d KiB -> %d KiB (%.1f KiB per view)" % (
        rss0, rss1, (rss1 - rss0) / n))
    bench.table.text("agent CPU while idle, 0 -> N held", "%.3f%% -> %.3f%% of one core" % (
        idle0 * 100, idle1 * 100))
    bench.table.text("agent fds, 0 -> N held", "%d -> %d (%.1f per view)" % (fds0, fds1, (fds1 - fds0) / n))
    bench.table.text("tmpfs pages (Shmem, machine-wide)", "+%d KiB (%.1f KiB per view; shared machine)" % (
        shmem1 - shmem0, (shmem1 - shmem0) / n))
    for e in errors[:5]:
        log("failed: " + e)
    if errors or held_now != len(started):
        bench.failures.append("held containers: %d errors, %d started, %s held" % (
            len(errors), len(started), held_now))
    mark = bench.agent.mark()
    t0 = time.monotonic()
    for cid, pid, _ in started:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    flushed = bench.agent.wait_no_tasks(120)
    with bench.agent.cond:  # the last flush line's own time stamp
        stamps = [t for t, l in bench.agent.lines[mark:] if "secrets flushed" in l]
    bench.table.text("SIGKILL all -> all flushed", "%s in %.3f s (%d flush lines)" % (
        "yes" if flushed else "NO", (max(stamps) - t0) if stamps else -1, len(stamps)))
    if not flushed:
        bench.failures.append("held containers not all flushed")
    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        list(ex.map(lambda s: bench.delete(s[0]), started))
