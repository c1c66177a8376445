#!/usr/bin/env bash
# What one device token can make the server do (the attack of the security probe): for
# SECONDS, WORKERS connections check in with the token as fast as they can, each claiming an
# installed version of 4 KB of a published item; then the token opens HELD long-polls at once.
# Reports the requests answered (200 and 429), the server's RSS before, after and while the
# long-polls are open, the log's growth, and how many long-polls were held.
#
#   bench/hostile-device.sh [SECONDS] [WORKERS] [HELD]   (defaults: 15, 16, 2000)
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_RUN=${1:-15}
WORKERS=${2:-16}
HELD=${3:-2000}
ulimit -n "$(ulimit -Hn)"
source bench/lib.sh
bench_server
rss() { awk '/VmRSS/ {print $2}' "/proc/$server_pid/status"; }
mkdir -p "$work/payload" && echo x > "$work/payload/x"
"$BIN/ferryctl" release build --item app --version 1.0.0 --from "$work/payload" \
    --key "$work/keys/release.key" --out "$work/out" >/dev/null
"$BIN/ferryctl" release publish "$work/out" >/dev/null
token=$(curl -fsS -H 'Content-Type: application/json' "$FERRY_SERVER/api/v1/enrol" \
    -d "{\"enrol_token\":\"$(cat "$work/data/enrol.token")\",\"facts\":{\"hostname\":\"rogue\",\"os\":\"linux\",\"arch\":\"x86_64\",\"agent_version\":\"0\",\"installed\":[]}}" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["device_token"])')
rss_start=$(rss)
log_start=$(stat -c %s "$work/server.log")
python3 - "$port" "$token" "$SECONDS_RUN" "$WORKERS" "$HELD" "$work/holding" <<'PY' &
import http.client, json, sys, threading, time, socket
port, token, secs, workers, held = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
version = "0.0.1-" + "a" * 4096
body = json.dumps({"facts": {"hostname": "rogue", "os": "linux", "arch": "x86_64",
    "agent_version": "0", "installed": [{"item": "app", "version": version}]}}).encode()
headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
counts, lock = {}, threading.Lock()
deadline = time.monotonic() + secs
def hammer():
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    while time.monotonic() < deadline:
        try:
            conn.request("POST", "/api/v1/device/checkin", body, headers)
            r = conn.getresponse(); r.read(); s = r.status
        except Exception:
            # A 429 is answered before the body is read, so the server closes that connection.
            conn.close(); conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10); s = "closed"
        with lock: counts[s] = counts.get(s, 0) + 1
threads = [threading.Thread(target=hammer) for _ in range(workers)]
for t in threads: t.start()
for t in threads: t.join()
total = sum(counts.values())
print(f"check-ins in {secs:.0f} s: {total} ({total/secs:.0f}/s): " + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items(), key=str)))
# Long-polls: open HELD at once, each asking to be held 30 s; count those answered at once.
poll = json.dumps({"facts": {"hostname": "rogue", "os": "linux", "arch": "x86_64",
    "agent_version": "0", "installed": []}, "wait_secs": 30}).encode()
time.sleep(3)  # the budget refills a little
socks = []
for _ in range(held):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"POST /api/v1/device/checkin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token.encode() +
              b"\r\nContent-Type: application/json\r\nContent-Length: " + str(len(poll)).encode() + b"\r\n\r\n" + poll)
    socks.append(s)
time.sleep(2)
answered = 0
for s in socks:
    s.setblocking(False)
    try:
        if s.recv(1): answered += 1
    except BlockingIOError:
        pass
print(f"long-polls opened: {held}; answered at once: {answered}; still held after 2 s: {held - answered}", flush=True)
# Held open while the shell reads the server's RSS.
open(sys.argv[6], "w").close()
time.sleep(3)
PY
client=$!
for _ in $(seq 1 $((SECONDS_RUN * 10 + 600))); do [ -f "$work/holding" ] && break; sleep 0.1; done
rss_end=$(rss)
wait "$client"
log_end=$(stat -c %s "$work/server.log")
echo "server RSS: $((rss_start / 1024)) MiB before, $((rss_end / 1024)) MiB after (long-polls still open)"
echo "server log grew by $(( (log_end - log_start) / 1024 )) KiB; lines over the budget: $(grep -c 'over its request budget' "$work/server.log" || true)"
