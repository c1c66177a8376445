#!/usr/bin/env bash
# The figures of the operator-experience work, for a device in `full` mode on the default
# config (long-poll on, an hour between cycles), on 127.0.0.1:
#   - trigger to installed: from `ferryctl update trigger` until the device reports it;
#   - SIGTERM to exit while the device waits in its open check-in;
#   - `status` while the service works (it needs no lock).
#
#   bench/stop-and-wake.sh [RUNS]     (default 5; prints each run, then the median)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
. bench/lib.sh
bench_server
mkdir -p "$work/src/bin"
for v in $(seq 1 "$RUNS"); do
    printf '#!/bin/sh\necho %s\n' "$v" > "$work/src/bin/app"
    chmod +x "$work/src/bin/app"
    "$BIN/ferryctl" release build --item app --version "1.0.$v" --from "$work/src" \
        --key "$work/keys/release.key" --out "$work/out-$v" >/dev/null
    "$BIN/ferryctl" release publish "$work/out-$v" >/dev/null
done
bench_device bench-device

start_agent() {
    FERRY_LOG=warn "$BIN/ferry-agent" --config "$work/bench-device.toml" --running-mode=full 2>>"$work/agent.log" &
    agent_pid=$!
    for _ in $(seq 1 100); do
        "$BIN/ferryctl" hosts list --json 2>/dev/null | grep -q bench-device && break
        sleep 0.1
    done
    sleep 1 # into its open check-in
}

start_agent
wake=()
for v in $(seq 1 "$RUNS"); do
    t0=$(ms)
    "$BIN/ferryctl" update trigger --host bench-device --item app --version "1.0.$v" --json >/dev/null
    for _ in $(seq 1 600); do
        "$BIN/ferryctl" history list --json | python3 -c "import json,sys; h=[e for e in json.load(sys.stdin) if e['version']=='1.0.$v']; sys.exit(0 if h and h[0]['status']=='installed' else 1)" && break
        sleep 0.02
    done
    wake+=($(( $(ms) - t0 )))
    echo "trigger to installed, run $v: ${wake[-1]} ms"
    sleep 1
done

t0=$(ms)
"$BIN/ferry-agent" --config "$work/bench-device.toml" --running-mode=status >/dev/null
echo "status while the service runs: $(( $(ms) - t0 )) ms (exit 0)"

stop=()
for r in $(seq 1 "$RUNS"); do
    [ "$r" -gt 1 ] && start_agent
    t0=$(ms)
    kill -TERM "$agent_pid"
    wait "$agent_pid" || true
    agent_pid=
    stop+=($(( $(ms) - t0 )))
    echo "SIGTERM to exit while long-polling, run $r: ${stop[-1]} ms"
done
echo "median trigger to installed: $(printf '%s\n' "${wake[@]}" | median) ms"
echo "median SIGTERM to exit: $(printf '%s\n' "${stop[@]}" | median) ms"
