#!/usr/bin/env python3
"""What --version prints, and where the commit in it comes from.

usage: version_test.py SOURCE_ROOT VERSION PROGRAM...

* Each PROGRAM's --version prints "NAME VERSION (git COMMIT)" when
  SOURCE_ROOT is a git checkout of its own (COMMIT being its HEAD, with
  "-dirty" or not), else "NAME VERSION"; secretshim-runtime then runs the
  real runtime's --version, whose lines follow, and installed as "runc" it
  prints the real runtime's alone.
* scripts/git-version.sh, which meson's vcs_tag() runs, reports a commit
  only for a tree that is the top of its own repository: it fails (and
  vcs_tag falls back to the bare version) for a tree without git, and for a
  tree unpacked inside another repository, which must not report that
  repository's commit.
Prints one line per problem; exits 1 if there is any.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile


def run(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=60, **kw)


def git(cwd, *args):
    return run(["git", "-C", cwd, "-c", "user.name=t", "-c", "user.email=t@example.invalid",
                "-c", "commit.gpgsign=false"] + list(args), check=True).stdout.strip()


def own_checkout(source):
    top = run(["git", "-C", source, "rev-parse", "--show-toplevel"])
    return top.returncode == 0 and os.path.realpath(top.stdout.strip()) == os.path.realpath(source)


def check_programs(source, version, programs, problems, scratch):
    head = run(["git", "-C", source, "rev-parse", "HEAD"]).stdout.strip() if own_checkout(source) else None
    line = re.compile(r"^(?P<name>[a-z-]+) (?P<version>\d+\.\d+\.\d+)( \(git (?P<commit>[0-9a-f]{7,40})(-dirty)?\))?$")
    # The wrapper runs the real runtime's --version after its own line.
    fake = os.path.join(scratch, "fake-runtime")
    with open(fake, "w") as f:
        f.write("#!/bin/sh\necho \"fake-runtime $*\"\n")
    os.chmod(fake, 0o755)
    for program in programs:
        name = os.path.basename(program)
        env = dict(os.environ, SECRETSHIM_RUNTIME=fake)
        done = run([program, "--version"], env=env)
        lines = done.stdout.splitlines()
        if done.returncode != 0 or not lines:
            problems.append(f"{name} --version: rc {done.returncode}, stdout {done.stdout!r}, stderr {done.stderr!r}")
            continue
        m = line.match(lines[0])
        if not m or m["name"] != name or m["version"] != version:
            problems.append(f"{name} --version printed {lines[0]!r}, expected {name!r} {version!r} and the commit")
            continue
        if head and not (m["commit"] and head.startswith(m["commit"])):
            problems.append(f"{name} --version printed {lines[0]!r}: the source is a git checkout at {head[:12]}")
        if not head and m["commit"]:
            problems.append(f"{name} --version printed {lines[0]!r}: the source is no git checkout of its own")
        expected_rest = ["fake-runtime --version"] if name == "secretshim-runtime" else []
        if lines[1:] != expected_rest:
            problems.append(f"{name} --version: then {lines[1:]!r}, expected {expected_rest!r}")
        print(f"{name}: {lines[0]}")
        if name == "secretshim-runtime":
            # Installed as "runc", it is the real runtime's --version alone.
            as_runc = os.path.join(scratch, "runc")
            os.symlink(os.path.abspath(program), as_runc)
            done = run([as_runc, "--version"], env=env)
            if done.returncode != 0 or done.stdout != "fake-runtime --version\n":
                problems.append(f"the wrapper installed as runc: --version printed {done.stdout!r}, "
                                f"expected only the real runtime's line")


def check_script(source, problems, scratch):
    script = os.path.join(source, "scripts", "git-version.sh")

    def tag(tree):
        done = run(["sh", script, tree, "1.2.3"])
        return done.stdout.strip() if done.returncode == 0 else None

    plain = os.path.join(scratch, "plain")  # a tarball: no git anywhere above (/tmp is no repository)
    os.makedirs(plain)
    if run(["git", "-C", plain, "rev-parse", "--show-toplevel"]).returncode == 0:
        problems.append(f"{scratch} is inside a git repository: the test needs a scratch directory outside one")
        return
    if (got := tag(plain)) is not None:
        problems.append(f"a tree without git reported {got!r}")

    own = os.path.join(scratch, "own")
    os.makedirs(own)
    git(own, "init", "-q")
    with open(os.path.join(own, "f"), "w") as f:
        f.write("1\n")
    git(own, "add", "f")
    git(own, "commit", "-q", "-m", "one")
    commit = git(own, "rev-parse", "--short=7", "HEAD")
    if (got := tag(own)) != f"1.2.3 (git {commit})":
        problems.append(f"a clean checkout reported {got!r}, expected '1.2.3 (git {commit})'")
    with open(os.path.join(own, "f"), "w") as f:
        f.write("2\n")
    if (got := tag(own)) != f"1.2.3 (git {commit}-dirty)":
        problems.append(f"a changed checkout reported {got!r}, expected '1.2.3 (git {commit}-dirty)'")

    inner = os.path.join(own, "unpacked", "secretshim-1.2.3")  # a tarball unpacked in someone's repository
    os.makedirs(inner)
    if (got := tag(inner)) is not None:
        problems.append(f"a tree inside another repository reported that repository's commit: {got!r}")


def main():
    source, version, programs = sys.argv[1], sys.argv[2], sys.argv[3:]
    problems = []
    scratch = tempfile.mkdtemp(prefix="secretshim-version-")
    try:
        check_programs(source, version, programs, problems, scratch)
        check_script(source, problems, scratch)
    finally:
        shutil.rmtree(scratch)
    for p in problems:
        print(p)
    print(f"{len(programs)} programs, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
