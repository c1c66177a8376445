#!/usr/bin/env bash
# What users, roles and the audit log cost (docs/users.md): the time an operator change
# takes end to end and the audit write inside it (median and p99 of ACTIONS changes, the write
# as the server logs it), a password sign-in to the web UI, and the check-in rate and p99 of WORKERS connections for SECONDS
# over DEVICES devices (devices pass the audit without a lookup; compare with
# bench/inventory-figures.sh's rate before users existed).
#
#   bench/users-figures.sh [ACTIONS] [DEVICES] [SECONDS] [WORKERS]   (1000 1000 10 16)
set -euo pipefail
cd "$(dirname "$0")/.."
ACTIONS=${1:-1000}
DEVICES=${2:-1000}
SECONDS_RUN=${3:-10}
WORKERS=${4:-16}
ulimit -n "$(ulimit -Hn)"
source bench/lib.sh
bench_fleet_server info
python3 - "$port" "$work/data/enrol.token" "$work/data/operator.token" "$ACTIONS" "$DEVICES" "$SECONDS_RUN" "$WORKERS" "$work/server.log" <<'PY'
import http.client, json, re, statistics, sys, threading, time
port, enrol_file, op_file = int(sys.argv[1]), sys.argv[2], sys.argv[3]
actions, devices, secs, workers, log = int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6]), int(sys.argv[7]), sys.argv[8]
enrol_token = open(enrol_file).read().strip()
op_token = open(op_file).read().strip()
local = threading.local()
def call(method, path, body=None, token=None):
    if not hasattr(local, "c"):
        local.c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    local.c.request(method, path, json.dumps(body).encode() if body is not None else None, headers)
    r = local.c.getresponse()
    out = r.read()
    if r.status >= 300:
        raise SystemExit(f"{method} {path}: {r.status} {out[:200]!r}")
    return json.loads(out) if out else None
facts = lambda i: {"hostname": f"h{i:05d}", "os": "Debian", "arch": "x86_64", "agent_version": "0", "installed": [{"item": "web", "version": "1.0.0"}]}
tokens = [call("POST", "/api/v1/enrol", {"enrol_token": enrol_token, "facts": facts(i)})["device_token"] for i in range(devices)]
# An operator's change, audited: ask one host for a check, as `ferryctl hosts check` does.
lat = []
for i in range(actions):
    s = time.monotonic()
    call("POST", "/api/v1/check", {"host": f"h{i % devices:05d}"}, op_token)
    lat.append((time.monotonic() - s) * 1000)
lat.sort()
time.sleep(0.5)
writes = sorted(int(m) for m in re.findall(r"write_us=(\d+)", open(log).read()))
assert len(writes) >= actions, (len(writes), actions)
print(f"an operator change (POST /api/v1/check), {actions} in a row: median {statistics.median(lat):.2f} ms, p99 {lat[int(len(lat) * 0.99) - 1]:.2f} ms")
print(f"its audit write: median {statistics.median(writes)} us, p99 {writes[int(len(writes) * 0.99) - 1]} us")
audit = call("GET", "/api/v1/audit", token=op_token)
print(f"audit entries: {len(audit)}")
# A web UI sign-in with a password (argon2id): one per user (each name's budget is five).
signins = []
for i in range(10):
    call("POST", "/api/v1/users", {"name": f"bench{i}", "role": "viewer", "password": "a bench passphrase"}, op_token)
for i in range(10):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    s = time.monotonic()
    c.request("POST", "/login", f"name=bench{i}&password=a+bench+passphrase&next=/",
              {"Content-Type": "application/x-www-form-urlencoded"})
    r = c.getresponse(); r.read()
    signins.append((time.monotonic() - s) * 1000)
    if r.status != 303 or "ferry_session" not in (r.getheader("Set-Cookie") or ""):
        raise SystemExit(f"password sign-in of bench{i}: {r.status}")
signins.sort()
print(f"a password sign-in (argon2id verify), 10 users: median {statistics.median(signins):.1f} ms, max {signins[-1]:.1f} ms")
def rate():
    out, deadline, lock = [], time.monotonic() + secs, threading.Lock()
    def run(k):
        mine = []
        i = k
        while time.monotonic() < deadline:
            s = time.monotonic()
            call("POST", "/api/v1/device/checkin", {"facts": facts(i % devices)}, tokens[i % devices])
            mine.append(time.monotonic() - s)
            i += workers
        with lock:
            out.extend(mine)
    ts = [threading.Thread(target=run, args=(k,)) for k in range(workers)]
    for t in ts: t.start()
    for t in ts: t.join()
    out.sort()
    return len(out) / secs, out[int(len(out) * 0.99) - 1] * 1000
r, p99 = rate()
print(f"check-ins ({devices} devices, {workers} connections, {secs:.0f} s): {r:.0f}/s, p99 {p99:.1f} ms")
PY
