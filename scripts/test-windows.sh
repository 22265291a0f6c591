#!/bin/sh
# Cross-builds the project for Windows (the cross file cross/mingw-w64.txt)
# with mingw-w64 and runs its tests under wine, on Debian 12 as root.
# Installs what is missing with apt first. Ends with meson's test summary.
#   BUILD_DIR   build directory (default build-windows)
set -eu
cd "$(dirname "$0")/.."

wine=/usr/lib/wine/wine64
wineserver=/usr/lib/wine/wineserver
# Must match exe_wrapper in cross/mingw-w64.txt.
export WINEPREFIX=/tmp/secretshim-wine
export WINEDEBUG=-all

missing=
command -v x86_64-w64-mingw32-g++-posix >/dev/null 2>&1 || missing="$missing g++-mingw-w64-x86-64-posix"
[ -x "$wine" ] || missing="$missing wine64"
command -v meson >/dev/null 2>&1 || missing="$missing meson"
command -v ninja >/dev/null 2>&1 || missing="$missing ninja-build"
[ -f /usr/include/doctest/doctest.h ] || missing="$missing doctest-dev"
[ -f /usr/include/tl/expected.hpp ] || missing="$missing libexpected-dev"
[ -f /usr/include/nlohmann/json.hpp ] || missing="$missing nlohmann-json3-dev"
[ -f /usr/include/CLI/CLI.hpp ] || missing="$missing libcli11-dev"
# wine's bcrypt does AES-GCM through GnuTLS (a Recommends of libwine).
ls /usr/lib/x86_64-linux-gnu/libgnutls.so.30* >/dev/null 2>&1 || missing="$missing libgnutls30"
if [ -n "$missing" ]; then
    echo "installing:$missing"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# A fresh prefix takes ~8 s (up to ~25 s on a loaded machine); make it
# once, before any test runs. wineboot returns before the prefix's setup
# ends: wait for its wineserver to exit, or `wineserver -p` below finds it
# still running (and does not make it persistent), and the next program
# starts a second services.exe beside the first, each with its own service
# database (a service one process installed was then missing for another).
if [ ! -f "$WINEPREFIX/system.reg" ]; then
    echo "creating the wine prefix $WINEPREFIX"
    "$wine" wineboot --init >/dev/null 2>&1 || true
    "$wineserver" -w
fi
# One persistent wineserver for the whole run, warmed up by one program run
# alone: without that, the first test program of a fresh wineserver hung
# here every time (until meson's timeout).
"$wineserver" -p 2>/dev/null || true  # exits non-zero if one already runs
trap '"$wineserver" -k >/dev/null 2>&1 || true' EXIT
timeout 120 "$wine" cmd.exe /c exit 0

build=${BUILD_DIR:-build-windows}
[ -f "$build/build.ninja" ] || meson setup --cross-file cross/mingw-w64.txt "$build" >/dev/null
meson compile -C "$build"
meson test -C "$build" --print-errorlogs --num-processes 2
