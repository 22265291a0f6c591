#!/usr/bin/env python3
"""The man pages cannot drift from the programs.

usage: man_pages_test.py SOURCE_ROOT PROGRAM...

Each PROGRAM is a built program's path; its page is
packaging/man/<basename>.8. Checked, from what the program itself says:
* every long option its --help prints is the tag of an item (.TP) of its
  page, and appears in the page's SYNOPSIS;
* secretshimctl: every command --help lists, level by level (cluster,
  service, task and node commands included), is an item of the page, and
  each command's own options appear in that item; the global options are
  items of their own; every command is in the SYNOPSIS;
* secretshim-hook: every stage and --integration value of its usage is an
  item;
* secretshim-runtime (whose --help is the real runtime's): the options and
  environment variables its source reads are items;
* secretshim-nri: the environment variables its source reads are items;
* secretshimd: every configuration key the config parser knows
  (plugin/config) is an item, etcd's as etcd.KEY;
* each page has the sections an admin looks for.
Prints one line per problem; exits 1 if there is any.
"""
import os
import re
import subprocess
import sys

SECTIONS = ["NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXIT STATUS", "SEE ALSO"]
EXTRA_SECTIONS = {"secretshimd": ["CONFIGURATION", "SIGNALS", "FILES"]}
LONG_OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def plain(roff):
    """A roff line as the reader sees its words: no macro name, no font
    escapes, no quotes, hyphens as hyphens."""
    line = re.sub(r"^\.[A-Z]+\s*", "", roff)
    line = re.sub(r"\\f[BIRP]|\\f\(..|\\&|\\e", "", line)
    line = line.replace("\\-", "-").replace("\\(dq", '"').replace('"', "")
    return line


class Page:
    def __init__(self, path):
        with open(path) as f:
            self.lines = f.read().splitlines()
        self.sections = {}  # name -> list of plain lines
        self.items = []  # (section, tag text, body text)
        section = None
        i = 0
        while i < len(self.lines):
            line = self.lines[i]
            if line.startswith(".SH "):
                section = plain(line[4:]).strip()
                self.sections[section] = []
            elif section is not None:
                self.sections[section].append(plain(line))
            if line.startswith(".TP") and i + 1 < len(self.lines):
                body = []
                j = i + 2
                while j < len(self.lines) and not re.match(r"\.(TP|SH|SS)\b", self.lines[j]):
                    body.append(plain(self.lines[j]))
                    j += 1
                self.items.append((section, plain(self.lines[i + 1]).strip(), " ".join(body)))
            i += 1

    def tags(self):
        return [tag for _, tag, _ in self.items]

    def has_tag_word(self, word):
        pattern = re.compile(r"(?<![\w.-])" + re.escape(word) + r"(?![\w-])")
        return any(pattern.search(tag) for tag in self.tags())

    def section_text(self, name):
        return " ".join(self.sections.get(name, []))


def has_word(text, word):
    return re.search(r"(?<![\w.-])" + re.escape(word) + r"(?![\w-])", text) is not None


def run_help(program, args):
    done = subprocess.run([program] + args + ["--help"], capture_output=True, text=True, timeout=30)
    return done.stdout + done.stderr


def cli11_help(text):
    """The long options and the subcommands a CLI11 --help lists."""
    options, subcommands = [], []
    section = None
    for line in text.splitlines():
        stripped = line.strip()
        if not line.startswith(" ") and stripped.endswith(":"):
            section = stripped
            continue
        if stripped.endswith(":") and stripped[:-1] in ("Options", "Positionals", "Subcommands"):
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


def read(path):
    with open(path) as f:
        return f.read()


def check_program(source, program, problems):
    name = os.path.basename(program)
    page = Page(os.path.join(source, "packaging", "man", name + ".8"))

    def problem(line):
        problems.append(f"{name}.8: {line}")

    for section in SECTIONS + EXTRA_SECTIONS.get(name, []):
        if section not in page.sections:
            problem(f"no {section} section")
    synopsis = page.section_text("SYNOPSIS")

    if name == "secretshimctl":
        check_ctl(program, page, synopsis, problem)
        return
    if name == "secretshim-runtime":
        # Its --help is the real runtime's: what is its own is in its source.
        code = read(os.path.join(source, "plugin", "wrapper", "main.cpp"))
        options = sorted(set(o.rstrip("=") for o in re.findall(r'"(--[a-z][a-z0-9-]*=?)', code)))
        environment = sorted(set(re.findall(r'envOr\("([A-Z_]+)"', code)))
        if not options or not environment:
            problem("found no option or environment variable in plugin/wrapper/main.cpp (the test is stale)")
    else:
        options, _ = cli11_help(run_help(program, []))
        if name == "secretshim-hook":
            usage = run_help(program, [])
            options = LONG_OPTION.findall(usage)
            for alternatives in re.findall(r"[A-Za-z][A-Za-z-]*(?:\|[A-Za-z][A-Za-z-]*)+", usage):
                for word in alternatives.split("|"):
                    if not page.has_tag_word(word):
                        problem(f"{word!r} (secretshim-hook --help) is not an item (.TP) of the page")
        environment = []
        if name == "secretshim-nri":
            code = read(os.path.join(source, "plugin", "nri", "main.cpp"))
            environment = sorted(set(re.findall(r'(?:envOr|getenv)\("([A-Z_]+)"', code)))
    if not options:
        problem(f"{name} --help printed no option (the test is stale)")
    for option in sorted(set(options)):
        if not page.has_tag_word(option):
            problem(f"{option} ({name} --help) is not an item (.TP) of the page")
        if option != "--help" and not has_word(synopsis, option):
            problem(f"{option} ({name} --help) is not in the SYNOPSIS")
    for variable in environment:
        if not page.has_tag_word(variable):
            problem(f"the environment variable {variable} is not an item (.TP) of the page")
    if name == "secretshimd":
        config = os.path.join(source, "plugin", "config")
        keys = re.findall(r'key == "([a-z_]+)"', read(os.path.join(config, "agent_config.cpp")))
        keys += ["etcd." + k for k in re.findall(r'key == "([a-z_]+)"', read(os.path.join(config, "etcd_block.cpp")))]
        if len(keys) < 10:
            problem("found fewer than 10 configuration keys in plugin/config (the test is stale)")
        for key in sorted(set(keys)):
            if not page.has_tag_word(key):
                problem(f"the configuration key {key} is not an item (.TP) of the page")


def check_ctl(program, page, synopsis, problem):
    # The command tree, from --help at each level.
    commands = {}  # "secret create" -> its options
    pending = [[]]
    while pending:
        path = pending.pop()
        options, subcommands = cli11_help(run_help(program, path))
        if path:
            commands[" ".join(path)] = [o for o in options if o != "--help"]
        else:
            top = options
        pending += [path + [s] for s in subcommands]
    if len(commands) < 20 or not top:
        problem(f"secretshimctl --help listed {len(commands)} commands (the test is stale)")
    for option in sorted(set(top)):
        if not page.has_tag_word(option):
            problem(f"{option} (secretshimctl --help) is not an item (.TP) of the page")
        if option != "--help" and not has_word(synopsis, option):
            problem(f"{option} (secretshimctl --help) is not in the SYNOPSIS")
    # A command's item is the one whose tag starts with it; its text runs to
    # the next item.
    for command, options in sorted(commands.items()):
        leaf = not any(other.startswith(command + " ") for other in commands)
        if leaf and not re.search(r"(?<![\w-])" + re.escape(command) + r"(?![\w-])", synopsis):
            problem(f"{command!r} is not in the SYNOPSIS")
        entries = [tag + " " + body for _, tag, body in page.items
                   if re.match(re.escape(command) + r"(?![\w-])", tag)]
        if not entries:
            if leaf:
                problem(f"the command {command!r} is not an item (.TP) of the page")
            continue
        text = " ".join(entries)
        for option in options:
            if not has_word(text, option):
                problem(f"{option} (secretshimctl {command} --help) is not in the item of {command!r}")


def main():
    source, programs = sys.argv[1], sys.argv[2:]
    problems = []
    for program in programs:
        check_program(source, program, problems)
    for p in problems:
        print(p)
    print(f"{len(programs)} programs, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
