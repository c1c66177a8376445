#!/usr/bin/env bash
# Measures ferry-agent's install stage against the plain-tools baseline on a generated payload,
# for gzip and zstd tarballs, plus binary size and idle RSS in full mode.
#
#   bench/install-figures.sh [SIZE_MB] [FILES] [RUNS]     (defaults: 100 MB, 2,000 files, 5 runs)
#
# For each compression: RUNS alternating runs of `ferry-agent --running-mode=install` (verify
# the artifact, unpack while hashing every file, syncfs, rename, flip) and of the baseline
# (`sha256sum` of the tarball, `tar x` into a staging dir, `sync`, `mv`), each from the same
# starting state; prints medians, their ratio and peak RSS (/usr/bin/time -v). Everything runs
# on 127.0.0.1 in a temporary directory, removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MB=${1:-100}
FILES=${2:-2000}
RUNS=${3:-5}
need() { command -v "$1" >/dev/null 2>&1; }
need /usr/bin/time || { apt-get update -qq && apt-get install -y -qq time; }
need zstd || { apt-get update -qq && apt-get install -y -qq zstd; }
need bc || { apt-get update -qq && apt-get install -y -qq bc; }

cargo build --release --bins --locked -q
BIN=$PWD/target/release
work=$(mktemp -d "${TMPDIR:-/var/tmp}/ferry-bench.XXXXXX")
server_pid=
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

echo "payload: ${SIZE_MB} MB over ${FILES} files (deterministic, half random, half text)"
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

cat > "$work/agent.toml" <<EOT
server_url = "http://127.0.0.1:$port"
enrol_token_file = "$work/server/enrol.token"
state_dir = "$work/state"
trusted_keys = ["$work/keys/release.pub"]
hostname = "bench"
poll_interval_secs = 3600

[[items]]
name = "bench"
root = "$work/root"
EOT
agent() { "$BIN/ferry-agent" --config "$work/agent.toml" --running-mode="$1"; }
agent check 2>/dev/null

# Prints "seconds kib" for a command, from /usr/bin/time -v.
timed() {
    /usr/bin/time -v "$@" 2> "$work/time.txt" >/dev/null || { cat "$work/time.txt" >&2; exit 1; }
    awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; w=s}
               /Maximum resident set size/ {r=$2} END {print w, r}' "$work/time.txt"
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

version=0
for comp in gzip zstd; do
    version=$((version + 1))
    v="$version.0.0"
    "$BIN/ferryctl" release build --item bench --version "$v" --from "$work/payload" \
        --key "$work/keys/release.key" --out "$work/out-$comp" --compression "$comp" >/dev/null
    "$BIN/ferryctl" release publish "$work/out-$comp" >/dev/null
    tarball=$(ls "$work/out-$comp"/*.tar.*)
    "$BIN/ferryctl" update trigger --host bench --item bench --version "$v" >/dev/null
    agent check 2>/dev/null
    dl=$(timed "$BIN/ferry-agent" --config "$work/agent.toml" --running-mode=download)
    rm -rf "$work/snap"; mkdir -p "$work/snap"
    cp -a "$work/state" "$work/snap/state"
    [ -d "$work/root" ] && cp -a "$work/root" "$work/snap/root"
    restore() {
        rm -rf "$work/state" "$work/root" "$work/base"
        cp -a "$work/snap/state" "$work/state"
        [ -d "$work/snap/root" ] && cp -a "$work/snap/root" "$work/root"
        mkdir -p "$work/base"
        sync
    }
    case $comp in gzip) untar="tar xzf";; zstd) untar="tar --zstd -xf";; esac
    : > "$work/ferry.times"; : > "$work/base.times"; : > "$work/ferry.rss"
    for _ in $(seq 1 "$RUNS"); do
        restore
        read -r t r < <(timed "$BIN/ferry-agent" --config "$work/agent.toml" --running-mode=install)
        echo "$t" >> "$work/ferry.times"; echo "$r" >> "$work/ferry.rss"
        test "$(readlink "$work/root/current")" = "releases/$v" || { echo "install did not complete" >&2; exit 1; }
        restore
        read -r t _ < <(timed sh -c "sha256sum '$tarball' >/dev/null && mkdir '$work/base/stage' && $untar '$tarball' -C '$work/base/stage' && sync && mv '$work/base/stage' '$work/base/$v'")
        echo "$t" >> "$work/base.times"
    done
    # Finish the job for real (install and report) so the next trigger is accepted.
    restore
    agent once 2>/dev/null
    f=$(median < "$work/ferry.times"); b=$(median < "$work/base.times")
    rss=$(sort -n "$work/ferry.rss" | tail -1)
    printf '%s (%s bytes): download %s s, %.1f MiB peak; install median %s s vs baseline %s s (ratio %.2fx); install peak RSS %.1f MiB\n' \
        "$comp" "$(stat -c %s "$tarball")" "${dl% *}" "$(echo "${dl#* } / 1024" | bc -l)" \
        "$f" "$b" "$(echo "$f / $b" | bc -l)" "$(echo "$rss / 1024" | bc -l)"
done

# Idle RSS of the long-running mode, after its first cycle.
"$BIN/ferry-agent" --config "$work/agent.toml" --running-mode=full 2>/dev/null &
full_pid=$!
sleep 3
idle=$(awk '/VmRSS/ {print $2}' "/proc/$full_pid/status")
kill "$full_pid"; wait "$full_pid" 2>/dev/null || true
size=$(stat -c %s "$BIN/ferry-agent")
printf 'idle RSS in full mode: %.1f MiB; ferry-agent stripped release binary: %s bytes (%.2f MiB)\n' \
    "$(echo "$idle / 1024" | bc -l)" "$size" "$(echo "$size / 1048576" | bc -l)"
