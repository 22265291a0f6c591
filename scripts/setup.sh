#!/bin/sh
# Installs every build and test dependency of secretshim on Debian 12 (run as root).
set -eu
export DEBIAN_FRONTEND=noninteractive
pkgs="meson ninja-build pkg-config g++ git
  libmount-dev libseccomp-dev libssl-dev libboost-dev libyaml-cpp-dev
  doctest-dev nlohmann-json3-dev libexpected-dev libcli11-dev
  busybox-static runc crun util-linux procps python3
  podman containerd umoci etcd-server etcd-client openssl
  buildah protobuf-compiler protobuf-compiler-grpc libprotobuf-dev libgrpc++-dev python3-grpcio python3-protobuf python3-prometheus-client
  debhelper dpkg-dev fakeroot lintian systemd hyperfine libsystemd-dev"
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing
fi
