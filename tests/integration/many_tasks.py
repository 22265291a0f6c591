#!/usr/bin/env python3
"""Holds more running tasks than one 64 KiB reply of `task ls` can list,
then checks that secretshimctl lists them all (the agent pages the reply:
plugin/agent/task_list.hpp) and that they are all flushed when their
process exits. Used by hostile_runc.sh flood. Prints "key value" lines.

usage: many_tasks.py SOCKET SECRETSHIMCTL SECRET_NAME COUNT

The tasks are started over the hook's protocol for one sleeping child
process, with ids of 1000 characters: COUNT=80 makes about 80 KiB of JSON.
"""
import json
import os
import subprocess
import sys
import time

import agent_client

sock_path, ctl, secret, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
out = {}


def exchange(requests, fds):
    return agent_client.exchange(sock_path, requests, fds, timeout=10, stop_on_refusal=True)


def listed():
    r = subprocess.run([ctl, "--socket", sock_path, "task", "ls", "--format", "json"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    if r.returncode != 0:
        sys.stderr.write("task ls: " + r.stderr.decode(errors="replace"))
        return None
    return json.loads(r.stdout)


child = subprocess.Popen(["sleep", "300"])
try:
    pidfd = os.pidfd_open(child.pid)
    ids = ["many-%04d-" % i + "x" * 990 for i in range(count)]
    started = 0
    for task_id in ids:
        got = exchange([{"op": "create", "id": task_id, "secrets": secret, "identity": {"integration": "bundle"}},
                        {"op": "attached", "ok": True}], [pidfd])
        started += int(isinstance(got, dict) and got.get("ok") is True)
    out["started"] = started
    tasks = listed()
    out["json_bytes"] = len(json.dumps(tasks)) if tasks is not None else 0
    mine = sorted(t["id"] for t in tasks if t["id"].startswith("many-")) if tasks is not None else []
    out["listed"] = len(mine)
    out["listed_all_once"] = int(mine == sorted(ids))
    out["names_right"] = int(tasks is not None and all(t["secrets"] == [secret] for t in tasks
                                                       if t["id"].startswith("many-")))
    r = subprocess.run([ctl, "--socket", sock_path, "task", "ls"], stdout=subprocess.PIPE, check=False)
    out["table_rows"] = sum(1 for line in r.stdout.decode().splitlines() if line.startswith("many-"))
finally:
    child.kill()
    child.wait()
# The agent flushes every view when the process exits.
deadline = time.monotonic() + 30
left = -1
while time.monotonic() < deadline:
    tasks = listed()
    left = sum(1 for t in tasks if t["id"].startswith("many-")) if tasks is not None else -1
    if left == 0:
        break
    time.sleep(0.1)
out["left_after_exit"] = left
for k, v in out.items():
    print(k, v)
