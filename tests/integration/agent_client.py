"""The agent's socket as the integration tests speak it: SOCK_SEQPACKET, one
JSON object per message, fds riding along with SCM_RIGHTS
(plugin/protocol/channel.hpp)."""
import json
import os
import select
import socket


def connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(path)
    return s


def receive(s, timeout=5.0):
    """The agent's next message as JSON, "EOF" when it closed, None on timeout.
    Fds that come with it are closed."""
    r, _, _ = select.select([s], [], [], timeout)
    if not r:
        return None
    try:
        data, fds, _, _ = socket.recv_fds(s, 1 << 17, 8)
    except (ConnectionResetError, BrokenPipeError):
        return "EOF"
    for fd in fds:
        os.close(fd)
    return json.loads(data) if data else "EOF"


def exchange(path, messages, fds=(), timeout=5.0, stop_on_refusal=False):
    """Sends each message on one connection (the fds with the first) and
    returns the last reply; with stop_on_refusal, the first that is not ok."""
    s = connect(path)
    got = None
    try:
        for i, m in enumerate(messages):
            socket.send_fds(s, [json.dumps(m).encode()], list(fds) if i == 0 else [])
            got = receive(s, timeout)
            if stop_on_refusal and not (isinstance(got, dict) and got.get("ok") is True):
                break
    finally:
        s.close()
    return got
