#!/usr/bin/env bash
# Check-ins per second and p99 on PostgreSQL with 1, 2 and 3 ferry-server instances (one
# database, one shared data directory), side by side with SQLite on one instance, in one run.
# A throw-away PostgreSQL server is started on loopback (scripts/postgres) and removed after.
#
#   bench/scaleout.sh [DEVICES] [CONCURRENCY] [SECONDS]     (defaults: 10000, 64, 10)
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICES=${1:-10000}
CONCURRENCY=${2:-64}
SECONDS_RUN=${3:-10}
ulimit -n "$(ulimit -Hn)"
cargo build --release --locked -q -p ferry-server -p ferry-e2e -p ferryctl --bins
BIN=$PWD/target/release
work=$(mktemp -d "${TMPDIR:-/var/tmp}/ferry-scaleout.XXXXXX")
pids=()
stop_servers() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; pids=(); }
# PostgreSQL's own directory: where its user can reach it (not under the private $work).
pgdir=$(mktemp -d /tmp/ferry-scaleout-pg.XXXXXX)
cleanup() { stop_servers; scripts/postgres stop "$pgdir" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
pg=$(scripts/postgres start "$pgdir")

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_instance DATA_DIR [DATABASE_URL]: sets `url` once the instance answers.
start_instance() {
    local port; port=$(free_port)
    # The simulated fleet enrols all at once: no enrolment budget.
    printf 'enrolments_per_minute = 1000000\ndevice_requests_per_sec = 10000\ndevice_request_burst = 100000\n' > "$1.toml"
    local args=(--listen "127.0.0.1:$port" --data-dir "$1" --config "$1.toml")
    [ -n "${2:-}" ] && args+=(--database "$2")
    FERRY_LOG=warn "$BIN/ferry-server" "${args[@]}" >> "$1.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 1 200); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.05; done
    url="http://127.0.0.1:$port"
}

# run LABEL URL...: a release to offer, then the fleet's check-ins through every URL.
run() {
    local label=$1; shift
    local data=$work/$label
    export FERRY_SERVER=$1 FERRY_TOKEN="@$data/operator.token"
    mkdir -p "$work/payload" && echo x > "$work/payload/x"
    [ -f "$work/keys/release.key" ] || "$BIN/ferryctl" keygen --out "$work/keys/release" >/dev/null
    rm -rf "$work/out"
    "$BIN/ferryctl" release build --item bench --version 1.0.0 --from "$work/payload" \
        --key "$work/keys/release.key" --out "$work/out" >/dev/null
    "$BIN/ferryctl" release publish "$work/out" >/dev/null
    local servers=()
    for u in "$@"; do servers+=(--server "$u"); done
    echo "== $label"
    "$BIN/ferry-loadgen" "${servers[@]}" --enrol-token "$(cat "$data/enrol.token")" \
        --operator-token "$(cat "$data/operator.token")" --devices "$DEVICES" \
        --concurrency "$CONCURRENCY" --seconds "$SECONDS_RUN" --item bench --checkins-only --rounds 1 |
        grep -E "enrolled|cold pass|check-in \(warm\)|trivial|share of"
}

start_instance "$work/sqlite"
run sqlite "$url"
stop_servers
for n in 1 2 3; do
    psql -q "$pg/postgres" -c "CREATE DATABASE scale$n"
    urls=()
    for _i in $(seq 1 "$n"); do
        start_instance "$work/postgres-$n" "$pg/scale$n"
        urls+=("$url")
    done
    run "postgres-$n" "${urls[@]}"
    stop_servers
done
