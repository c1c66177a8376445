#!/usr/bin/env bash
# The web UI's figures, on 127.0.0.1 with a release build:
#   - page weight of the main pages (HTML, plus the stylesheet and script every page loads;
#     goal: under 100 KiB each, without images);
#   - server time to render them for a fleet of HOSTS hosts with ITEMS items each (the hosts
#     page is paginated; goal: under 100 ms), median of RUNS requests, measured by curl as
#     the time to the first byte on a kept-alive loopback connection.
#
#   bench/ui-figures.sh [HOSTS] [ITEMS] [RUNS]     (defaults: 10000, 10, 7)
set -euo pipefail
cd "$(dirname "$0")/.."
HOSTS=${1:-10000}
ITEMS=${2:-10}
RUNS=${3:-7}
cargo build --release --bins --locked -q
BIN=$PWD/target/release
work=$(mktemp -d "${TMPDIR:-/var/tmp}/ferry-ui.XXXXXX")
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# The simulated fleet enrols all at once, and its hosts report the tags the campaign targets.
printf 'enrolments_per_minute = 1000000\ntrust_device_tags = true\n' > "$work/server.toml"
FERRY_LOG=warn "$BIN/ferry-server" --listen "127.0.0.1:$port" --data-dir "$work/data" \
    --config "$work/server.toml" >"$work/server.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 200); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.05; done
export FERRY_SERVER="http://127.0.0.1:$port" FERRY_TOKEN="@$work/data/operator.token"

echo "publishing $ITEMS releases and enrolling $HOSTS hosts with $ITEMS items each"
"$BIN/ferryctl" keygen --out "$work/keys/release" >/dev/null
mkdir -p "$work/src"
echo payload > "$work/src/file"
for i in $(seq 0 $((ITEMS - 1))); do
    "$BIN/ferryctl" release build --item "item-$i" --version 2.0.0 --from "$work/src" \
        --key "$work/keys/release.key" --out "$work/out-$i" --category security \
        --notes "Item $i 2.0.0: fixes." >/dev/null
    "$BIN/ferryctl" release publish "$work/out-$i" >/dev/null
done
python3 - "$port" "$work/data/enrol.token" "$HOSTS" "$ITEMS" <<'PY'
import json, sys, urllib.request, concurrent.futures
port, token_file, hosts, items = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
token = open(token_file).read().strip()
def enrol(h):
    facts = {"hostname": f"bench-{h:05}", "os": "Debian GNU/Linux", "os_version": "12",
             "arch": "x86_64", "agent_version": "0.1.0", "tags": ["site-%d" % (h % 20)],
             "installed": [{"item": f"item-{i}", "version": "1.0.0"} for i in range(items)]}
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/enrol",
        data=json.dumps({"enrol_token": token, "facts": facts}).encode(),
        headers={"content-type": "application/json"})
    urllib.request.urlopen(req).read()
with concurrent.futures.ThreadPoolExecutor(8) as pool:
    list(pool.map(enrol, range(hosts)))
PY
host_id=$("$BIN/ferryctl" hosts list --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
"$BIN/ferryctl" campaigns create --item item-0 --version 2.0.0 --tag site-3 --require-acceptance >/dev/null

curl -fs -c "$work/jar" -o /dev/null -d "token=$(cat "$work/data/operator.token")&next=/" "http://127.0.0.1:$port/login"
assets=$(( $(curl -fs "http://127.0.0.1:$port/ui/ui.css" | wc -c) + $(curl -fs "http://127.0.0.1:$port/ui/ui.js" | wc -c) ))
echo "stylesheet and script: $assets bytes (loaded once, cached for an hour)"
printf '%-34s %10s %12s %10s\n' page "HTML bytes" "with assets" "median ms"
for page in / /hosts "/hosts?page=100" "/hosts?q=bench-0042" "/hosts?tag=site-7" "/hosts?status=offline" \
            "/hosts/$host_id" /campaigns /batches "/history" /items /settings; do
    urls=()
    for _ in $(seq 1 "$RUNS"); do urls+=(-o /dev/null "http://127.0.0.1:$port$page"); done
    # One curl, one kept-alive connection, RUNS requests: the first byte's time of each.
    times=$(curl -fs -b "$work/jar" -w '%{time_starttransfer} %{time_pretransfer} %{size_download}\n' "${urls[@]}")
    python3 - "$page" "$assets" <<PY
import statistics, sys
rows = [l.split() for l in """$times""".strip().splitlines()]
ms = [ (float(a) - float(b)) * 1000 for a, b, _ in rows ]
size = int(rows[-1][2])
print(f"{sys.argv[1][:34]:<34} {size:>10} {size + int(sys.argv[2]):>12} {statistics.median(ms):>10.1f}")
PY
done
