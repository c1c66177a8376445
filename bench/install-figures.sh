#!/usr/bin/env bash
# Measures ferry-agent on a generated payload: stripped binary size, and wall time and peak RSS
# of the download and install stages (with /usr/bin/time -v), plus the plain-tools baseline
# (sha256sum, tar x, sync, mv) on the same tarball.
#
#   bench/install-figures.sh [SIZE_MB] [FILES]      (defaults: 100 MB over 2,000 files)
#
# Everything runs on 127.0.0.1 in a temporary directory, which is removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MB=${1:-100}
FILES=${2:-2000}
command -v /usr/bin/time >/dev/null || { apt-get update -qq && apt-get install -y -qq time; }

cargo build --release --bins --locked -q
BIN=$PWD/target/release
work=$(mktemp -d)
server_pid=
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

echo "generating ${SIZE_MB} MB over ${FILES} files (deterministic, half compressible)"
python3 - "$work/payload" "$SIZE_MB" "$FILES" <<'PY'
import os, random, sys
root, size_mb, files = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(20261122)
per = size_mb * 1024 * 1024 // files
for i in range(files):
    d = os.path.join(root, f"d{i % 40:02d}")
    os.makedirs(d, exist_ok=True)
    if i % 2:
        data = rng.randbytes(per)
    else:
        line = f"line {i} of a compressible text file in the ferry benchmark payload\n".encode()
        data = (line * (per // len(line) + 1))[:per]
    with open(os.path.join(d, f"f{i:05d}.bin"), "wb") as f:
        f.write(data)
PY

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$BIN/ferry-server" --listen "127.0.0.1:$port" --data-dir "$work/server" > "$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
export FERRY_SERVER="http://127.0.0.1:$port" FERRY_TOKEN="@$work/server/operator.token"

"$BIN/ferryctl" keygen --out "$work/keys/release" >/dev/null
"$BIN/ferryctl" release build --item bench --version 1.0.0 --from "$work/payload" \
    --key "$work/keys/release.key" --out "$work/out" >/dev/null
"$BIN/ferryctl" release publish "$work/out" >/dev/null
tarball=$(ls "$work"/out/*.tar.gz)

cat > "$work/agent.toml" <<EOT
server_url = "http://127.0.0.1:$port"
enrol_token_file = "$work/server/enrol.token"
state_dir = "$work/state"
trusted_keys = ["$work/keys/release.pub"]
hostname = "bench"

[[items]]
name = "bench"
root = "$work/root"
EOT
agent() { "$BIN/ferry-agent" --config "$work/agent.toml" --running-mode="$1"; }
agent check 2>/dev/null
"$BIN/ferryctl" update trigger --host bench --item bench >/dev/null
agent check 2>/dev/null

measure() { # label, command...
    local label=$1; shift
    /usr/bin/time -v "$@" 2> "$work/time.txt" >/dev/null || { cat "$work/time.txt"; exit 1; }
    local wall rss
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$work/time.txt")
    rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time.txt")
    printf '%-34s wall %-9s peak RSS %6.1f MiB\n' "$label" "$wall" "$(echo "$rss / 1024" | bc -l)"
}

cp "$tarball" "$work/baseline.tar.gz"
measure "ferry-agent download" "$BIN/ferry-agent" --config "$work/agent.toml" --running-mode=download
measure "ferry-agent install" "$BIN/ferry-agent" --config "$work/agent.toml" --running-mode=install
test "$(readlink "$work/root/current")" = "releases/1.0.0" || { echo "install did not complete" >&2; exit 1; }
measure "baseline sha256sum+tar x+sync+mv" sh -c "sha256sum '$work/baseline.tar.gz' >/dev/null && mkdir -p '$work/base/stage' && tar xzf '$work/baseline.tar.gz' -C '$work/base/stage' && sync && mv '$work/base/stage' '$work/base/1.0.0'"

size=$(stat -c %s "$BIN/ferry-agent")
printf 'tarball: %s bytes; ferry-agent stripped release binary: %s bytes (%.2f MiB)\n' \
    "$(stat -c %s "$tarball")" "$size" "$(echo "$size / 1048576" | bc -l)"
