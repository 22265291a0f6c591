#!/usr/bin/env python3
"""Searches a process's memory for marker strings, printing only whether
and where (region names) they were found, never the markers themselves.

usage: scan_memory.py PID MARKER...   exit 0: none found, 1: found, 2: error
"""
import re
import sys


def main():
    pid = int(sys.argv[1])
    markers = [m.encode() for m in sys.argv[2:]]
    found = []
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for line in maps:
            m = re.match(r"([0-9a-f]+)-([0-9a-f]+) (\S+)", line)
            start, end, perms = int(m.group(1), 16), int(m.group(2), 16), m.group(3)
            if perms[0] != "r" or line.rstrip().endswith("[vvar]") or line.rstrip().endswith("[vsyscall]"):
                continue
            # A sanitizer's shadow memory (14 TiB under ASan): reserved, never
            # application data, and too large to read in one piece.
            if end - start >= 1 << 40:
                continue
            try:
                mem.seek(start)
                data = mem.read(end - start)
            except OSError:
                continue
            for i, marker in enumerate(markers):
                if marker in data:
                    found.append(f"marker #{i + 1} in {line.split()[-1] if len(line.split()) > 5 else 'anonymous'} region")
    for f in found:
        print(f)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
