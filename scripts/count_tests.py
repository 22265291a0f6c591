#!/usr/bin/env python3
"""Restates every test pass as one line, "N passed, N failed, N skipped", of test cases.

A case is one check that passed, failed or did not run:
* in a doctest executable, a test case: its "[doctest] test cases: ..." summary;
* in a shell end-to-end script, a check: its "ok - ", "FAIL - " and "skip - " lines
  (tests/integration/lib.sh);
* a fuzzer is one case (--fuzz takes scripts/test-fuzz.sh's "fuzzers: N passed, N failed");
* any other test is one case, as meson saw it.
So that the line never says less failed than happened:
* a test that failed (exit status, crash, timeout) without reporting a failed case counts
  one failure: an executable that crashed before its summary, a leak found at exit;
* a test meson skipped (exit 77) without reporting a skipped case counts one skip;
* EXPECTEDFAIL and UNEXPECTEDPASS count as failures: no test is marked should_fail (a
  should_fail test that crashes "passes"; a test that expects an error checks for it);
* a pass without a log (its setup or build failed: its tests never ran) counts one failure
  (scripts/test.sh removes each log before its pass: an earlier run's is never counted),
  and so does a pass that exited non-zero while its log shows no failure;
* a sanitizer report counts one failure on top of the test's own results, as each report
  file in --sanitizer-reports NAME DIR (ASan and LSan write there) and each test whose
  output holds a report (g++'s UBSan runtime ignores log_path next to ASan's and writes
  to stderr): a report may come from a process whose exit status no test reads (an agent
  stopped in a script's cleanup).
Skips are for a machine that lacks something. With --require-all (the default when
SECRETSHIM_REQUIRE_ALL=1, which CI sets) a skip in a pass not named by --may-skip makes
the exit status 1: the CI machine has everything, so there everything must run.

usage: count_tests.py [--prefix WORD] [--pass NAME STATUS LOG]... [--fuzz LINE]
                      [--sanitizer-reports NAME DIR]... [--may-skip NAME]... [--require-all]
A pass is a meson test run: its name, its script's exit status and its testlog.json.
Prints what failed or was skipped, then the line. Exit status 1 if anything failed (or,
with --require-all, was skipped).
"""
import argparse
import json
import os
import re
import sys

DOCTEST = re.compile(r"^\[doctest\] test cases: *(\d+) \| *(\d+) passed \| *(\d+) failed \| *(\d+) skipped",
                     re.MULTILINE)
CHECK = {"passed": re.compile(r"^ok - ", re.MULTILINE),
         "failed": re.compile(r"^FAIL - ", re.MULTILINE),
         "skipped": re.compile(r"^skip - ", re.MULTILINE)}
# The lines that say why something was skipped: the executable's or the script's "SKIP: ..."
# (tests/support/skip.hpp prints one per skipped doctest case), a script's "skip - ...".
SKIP_REASON = re.compile(r"^(?:SKIP: |skip - )(.*)$", re.MULTILINE)
# The first line of a sanitizer's report.
SANITIZER_REPORT = re.compile(r"^.*(?:: runtime error: |ERROR: (?:Address|Leak|UndefinedBehavior)Sanitizer).*$",
                              re.MULTILINE)


class Counts:
    def __init__(self):
        self.passed = self.failed = self.skipped = 0
        self.failures = []  # what failed, one line each
        self.failed_in = {}  # pass name -> failed cases
        self.skips = {}     # pass name -> [(what was skipped, how many cases)]

    def fail(self, pass_name, what, n=1):
        self.failed += n
        self.failed_in[pass_name] = self.failed_in.get(pass_name, 0) + n
        self.failures.append(f"{pass_name}: {what}")

    def skip(self, pass_name, what, n=1):
        self.skipped += n
        self.skips.setdefault(pass_name, []).append((what, n))

    def exited(self, pass_name, status):
        """A pass's exit status: non-zero must show as a failure in the line."""
        if status != 0 and self.failed_in.get(pass_name, 0) == 0:
            self.fail(pass_name, f"exited with status {status}, yet none of its tests failed")


def count_test(counts, pass_name, test):
    """Adds one meson test result (a line of testlog.json)."""
    name, result = test["name"], test["result"]
    out = (test.get("stdout") or "") + (test.get("stderr") or "")
    passed = failed = skipped = 0
    for m in DOCTEST.finditer(out):
        passed += int(m.group(2))
        failed += int(m.group(3))
        skipped += int(m.group(4))
    passed += len(CHECK["passed"].findall(out))
    failed += len(CHECK["failed"].findall(out))
    skipped += len(CHECK["skipped"].findall(out))
    reasons = "; ".join(SKIP_REASON.findall(out)) or "no reason printed"

    if result == "OK":
        if passed + failed + skipped == 0:
            passed = 1  # a test that reports no cases is one
        why = "exited 0"
    elif result == "SKIP":
        skipped = max(skipped, 1)
        why = "exited 77 (skip)"
    else:
        # FAIL, TIMEOUT, ERROR, INTERRUPT; EXPECTEDFAIL and UNEXPECTEDPASS (see above).
        why = f"{result}, exit status {test.get('returncode')}"
        if result in ("EXPECTEDFAIL", "UNEXPECTEDPASS"):
            why += "; no test may be should_fail"
        if failed == 0:
            failed = 1
            why += ", with no failed case reported (a crash, a timeout, or a failure after its summary)"
    counts.passed += passed
    if failed:
        counts.fail(pass_name, f"{name}: {failed} failed case(s) ({why})", failed)
    if skipped:
        counts.skip(pass_name, f"{name}: {skipped} skipped ({reasons})", skipped)
    report = SANITIZER_REPORT.search(out)
    if report:
        counts.fail(pass_name, f"{name}: a sanitizer report in its output: {report.group(0).strip()[:200]}")


def count_log(counts, name, log):
    if not os.path.exists(log):
        counts.fail(name, f"no test log {log}: its setup or build failed, or it never ran")
        return
    with open(log, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.strip():
                count_test(counts, name, json.loads(line))


def count_sanitizer_reports(counts, name, directory):
    if not os.path.isdir(directory):
        return
    for entry in sorted(os.listdir(directory)):
        path = os.path.join(directory, entry)
        if not os.path.isfile(path):
            continue
        with open(path, encoding="utf-8", errors="replace") as f:
            report = SANITIZER_REPORT.search(f.read())
        headline = report.group(0).strip()[:200] if report else "see the file"
        counts.fail(name, f"sanitizer report {path}: {headline}")


def main():
    parser = argparse.ArgumentParser(usage=__doc__.split("usage: ")[1].split("\nA pass")[0])
    parser.add_argument("--prefix", default="")
    parser.add_argument("--pass", dest="passes", nargs=3, action="append", default=[],
                        metavar=("NAME", "STATUS", "LOG"))
    parser.add_argument("--fuzz")
    parser.add_argument("--sanitizer-reports", nargs=2, action="append", default=[], metavar=("NAME", "DIR"))
    parser.add_argument("--may-skip", action="append", default=[], metavar="NAME")
    parser.add_argument("--require-all", action="store_true",
                        default=os.environ.get("SECRETSHIM_REQUIRE_ALL") == "1")
    args = parser.parse_args()

    counts = Counts()
    for name, _, log in args.passes:
        count_log(counts, name, log)
    for name, directory in args.sanitizer_reports:
        count_sanitizer_reports(counts, name, directory)
    if args.fuzz is not None:
        m = re.search(r"(\d+) passed, (\d+) failed", args.fuzz)
        if m:
            counts.passed += int(m.group(1))
            if int(m.group(2)):
                counts.fail("fuzzers", args.fuzz, int(m.group(2)))
        else:
            counts.fail("fuzzers", f"no result line ({args.fuzz!r})")
    for name, status, _ in args.passes:
        counts.exited(name, int(status))

    prefix = f"{args.prefix}: " if args.prefix else ""
    for what in counts.failures:
        print(f"{prefix}failed: {what}")
    required_skips = 0
    for name, skips in counts.skips.items():
        for what, n in skips:
            print(f"{prefix}skipped: {name}: {what}")
            if name not in args.may_skip:
                required_skips += n
    if args.require_all and required_skips:
        print(f"{prefix}SECRETSHIM_REQUIRE_ALL: {required_skips} test(s) skipped where everything must run")
    print(f"{prefix}{counts.passed} passed, {counts.failed} failed, {counts.skipped} skipped")
    return 1 if counts.failed or (args.require_all and required_skips) else 0


if __name__ == "__main__":
    sys.exit(main())
