#!/usr/bin/env python3
"""Restates meson test logs as one plain line, "N passed, N failed, N skipped".

usage: count_tests.py [--prefix WORD] [--extra "N passed, N failed"] TESTLOG.json...
A log that does not exist counts as one failure (that suite never ran);
--extra adds counts from a runner that is not meson (the fuzzers).
"""
import argparse
import json
import os
import re

parser = argparse.ArgumentParser()
parser.add_argument("--prefix", default="")
parser.add_argument("--extra", default="")
parser.add_argument("logs", nargs="*")
args = parser.parse_args()

passed = failed = skipped = 0
m = re.search(r"(\d+) passed, (\d+) failed", args.extra)
if m:
    passed, failed = int(m.group(1)), int(m.group(2))
for log in args.logs:
    if not os.path.exists(log):
        failed += 1
        continue
    for line in open(log):
        result = json.loads(line)["result"]
        if result in ("OK", "EXPECTEDFAIL"):
            passed += 1
        elif result == "SKIP":
            skipped += 1
        else:  # FAIL, TIMEOUT, ERROR, UNEXPECTEDPASS
            failed += 1
prefix = f"{args.prefix}: " if args.prefix else ""
print(f"{prefix}{passed} passed, {failed} failed, {skipped} skipped")
