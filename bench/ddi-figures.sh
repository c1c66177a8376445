#!/usr/bin/env bash
# What a hawkBit DDI device's poll costs the server beside a Ferry agent's check-in: HOSTS
# agents enrol and HOSTS DDI devices join with the tenant's gateway token (and send their
# attributes); then WORKERS connections make idle check-ins, then idle DDI polls, for SECONDS
# each. Reports the rate, median and p99 latency, and the bytes of one request and answer.
#
#   bench/ddi-figures.sh [HOSTS] [SECONDS] [WORKERS]   (2000 10 16)
set -euo pipefail
cd "$(dirname "$0")/.."
HOSTS=${1:-2000}
SECONDS_RUN=${2:-10}
WORKERS=${3:-16}
ulimit -n "$(ulimit -Hn)"
source bench/lib.sh
bench_fleet_server warn
python3 - "$port" "$work/data/enrol.token" "$work/data/operator.token" "$HOSTS" "$SECONDS_RUN" "$WORKERS" <<'PY'
import http.client, json, statistics, sys, threading, time
port, enrol_file, op_file = int(sys.argv[1]), sys.argv[2], sys.argv[3]
hosts, secs, workers = int(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
enrol_token = open(enrol_file).read().strip()
op_token = open(op_file).read().strip()
local = threading.local()
def call(method, path, body=None, auth=None):
    if not hasattr(local, "c"):
        local.c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Content-Type": "application/json"}
    if auth:
        headers["Authorization"] = auth
    data = json.dumps(body).encode() if body is not None else None
    local.c.request(method, path, data, headers)
    r = local.c.getresponse()
    out = r.read()
    if r.status >= 300:
        raise SystemExit(f"{method} {path}: {r.status} {out[:200]!r}")
    return out, len(data or b"")
facts = lambda i: {"hostname": f"agent{i:05d}", "os": "Debian", "arch": "x86_64", "agent_version": "0", "installed": [{"item": "app", "version": "1.0.0"}]}
gateway = json.loads(call("POST", "/api/v1/ddi/gateway-token", {"rotate": False}, f"Bearer {op_token}")[0])["token"]
tokens = [None] * hosts
def seed(idx):
    for i in idx:
        out, _ = call("POST", "/api/v1/enrol", {"enrol_token": enrol_token, "facts": facts(i)})
        tokens[i] = json.loads(out)["device_token"]
        path = f"/default/controller/v1/ddi{i:05d}"
        call("GET", path, auth=f"GatewayToken {gateway}")
        call("PUT", path + "/configData", {"mode": "merge", "data": {"board": "pump", "serial": f"{i:05d}"}}, f"GatewayToken {gateway}")
started = time.monotonic()
threads = [threading.Thread(target=seed, args=(range(k, hosts, 8),)) for k in range(8)]
for t in threads: t.start()
for t in threads: t.join()
print(f"{hosts} agents enrolled and {hosts} DDI devices joined in {time.monotonic() - started:.0f} s")
def run(kind):
    lat, sizes, lock, deadline = [], [], threading.Lock(), time.monotonic() + secs
    def work(k):
        mine, i = [], k
        while time.monotonic() < deadline:
            n = i % hosts
            s = time.monotonic()
            if kind == "agent":
                out, sent = call("POST", "/api/v1/device/checkin", {"facts": facts(n)}, f"Bearer {tokens[n]}")
            else:
                out, sent = call("GET", f"/default/controller/v1/ddi{n:05d}", auth=f"GatewayToken {gateway}")
            mine.append(time.monotonic() - s)
            if len(sizes) < 1:
                with lock:
                    sizes.append((sent, len(out)))
            i += workers
        with lock:
            lat.extend(mine)
    ts = [threading.Thread(target=work, args=(k,)) for k in range(workers)]
    for t in ts: t.start()
    for t in ts: t.join()
    lat.sort()
    return len(lat) / secs, statistics.median(lat) * 1000, lat[int(len(lat) * 0.99) - 1] * 1000, sizes[0]
for label, kind in (("Ferry agent check-in", "agent"), ("DDI poll (gateway token)", "ddi")):
    rate, med, p99, (sent, got) = run(kind)
    print(f"{label}: {rate:.0f}/s, median {med:.2f} ms, p99 {p99:.1f} ms; request body {sent} B, answer {got} B")
PY
