#!/usr/bin/env bash
# Fleet load on loopback: enrols DEVICES simulated devices, measures sustained check-ins per
# second with p50/p99 latency against ferry-server (SQLite) and, in the same run, against a
# trivial axum handler (the loopback ceiling: in the load generator's process, and in a
# process of its own); then holds a long-poll open for every device and reports the server's
# RSS; then measures trigger-to-device latency.
#
#   bench/load.sh [DEVICES] [CONCURRENCY] [SECONDS] [ROUNDS]   (defaults: 10000, 256, 10, 3)
#
# Each round runs the server and both ceilings for SECONDS each, in turn; the median round's
# ratio is reported. On a machine whose speed drifts, shorter and more rounds pair better
# (e.g. `bench/load.sh 10000 64 3 9`).
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICES=${1:-10000}
CONCURRENCY=${2:-256}
SECONDS_RUN=${3:-10}
ROUNDS=${4:-3}
# Each long-polling device holds a socket in this process and one in the server.
ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((DEVICES + 1000)) ]; then
    echo "the open-files limit $(ulimit -n) is too low for $DEVICES devices; raise the hard limit" >&2
    exit 1
fi
cargo build --release --locked -q -p ferry-server -p ferry-e2e -p ferryctl --bins
BIN=$PWD/target/release
work=$(mktemp -d "${TMPDIR:-/var/tmp}/ferry-load.XXXXXX")
server_pid=
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# The simulated fleet enrols all at once and each simulated device checks in far more often
# than an agent: budgets high enough never to refuse (their cost per request is measured).
printf 'enrolments_per_minute = 1000000\ndevice_requests_per_sec = 10000\ndevice_request_burst = 100000\n' > "$work/server.toml"
FERRY_LOG=warn "$BIN/ferry-server" --listen "127.0.0.1:$port" --data-dir "$work/server" \
    --config "$work/server.toml" > "$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
rss() { awk '/VmRSS/ {printf "%.1f MiB", $2/1024}' "/proc/$server_pid/status"; }
echo "server RSS at start: $(rss)"

# A release of the simulated item, for the trigger measurement.
export FERRY_SERVER="http://127.0.0.1:$port" FERRY_TOKEN="@$work/server/operator.token"
mkdir -p "$work/payload" && echo x > "$work/payload/x"
"$BIN/ferryctl" keygen --out "$work/keys/release" >/dev/null
"$BIN/ferryctl" release build --item bench --version 1.0.0 --from "$work/payload" \
    --key "$work/keys/release.key" --out "$work/out" >/dev/null
"$BIN/ferryctl" release publish "$work/out" >/dev/null

"$BIN/ferry-loadgen" --server "http://127.0.0.1:$port" \
    --enrol-token "$(cat "$work/server/enrol.token")" \
    --operator-token "$(cat "$work/server/operator.token")" \
    --devices "$DEVICES" --concurrency "$CONCURRENCY" --seconds "$SECONDS_RUN" --rounds "$ROUNDS" --item bench |
while IFS= read -r line; do
    if [ "$line" = "READY-FOR-RSS-BEFORE" ]; then
        rss_before=$(awk '/VmRSS/ {print $2}' "/proc/$server_pid/status")
        echo "server RSS before the long-polls: $(rss)"
    elif [ "$line" = "READY-FOR-RSS" ]; then
        rss_held=$(awk '/VmRSS/ {print $2}' "/proc/$server_pid/status")
        echo "server RSS with every device long-polling: $(rss)"
        echo "memory per held long-poll: $(( (rss_held - rss_before) * 1024 / DEVICES )) bytes"
    else
        echo "$line"
    fi
done
echo "server RSS at the end: $(rss)"
