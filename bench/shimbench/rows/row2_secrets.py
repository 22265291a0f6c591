"""Row 2: runc run with N secrets vs the same container bare."""
from ..util import human


def run(bench):
    q = bench.args.quick
    bench.table.section("2. runc run with N secrets vs bare runc run (same container)")
    counts = [1] if q else [int(c) for c in bench.args.counts.split(",")]
    sizes = [64] if q else [int(c) for c in bench.args.sizes.split(",")]
    for size in sizes:
        for n in counts:
            names = bench.ensure_secrets(n, size)
            ann = ";".join(names)
            bare = bench.bundle("bare", "", ["/bin/true"], hooks=False)
            shim = bench.bundle("s%d-%d" % (n, size), ann, ["/bin/true"], hooks=True)
            # The same config.json (annotation included) with a no-op
            # hook at both stages: the floor of any OCI hook.
            floor = bench.bundle("n%d-%d" % (n, size), ann, ["/bin/true"], noop_hooks=True)
            # One checked run first: the container really sees its secrets.
            check = bench.bundle("c%d-%d" % (n, size), ann,
                                ["sh", "-c", "test -s /run/secrets/%s && test -s /run/secrets/%s"
                                 % (names[0], names[-1])])
            bench.timed_run(check, "chk")
            runs = 3 if q else (bench.args.runs // 2 if n >= 1000 else bench.args.runs)
            prof = bench.start_profile("perf-%d-%d.data" % (n, size))
            bench.cpu = {}
            warm = 1 if q else 2
            b, f, s = bench.interleaved_n([lambda: bench.timed_run(bare, "b"), lambda: bench.timed_run(floor, "n"),
                                          lambda: bench.timed_run(shim, "s", task=True)], runs, warm)
            bench.stop_profile(prof)
            cpu = {k: v[warm:] for k, v in bench.cpu.items()}
            label = "%4d x %-6s" % (n, human(size))
            bench.table.pair("%s wall" % label, b, s, per=n)
            bench.table.pair("%s CPU (runc+hook+agent)" % label, cpu["b"], cpu["s"], per=n)
            bench.table.pair("%s wall, added over the any-hook floor" % label, f, s, per=n,
                            base_name="no-op hook")
            bench.table.pair("%s CPU, added over the any-hook floor" % label, cpu["n"], cpu["s"], per=n,
                            base_name="no-op hook")
