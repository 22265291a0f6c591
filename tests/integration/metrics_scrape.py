#!/usr/bin/env python3
"""The agent's metrics page, for metrics_e2e.sh: scrapes it, checks it with
prometheus_client's own parser, and reads samples out of it.

usage:
  metrics_scrape.py get URL FILE         GET URL; FILE gets the body; prints
                                         "STATUS CONTENT-TYPE"
  metrics_scrape.py post URL             POST URL; prints the status
  metrics_scrape.py check FILE           exit 0 if the page parses and every
                                         histogram is well formed, else one
                                         line saying what is wrong
  metrics_scrape.py value FILE NAME [K=V...]
                                         the sample's value ("absent" if none)
  metrics_scrape.py idle HOST PORT N SECONDS
                                         holds N connections open sending
                                         nothing; prints how many the agent
                                         closed within SECONDS
  metrics_scrape.py extra HOST PORT      one connection more: prints "closed"
                                         if the agent closes it unanswered
                                         within 2 s, else "open"
Run with Debian's /usr/bin/python3 (python3-prometheus-client).
"""
import socket
import sys
import time
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def get(url, path):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            status, ctype, body = r.status, r.headers.get("Content-Type", ""), r.read()
    except urllib.error.HTTPError as e:
        status, ctype, body = e.code, e.headers.get("Content-Type", ""), e.read()
    with open(path, "wb") as f:
        f.write(body)
    print(status, ctype)


def post(url):
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=b"", method="POST"), timeout=5) as r:
            print(r.status)
    except urllib.error.HTTPError as e:
        print(e.code)


def families(path):
    with open(path) as f:
        return list(text_string_to_metric_families(f.read()))


def check(path):
    text = open(path).read()
    try:
        fams = families(path)
    except Exception as e:  # the parser's own complaint
        print("does not parse: %s" % e)
        return 1
    for fam in fams:
        if not fam.documentation:
            print("%s has no HELP" % fam.name)
            return 1
        if "# TYPE %s" % fam.name not in text and "# TYPE %s_total" % fam.name not in text:
            print("%s has no TYPE" % fam.name)
            return 1
        if fam.type != "histogram":
            continue
        buckets = [s for s in fam.samples if s.name.endswith("_bucket")]
        count = [s.value for s in fam.samples if s.name.endswith("_count")]
        bounds = [float(s.labels["le"]) for s in buckets]
        values = [s.value for s in buckets]
        if bounds != sorted(bounds) or not bounds or bounds[-1] != float("inf"):
            print("%s: bounds not increasing up to +Inf: %s" % (fam.name, bounds))
            return 1
        if values != sorted(values):
            print("%s: buckets not cumulative: %s" % (fam.name, values))
            return 1
        if count != [values[-1]]:
            print("%s: _count %s is not the +Inf bucket %s" % (fam.name, count, values[-1]))
            return 1
    return 0


def value(path, name, wanted):
    labels = dict(kv.split("=", 1) for kv in wanted)
    for fam in families(path):
        for s in fam.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                v = s.value
                print(int(v) if v == int(v) else v)
                return 0
    print("absent")
    return 0


def idle(host, port, n, seconds):
    conns = [socket.create_connection((host, int(port)), timeout=2) for _ in range(int(n))]
    deadline = time.monotonic() + float(seconds)
    closed = set()
    for c in conns:
        c.setblocking(False)
    while time.monotonic() < deadline and len(closed) < len(conns):
        for i, c in enumerate(conns):
            if i in closed:
                continue
            try:
                if c.recv(1) == b"":
                    closed.add(i)
            except BlockingIOError:
                pass
            except OSError:
                closed.add(i)
        time.sleep(0.05)
    print(len(closed))


def extra(host, port):
    c = socket.create_connection((host, int(port)), timeout=2)
    try:
        print("closed" if c.recv(1) == b"" else "open")
    except socket.timeout:
        print("open")
    except OSError:
        print("closed")


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "get":
        get(*args)
    elif cmd == "post":
        post(*args)
    elif cmd == "check":
        return check(*args)
    elif cmd == "value":
        return value(args[0], args[1], args[2:])
    elif cmd == "idle":
        idle(*args)
    elif cmd == "extra":
        extra(*args)
    else:
        print("unknown command " + cmd)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
