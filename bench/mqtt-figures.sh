#!/usr/bin/env bash
# The MQTT bridge's figures, on 127.0.0.1 with a Mosquitto broker started here:
#   - the whole state of HOSTS hosts with ITEMS items each (every item with a newer release):
#     the bridge's own time to build and queue it, and the time until every message is on
#     the wire (its `published` count), from the bridge's connect;
#   - from `install` published on an item's `set` topic to a real agent (in `full` mode,
#     long-polling) starting the install, RUNS times.
#
#   bench/mqtt-figures.sh [HOSTS] [ITEMS] [RUNS]     (defaults: 1000, 10, 5)
set -euo pipefail
cd "$(dirname "$0")/.."
HOSTS=${1:-1000}
ITEMS=${2:-10}
RUNS=${3:-5}
[ -x /usr/sbin/mosquitto ] || { apt-get update -qq && apt-get install -y -qq mosquitto; }
cargo build --release --bins --locked -q
BIN=$PWD/target/release
work=$(mktemp -d "${TMPDIR:-/var/tmp}/ferry-mqtt.XXXXXX")
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

broker_port=$(free_port)
printf 'user root\nlistener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$broker_port" > "$work/mosquitto.conf"
/usr/sbin/mosquitto -c "$work/mosquitto.conf" >/dev/null 2>&1 &
pids+=($!)

port=$(free_port)
start_server() {
    FERRY_LOG=info "$BIN/ferry-server" --listen "127.0.0.1:$port" --data-dir "$work/data" "$@" >>"$work/server.log" 2>&1 &
    server_pid=$!
    pids+=($server_pid)
    for _ in $(seq 1 200); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.05; done
}
# The simulated fleet enrols all at once: no enrolment budget.
printf 'enrolments_per_minute = 1000000\n' > "$work/enrol.toml"
start_server --config "$work/enrol.toml"
export FERRY_SERVER="http://127.0.0.1:$port" FERRY_TOKEN="@$work/data/operator.token"

echo "publishing $ITEMS releases and enrolling $HOSTS hosts with $ITEMS items each"
"$BIN/ferryctl" keygen --out "$work/keys/release" >/dev/null
mkdir -p "$work/src"
echo payload > "$work/src/file"
for i in $(seq 0 $((ITEMS - 1))); do
    "$BIN/ferryctl" release build --item "item-$i" --version 2.0.0 --from "$work/src" \
        --key "$work/keys/release.key" --out "$work/out-$i" --category security >/dev/null
    "$BIN/ferryctl" release publish "$work/out-$i" >/dev/null
done
python3 - "$port" "$work/data/enrol.token" "$HOSTS" "$ITEMS" <<'PY'
import json, sys, urllib.request
port, token_file, hosts, items = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
token = open(token_file).read().strip()
for h in range(hosts):
    facts = {"hostname": f"bench-{h:05}", "os": "Debian GNU/Linux", "os_version": "12",
             "arch": "x86_64", "agent_version": "0.1.0",
             "installed": [{"item": f"item-{i}", "version": "1.0.0"} for i in range(items)]}
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/enrol",
        data=json.dumps({"enrol_token": token, "facts": facts}).encode(),
        headers={"content-type": "application/json"})
    urllib.request.urlopen(req).read()
PY

# A real agent, long-polling, for the set-to-install figure.
mkdir -p "$work/src-web/bin"
printf '#!/bin/sh\necho web\n' > "$work/src-web/bin/web"
chmod +x "$work/src-web/bin/web"
"$BIN/ferryctl" release build --item web --version 1.0.0 --from "$work/src-web" \
    --key "$work/keys/release.key" --out "$work/out-web-0" >/dev/null
"$BIN/ferryctl" release publish "$work/out-web-0" >/dev/null
cat > "$work/agent.toml" <<EOT
server_url = "http://127.0.0.1:$port"
enrol_token_file = "$work/data/enrol.token"
state_dir = "$work/agent-state"
trusted_keys = ["$work/keys/release.pub"]
hostname = "bench-agent"

[[items]]
name = "web"
root = "$work/root"
EOT
"$BIN/ferry-agent" --config "$work/agent.toml" --running-mode=check 2>/dev/null
"$BIN/ferryctl" items edit web --featured true >/dev/null

# The server again, now with the bridge: the whole state goes out on connect.
kill "$server_pid"; wait "$server_pid" 2>/dev/null || true
printf '[[mqtt]]\nname = "bench"\nurl = "mqtt://127.0.0.1:%s"\n' "$broker_port" > "$work/server.toml"
t0=$(date +%s%3N)
start_server --config "$work/server.toml"
line=""
for _ in $(seq 1 600); do
    line=$(grep "queued the whole state" "$work/server.log" || true)
    [ -n "$line" ] && break
    sleep 0.1
done
[ -n "$line" ] || { echo "the bridge never published the whole state; server log:" >&2; tail -20 "$work/server.log" >&2; exit 1; }
messages=$(sed -E 's/.*messages=([0-9]+).*/\1/' <<<"$line")
queued_ms=$(sed -E 's/.* ms=([0-9]+).*/\1/' <<<"$line")
for _ in $(seq 1 1200); do
    published=$("$BIN/ferryctl" mqtt list --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["published"])')
    [ "$published" -ge "$messages" ] && break
    sleep 0.1
done
wire_ms=$(( $(date +%s%3N) - t0 ))
echo "whole state: $HOSTS hosts x $ITEMS items = $messages messages; built and queued by the bridge in ${queued_ms} ms; all on the wire ${wire_ms} ms after the server started"

FERRY_LOG=info "$BIN/ferry-agent" --config "$work/agent.toml" --running-mode=full >"$work/agent.log" 2>&1 &
pids+=($!)
sleep 2
host_id=$("$BIN/ferryctl" hosts list --json | python3 -c 'import json,sys; print([h["id"] for h in json.load(sys.stdin) if h["hostname"]=="bench-agent"][0])')
delays=()
for v in $(seq 1 "$RUNS"); do
    # A newer release each run, so each press has something to install.
    "$BIN/ferryctl" release build --item web --version "1.0.$v" --from "$work/src-web" \
        --key "$work/keys/release.key" --out "$work/out-web-$v" >/dev/null
    "$BIN/ferryctl" release publish "$work/out-web-$v" >/dev/null
    sleep 1
    before=$(grep -c "installing" "$work/agent.log" || true)
    sent=$(python3 - "$broker_port" "ferry/hosts/$host_id/items/web/set" <<'PY'
import socket, sys, time
def rl(n):
    out = b""
    while True:
        b, n = n % 128, n // 128
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out
def s(x):
    return len(x).to_bytes(2, "big") + x
port, topic = int(sys.argv[1]), sys.argv[2].encode()
c = socket.create_connection(("127.0.0.1", port))
var = s(b"MQTT") + bytes([4, 2, 0, 60]) + s(b"bench-press")
c.sendall(bytes([0x10]) + rl(len(var)) + var)
c.recv(4)  # CONNACK
body = s(topic) + b"install"
t = time.time()
c.sendall(bytes([0x30]) + rl(len(body)) + body + bytes([0xE0, 0]))
print(int(t * 1000))
c.close()
PY
)
    for _ in $(seq 1 300); do
        [ "$(grep -c "installing" "$work/agent.log" || true)" -gt "$before" ] && break
        sleep 0.01
    done
    started=$(grep "installing" "$work/agent.log" | tail -1 | python3 -c '
import sys, datetime
ts = sys.stdin.read().split()[0]
print(int(datetime.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1000))')
    delays+=($(( started - sent )))
    echo "set to install start, run $v: ${delays[-1]} ms"
    sleep 2
done
echo "median set to install start: $(printf '%s\n' "${delays[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}') ms"
