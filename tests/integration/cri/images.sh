#!/bin/sh
# images.sh WORK SOCK: build the two test images offline with buildah (vfs
# storage private to WORK/buildah) from busybox-static and import them into
# the containerd listening on SOCK, namespace k8s.io (where CRI sees them):
#   localhost/secretshim-pause:latest    /pause: sleeps until SIGTERM/SIGINT
#                                        (StopPodSandbox sends SIGKILL anyway)
#   localhost/secretshim-busybox:latest  /bin/busybox and a few links
# The OCI archives stay in WORK/images/ (pause.tar, busybox.tar); buildah's
# storage is removed. Prints the two refs and the time taken on stderr.
# Needs root, buildah, ctr, unshare and /bin/busybox (busybox-static).
# Nothing is written outside WORK (but for containerd's own store).
set -eu
[ $# = 2 ] || { echo "usage: images.sh WORK SOCK" >&2; exit 2; }
work=$1 sock=$2
for t in buildah ctr unshare; do
    command -v $t >/dev/null || { echo "images.sh: $t not installed" >&2; exit 1; }
done
if ! [ -x /bin/busybox ] || ! /bin/busybox --list >/dev/null 2>&1; then
    echo "images.sh: /bin/busybox (busybox-static) missing" >&2; exit 1
fi

PAUSE_REF=localhost/secretshim-pause:latest
BUSYBOX_REF=localhost/secretshim-busybox:latest
start=$(date +%s%N)
store=$work/buildah
mkdir -p "$work/images"
. "$(dirname "$0")/../lib.sh"  # buildah_in
b() { buildah_in "$store" "$@"; }
cleanup_store() { b rm --all >/dev/null 2>&1 || true; rm -rf "$store"; }
trap cleanup_store EXIT

# build NAME REF ENTRYPOINT_JSON APPLET...: a scratch image with
# /bin/busybox, links for the applets, and the entrypoint.
build() {
    name=$1 ref=$2 entry=$3; shift 3
    rootfs=$store/rootfs-$name
    mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/tmp" "$rootfs/proc" "$rootfs/sys" "$rootfs/dev" "$rootfs/run"
    cp /bin/busybox "$rootfs/bin/busybox"
    for a in "$@"; do ln -sf busybox "$rootfs/bin/$a"; done
    [ "$name" != pause ] || printf '#!/bin/sh\ntrap "exit 0" TERM INT\nsleep 2147483647 &\nwait\n' >"$rootfs/pause"
    [ ! -f "$rootfs/pause" ] || chmod 0755 "$rootfs/pause"
    echo 'root:x:0:0:root:/:/bin/sh' >"$rootfs/etc/passwd"
    echo 'root:x:0:' >"$rootfs/etc/group"
    c=$(b from scratch)
    b copy "$c" "$rootfs/" / >/dev/null
    b config --entrypoint "$entry" --env PATH=/bin "$c"
    b commit --quiet --format oci "$c" "$ref" >/dev/null
    b rm "$c" >/dev/null
    rm -f "$work/images/$name.tar"
    b push --quiet "$ref" "oci-archive:$work/images/$name.tar:$ref"
    ctr -a "$sock" -n k8s.io images import "$work/images/$name.tar" >/dev/null
    echo "$ref"
}

build pause "$PAUSE_REF" '["/pause"]' sh sleep
build busybox "$BUSYBOX_REF" '["/bin/sh"]' \
    sh sleep cat sha256sum ls stat grep cut test echo env id wc head true mount
end=$(date +%s%N)
echo "images.sh: built and imported in $(( (end - start) / 1000000 )) ms" >&2
