"""Helpers with no state: logging, sizes, /proc readings."""
import os
import sys

# The repository's root (bench/shimbench/util.py): scripts and tests the rows run.
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def log(msg):
    print("# " + msg, file=sys.stderr, flush=True)


def human(size):
    return "%d KiB" % (size // 1024) if size >= 1024 and size % 1024 == 0 else "%d B" % size


def meminfo(field):
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def machine():
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    load = open("/proc/loadavg").read().split()[:3]
    return "%s, %d cpus, kernel %s, %d MiB RAM, load %s" % (
        cpu, os.cpu_count(), os.uname().release, meminfo("MemTotal") // 1024, " ".join(load))
