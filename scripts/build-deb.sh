#!/bin/sh
# Builds the Debian package from this tree: exports the tree (without build
# directories) to a temporary directory, copies packaging/debian to debian/
# there, and runs dpkg-buildpackage -us -uc -b. Leaves secretshim_*.deb (and
# the .buildinfo, .changes and the build log) in OUTDIR, default the current
# directory.
# Usage: sh scripts/build-deb.sh [OUTDIR]
# Environment: JOBS (default 2), DEB_BUILD_OPTIONS (default "nocheck").
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
out=$(mkdir -p "${1:-.}" && cd "${1:-.}" && pwd)
version=$(dpkg-parsechangelog -l "$top/packaging/debian/changelog" -S Version)
work=$(mktemp -d /tmp/secretshim-deb-XXXXXX)
trap 'rm -rf "$work"' EXIT
src=$work/secretshim-$version
mkdir "$src"

# The working tree as it is (tracked and new files, not what .gitignore
# names: build directories); a plain copy without build* when there is no git.
if git -C "$top" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    (cd "$top" && git ls-files -z --cached --others --exclude-standard |
        xargs -0 sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh |
        tar --null -T - -cf -) | tar -C "$src" -xf -
else
    tar -C "$top" --exclude='./build*' --exclude='./.git' -cf - . | tar -C "$src" -xf -
fi
cp -r "$src/packaging/debian" "$src/debian"

jobs=${JOBS:-2}
(cd "$src" && DEB_BUILD_OPTIONS="${DEB_BUILD_OPTIONS:-nocheck} parallel=$jobs" \
    dpkg-buildpackage -us -uc -b) >"$work/build.log" 2>&1 || {
    tail -n 60 "$work/build.log" >&2
    echo "build-deb.sh: dpkg-buildpackage failed (log above)" >&2
    exit 1
}
cp "$work/build.log" "$out/secretshim_${version}_build.log"
for f in "$work"/*.deb "$work"/*.ddeb "$work"/*.buildinfo "$work"/*.changes; do
    [ -e "$f" ] && cp "$f" "$out/"
done
ls "$out"/secretshim_"$version"_*.deb
