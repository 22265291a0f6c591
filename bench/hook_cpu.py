#!/usr/bin/env python3
"""The hook's own CPU time with secrets, old binary vs new, interleaved.

usage: python3 bench/hook_cpu.py [--build DIR] [--old OLD_HOOK] [--secrets N] [--runs N]

Starts this tree's agent on a private socket with N secrets of 64 B, and a
stand-in for a container's init: `sleep` in a private mount namespace
(unshare -m), whose "rootfs" is a temp dir. Then runs the hook the way runc
does, with the OCI state on stdin: createRuntime (ask the agent, enter the
namespace, confine, attach the view) and poststop (release), for the new
hook and the old one alternately (A B B A ...), and prints the median and
p90 of each stage's CPU time (user + system, from wait4) and wall time.
The mounts pile up in the throwaway namespace and go with it. Needs root.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
from shimbench.bench import spawn_hook  # bench/shimbench, next to this script


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--build", default="build")
    p.add_argument("--old", help="an older secretshim-hook to compare with")
    p.add_argument("--secrets", type=int, default=10)
    p.add_argument("--runs", type=int, default=200)
    args = p.parse_args()
    new = os.path.abspath(os.path.join(args.build, "plugin", "secretshim-hook"))
    hooks = {"new": new}
    if args.old:
        hooks["old"] = os.path.abspath(args.old)
    work = tempfile.mkdtemp(prefix="secretshim-hookcpu-")
    agent = init = None
    try:
        sock = os.path.join(work, "agent.sock")
        agent = subprocess.Popen([os.path.join(args.build, "plugin", "secretshimd"), "--socket", sock,
                                  "--state-dir", os.path.join(work, "state")],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=open(os.path.join(work, "agent.log"), "w"))
        for _ in range(200):
            if os.path.exists(sock):
                break
            time.sleep(0.05)
        names = []
        for i in range(args.secrets):
            name = "hookcpu%d" % i
            subprocess.run([os.path.join(args.build, "plugin", "secretshimctl"), "--socket", sock, "secret",
                            "create", name, "-", "--grant", "root"], input=os.urandom(64), check=True,
                           stdout=subprocess.DEVNULL)
            names.append(name)
        rootfs = os.path.join(work, "rootfs")
        os.makedirs(os.path.join(rootfs, "run"))
        bundle = os.path.join(work, "bundle")
        os.makedirs(bundle)
        with open(os.path.join(bundle, "config.json"), "w") as f:
            json.dump({"ociVersion": "1.0.2", "root": {"path": rootfs},
                       "process": {"args": ["true"], "cwd": "/",
                                   "capabilities": {"bounding": ["CAP_KILL"]}}}, f)
        init = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sleep", "100000"])
        time.sleep(0.3)
        ann = ";".join(names)
        cpu = {k: {"createRuntime": [], "poststop": []} for k in hooks}
        wall = {k: {"createRuntime": [], "poststop": []} for k in hooks}
        order = list(hooks)
        warm = 5
        for i in range(args.runs + warm):
            for k in (order if i % 2 == 0 else order[::-1]):
                cid = "hookcpu-%s-%d" % (k, i)
                state = {"ociVersion": "1.0.2", "id": cid, "status": "creating", "pid": init.pid,
                         "bundle": bundle, "annotations": {"io.secretshim.secrets": ann}}
                for stage in ("createRuntime", "poststop"):
                    if stage == "poststop":
                        state = dict(state, status="stopped")
                        del state["pid"]
                    w, c = (x * 1e3 for x in spawn_hook(hooks[k], sock, stage, state))
                    if i >= warm:
                        cpu[k][stage].append(c)
                        wall[k][stage].append(w)
        print("hook with %d x 64 B secrets, %d runs each, load %s" % (args.secrets, args.runs,
                                                                     " ".join(open("/proc/loadavg").read().split()[:3])))
        for k in hooks:
            for stage in ("createRuntime", "poststop"):
                c, w = cpu[k][stage], wall[k][stage]
                print("%-4s %-13s CPU median %.3f p90 %.3f ms; wall median %.3f p90 %.3f ms"
                      % (k, stage, pct(c, 0.5), pct(c, 0.9), pct(w, 0.5), pct(w, 0.9)))
    finally:
        for proc in (init, agent):
            if proc and proc.poll() is None:
                proc.terminate()
                proc.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
