#!/bin/sh
# A real 3-member etcd cluster on loopback for tests and demos: TLS on
# client and peer ports, certificates made here with openssl, RBAC on.
#
#   etcd-cluster.sh start DIR    create certificates, start m1..m3, set up users
#   etcd-cluster.sh stop DIR     stop the members started in DIR (by pid)
#   etcd-cluster.sh env DIR      print the connection settings as shell variables
#   etcd-cluster.sh signal DIR mN SIG   send SIG to one member (KILL, STOP, CONT)
#   etcd-cluster.sh restart DIR mN [CERT]   start a stopped or killed member
#                         again; with CERT it shows clients CERT.crt (key
#                         CERT.key) instead of its own, e.g. one for another name
#
# Ports: member i listens for clients on ETCD_BASE_PORT + 10*(i-1) and for
# peers on the next port (default base 23790). Members run with etcd's
# default flags but for TLS (clients and peers) and fast elections. Nodes:
# ETCD_NODES (default "node-1 node-2"); each gets an etcd user without a
# password, a role that may read only /secretshim/nodes/NODE/ (trailing
# slash: without it node-1 would also read node-10) and the published
# versions (/secretshim/published/), and a client
# certificate with CN=NODE: etcd (--client-cert-auth) takes a gRPC client's
# user from its certificate's CN. The admin: user root, certificates
# root.crt and admin.crt, both with CN=root.
#
# ETCD_VERSION picks the etcd that start and restart run (default 3.4):
# 3.4 is the system's (Debian 12's etcd-server and etcd-client, on PATH);
# 3.5 is Debian 13's, which fetch-trixie.sh downloads and unpacks into its
# cache (nothing is installed; its usr/bin goes first on PATH here). Either
# way the started etcd's --version must name that major.minor. Exit 77
# (skip) when the version's etcd is not available: not installed, or the
# Debian mirror unreachable for 3.5.
set -eu

cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop|env|signal|restart DIR [mN [SIG|CERT]]" >&2; exit 2; }
base=${ETCD_BASE_PORT:-23790}
nodes=${ETCD_NODES:-node-1 node-2}
pki=$dir/pki

client_port() { echo $((base + 10 * ($1 - 1))); }
peer_port() { echo $((base + 10 * ($1 - 1) + 1)); }
endpoints() {
    out=""
    for i in 1 2 3; do out="$out${out:+,}https://127.0.0.1:$(client_port "$i")"; done
    echo "$out"
}

# cert NAME SUBJECT USAGE [SAN]: an EC P-256 key and a certificate signed by the CA.
cert() {
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$pki/$1.key" -out "$pki/$1.csr" -subj "$2" 2>/dev/null
    {
        echo "extendedKeyUsage=$3"
        echo "keyUsage=critical,digitalSignature,keyEncipherment"
        [ -z "${4:-}" ] || echo "subjectAltName=$4"
    } >"$pki/$1.ext"
    openssl x509 -req -in "$pki/$1.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
        -days 2 -extfile "$pki/$1.ext" -out "$pki/$1.crt" 2>/dev/null
    rm -f "$pki/$1.csr" "$pki/$1.ext"
    chmod 600 "$pki/$1.key"
}

make_pki() {
    mkdir -p "$pki"
    chmod 700 "$dir" "$pki"
    openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -keyout "$pki/ca.key" -out "$pki/ca.crt" -subj "/CN=secretshim test CA" 2>/dev/null
    for i in 1 2 3; do
        cert "m$i" "/CN=m$i" serverAuth,clientAuth "IP:127.0.0.1,DNS:localhost"
    done
    cert root "/CN=root" clientAuth
    cert admin "/CN=root" clientAuth
    for n in $nodes; do
        cert "$n" "/CN=$n" clientAuth
    done
}

member_cmd() {
    i=$1
    cluster=""
    for j in 1 2 3; do cluster="$cluster${cluster:+,}m$j=https://127.0.0.1:$(peer_port "$j")"; done
    state=new
    [ ! -d "$dir/m$i/member" ] || state=existing
    echo etcd --name "m$i" --data-dir "$dir/m$i" \
        --listen-client-urls "https://127.0.0.1:$(client_port "$i")" \
        --advertise-client-urls "https://127.0.0.1:$(client_port "$i")" \
        --listen-peer-urls "https://127.0.0.1:$(peer_port "$i")" \
        --initial-advertise-peer-urls "https://127.0.0.1:$(peer_port "$i")" \
        --initial-cluster "$cluster" --initial-cluster-state "$state" \
        --initial-cluster-token secretshim-test \
        --client-cert-auth --trusted-ca-file "$pki/ca.crt" \
        --cert-file "${client_cert:-$pki/m$i}.crt" --key-file "${client_cert:-$pki/m$i}.key" \
        --peer-client-cert-auth --peer-trusted-ca-file "$pki/ca.crt" \
        --peer-cert-file "$pki/m$i.crt" --peer-key-file "$pki/m$i.key" \
        --heartbeat-interval 50 --election-timeout 500 --log-level warn
    # Both 3.4 and 3.5 take these flags, and etcdctl's user add --no-password
    # below. The member logs differ: 3.4 writes capnslog text lines (and
    # warns that capnslog is deprecated), 3.5 zap's JSON lines.
}

# etcd reads ETCD_<FLAG> variables as its flags: etcd 3.4 takes ETCD_VERSION
# for --version and exits ("invalid value ... for ETCD_VERSION"; 3.5 warns
# and ignores it), so the members run without it. env and setsid exec, so
# $! is the member's pid.
start_member() {
    # shellcheck disable=SC2046
    env -u ETCD_VERSION setsid $(member_cmd "$1") >>"$dir/m$1.log" 2>&1 </dev/null &
    echo $! >"$dir/m$1.pid"
}

# use_etcd: etcd and etcdctl of ETCD_VERSION first on PATH, or exit.
use_etcd() {
    want=${ETCD_VERSION:-3.4}
    case $want in
    3.4) ;;
    3.5)
        err=$(mktemp)
        if ! root=$(sh "$(dirname "$0")/fetch-trixie.sh" etcd-server etcd-client 2>"$err"); then
            # fetch-trixie.sh says this (one line) only when apt could not
            # read the mirror; any other failure is a fault, not a skip.
            if grep -q "cannot fetch the trixie package lists" "$err"; then
                echo "etcd-cluster: no etcd 3.5, the Debian mirror is unreachable: $(cat "$err")" >&2
                rm -f "$err"; exit 77
            fi
            echo "etcd-cluster: fetch-trixie.sh etcd-server etcd-client failed: $(cat "$err")" >&2
            rm -f "$err"; exit 1
        fi
        rm -f "$err"
        PATH=$root/usr/bin:$PATH
        ;;
    *)
        echo "etcd-cluster: ETCD_VERSION=$want: 3.4 (the system's) or 3.5 (Debian 13's)" >&2; exit 2
        ;;
    esac
    command -v etcd >/dev/null && command -v etcdctl >/dev/null ||
        { echo "etcd-cluster: etcd and etcdctl are needed (apt-get install etcd-server etcd-client)" >&2; exit 77; }
    got=$(etcd --version | sed -n 's/^etcd Version: \([0-9]*\.[0-9]*\)\..*/\1/p')
    [ "$got" = "$want" ] ||
        { echo "etcd-cluster: $(command -v etcd) is etcd ${got:-of an unknown version}, not $want" >&2; exit 1; }
}

ctl() {
    ETCDCTL_API=3 etcdctl --endpoints "$(endpoints)" --cacert "$pki/ca.crt" \
        --cert "$pki/root.crt" --key "$pki/root.key" --dial-timeout 3s --command-timeout 10s "$@"
}

wait_healthy() {
    for _ in $(seq 1 100); do
        if ctl endpoint health >/dev/null 2>&1; then return 0; fi
        # A member that exited (a flag it refuses, a port in use) fails the
        # start now rather than after 100 health checks.
        for i in 1 2 3; do
            kill -0 "$(cat "$dir/m$i.pid")" 2>/dev/null ||
                { echo "etcd-cluster: member m$i exited: $(tail -n 1 "$dir/m$i.log")" >&2; return 1; }
        done
        sleep 0.1
    done
    echo "etcd-cluster: the cluster in $dir did not become healthy; logs in $dir/m*.log" >&2
    return 1
}

setup_auth() {
    ctl user add root --no-password >/dev/null
    ctl user grant-role root root >/dev/null
    for n in $nodes; do
        ctl user add "$n" --no-password >/dev/null
        ctl role add "$n" >/dev/null
        ctl role grant-permission "$n" read "/secretshim/nodes/$n/" --prefix=true >/dev/null
        ctl role grant-permission "$n" read /secretshim/published/ --prefix=true >/dev/null
        ctl user grant-role "$n" "$n" >/dev/null
    done
    ctl auth enable >/dev/null
}

case $cmd in
start)
    use_etcd
    mkdir -p "$dir"
    [ -f "$pki/ca.crt" ] || make_pki
    fresh=1
    [ ! -d "$dir/m1/member" ] || fresh=0
    for i in 1 2 3; do start_member "$i"; done
    wait_healthy
    [ "$fresh" = 0 ] || setup_auth
    ;;
stop)
    for i in 1 2 3; do
        f="$dir/m$i.pid"
        [ -f "$f" ] || continue
        pid=$(cat "$f")
        kill -CONT "$pid" 2>/dev/null || true
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        rm -f "$f"
    done
    ;;
signal)
    m=${3:?member}; sig=${4:?signal}
    kill "-$sig" "$(cat "$dir/$m.pid")"
    ;;
restart)
    m=${3:?member}
    i=${m#m}
    client_cert=${4:-}
    use_etcd
    pid=$(cat "$dir/$m.pid" 2>/dev/null || echo "")
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -CONT "$pid"; kill -KILL "$pid"
        while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
    fi
    start_member "$i"
    ;;
env)
    use_etcd
    echo "ETCD_ENDPOINTS=$(endpoints)"
    # The etcdctl of the same version, for the tests' own calls.
    echo "ETCDCTL_DIR=$(dirname "$(command -v etcdctl)")"
    echo "ETCD_CA=$pki/ca.crt"
    echo "ETCD_PKI=$pki"
    for i in 1 2 3; do echo "ETCD_M${i}_ENDPOINT=https://127.0.0.1:$(client_port "$i")"; done
    ;;
*)
    echo "usage: $0 start|stop|env|signal|restart DIR [mN [SIG|CERT]]" >&2; exit 2
    ;;
esac
