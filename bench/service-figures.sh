#!/usr/bin/env bash
# Running the server as a service, in figures (release build, 127.0.0.1 only):
#   backup   the time `ferry-server backup` takes on the database of a fleet of HOSTS simulated
#            hosts while that fleet checks in (ferry-loadgen), and the check-in rate meanwhile;
#   download artifact download throughput: from the data directory, from object storage through
#            the server (first read, which fetches it, and later reads, from the cache), and from
#            a presigned URL of the store (s3s-fs, as the tests use);
#   webhook  delivery latency: from an event's request (a release withdrawn) to its arrival at
#            a receiver on loopback, over N events.
#
#   bench/service-figures.sh [backup|download|webhook|all] [HOSTS] [MIB] [N]
#                                        (defaults: all, 100000 hosts, 256 MiB, 20 events)
set -euo pipefail
cd "$(dirname "$0")/.."
PART=${1:-all}
HOSTS=${2:-100000}
MIB=${3:-256}
EVENTS=${4:-20}
S3S=${S3S_FS:-/opt/s3s-fs/bin/s3s-fs}
cargo build --release --locked -q -p ferry-server -p ferryctl -p ferry-e2e --bins
BIN=$PWD/target/release
work=$(mktemp -d "${TMPDIR:-/var/tmp}/ferry-service.XXXXXX")
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
# Starts a server on the data directory $1 with server.toml $2; sets port.
start_server() {
    port=$(free_port)
    FERRY_LOG=warn "$BIN/ferry-server" --listen "127.0.0.1:$port" --data-dir "$1" --config "$2" \
        > "$1.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 1 200); do curl -fs "http://127.0.0.1:$port/readyz" >/dev/null && return; sleep 0.1; done
    echo "ferry-server did not start:" >&2; cat "$1.log" >&2; exit 1
}
echo "ferry-server $("$BIN/ferry-server" --version | awk '{print $2}'), $(nproc) cores"

backup_part() {
    ulimit -n "$(ulimit -Hn)"
    printf 'enrolments_per_minute = 1000000\ndevice_request_burst = 100000\ndevice_requests_per_sec = 10000\n' > "$work/fleet.toml"
    start_server "$work/fleet" "$work/fleet.toml"
    "$BIN/ferry-loadgen" --server "http://127.0.0.1:$port" \
        --enrol-token "$(cat "$work/fleet/enrol.token")" \
        --operator-token "$(cat "$work/fleet/operator.token")" \
        --devices "$HOSTS" --concurrency 64 --seconds 15 --rounds 2 --checkins-only \
        > "$work/loadgen.log" 2>&1 &
    local loadgen=$!
    pids+=($loadgen)
    for _ in $(seq 1 3000); do grep -q '^enrolled' "$work/loadgen.log" && break; sleep 0.1; done
    grep '^enrolled' "$work/loadgen.log" || { cat "$work/loadgen.log" >&2; exit 1; }
    sleep 3   # into the check-ins
    local t0 t1
    t0=$(now)
    "$BIN/ferry-server" backup --data-dir "$work/fleet" --to "$work/backup.tar" >/dev/null
    t1=$(now)
    local db
    db=$(du -m "$work/fleet/ferry.db" | cut -f1)
    printf 'backup of %s hosts (database %s MiB) while they check in: %.1f s, %s MiB written\n' \
        "$HOSTS" "$db" "$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}')" "$(du -m "$work/backup.tar" | cut -f1)"
    wait "$loadgen" || true
    grep -E 'cold pass|warm' "$work/loadgen.log" | sed 's/^/  load during and after: /'
    kill "${pids[0]}" 2>/dev/null || true
}

download_part() {
    local s3port
    s3port=$(free_port)
    mkdir -p "$work/s3/bench"
    "$S3S" --host 127.0.0.1 --port "$s3port" --access-key bench --secret-key bench-secret-key-0123456789 \
        "$work/s3" > "$work/s3.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 1 100); do curl -s "http://127.0.0.1:$s3port/" >/dev/null && break; sleep 0.1; done
    head -c 32 /dev/urandom > "$work/secrets.key"
    printf 'access_key_id = "bench"\nsecret_access_key = "bench-secret-key-0123456789"\n' > "$work/s3.toml"
    printf 'device_request_burst = 100000\ndevice_requests_per_sec = 10000\n' > "$work/local.toml"
    { cat "$work/local.toml"; printf 'artifact_store = "s3://bench/fleet"\nsecrets_key_file = "%s"\n[s3]\nendpoint = "http://127.0.0.1:%s"\nregion = "us-east-1"\ncredentials_file = "%s"\n' \
        "$work/secrets.key" "$s3port" "$work/s3.toml"; } > "$work/objects.toml"
    { cat "$work/objects.toml"; printf 'presigned_url_secs = 300\n'; } > "$work/presigned.toml"
    head -c "$((MIB << 20))" /dev/urandom > "$work/blob.bin"
    rate() { # URL TOKEN [curl args]: MiB/s of one download
        local url=$1 token=$2; shift 2
        curl -fsS -o /dev/null -w '%{size_download} %{time_total}\n' -H "Authorization: Bearer $token" "$@" "$url" \
            | awk '{printf "%.0f MiB/s", $1 / 1048576 / $2}'
    }
    for kind in local objects presigned; do
        start_server "$work/$kind" "$work/$kind.toml"
        local url="http://127.0.0.1:$port" op device
        op=$(cat "$work/$kind/operator.token" 2>/dev/null || cat "$work/local/operator.token")
        curl -fsS -X PUT -H "Authorization: Bearer $op" --data-binary "@$work/blob.bin" \
            "$url/api/v1/artifacts/blob-$kind.bin" >/dev/null
        device=$(curl -fsS -H 'content-type: application/json' \
            -d "{\"enrol_token\":\"$(cat "$work/$kind/enrol.token")\",\"facts\":{\"hostname\":\"bench-$kind\",\"os\":\"linux\",\"os_version\":\"\",\"arch\":\"x86_64\",\"agent_version\":\"0\",\"installed\":[]}}" \
            "$url/api/v1/enrol" | python3 -c 'import json,sys; print(json.load(sys.stdin)["device_token"])')
        case $kind in
            local) echo "data directory, through the server: $(rate "$url/api/v1/artifacts/blob-local.bin" "$device") (${MIB} MiB)" ;;
            objects)
                rm -f "$work/objects/artifacts/blob-objects.bin"   # as on an instance that lacks it
                echo "object storage through the server, first read (fetched): $(rate "$url/api/v1/artifacts/blob-objects.bin" "$device")"
                echo "object storage through the server, later reads (cached): $(rate "$url/api/v1/artifacts/blob-objects.bin" "$device")" ;;
            presigned) echo "object storage, presigned URL (307 to the store): $(rate "$url/api/v1/artifacts/blob-presigned.bin" "$device" -L)" ;;
        esac
        kill "${pids[-1]}" 2>/dev/null || true
    done
}

webhook_part() {
    local rport
    rport=$(free_port)
    python3 - "$rport" "$work/arrivals" <<'PY' &
import http.server, sys, time
port, out = int(sys.argv[1]), sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        with open(out, "a") as f:
            f.write(f"{time.time():.6f} {self.headers.get('webhook-id')} {body.decode()}\n")
        self.send_response(200); self.send_header("content-length", "0"); self.end_headers()
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
PY
    pids+=($!)
    printf '' > "$work/hooks.toml"
    start_server "$work/hooks" "$work/hooks.toml"
    export FERRY_SERVER="http://127.0.0.1:$port" FERRY_TOKEN="@$work/hooks/operator.token"
    echo "whsec_$(head -c 32 /dev/urandom | base64)" > "$work/hook.secret"
    "$BIN/ferryctl" webhooks add "http://127.0.0.1:$rport/" --events release.withdrawn \
        --secret-file "$work/hook.secret" >/dev/null
    "$BIN/ferryctl" keygen --out "$work/keys/release" >/dev/null
    mkdir -p "$work/src"
    echo hello > "$work/src/hello.txt"
    for i in $(seq 1 "$EVENTS"); do
        "$BIN/ferryctl" release build --item app --version "1.0.$i" --from "$work/src" \
            --key "$work/keys/release.key" --out "$work/out-$i" >/dev/null
        "$BIN/ferryctl" release publish "$work/out-$i" >/dev/null
    done
    : > "$work/arrivals"
    for i in $(seq 1 "$EVENTS"); do
        local t0
        t0=$(now)
        curl -fsS -X POST -H "Authorization: Bearer $(cat "$work/hooks/operator.token")" \
            -H 'content-type: application/json' -d '{"reason":"bench"}' \
            "http://127.0.0.1:$port/api/v1/releases/app/1.0.$i/withdraw" >/dev/null
        for _ in $(seq 1 200); do [ "$(wc -l < "$work/arrivals")" -ge "$i" ] && break; sleep 0.01; done
        local t1
        t1=$(tail -1 "$work/arrivals" | cut -d' ' -f1)
        echo "$t0 $t1" | awk '{printf "%.0f\n", ($2 - $1) * 1000}' >> "$work/latency"
    done
    sort -n "$work/latency" | awk '{a[NR]=$1} END {printf "webhook delivery, request to arrival, %d events: median %d ms, max %d ms\n", NR, a[int((NR+1)/2)], a[NR]}'
}

case $PART in
    backup) backup_part ;;
    download) download_part ;;
    webhook) webhook_part ;;
    all) webhook_part; download_part; backup_part ;;
    *) echo "usage: bench/service-figures.sh [backup|download|webhook|all] [HOSTS] [MIB] [N]" >&2; exit 2 ;;
esac
