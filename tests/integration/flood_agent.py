#!/usr/bin/env python3
"""Floods the agent's socket as a hostile root client would; used by
hostile_runc.sh flood. Prints "key value" lines for the shell to check.

usage: flood_agent.py SOCKET READY_FILE

1. opens CONNECTIONS idle connections (more than the agent's cap), counts
   those the agent turned away at once as busy, writes READY_FILE and waits
   until the agent closed the rest (its first-request deadline);
2. then: oversized frames, frames split in two (SEQPACKET's half-sent
   frame: each half arrives as a malformed message), garbage with fds
   attached, a create whose pidfd is not a pidfd, creates left half-done
   (no "attached") and connection churn.
"""
import json
import os
import select
import socket
import sys
import time

from agent_client import receive as reply
import agent_client

ROOT = {"integration": "bundle"}  # the identity a hook sends for a bundle root wrote

CONNECTIONS = 200
sock_path, ready = sys.argv[1], sys.argv[2]


def connect():
    return agent_client.connect(sock_path)


def closes(s, timeout=5.0):
    """True once the agent closed the connection (EOF), draining replies."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = reply(s, end - time.monotonic())
        if got == "EOF":
            return True
        if got is None:
            return False
    return False


out = {}
# 1. The idle flood.
held, busy = [], 0
for _ in range(CONNECTIONS):
    held.append(connect())
time.sleep(0.3)
for s in held:
    r, _, _ = select.select([s], [], [], 0)
    if r:
        got = reply(s, 0.1)
        if isinstance(got, dict) and got.get("busy") is True and got.get("ok") is False and \
                got.get("error") == "the secretshim agent is busy: 128 connections open":
            busy += 1
out["busy_refused"] = busy
open(ready, "w").write("held\n")
# The agent closes the ones it kept once they stay silent past its
# first-request deadline (2 s): all 200 must be closed by then.
out["idle_closed"] = sum(closes(s, 10) for s in held)

# 2. Oversized frames: each over the agent's 64 KiB limit.
oversized_closed = 0
for _ in range(10):
    s = connect()
    try:
        s.send(b"{" + b" " * (100 * 1024) + b"}")
    except OSError:
        pass
    oversized_closed += closes(s)
    s.close()
out["oversized_closed"] = oversized_closed

# A frame cut in two: on a SEQPACKET socket each part is a message of its
# own, and neither is a JSON object. (Both parts on one connection would
# make the reply racy: a peer that closes with unread data resets the
# connection, and the reply may be lost.)
split_refused = 0
frame = json.dumps({"op": "create", "id": "split", "secrets": "s"}).encode()
for i in range(10):
    s = connect()
    s.send(frame[: len(frame) // 2] if i % 2 else frame[len(frame) // 2:])
    got = reply(s)
    if isinstance(got, dict) and got.get("error") == "malformed request":
        split_refused += 1
    else:
        print("split frame: unexpected reply", got, file=sys.stderr)
    s.close()
out["split_refused"] = split_refused

# Garbage and unknown requests with fds attached: the agent must close them.
null = os.open("/dev/null", os.O_RDONLY)
fds_refused = 0
for i in range(20):
    s = connect()
    payload = b"\xff{garbage" if i % 2 else json.dumps({"op": "nope"}).encode()
    socket.send_fds(s, [payload], [null] * 8)
    got = reply(s)
    fds_refused += isinstance(got, dict) and got.get("ok") is False
    s.close()

# A create whose "pidfd" is /dev/null.
s = connect()
socket.send_fds(s, [json.dumps({"op": "create", "id": "notpidfd", "secrets": "s", "identity": ROOT}).encode()], [null])
got = reply(s)
out["bad_pidfd_refused"] = int(isinstance(got, dict) and got.get("ok") is False and got.get("error") == "not a pidfd")
s.close()
os.close(null)
out["fds_refused"] = fds_refused

# Creates left half-done: the view is built and its mount fds sent, then
# no "attached" ever comes; some clients hang up, some stay silent.
pidfd = os.pidfd_open(os.getpid())
half = []
half_built = 0
for i in range(6):
    s = connect()
    socket.send_fds(s, [json.dumps({"op": "create", "id": f"half{i}", "secrets": "s", "identity": ROOT}).encode()],
                    [pidfd])
    got = reply(s)
    half_built += isinstance(got, dict) and got.get("ok") is True
    if i % 2:
        s.close()
    else:
        half.append(s)
out["half_built"] = half_built

# Every refusal of the protocol, with its exact line (docs/bad-inputs.md).
def exchange(messages, fds=()):
    """Sends each message on one connection; returns the last reply."""
    return agent_client.exchange(sock_path, messages, fds)


def refused(name, messages, fds, line, settle=0.0):
    """`settle`: seconds the line may take to become exact (a create
    abandoned by an earlier case is dropped by the agent once it sees that
    connection close, later under a sanitizer)."""
    deadline = time.monotonic() + settle
    while True:
        got = exchange(messages, fds)
        good = isinstance(got, dict) and got.get("ok") is False and got.get("error") == line
        if good or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    if not good:
        print(f"refusal {name}: got {got}", file=sys.stderr)
    out["refusal_" + name] = int(good)


create = {"op": "create", "id": "proto", "secrets": "s", "identity": ROOT}
refused("second_create", [create, create], [pidfd], "one create per connection")
refused("attached_first", [{"op": "attached", "ok": True}], [], "nothing to attach")
refused("no_id", [{"op": "create", "secrets": "s", "identity": ROOT}], [pidfd], "the request names no container")
refused("no_identity", [{"op": "create", "id": "who", "secrets": "s"}], [pidfd], "the request carries no identity")
refused("bad_identity", [{"op": "create", "id": "who", "secrets": "s", "identity": {"integration": "podman"}}],
        [pidfd], "the identity's name is missing or invalid")
refused("no_pidfd", [create], [], "the request carries no pidfd of the container")
many = ";".join(f"source=s,target=/t/{i}" for i in range(253))
refused("too_many_files", [{"op": "create", "id": "many", "secrets": many, "identity": ROOT}], [pidfd],
        "253 targets outside /run/secrets: at most 252 can be attached")
refused("bad_spec", [{"op": "create", "id": "spec", "secrets": "source=s,target=/proc/x", "identity": ROOT}], [pidfd],
        'secret spec "source=s,target=/proc/x": target "/proc/x" is under /proc')
refused("unknown_secret", [{"op": "create", "id": "unk", "secrets": "nope", "identity": ROOT}], [pidfd],
        'secret "nope" is not granted to a container started by root (bundle)')
# A running task, then a second create for the same container.
started = exchange([{"op": "create", "id": "dup", "secrets": "s", "identity": ROOT}, {"op": "attached", "ok": True}],
                   [pidfd])
out["task_started"] = int(isinstance(started, dict) and started.get("ok") is True)
refused("same_container", [{"op": "create", "id": "dup", "secrets": "s", "identity": ROOT}], [pidfd],
        'container "dup" already has its secrets')
refused("rm_in_use", [{"op": "secret.rm", "name": "s"}], [], 'secret "s" is in use by a running task ("dup")',
        settle=5.0)
out["released"] = int(exchange([{"op": "release", "id": "dup"}]) == {"ok": True})
refused("nul_in_id", [{"op": "create", "id": "a\0b", "secrets": "s", "identity": ROOT}], [pidfd],
        "the request's container id or bundle holds a NUL byte")

# The same container id in two containerd namespaces: two tasks, told apart
# by their bundles. A release names its task by id and bundle; one without a
# bundle (a hook older than bundles) flushes only when one task has that id.
def twins():
    got = exchange([{"op": "task.ls"}])
    if not isinstance(got, dict) or got.get("ok") is not True:
        return None
    return sorted(t["bundle"] for t in got["tasks"] if t["id"] == "twin")


NS1, NS2 = "/run/containerd/io.containerd.runtime.v2.task/ns1/twin", "/run/containerd/io.containerd.runtime.v2.task/ns2/twin"
steps = []
for b in (NS1, NS2):
    got = exchange([{"op": "create", "id": "twin", "bundle": b, "secrets": "s", "identity": ROOT},
                    {"op": "attached", "ok": True}], [pidfd])
    steps.append(isinstance(got, dict) and got.get("ok") is True)
steps.append(twins() == [NS1, NS2])
refused("same_key", [{"op": "create", "id": "twin", "bundle": NS1, "secrets": "s", "identity": ROOT}], [pidfd],
        'container "twin" already has its secrets')
for release, left in (({"id": "twin"}, [NS1, NS2]),                  # without a bundle, two: none
                      ({"id": "twin", "bundle": NS2}, [NS1]),        # its own only
                      ({"id": "twin", "bundle": NS2 + "x"}, [NS1]),  # no such task: none
                      ({"id": "twin"}, [])):                          # without a bundle, one: that one
    steps.append(exchange([dict(op="release", **release)]) == {"ok": True} and twins() == left)
if not all(steps):
    print("keyed release: steps", steps, file=sys.stderr)
out["keyed_release"] = int(all(steps))
refused("create_no_value", [{"op": "secret.create", "name": "n"}], [],
        "secret.create needs the value as a memfd")
devnull = os.open("/dev/null", os.O_RDONLY)
refused("create_not_memfd", [{"op": "secret.create", "name": "n"}], [devnull],
        'secret "n": the value is not a memfd')
os.close(devnull)
mem = os.memfd_create("v", os.MFD_ALLOW_SEALING)
os.write(mem, b"x")
refused("create_unsealed", [{"op": "secret.create", "name": "n"}], [mem],
        'secret "n": the value\'s memfd is not sealed')
os.close(mem)
refused("unknown_op", [{"op": "nope"}], [], 'unknown request "nope"')
refused("inspect_missing", [{"op": "secret.inspect", "name": "zz"}], [], 'secret "zz" not found')
refused("id_not_a_string", [{"op": "create", "id": 5, "secrets": "s", "identity": ROOT}], [pidfd],
        'malformed message: "id" is not a string')
refused("grants_not_strings", [{"op": "secret.create", "name": "n", "grants": [1]}], [],
        'malformed message: "grants" is not a list of strings')

# NRI: secretshim-nri announces a container (who the runtime says it is, what
# its pod asks for it); the hook's create then carries neither.
NRI = {"integration": "nri", "namespace": "tenant-a", "pod": "web", "pod_uid": "u1", "container": "app"}
refused("nri_identity_not_nri", [{"op": "nri.create", "id": "n1", "secrets": "s", "identity": ROOT}], [],
        "nri.create: the identity is not the runtime's (nri)")
refused("nri_not_granted", [{"op": "nri.create", "id": "n1", "secrets": "s", "identity": NRI}], [],
        'secret "s" is not granted to kubernetes pod tenant-a/web container app')
refused("nri_not_announced", [{"op": "create", "id": "n1", "nri": True}], [pidfd],
        "the runtime did not announce this container over NRI (is secretshim-nri running?)")
refused("nri_identity_from_hook", [{"op": "create", "id": "n1", "secrets": "s", "identity": NRI}], [pidfd],
        "an NRI container's identity comes from the runtime, not from its hook")
steps = [exchange([{"op": "secret.grant", "name": "s", "rule": "kubernetes,namespace=tenant-a"}]) == {"ok": True},
         exchange([{"op": "nri.create", "id": "n1", "secrets": "s", "identity": NRI}]) == {"ok": True}]
got = exchange([{"op": "create", "id": "n1", "nri": True}, {"op": "attached", "ok": True}], [pidfd])
steps.append(isinstance(got, dict) and got.get("ok") is True)
listed = exchange([{"op": "task.ls"}])
steps.append(isinstance(listed, dict) and [t["secrets"] for t in listed.get("tasks", []) if t["id"] == "n1"] == [["s"]])
# Started: the announcement has served (its record holds the identity now).
got = exchange([{"op": "create", "id": "n1", "bundle": "/elsewhere/n1", "nri": True}], [pidfd])
steps.append(isinstance(got, dict) and got.get("error") ==
             "the runtime did not announce this container over NRI (is secretshim-nri running?)")
steps.append(exchange([{"op": "nri.stop", "id": "n1"}]) == {"ok": True})
listed = exchange([{"op": "task.ls"}])
steps.append(isinstance(listed, dict) and not [t for t in listed.get("tasks", []) if t["id"] == "n1"])
# Stopped: announced no more.
got = exchange([{"op": "create", "id": "n1", "nri": True}], [pidfd])
steps.append(isinstance(got, dict) and got.get("ok") is False)
steps.append(exchange([{"op": "secret.revoke", "name": "s", "rule": "kubernetes,namespace=tenant-a"}]) == {"ok": True})
if not all(steps):
    print("nri: steps", steps, file=sys.stderr)
out["nri_task"] = int(all(steps))

# Churn: connect and hang up at once.
for _ in range(300):
    try:
        connect().close()
    except OSError:
        pass

out["half_closed"] = sum(closes(s, 12) for s in half)
for s in held + half:
    s.close()
os.close(pidfd)
for k, v in out.items():
    print(k, int(v))
