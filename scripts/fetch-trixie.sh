#!/bin/sh
# Downloads Debian 13 (trixie) packages and unpacks them into a cache, for the
# tests that need newer software than Debian 12 has (containerd 1.7 with NRI).
# The system's apt configuration, lists and caches are left alone: apt reads a
# private sources file and keeps its lists and caches in the cache directory.
# Mirror and keyring are the system's own, so this works wherever the machine's
# apt does (including a local mirror), with the suite switched to trixie.
#
#   fetch-trixie.sh PKG...   fetch and unpack PKG..., print the root directory
#
# Cache: SECRETSHIM_TRIXIE_CACHE (default /var/cache/secretshim-trixie).
#   <cache>/root          every package unpacked here (dpkg -x, not installed)
#   <cache>/debs          the downloaded .deb files
#   <cache>/unpacked/PKG  marks PKG as unpacked; with every PKG marked, the
#                         script does nothing and makes no network access
# Binaries in <cache>/root run from there (containerd 1.7 needs libc6 >= 2.34,
# Debian 12 has 2.36); nothing is on PATH or in the dynamic linker's path.
set -eu

[ $# -gt 0 ] || { echo "usage: $0 PKG..." >&2; exit 2; }
cache=${SECRETSHIM_TRIXIE_CACHE:-/var/cache/secretshim-trixie}
root=$cache/root

missing=""
for p in "$@"; do
    [ -e "$cache/unpacked/$p" ] || missing="$missing $p"
done
if [ -z "$missing" ]; then
    echo "$root"
    exit 0
fi

apt=$cache/apt
mkdir -p "$apt/sources.list.d" "$apt/lists/partial" "$apt/cache/archives/partial" \
    "$cache/debs" "$cache/unpacked" "$root"

# The system's main Debian archive entry: the URIs and keyring of the stanza
# whose Suites name the release itself (not -updates or -security). deb822
# first; a one-line sources.list as the fallback.
system_entry() {
    codename=$(sed -n 's/^VERSION_CODENAME=//p' /etc/os-release)
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -r "$f" ] || continue
        awk -v rel="$codename" '
            function flush() {
                if (uris != "" && suites ~ ("(^| )" rel "( |$)")) {
                    print uris "|" comps "|" keys; found = 1; exit
                }
                uris = suites = comps = keys = ""
            }
            /^[ \t]*$/ { flush(); next }
            /^#/ { next }
            { k = $1; sub(/:$/, "", k); $1 = ""; sub(/^ +/, "") }
            k == "URIs" { uris = $0 }
            k == "Suites" { suites = $0 }
            k == "Components" { comps = $0 }
            k == "Signed-By" { keys = $0 }
            END { if (!found) flush() }
        ' "$f"
    done | head -n 1
}
entry=$(system_entry)
if [ -z "$entry" ] && [ -r /etc/apt/sources.list ]; then
    # deb [signed-by=KEY] URI SUITE COMPONENT...
    entry=$(awk '$1 == "deb" {
        keys = ""; i = 2
        if ($2 ~ /^\[/) {
            for (; i <= NF; i++) {
                if ($i ~ /^\[?signed-by=/) { keys = $i; sub(/^\[?signed-by=/, "", keys); sub(/\]$/, "", keys) }
                if ($i ~ /\]$/) { i++; break }
            }
        }
        if ($(i + 1) ~ /-(security|updates|backports)$/) next
        comps = ""
        for (j = i + 2; j <= NF; j++) comps = comps (comps == "" ? "" : " ") $j
        print $i "|" comps "|" keys; exit
    }' /etc/apt/sources.list)
fi
[ -n "$entry" ] || { echo "$0: no Debian archive entry in /etc/apt/sources.list{,.d}" >&2; exit 1; }
uris=${entry%%|*}
rest=${entry#*|}
comps=${rest%%|*}
keys=${rest#*|}
{
    echo "Types: deb"
    echo "URIs: $uris"
    echo "Suites: trixie"
    echo "Components: ${comps:-main}"
    echo "Signed-By: ${keys:-/usr/share/keyrings/debian-archive-keyring.gpg}"
} >"$apt/sources.list.d/trixie.sources"

# Lists and caches private; the sandbox user off because _apt may not be able
# to enter the cache directory (apt would warn and download as root anyway).
apt_private() {
    apt-get -q -o Dir::Etc::sourcelist=/dev/null -o "Dir::Etc::sourceparts=$apt/sources.list.d" \
        -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache" \
        -o APT::Sandbox::User=root "$@"
}
# An unreachable mirror makes apt print many lines and, without Error-Mode=any,
# still exit 0: say it in one line (the log keeps the details).
if ! apt_private -o APT::Update::Error-Mode=any update >"$apt/update.log" 2>&1 ||
    ! ls "$apt/lists/"*_trixie_*Packages* >/dev/null 2>&1; then
    echo "$0: cannot fetch the trixie package lists from $uris (details: $apt/update.log)" >&2
    exit 1
fi
for p in $missing; do rm -f "$cache/debs/${p}_"*.deb; done
# shellcheck disable=SC2086
if ! (cd "$cache/debs" && apt_private download $missing) >"$apt/download.log" 2>&1; then
    echo "$0: cannot download$missing from trixie (details: $apt/download.log)" >&2
    exit 1
fi
for p in $missing; do
    for deb in "$cache/debs/${p}_"*.deb; do dpkg -x "$deb" "$root"; done
    echo "${deb##*/}" >"$cache/unpacked/$p"
done
echo "$root"
