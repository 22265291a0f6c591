#!/bin/sh
# Prints "VERSION (git COMMIT)" for a build from a git checkout of this very
# tree (COMMIT gets "-dirty" with uncommitted changes), for meson's
# vcs_tag(); fails otherwise, and vcs_tag then uses the bare version: a
# tarball, or the Debian package's build from an exported tree without
# .git (scripts/build-deb.sh), has no commit to report. A tree unpacked
# inside someone else's repository must not report theirs, hence the
# check that the repository's top is this tree.
# Usage: sh scripts/git-version.sh SOURCE_ROOT VERSION
set -eu
src=$1
version=$2
top=$(git -C "$src" rev-parse --show-toplevel 2>/dev/null)
[ "$(cd "$top" && pwd -P)" = "$(cd "$src" && pwd -P)" ]
commit=$(git -C "$src" describe --always --dirty --abbrev=7 --exclude='*' 2>/dev/null)
echo "$version (git $commit)"
