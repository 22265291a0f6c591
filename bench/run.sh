#!/bin/sh
# One command for every benchmark: prints one table (see bench/README.md).
# usage: sh bench/run.sh [--quick] [--docker] [--build DIR] [--only 1,2,...] [--held N] ...
# Needs root, runc and a build (meson setup build && meson compile -C build).
# The bench is the package bench/shimbench; -B: no __pycache__ in the tree.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}" exec python3 -B -m shimbench "$@"
