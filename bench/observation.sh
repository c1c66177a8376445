#!/usr/bin/env bash
# The figures of health-gated rollouts, on 127.0.0.1 with four devices in `full` mode (the
# systemd service's mode, long-poll on):
#   - the bytes a check-in carries extra during an observation window: the health sample in
#     the request and the window's order in the answer (a device outside a window: none);
#   - the time from the first failing health sample (the agent's log) to the campaign paused
#     (the server's log), for a release whose health check fails 5 s after it starts.
#
#   bench/observation.sh [WINDOW_SECS]     (default 60: samples every 6 s)
set -euo pipefail
cd "$(dirname "$0")/.."
WINDOW=${1:-60}
. bench/lib.sh
FERRY_LOG=info bench_server
mkdir -p "$work/src/bin"
printf '#!/bin/sh\necho app\n' > "$work/src/bin/app"
chmod +x "$work/src/bin/app"
"$BIN/ferryctl" release build --item app --version 1.0.0 --from "$work/src" \
    --key "$work/keys/release.key" --out "$work/out-1" >/dev/null
"$BIN/ferryctl" release build --item app --version 1.1.0 --from "$work/src" \
    --key "$work/keys/release.key" --out "$work/out-2" \
    --post-install 'date +%s > "$FERRY_ROOT.started"' \
    --health-check 'test $(( $(date +%s) - $(cat "$FERRY_ROOT.started") )) -lt 5' >/dev/null
"$BIN/ferryctl" release publish "$work/out-1" >/dev/null
"$BIN/ferryctl" release publish "$work/out-2" >/dev/null
devices="d1 d2 d3 d4"
for d in $devices; do
    bench_device "$d"
    FERRY_LOG=warn "$BIN/ferry-agent" --config "$work/$d.toml" --running-mode=check >/dev/null 2>&1
done
"$BIN/ferryctl" campaigns create --item app --version 1.0.0 --all >/dev/null
for d in $devices; do
    FERRY_LOG=warn "$BIN/ferry-agent" --config "$work/$d.toml" --running-mode=once >/dev/null 2>&1
done
pids=()
for d in $devices; do
    FERRY_LOG=warn "$BIN/ferry-agent" --config "$work/$d.toml" --running-mode=full 2>>"$work/agent-$d.log" &
    pids+=($!)
done
trap 'kill "${pids[@]}" 2>/dev/null; bench_cleanup' EXIT
id=$("$BIN/ferryctl" campaigns create --item app --version 1.1.0 --all --waves 1,100% \
    --observe "${WINDOW}s" --rollback-on-regression --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
state() { "$BIN/ferryctl" campaigns show "$id" --json | python3 -c 'import json,sys; c=json.load(sys.stdin); print(c["status"], (c.get("observation") or {}).get("verdict",""))'; }
for _ in $(seq 1 600); do
    [ "$(state)" = "running observing" ] && break
    sleep 0.2
done
[ "$(state)" = "running observing" ] || { echo "the wave was never watched: $(state)" >&2; exit 1; }

# Bytes: a check-in of a control device, as the agent sends it, with and without one sample.
python3 - "$work" "$port" "$id" <<'PY'
import json, sys, urllib.request
work, port, cid = sys.argv[1], sys.argv[2], sys.argv[3]
token = json.load(open(f"{work}/state-d4/device.json"))["device_token"]
facts = {"hostname": "d4", "os": "linux", "os_version": "", "arch": "x86_64",
         "agent_version": "0.1.0", "installed": [{"item": "app", "version": "1.0.0"}]}
def body(sample):
    b = {"facts": facts, "wait_secs": 0}
    if sample:
        b["health"] = [{"campaign_id": cid, "at": "2026-12-06T12:00:00.000Z"}]
    return json.dumps(b, separators=(",", ":")).encode()
def check_in(data):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/device/checkin", data=data,
        headers={"authorization": f"Bearer {token}", "content-type": "application/json"})
    return urllib.request.urlopen(req, timeout=10).read()
plain, sampled = body(False), body(True)
answer = json.loads(check_in(plain))
order = json.dumps(answer.get("observe", []), separators=(",", ":"))
key = len(',"observe":')
print(f"check-in request: {len(plain)} bytes; with one health sample: {len(sampled)} (+{len(sampled) - len(plain)})")
print(f"the window's order in the answer: +{len(order) + key} bytes (absent outside a window)")
PY

for _ in $(seq 1 $((WINDOW * 10))); do
    [ "$(state | cut -d' ' -f1)" = paused ] && break
    sleep 0.1
done
[ "$(state | cut -d' ' -f1)" = paused ] || { echo "the campaign did not pause: $(state)" >&2; exit 1; }
first=$(grep -h "health sample: failing" "$work"/agent-d*.log | sed 's/^\([^ ]*\).*/\1/' | sort | head -1)
paused=$(grep -h "regressed in wave" "$work/server.log" | sed 's/^\([^ ]*\).*/\1/' | sort | head -1)
python3 - "$first" "$paused" "$WINDOW" <<'PY'
import sys
from datetime import datetime
f, p, w = sys.argv[1], sys.argv[2], int(sys.argv[3])
t = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00"))
print(f"window {w} s (a sample every {max(1, min(300, w // 10))} s): first failing sample {f}, campaign paused {p}")
print(f"first failing sample to campaign paused: {(t(p) - t(f)).total_seconds() * 1000:.0f} ms")
PY
"$BIN/ferryctl" campaigns show "$id" | head -3
