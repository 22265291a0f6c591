#!/usr/bin/env python3
"""Compares the files of an extracted package root with the expected list.

usage: check_files.py ROOT EXPECTED_LIST
Prints one line per missing or unexpected file; exits 1 if there is any.
"""
import fnmatch
import os
import sys


def main():
    root, listing = sys.argv[1:]
    patterns = []
    with open(listing) as f:
        patterns += [l.strip() for l in f if l.strip() and not l.startswith("#")]
    files = []
    for d, _, names in os.walk(root):
        for n in names:
            files.append(os.path.relpath(os.path.join(d, n), root))
    problems = []
    matched = set()
    for p in patterns:
        hits = [f for f in files if fnmatch.fnmatchcase(f, p)]
        if len(hits) != 1:
            problems.append(f"expected exactly one file for {p!r}, found {len(hits)}: {sorted(hits)}")
        matched.update(hits)
    for f in sorted(set(files) - matched):
        problems.append(f"unexpected file {f}")
    for p in problems:
        print(p)
    print(f"{len(files)} files, {len(patterns)} expected, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
