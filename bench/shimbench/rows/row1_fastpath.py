"""Row 1: the hook's fast path, a container without secrets."""
import json
import os
import subprocess


def run(bench):
    q = bench.args.quick
    bench.table.section("1. hook fast path: a container without secrets")
    state = os.path.join(bench.work, "state.json")
    with open(state, "w") as f:
        json.dump({"ociVersion": "1.0.2-dev", "id": "bench", "status": "creating", "pid": 1,
                   "bundle": "/nonexistent", "annotations": {"org.opencontainers.image.ref.name": "busybox"}}, f)
    runs = 20 if q else bench.args.spawn_runs
    bare = bench.bundle("fast-bare", "", ["/bin/true"], hooks=False)
    # Four programs in turn (rotating): the hook, /bin/true (dynamic,
    # what any small tool costs), bench/noop (static, like the hook: the
    # floor of any process start) and secretshim-runtime for the bundle
    # without annotation, made to exec /bin/true instead of runc (its
    # own share: read config.json, find no annotation, exec); each line
    # the round's wall and CPU times in us.
    env = dict(bench.wrapper_env, SECRETSHIM_RUNTIME="/bin/true")
    out = subprocess.run([os.path.join(bench.build, "bench", "spawn_timer"), str(runs), state, "--raw", "--",
                          bench.hook, "createRuntime", "--", "/bin/true", "--", bench.noop, "--",
                          bench.wrapper, "--root", bench.runc_root, "run", "--bundle", bare, "bench"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True, env=env).stdout.decode()
    cols = list(zip(*[[float(x) / 1e6 for x in line.split()] for line in out.splitlines()]))
    hook, hook_cpu, true, true_cpu, noop, noop_cpu, wrap, wrap_cpu = cols
    bench.table.pair("hook process vs /bin/true (spawn+wait)", true, hook)
    bench.table.pair("hook process vs no-op static program: wall", noop, hook)
    bench.table.pair("hook process vs no-op static program: CPU", noop_cpu, hook_cpu)
    bench.table.pair("secretshim-runtime -> /bin/true vs /bin/true: wall", true, wrap)
    bench.table.pair("secretshim-runtime -> /bin/true vs /bin/true: CPU", true_cpu, wrap_cpu)
    runs = 3 if q else bench.args.runs
    floor = bench.bundle("fast-noop", "", ["/bin/true"], noop_hooks=True)
    hooked = bench.bundle("fast-hook", "", ["/bin/true"], hooks=True)
    warm = 1 if q else 3
    bench.cpu = {}
    # Four sides in turn: bare runc, runc with a no-op hook at the same
    # two stages (what any OCI hook costs), with our hooks, and runc
    # through secretshim-runtime (containerd's wrapper) with no hooks.
    b, f, h, w = bench.interleaved_n([lambda: bench.timed_run(bare, "fb"), lambda: bench.timed_run(floor, "fn"),
                                     lambda: bench.timed_run(hooked, "fh"),
                                     lambda: bench.timed_run(bare, "fw", wrapper=True)], runs, warm)
    cpu = {k: v[warm:] for k, v in bench.cpu.items()}
    bench.table.pair("runc run, hook installed, no annotation: wall", b, h)
    bench.table.pair("runc run, hook installed, no annotation: CPU", cpu["fb"], cpu["fh"])
    bench.table.pair("runc run, no-op hook (any-hook floor) vs bare: wall", b, f)
    bench.table.pair("runc run, no-op hook (any-hook floor) vs bare: CPU", cpu["fb"], cpu["fn"])
    bench.table.pair("  hook installed, added over the floor: wall", f, h, base_name="no-op hook")
    bench.table.pair("  hook installed, added over the floor: CPU", cpu["fn"], cpu["fh"], base_name="no-op hook")
    bench.table.pair("secretshim-runtime -> runc, no annotation: wall", b, w)
    bench.table.pair("secretshim-runtime -> runc, no annotation: CPU", cpu["fb"], cpu["fw"])
