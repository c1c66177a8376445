#!/usr/bin/env bash
# How long a PostgreSQL outage holds back a fleet's reports. DEVICES `full`-mode agents with
# the default poll interval (3600 s) install a release whose post-install takes 3 s; while they
# install, PostgreSQL is stopped (as a crash would) for each of OUTAGES seconds in turn. Reports
# the time from the database coming back to every device's install being in the server's
# history, and the slowest device.
#
#   bench/db-outage.sh [DEVICES] [OUTAGES...]   (defaults: 20, then 10 and 60)
#   POLL=120 bench/db-outage.sh …                 (the devices' poll_interval_secs; 3600)
set -euo pipefail
POLL=${POLL:-3600}
cd "$(dirname "$0")/.."
DEVICES=${1:-20}
shift || true
OUTAGES=("${@:-10 60}")
read -r -a OUTAGES <<< "${OUTAGES[*]}"
source bench/lib.sh
# The postgres user must reach the cluster's directory: under /tmp, not the private $work.
pg=/tmp/ferry-bench-pg-$$
scripts/postgres start "$pg" >/dev/null
trap 'scripts/postgres stop "$pg"; bench_cleanup' EXIT
psql "$(cat "$pg/url")/postgres" -qc 'CREATE DATABASE ferry'
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
FERRY_LOG=warn "$BIN/ferry-server" --listen "127.0.0.1:$port" --data-dir "$work/data" \
    --database "$(cat "$pg/url")/ferry" > "$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do [ -f "$work/data/operator.token" ] && break; sleep 0.1; done
export FERRY_SERVER="http://127.0.0.1:$port" FERRY_TOKEN="@$work/data/operator.token"
"$BIN/ferryctl" keygen --out "$work/keys/release" >/dev/null

pids=()
for i in $(seq 1 "$DEVICES"); do
    bench_device "d$i"
    # Among the top-level keys, before the item's table.
    sed -i "s/^\\(hostname = .*\\)\$/\\1\\npoll_interval_secs = $POLL/" "$work/d$i.toml"
done

version=0
for outage in "${OUTAGES[@]}"; do
    version=$((version + 1))
    mkdir -p "$work/payload"
    echo "$version" > "$work/payload/v"
    rm -f "$work"/installing-*
    "$BIN/ferryctl" release build --item app --version "1.0.$version" --from "$work/payload" \
        --key "$work/keys/release.key" --out "$work/out-$version" \
        --post-install "touch $work/installing-\$(hostname)-\$\$; sleep 3" >/dev/null
    "$BIN/ferryctl" release publish "$work/out-$version" >/dev/null
    if [ ${#pids[@]} -eq 0 ]; then
        for i in $(seq 1 "$DEVICES"); do
            "$BIN/ferry-agent" --config "$work/d$i.toml" --running-mode=check >/dev/null 2>&1
            FERRY_LOG=warn "$BIN/ferry-agent" --config "$work/d$i.toml" --running-mode=full \
                >> "$work/agent-d$i.log" 2>&1 &
            pids+=($!)
        done
        agent_pid="${pids[*]}"
    fi
    "$BIN/ferryctl" update batch-item app --to-version "1.0.$version" >/dev/null
    # Every device has started its install: stop the database under them.
    for _ in $(seq 1 600); do
        [ "$(ls "$work"/installing-* 2>/dev/null | wc -l)" -ge "$DEVICES" ] && break
        sleep 0.1
    done
    scripts/postgres pause "$pg"
    sleep "$outage"
    scripts/postgres resume "$pg"
    back=$(ms)
    delivered=""
    for _ in $(seq 1 3000); do
        n=$("$BIN/ferryctl" history list --json 2>/dev/null | python3 -c "
import json, sys
print(sum(1 for e in json.load(sys.stdin) if e['version'] == '1.0.$version' and e['status'] == 'installed'))" 2>/dev/null || echo 0)
        if [ "$n" -ge "$DEVICES" ]; then delivered=$(ms); break; fi
        sleep 0.2
    done
    [ -n "$delivered" ] || { echo "outage ${outage} s: not every report arrived within 600 s" >&2; exit 1; }
    echo "outage ${outage} s, ${DEVICES} devices, poll interval ${POLL} s: every report delivered $(( (delivered - back) )) ms after the database came back"
done
kill ${pids[@]} 2>/dev/null || true
agent_pid=
