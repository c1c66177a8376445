#!/usr/bin/env bash
# What hosts' software lists (`[[sources]]`, docs/sources.md) cost the server. HOSTS devices
# enrol and upload a list of PACKAGES packages each (one of them openssl at a version between
# 3.0.11 and 3.0.17; one in ten with an upgrade offered, a third of those security); then the
# script reports the size of one upload, the upload time, a delta's size and time, the fleet-wide searches "openssl older
# than 3.0.15", "security upgrades pending" (every package) and "hosts with security upgrades
# pending" (per host) (median of 7), and the check-in rate and p99
# of WORKERS connections for SECONDS, with and without an inventory digest in each check-in.
#
#   bench/inventory-figures.sh [HOSTS] [PACKAGES] [SECONDS] [WORKERS]   (10000 200 10 16)
set -euo pipefail
cd "$(dirname "$0")/.."
HOSTS=${1:-10000}
PACKAGES=${2:-200}
SECONDS_RUN=${3:-10}
WORKERS=${4:-16}
ulimit -n "$(ulimit -Hn)"
source bench/lib.sh
bench_fleet_server warn
python3 - "$port" "$work/data/enrol.token" "$work/data/operator.token" "$HOSTS" "$PACKAGES" "$SECONDS_RUN" "$WORKERS" <<'PY'
import hashlib, http.client, json, random, statistics, sys, threading, time
port, enrol_file, op_file = int(sys.argv[1]), sys.argv[2], sys.argv[3]
hosts, packages, secs, workers = int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6]), int(sys.argv[7])
enrol_token = open(enrol_file).read().strip()
op_token = open(op_file).read().strip()
local = threading.local()
def call(method, path, body=None, token=None):
    if not hasattr(local, "c"):
        local.c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    local.c.request(method, path, data, headers)
    r = local.c.getresponse()
    out = r.read()
    if r.status >= 300:
        raise SystemExit(f"{method} {path}: {r.status} {out[:200]!r}")
    return json.loads(out) if out else None
def inventory(i):
    rnd = random.Random(i)
    pk = []
    for n in range(packages - 1):
        p = {"source": "apt", "name": f"lib{n:05d}", "version": f"1.{rnd.randint(0, 9)}-{rnd.randint(1, 3)}"}
        if rnd.random() < 0.1:
            p["latest"] = p["version"] + "+deb12u1"
            p["category"] = rnd.choice(["security", "bugfix", "unknown"])
        pk.append(p)
    pk.append({"source": "apt", "name": "openssl", "version": f"3.0.{rnd.randint(11, 17)}-1~deb12u1"})
    pk.sort(key=lambda p: (p["source"], p["name"], p["version"]))
    return pk
def digest(pk):
    h = hashlib.sha256()
    for p in pk:
        fields = [p["source"], p["name"], p["version"], p.get("latest", ""), p.get("category", "")]
        h.update(b"\0".join(f.encode() for f in fields) + b"\n")
    return h.hexdigest()
facts = lambda i: {"hostname": f"h{i:05d}", "os": "Debian", "arch": "x86_64", "agent_version": "0", "installed": []}
tokens, upload_ms, lock = [None] * hosts, [], threading.Lock()
def seed(idx):
    for i in idx:
        t = call("POST", "/api/v1/enrol", {"enrol_token": enrol_token, "facts": facts(i)})["device_token"]
        tokens[i] = t
        pk = inventory(i)
        started = time.monotonic()
        call("POST", "/api/v1/device/inventory", {"packages": pk}, t)
        with lock:
            upload_ms.append((time.monotonic() - started) * 1000)
started = time.monotonic()
threads = [threading.Thread(target=seed, args=(range(k, hosts, 8),)) for k in range(8)]
for t in threads: t.start()
for t in threads: t.join()
size = len(json.dumps({"packages": inventory(0)}).encode())
size2000 = len(json.dumps({"packages": [{"source": "apt", "name": f"lib{n:05d}", "version": "1.2.3-1+deb12u1"} for n in range(2000)]}).encode())
print(f"seeded {hosts} hosts x {packages} packages in {time.monotonic() - started:.0f} s; upload median {statistics.median(upload_ms):.1f} ms")
print(f"one upload: {size} bytes for {packages} packages; {size2000} bytes ({size2000 / 1024:.0f} KiB) for 2,000 (JSON, uncompressed)")
# What changed since the list the server has, as the agent sends it: host 0 upgrades
# openssl, loses one package and gains one.
old = inventory(0)
new = [dict(p) for p in old if p["name"] != "lib00001"]
for p in new:
    if p["name"] == "openssl":
        p["version"] = "3.0.17-1~deb12u1"
new.append({"source": "apt", "name": "newcomer", "version": "0.1-1"})
new.sort(key=lambda p: (p["source"], p["name"], p["version"]))
before = {(p["source"], p["name"]): p for p in old}
changed = [p for p in new if before.get((p["source"], p["name"])) != p]
gone = [{"source": k[0], "name": k[1]} for k in before if k not in {(p["source"], p["name"]) for p in new}]
delta = {"packages": changed, "base": digest(old), "removed": gone, "digest": digest(new)}
s0 = time.monotonic()
stored = call("POST", "/api/v1/device/inventory", delta, tokens[0])["stored"]
delta_ms = (time.monotonic() - s0) * 1000
assert stored == len(new), stored
print(f"a delta of {len(changed)} changed and {len(gone)} gone of {packages}: {len(json.dumps(delta).encode())} bytes (the whole list: {size}), stored in {delta_ms:.1f} ms")
def timed(path):
    """The answer to GET path and the median of 7 round trips, in ms."""
    times = []
    for _ in range(7):
        s = time.monotonic()
        hits = call("GET", path, token=op_token)
        times.append((time.monotonic() - s) * 1000)
    return hits, statistics.median(times)
hits, ms = timed("/api/v1/packages?name=openssl&older_than=3.0.15")
print(f"search openssl older than 3.0.15 over {hosts} hosts: {len(hits)} hits, median {ms:.0f} ms")
hits, ms = timed("/api/v1/packages?category=security")
print(f"search security upgrades pending over {hosts} hosts: {len(hits)} hits on {len({h['host_id'] for h in hits})} hosts, median {ms:.0f} ms")
hits, ms = timed("/api/v1/packages/hosts?category=security")
print(f"hosts with security upgrades pending over {hosts} hosts: {len(hits)} hosts, median {ms:.0f} ms")
def rate(with_digest):
    lat, deadline = [], time.monotonic() + secs
    def run(idx):
        mine = []
        for i in idx:
            body = {"facts": facts(i)}
            if with_digest:
                body["inventory_digest"] = digests[i]
            while time.monotonic() < deadline:
                s = time.monotonic()
                call("POST", "/api/v1/device/checkin", body, tokens[i])
                mine.append(time.monotonic() - s)
                break
            if time.monotonic() >= deadline:
                break
        with lock:
            lat.extend(mine)
    ts = [threading.Thread(target=run, args=(list(range(k, hosts, workers)) * 100,)) for k in range(workers)]
    for t in ts: t.start()
    for t in ts: t.join()
    lat.sort()
    return len(lat) / secs, lat[int(len(lat) * 0.99) - 1] * 1000
digests = [digest(inventory(i)) for i in range(hosts)]
for label, w in (("without a digest", False), ("with a digest", True)):
    r, p99 = rate(w)
    print(f"check-ins {label}: {r:.0f}/s, p99 {p99:.1f} ms")
PY
