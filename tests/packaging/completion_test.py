#!/usr/bin/env python3
"""secretshimctl's bash completion offers what the program has.

usage: completion_test.py COMPLETION_SCRIPT SECRETSHIMCTL

Walks secretshimctl's commands through --help, level by level, and for
each one loads the completion script in bash, sets COMP_WORDS and
COMP_CWORD as bash does at a <TAB>, and checks that the completion
function offers every subcommand (after the command) and every long
option (after the command and "--") that --help lists; also that it
completes --format's words and offers nothing that is no command. The
words are compared in code; no agent is needed (the secret names it asks
the agent for are not part of this).
Prints one line per problem; exits 1 if there is any.
"""
import re
import subprocess
import sys

BASH = r'''
source "$1" || exit 3
shift
f=$(complete -p secretshimctl 2>/dev/null) || { echo "no completion registered for secretshimctl" >&2; exit 4; }
f=${f#*-F }
f=${f%% *}
COMP_WORDS=("$@")
COMP_CWORD=$(($# - 1))
COMP_LINE="$*"
COMP_POINT=${#COMP_LINE}
COMPREPLY=()
"$f" secretshimctl "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
printf '%s\n' "${COMPREPLY[@]}"
'''


def complete(script, words):
    done = subprocess.run(["bash", "-c", BASH, "bash", script, "secretshimctl"] + words,
                          capture_output=True, text=True, timeout=30)
    if done.returncode != 0 or done.stderr:
        raise RuntimeError(f"completing {words}: rc {done.returncode}: {done.stderr.strip()}")
    return set(w for w in done.stdout.split("\n") if w)


def cli11_help(program, path):
    """The long options and the subcommands `program PATH --help` lists."""
    done = subprocess.run([program] + path + ["--help"], capture_output=True, text=True, timeout=30)
    options, subcommands, section = [], [], None
    for line in (done.stdout + done.stderr).splitlines():
        stripped = line.strip()
        if stripped.endswith(":") and (not line.startswith(" ") or stripped[:-1] in ("Options", "Subcommands")):
            section = stripped
            continue
        if not stripped:
            continue
        first = stripped.split()[0]
        if first.startswith("-"):
            options += [o for o in first.split(",") if o.startswith("--")]
        elif section == "Subcommands:" and re.match(r"^  \S", line):
            subcommands.append(first)
    return options, subcommands


def main():
    script, program = sys.argv[1:]
    problems = []
    pending, checked = [[]], 0
    while pending:
        path = pending.pop()
        options, subcommands = cli11_help(program, path)
        shown = " ".join(["secretshimctl"] + path)
        try:
            if subcommands:
                offered = complete(script, path + [""])
                for s in subcommands:
                    if s not in offered:
                        problems.append(f"'{shown} <TAB>' does not offer the command {s!r}")
                for w in offered - set(subcommands):
                    problems.append(f"'{shown} <TAB>' offers {w!r}, which --help does not list")
            offered = complete(script, path + ["--"])
            for o in options:
                if o not in offered:
                    problems.append(f"'{shown} --<TAB>' does not offer {o}")
            for w in offered - set(options):
                problems.append(f"'{shown} --<TAB>' offers {w}, which {shown} --help does not list")
            if "--format" in options and complete(script, path + ["--format", ""]) != {"table", "json"}:
                problems.append(f"'{shown} --format <TAB>' does not offer exactly table and json")
        except RuntimeError as e:
            problems.append(str(e))
        checked += 1
        pending += [path + [s] for s in subcommands]
    # An option's value is not taken for a command, nor a positional one.
    try:
        top = set(cli11_help(program, [])[1])
        if complete(script, ["--socket", "secret", ""]) != top:
            problems.append("'secretshimctl --socket secret <TAB>' took the socket's path for a command")
        create = set(cli11_help(program, ["secret", "create"])[0]) | {"--help"}
        if complete(script, ["secret", "create", "ls", "--"]) != create:
            problems.append("'secretshimctl secret create ls --<TAB>' took the secret's name for a command")
    except RuntimeError as e:
        problems.append(str(e))
    if checked < 20:
        problems.append(f"only {checked} commands found through --help (the test is stale)")
    for p in problems:
        print(p)
    print(f"{checked} commands checked, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
