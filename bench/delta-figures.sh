#!/usr/bin/env bash
# The file-level delta figures, on a generated payload (default 100 MB over 2,000 files, half
# random and half text) with 1% of its files changed per release:
#   - bytes a device fetches for the delta against the full artifact;
#   - install time from the delta (assembled from the installed release plus the delta)
#     against a full install of the same release, and the peak RSS of each;
#   - the server's time and disk to build the deltas from the last 3 releases on publish.
#
#   bench/delta-figures.sh [SIZE_MB] [FILES] [RUNS]     (defaults: 100, 2000, 3)
#
# Release build, everything on 127.0.0.1 in a temporary directory removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MB=${1:-100}
FILES=${2:-2000}
RUNS=${3:-3}
command -v /usr/bin/time >/dev/null || { apt-get update -qq && apt-get install -y -qq time; }

. bench/lib.sh

# Release N of the payload: 1% of the files (a different 1% each release) change.
payload() {
    python3 - "$work/src-$1" "$SIZE_MB" "$FILES" "$1" <<'PY'
import os, random, sys
root, size_mb, files, release = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
per = size_mb * 1024 * 1024 // files
changed = files // 100
for i in range(files):
    d = os.path.join(root, f"d{i % 40:02d}")
    os.makedirs(d, exist_ok=True)
    # A file's content depends on the last release that changed it.
    last = max([r for r in range(release + 1) if i // changed == r % (files // changed)] or [0])
    rng = random.Random(i * 1000 + last)
    if i % 2:
        data = rng.randbytes(per)
    else:
        line = f"line {i} v{last} of a compressible text file in the ferry benchmark\n".encode()
        data = (line * (per // len(line) + 1))[:per]
    with open(os.path.join(d, f"f{i:05d}.bin"), "wb") as f:
        f.write(data)
PY
}

FERRY_LOG=info bench_server

publish() { # VERSION-INDEX
    payload "$1"
    "$BIN/ferryctl" release build --item app --version "1.$1.0" --from "$work/src-$1" \
        --key "$work/keys/release.key" --out "$work/out-$1" >/dev/null
    "$BIN/ferryctl" release publish "$work/out-$1" >/dev/null
}
echo "payload: ${SIZE_MB} MB over ${FILES} files, 1% changed per release"
for r in 0 1 2; do publish "$r"; done
# The deltas to 1.3.0 from the last 3 releases, built on publish: time and disk.
t0=$(ms)
publish 3
publish_done=$(ms)
for _ in $(seq 1 600); do
    [ "$(ls "$work/data/deltas/app/" 2>/dev/null | grep -c -- '-1.3.0.tar.gz$')" -ge 3 ] && break
    sleep 0.05
done
built=$(ms)
disk=$(du -cb "$work"/data/deltas/app/*-1.3.0.tar.gz | tail -1 | cut -f1)
full=$(stat -c %s "$work/out-3/app-1.3.0.tar.gz")
echo "server: 3 deltas to 1.3.0 built $(( built - publish_done )) ms after the publish returned; ${disk} bytes on disk (the full artifact: ${full})"

agent() { FERRY_LOG=warn "$BIN/ferry-agent" --config "$work/$1.toml" --running-mode="$2"; }

delta_ms=(); full_ms=(); delta_rss=(); full_rss=(); fetched=
for run in $(seq 1 "$RUNS"); do
    for kind in delta full; do
        name="$kind-$run"
        rm -rf "$work/state-$name" "$work/root-$name"
        bench_device "$name"
        agent "$name" check >/dev/null 2>&1
        "$BIN/ferryctl" update trigger --host "$name" --item app --version 1.2.0 >/dev/null 2>&1
        agent "$name" once >/dev/null 2>&1
        if [ "$kind" = full ]; then
            # Without the installed release's manifest the device cannot use a delta.
            rm -f "$work/state-$name/manifests/installed-app.json"
        fi
        "$BIN/ferryctl" update trigger --host "$name" --item app --version 1.3.0 >/dev/null 2>&1
        agent "$name" check >/dev/null 2>&1
        agent "$name" download >/dev/null 2>&1
        sync
        /usr/bin/time -v -o "$work/time" "$BIN/ferry-agent" --config "$work/$name.toml" --running-mode=install >/dev/null 2>&1
        secs=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$work/time" | awk -F: '{print ($1 * 60 + $2) * 1000}')
        rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time")
        [ "$(readlink "$work/root-$name/current")" = "releases/1.3.0" ] || { echo "install of $name failed" >&2; exit 1; }
        agent "$name" check >/dev/null 2>&1 # delivers the report
        if [ "$kind" = delta ]; then
            delta_ms+=("${secs%.*}"); delta_rss+=("$rss")
            fetched=$("$BIN/ferryctl" history list --host "$name" --json | python3 -c "import json,sys; print([e for e in json.load(sys.stdin) if e['version']=='1.3.0'][0]['fetched'])")
        else
            full_ms+=("${secs%.*}"); full_rss+=("$rss")
        fi
    done
done
dm=$(printf '%s\n' "${delta_ms[@]}" | median); fm=$(printf '%s\n' "${full_ms[@]}" | median)
echo "fetched for 1.2.0 -> 1.3.0: $fetched (full artifact: $full bytes)"
python3 -c "import ast; f=ast.literal_eval('''$fetched'''); print(f'delta / full artifact: {100*f[\"bytes\"]/$full:.2f}% of the bytes')"
echo "install from the delta: median ${dm} ms; full install: median ${fm} ms; ratio $(python3 -c "print(f'{$dm/$fm:.2f}x')")"
echo "peak RSS: delta $(printf '%s\n' "${delta_rss[@]}" | median) KiB, full $(printf '%s\n' "${full_rss[@]}" | median) KiB"
