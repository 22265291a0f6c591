"""secretshim benchmarks: the cost of secretshim next to the runtime alone
(and, with --docker, next to Docker swarm secrets), each row against a
baseline measured in the same run, runs interleaved so that drift on a
shared machine hits both sides alike. Prints one table.

usage: bench/run.sh [--quick] [--docker] [--build DIR] [--only ROWS] [--held N]

Secret values are random bytes handed to secretshimctl on stdin; they are
never printed. Everything started here (agent, containers, dockerd) is
stopped by its pid or id on exit, also on failure.
"""
import argparse
import os
import shutil
import subprocess
import sys
import time

from .agent import Agent
from .bench import Bench
from .rows import (row1_fastpath, row2_secrets, row2b_agent, row2c_hooks, row3_flush, row4_scale, row5_docker,
                   row6_propagation, row7_cri, row7c_nri, row8_scale)
from .util import machine

SKIP = 77

# The rows in the order they run, each with the --only names that select it
# (2 brings 2b and 2c, 7 brings 7c); row 5 (Docker) runs last, and only with --docker.
ROWS = (({"1"}, row1_fastpath), ({"2"}, row2_secrets), ({"2", "2b"}, row2b_agent), ({"2", "2c"}, row2c_hooks),
        ({"3"}, row3_flush), ({"4"}, row4_scale), ({"6"}, row6_propagation), ({"7"}, row7_cri),
        ({"7", "7c"}, row7c_nri), ({"8"}, row8_scale))


def main():
    p = argparse.ArgumentParser(prog="bench/run.sh", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smallest size: 3 runs of 0 and 1 secret (a smoke test)")
    p.add_argument("--docker", action="store_true", help="add the Docker swarm column (installs docker.io with apt if missing)")
    p.add_argument("--build", default=os.environ.get("BUILD_DIR", "build"), help="meson build dir (default build)")
    p.add_argument("--runs", type=int, default=60, help="measured runs per side of each runc row (default 60)")
    p.add_argument("--spawn-runs", type=int, default=2000, help="runs of the hook process (default 2000)")
    p.add_argument("--concurrent", type=int, default=200, help="concurrent starts in row 4a (default 200)")
    p.add_argument("--held", type=int, default=500, help="containers held in row 4b (default 500)")
    p.add_argument("--docker-runs", type=int, default=10, help="runs per Docker row (default 10)")
    p.add_argument("--prop-updates", type=int, default=200, help="rotations per case in row 6 (default 200)")
    p.add_argument("--prop-containers", type=int, default=200, help="running containers in row 6b/6c (default 200)")
    p.add_argument("--prop-cli-runs", type=int, default=20, help="timed secretshimctl rotations in row 6a (default 20)")
    p.add_argument("--prop-agent", metavar="SECRETSHIMD", help="row 6 with this other agent binary (before/after)")
    p.add_argument("--scale-nodes", type=int, default=1000, help="registered nodes in row 8 (default 1000)")
    p.add_argument("--scale-secrets", type=int, default=10000, help="secrets in row 8 (default 10000)")
    p.add_argument("--scale-agents", type=int, default=100, help="live agents in row 8 (default 100)")
    p.add_argument("--scale-per-node", type=int, default=0,
                   help="secrets each node holds besides the rotated one in row 8 (default: secrets / nodes)")
    p.add_argument("--scale-rotations", type=int, default=10, help="timed rotations in row 8 (default 10)")
    p.add_argument("--scale-cli-runs", type=int, default=10,
                   help="runs of each admin command at 10 nodes and at all in row 8 (default 10)")
    p.add_argument("--cri-runs", type=int, default=30, help="measured runs per side of row 7 (default 30)")
    p.add_argument("--only", default="1,2,3,4,5,6,7,8", help="rows to run, e.g. 1,2 (default all)")
    p.add_argument("--agent-wrapper", default="", help="a command to run the agent under, e.g. "
                   "'valgrind --tool=callgrind' or 'strace -c -o FILE' (for profiling)")
    p.add_argument("--compare-agent", metavar="SECRETSHIMD",
                   help="row 2b against this other (older) agent binary too, interleaved: before/after")
    p.add_argument("--profile", metavar="DIR", help="record perf profiles of the agent for row 2 into DIR")
    p.add_argument("--counts", default="1,10,100,1000", help="secret counts of row 2 (default 1,10,100,1000)")
    p.add_argument("--sizes", default="64,65536", help="secret sizes of row 2 in bytes (default 64,65536)")
    p.add_argument("--keep", action="store_true", help="keep the work dir (agent.log) for a look")
    args = p.parse_args()
    if os.geteuid() != 0:
        print("SKIP: the benchmarks need root (runc, mounts)")
        return SKIP
    if shutil.which("runc") is None:
        print("SKIP: runc is not installed")
        return SKIP
    for prog in ("plugin/secretshimd", "plugin/secretshimctl", "plugin/secretshim-hook", "plugin/secretshim-runtime",
                 "bench/spawn_timer", "bench/prop_timer", "bench/scale_setup", "bench/noop"):
        if not os.access(os.path.join(args.build, prog), os.X_OK):
            print("bench: %s/%s is missing: build first (meson setup build && meson compile -C build)"
                  % (args.build, prog), file=sys.stderr)
            return 2
    rows = set(args.only.split(","))
    bench = Bench(args)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    status = 0
    try:
        bench.agent = Agent(bench.build, bench.work, args.agent_wrapper.split())
        if args.compare_agent:
            bench.other = Agent(bench.build, os.path.join(bench.work, "old"), binary=args.compare_agent)
        for only, row in ROWS:
            if rows & only:
                row.run(bench)
        if "5" in rows and args.docker:
            row5_docker.run(bench)
    except (RuntimeError, subprocess.CalledProcessError, OSError) as e:
        print("bench: %s" % e, file=sys.stderr)
        status = 1
    finally:
        print("secretshim benchmarks, %s" % started)
        print("machine: %s" % machine())
        print("command: %s" % " ".join(["bench/run.sh"] + sys.argv[1:]))
        print(bench.table.render())
        if "5" in rows and not args.docker and not args.quick:
            print("(Docker column skipped: run with --docker)")
        bench.cleanup()
    for f in bench.failures:
        print("FAILED: " + f)
    return 1 if bench.failures else status


if __name__ == "__main__":
    sys.exit(main())
