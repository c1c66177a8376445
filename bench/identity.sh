#!/usr/bin/env bash
# What device identity costs the server: per check-in over TLS with a bearer token and with a
# client certificate (full handshakes, resumed ones, a kept-alive connection), and the
# server's memory per held long-poll under each. A release ferry-server with TLS on
# 127.0.0.1, its certificate from a CA made here with openssl; ferry-tlsbench drives it.
#
#   bench/identity.sh [CHECKINS] [HELD]     (defaults: 400 check-ins per case, 1000 long-polls)
set -euo pipefail
cd "$(dirname "$0")/.."
CHECKINS=${1:-400}
HELD=${2:-1000}
cargo build --release --locked -q -p ferry-server -p ferry-e2e --bins
BIN=$PWD/target/release
ulimit -n "$(( HELD * 2 + 1000 ))" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
work=$(mktemp -d "${TMPDIR:-/var/tmp}/ferry-identity.XXXXXX")
server_pid=
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=bench CA" \
    -keyout "$work/ca.key" -out "$work/ca.pem" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
    -keyout "$work/server.key" -out "$work/server.csr" 2>/dev/null
openssl x509 -req -in "$work/server.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -days 2 \
    -extfile <(printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth') \
    -out "$work/server.pem" 2>/dev/null

# A fresh server for each part: memory it freed after one part would flatter the next.
start_server() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
    rm -rf "$work/data"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    printf 'enrolments_per_minute = 1000000\ndevice_request_burst = 100000\ndevice_requests_per_sec = 10000\nlong_poll_max_secs = 60\n' > "$work/server.toml"
    FERRY_LOG=warn "$BIN/ferry-server" --config "$work/server.toml" --listen "127.0.0.1:$port" \
        --data-dir "$work/data" --tls-cert "$work/server.pem" --tls-key "$work/server.key" \
        > "$work/server.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 1 100); do [ -f "$work/data/enrol.token" ] && break; sleep 0.1; done
    [ -f "$work/data/enrol.token" ] || { echo "ferry-server did not start:" >&2; cat "$work/server.log" >&2; exit 1; }
}
echo "ferry-server $("$BIN/ferry-server" --version | awk '{print $2}') with TLS (P-256 server key), $(nproc) cores"
for part in checkins held-token held-certificate; do
    start_server
    "$BIN/ferry-tlsbench" --addr "127.0.0.1:$port" --ca "$work/ca.pem" \
        --enrol-token "$(cat "$work/data/enrol.token")" --server-pid "$server_pid" \
        --checkins "$CHECKINS" --held "$HELD" --only "$part"
done
