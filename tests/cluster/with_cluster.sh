#!/bin/sh
# Runs a command against a fresh 3-member etcd cluster (scripts/etcd-cluster.sh)
# in a temp dir, and stops the cluster by pid afterwards, also on failure.
# The command gets ETCD_DIR, ETCD_ENDPOINTS, ETCD_PKI, ETCD_CLUSTER_SCRIPT,
# and the etcdctl of the members' version first on PATH.
# SKIP (77) without etcd.
set -eu
script=$1; shift
command -v etcd >/dev/null 2>&1 || { echo "SKIP: etcd is not installed"; exit 77; }
ETCD_DIR=$(mktemp -d /tmp/secretshim-etcd-XXXXXX)
# A port range of our own, so parallel runs on a shared machine do not collide.
ETCD_BASE_PORT=${ETCD_BASE_PORT:-$((24000 + ($$ % 300) * 30))}
export ETCD_DIR ETCD_BASE_PORT ETCD_CLUSTER_SCRIPT="$script"
cleanup() { sh "$script" stop "$ETCD_DIR" || true; rm -rf "$ETCD_DIR"; }
trap cleanup EXIT INT TERM
sh "$script" start "$ETCD_DIR"
eval "$(sh "$script" env "$ETCD_DIR")"
PATH=$ETCDCTL_DIR:$PATH   # the tests' etcdctl is the members' version
export ETCD_ENDPOINTS ETCD_CA ETCD_PKI PATH
status=0
"$@" || status=$?
exit $status
