#!/usr/bin/env bash
# What a site costs the server: the artifact bytes the server sends (its own counter,
# ferry_artifact_bytes_served_total) for one release to a site of DEVICES devices, without
# peers (each device downloads it) and with peers (`share_listen` on each device, the server's
# default `site_max_downloads = 1`). Each device has its own loopback address; all run their
# agent from the timer's `once`, all at the same time, and again until every one installed.
#
#   bench/site-bytes.sh [SIZE_MB] [DEVICES]   (100, 10)
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MB=${1:-100}
DEVICES=${2:-10}
source bench/lib.sh
mkdir -p "$work/src/bin" "$work/keys"
printf '#!/bin/sh\necho app\n' > "$work/src/bin/app" && chmod +x "$work/src/bin/app"
head -c "$((SIZE_MB * 1024 * 1024))" /dev/urandom > "$work/src/blob.bin"
"$BIN/ferryctl" keygen --out "$work/keys/release" >/dev/null
"$BIN/ferryctl" release build --item app --version 1.0.0 --from "$work/src" \
    --key "$work/keys/release.key" --out "$work/out" >/dev/null
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
served() {
    curl -fsS -H "Authorization: Bearer $(cat "$1/data/operator.token")" "http://127.0.0.1:$2/metrics" |
        awk '/^ferry_artifact_bytes_served_total\{kind="artifact"\}/ {print $2}'
}

# One site: $1 `peers` or `alone`. Prints the server's bytes and the rounds it took.
site() {
    local mode=$1 dir=$work/$1 port pids=()
    mkdir -p "$dir"
    port=$(free_port)
    FERRY_LOG=warn "$BIN/ferry-server" --listen "127.0.0.1:$port" --data-dir "$dir/data" \
        > "$dir/server.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 1 100); do [ -f "$dir/data/operator.token" ] && break; sleep 0.1; done
    export FERRY_SERVER="http://127.0.0.1:$port" FERRY_TOKEN="@$dir/data/operator.token"
    "$BIN/ferryctl" release publish "$work/out" >/dev/null
    for i in $(seq 1 "$DEVICES"); do
        share=""
        [ "$mode" = peers ] && share="share_listen = \"127.0.0.$((20 + i)):$(free_port)\""
        cat > "$dir/d$i.toml" <<EOT
server_url = "http://127.0.0.1:$port"
enrol_token_file = "$dir/data/enrol.token"
state_dir = "$dir/state-$i"
trusted_keys = ["$work/keys/release.pub"]
hostname = "d$i"
site = "shop-12"
$share

[[items]]
name = "app"
root = "$dir/root-$i"
EOT
        "$BIN/ferry-agent" --config "$dir/d$i.toml" --running-mode=check > /dev/null 2>&1
        "$BIN/ferryctl" update trigger --host "d$i" --item app --version 1.0.0 >/dev/null 2>&1
        if [ "$mode" = peers ]; then
            "$BIN/ferry-agent" --config "$dir/d$i.toml" --running-mode=share > "$dir/share-$i.log" 2>&1 &
            pids+=($!)
        fi
    done
    local before rounds=0 left=$DEVICES
    before=$(served "$dir" "$port")
    while [ "$left" -gt 0 ] && [ "$rounds" -lt 10 ]; do
        rounds=$((rounds + 1))
        local round=()
        for i in $(seq 1 "$DEVICES"); do
            "$BIN/ferry-agent" --config "$dir/d$i.toml" --running-mode=once > "$dir/once-$i-$rounds.log" 2>&1 &
            round+=($!)
        done
        for p in "${round[@]}"; do wait "$p" || true; done
        left=0
        for i in $(seq 1 "$DEVICES"); do [ -L "$dir/root-$i/current" ] || left=$((left + 1)); done
    done
    local after
    after=$(served "$dir" "$port")
    [ "$left" -eq 0 ] || { echo "$mode: $left devices did not install in $rounds rounds" >&2; exit 1; }
    local sent=$(( ${after%.*} - ${before%.*} ))
    echo "$mode: the server sent $sent bytes ($(( sent / 1024 / 1024 )) MiB, $(awk -v s="$sent" -v a="$artifact" 'BEGIN {printf "%.2f", s / a}') artifacts) to $DEVICES devices in $rounds rounds of runs"
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    kill "$server_pid"; wait "$server_pid" 2>/dev/null || true
    server_pid=
}
artifact=$(stat -c %s "$work"/out/*.tar.gz)
echo "release: ${SIZE_MB} MiB of random bytes; artifact $artifact bytes; a site of $DEVICES devices"
site alone
site peers
