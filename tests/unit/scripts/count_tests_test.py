#!/usr/bin/env python3
"""scripts/count_tests.py on made-up meson logs: one "ok - " or "FAIL - " line per check.

usage: count_tests_test.py PATH/TO/count_tests.py
"""
import json
import os
import subprocess
import sys
import tempfile

script = sys.argv[1]
work = tempfile.mkdtemp(prefix="secretshim-count-tests-")
failures = 0


def doctest_out(cases, passed, failed, skipped):
    return ("[doctest] doctest version is \"2.4.9\"\n"
            f"[doctest] test cases: {cases:3} | {passed:3} passed | {failed} failed | {skipped} skipped\n"
            "[doctest] Status: SUCCESS!\n")


def log(name, *tests):
    """A testlog.json of (name, result, returncode, stdout) tuples; returns its path."""
    path = os.path.join(work, name + ".json")
    with open(path, "w") as f:
        for test, result, rc, out in tests:
            f.write(json.dumps({"name": test, "result": result, "returncode": rc, "stdout": out}) + "\n")
    return path


def count(*args, env=None):
    """(the closing line, every line, exit status) of count_tests.py ARGS."""
    run = subprocess.run([sys.executable, script, *args], capture_output=True, text=True,
                         env={**os.environ, "SECRETSHIM_REQUIRE_ALL": "", **(env or {})})
    lines = run.stdout.splitlines()
    return (lines[-1] if lines else run.stderr.strip()), run.stdout, run.returncode


def check(label, got, want):
    global failures
    if got == want:
        print(f"ok - {label}")
    else:
        failures += 1
        print(f"FAIL - {label}: got {got!r}, want {want!r}")


def line(*args, **kw):
    return count(*args, **kw)[0]


ok = log("ok", ("secret_ref", "OK", 0, doctest_out(28, 28, 0, 0)),
         ("runc_e2e", "OK", 0, "ok - a\nok - b\nok - c\n0 failure(s)\n"),
         ("bench_smoke", "OK", 0, "a table\n"))
check("doctest cases, script checks and a test without counts (one case)",
      line("--pass", "linux", "0", ok), "32 passed, 0 failed, 0 skipped")
check("all passed: exit status 0", count("--pass", "linux", "0", ok)[2], 0)

check("a pass without its log (setup or build failed, old log removed) is a failure",
      line("--pass", "linux", "0", ok, "--pass", "windows", "1", os.path.join(work, "none.json")),
      "32 passed, 1 failed, 0 skipped")
check("a failure exits 1",
      count("--pass", "windows", "1", os.path.join(work, "none.json"))[2], 1)
check("a pass that exited non-zero while every test passed is a failure",
      line("--pass", "linux", "2", ok), "32 passed, 1 failed, 0 skipped")

crashed = log("crashed", ("aes_gcm", "FAIL", -11, "[doctest] doctest version is \"2.4.9\"\n"))
check("an executable that crashed before its summary is one failure",
      line("--pass", "linux", "1", crashed), "0 passed, 1 failed, 0 skipped")
failed = log("failed", ("local_store", "FAIL", 1, doctest_out(10, 8, 2, 0)))
check("failed cases count, not the executable", line("--pass", "linux", "1", failed),
      "8 passed, 2 failed, 0 skipped")
leak = log("leak", ("node_key", "FAIL", 23, doctest_out(10, 10, 0, 0)))
check("a failure after a clean summary (a leak at exit) is one more failure",
      line("--pass", "sanitizers", "1", leak), "10 passed, 1 failed, 0 skipped")
timeout = log("timeout", ("hostile_runc_race", "TIMEOUT", -15, "ok - a\nok - b\n"))
check("a timeout after some checks passed", line("--pass", "linux", "1", timeout),
      "2 passed, 1 failed, 0 skipped")
script_failed = log("script_failed", ("podman_e2e", "FAIL", 1, "ok - a\nFAIL - b\nok - c\n1 failure(s)\n"))
check("a script's failed checks", line("--pass", "linux", "1", script_failed), "2 passed, 1 failed, 0 skipped")

expected_fail = log("xfail", ("odd", "EXPECTEDFAIL", 1, ""), ("odd2", "UNEXPECTEDPASS", 0, ""))
check("EXPECTEDFAIL and UNEXPECTEDPASS are failures (no test is should_fail)",
      line("--pass", "linux", "0", expected_fail), "0 passed, 2 failed, 0 skipped")

skips = log("skips", ("features", "SKIP", 77, "SKIP: privileged tests need root\n"),
            ("userns", "OK", 0, "SKIP: the kernel has no tmpfs noswap\n" + doctest_out(1, 0, 0, 1)),
            ("containerd_e2e", "SKIP", 77, "ok - a\nskip - crun via the wrapper: crun is not installed\n"))
check("an executable that exits 77, a skipped doctest case, a script's skipped check",
      line("--pass", "linux", "0", skips), "1 passed, 0 failed, 3 skipped")
check("skips alone exit 0 where they are allowed", count("--pass", "linux", "0", skips)[2], 0)
_, out, status = count("--pass", "linux", "0", skips, env={"SECRETSHIM_REQUIRE_ALL": "1"})
check("SECRETSHIM_REQUIRE_ALL=1: a skip exits 1", status, 1)
check("the skips are listed with their reasons", "the kernel has no tmpfs noswap" in out, True)
wine = log("wine", ("real_win_fs", "OK", 0, "SKIP: wine 8 creates no symbolic links\n" + doctest_out(10, 9, 0, 1)))
check("SECRETSHIM_REQUIRE_ALL=1: skips in a --may-skip pass are allowed",
      count("--pass", "windows", "0", wine, "--may-skip", "windows", env={"SECRETSHIM_REQUIRE_ALL": "1"})[2], 0)

reports = os.path.join(work, "sanitizer-logs")
os.makedirs(reports)
with open(os.path.join(reports, "asan.123"), "w") as f:
    f.write("=================================================================\n"
            "==123==ERROR: LeakSanitizer: detected memory leaks\n")
check("a sanitizer report file is a failure, though every test passed",
      line("--pass", "sanitizers", "1", ok, "--sanitizer-reports", "sanitizers", reports),
      "32 passed, 1 failed, 0 skipped")
ubsan = log("ubsan", ("runc_e2e", "OK", 0, "ok - a\nplugin/agent/agent.cpp:12:3: runtime error: signed integer "
                                           "overflow: 2147483647 + 1 cannot be represented in type 'int'\n"))
check("a UBSan report in a passing test's output is a failure",
      line("--pass", "sanitizers", "0", ubsan), "1 passed, 1 failed, 0 skipped")

check("the fuzzers, one case each", line("--pass", "linux", "0", ok, "--fuzz", "fuzzers: 5 passed, 0 failed"),
      "37 passed, 0 failed, 0 skipped")
check("fuzzers that did not report (their build failed) are a failure", line("--fuzz", ""),
      "0 passed, 1 failed, 0 skipped")

print(f"{failures} failed")
sys.exit(1 if failures else 0)
