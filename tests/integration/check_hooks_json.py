#!/usr/bin/env python3
"""Checks a secretshim hooks.d file the way Podman 4.3 / CRI-O load it
(pkg/hooks/1.0.0): one invalid file in a hooks directory makes every
container on the node fail to start, so the packaged file is checked here.

usage: check_hooks_json.py podman|cri-o FILE [EXPECTED_HOOK_PATH]
The first argument is the integration the file is for: Podman's file runs
the hook with --integration podman for the plain annotations; CRI-O's with
--integration cri-o for the per-container ones (io.secretshim.secrets.NAME).
Prints one "ok - ..." or "FAIL - ..." line per check; exits 1 on a failure.
"""
import json
import os
import re
import sys

STAGES = {"prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"}


def main():
    integration, path = sys.argv[1], sys.argv[2]
    expected_path = sys.argv[3] if len(sys.argv) > 3 else None
    failures = 0

    def check(name, cond):
        nonlocal failures
        print(("ok - " if cond else "FAIL - ") + name)
        failures += 0 if cond else 1
        return cond

    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        print(f"FAIL - {path} is not valid JSON: {e}")
        return 1
    check("hooks.d: a JSON object", isinstance(doc, dict))
    check("hooks.d: version 1.0.0", doc.get("version") == "1.0.0")
    check("hooks.d: only the keys of the 1.0.0 schema",
          set(doc) <= {"version", "hook", "when", "stages"})
    hook = doc.get("hook", {})
    check("hooks.d: hook.path is absolute", isinstance(hook.get("path"), str) and hook["path"].startswith("/"))
    check("hooks.d: hook.path is the hook", str(hook.get("path", "")).endswith("/secretshim/secretshim-hook"))
    if expected_path:
        check("hooks.d: hook.path is the installed hook " + expected_path, hook.get("path") == expected_path)
    args = hook.get("args", [])
    check("hooks.d: args are strings, stage 'auto' last",
          isinstance(args, list) and all(isinstance(a, str) for a in args) and args[-1:] == ["auto"])
    check(f"hooks.d: the hook is told --integration {integration}",
          any(args[i:i + 2] == ["--integration", integration] for i in range(len(args))))
    check("hooks.d: a positive integer timeout",
          isinstance(hook.get("timeout"), int) and hook["timeout"] > 0)
    stages = doc.get("stages", [])
    check("hooks.d: stages createRuntime and poststop", sorted(stages) == ["createRuntime", "poststop"])
    check("hooks.d: only OCI stages", set(stages) <= STAGES)
    when = doc.get("when", {})
    check("hooks.d: only annotation conditions (never always: the hook runs for every container)",
          set(when) == {"annotations"} and not when.get("always"))
    patterns = when.get("annotations", {})
    compiled = []
    try:
        compiled = [(re.compile(k), re.compile(v)) for k, v in patterns.items()]
        check("hooks.d: every annotation regex compiles", bool(compiled))
    except re.error as e:
        check(f"hooks.d: every annotation regex compiles ({e})", False)

    def matches(annotations):
        # Podman: the hook applies when any annotation's key and value both
        # match one pair of patterns (Go's regexp.MatchString: a search).
        return any(k.search(key) and v.search(value)
                   for key, value in annotations.items() for k, v in compiled)

    if integration == "podman":
        check("hooks.d: matches io.secretshim.secrets", matches({"io.secretshim.secrets": "db_pass"}))
        check("hooks.d: matches io.secretshim.task", matches({"io.secretshim.task": "web.1"}))
        check("hooks.d: not other annotations",
              not matches({"io.secretshim.secretsx": "a", "xio.secretshim.task": "a", "io.other": "x",
                           "run.oci.hooks.stderr": "/x"}))
        check("hooks.d: matches an empty value too", matches({"io.secretshim.secrets": ""}))
    else:
        # A pod's containers ask by name. The plain keys (which would reach
        # every container of the pod) start the hook too, which refuses them.
        check("hooks.d: matches io.secretshim.secrets.<container>", matches({"io.secretshim.secrets.app": "db"}))
        check("hooks.d: matches io.secretshim.task.<container>", matches({"io.secretshim.task.app-2": "t"}))
        check("hooks.d: matches the plain keys (for the hook to refuse them)",
              matches({"io.secretshim.secrets": "a"}) and matches({"io.secretshim.task": "a"}))
        check("hooks.d: not other annotations",
              not matches({"io.secretshim.secrets.": "a", "io.other": "x", "io.secretshim.secrets.a/b": "x",
                           "io.secretshim.secretsx": "a"}))
        check("hooks.d: matches an empty value too", matches({"io.secretshim.secrets.app": ""}))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
