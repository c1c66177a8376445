#!/usr/bin/env bash
# The interactive-update figure: how long a keystroke takes to come back. ferryctl runs in a
# pseudo-terminal (Python's pty) attached to an interactive install whose hook echoes each
# line it reads; the script types a line and times until the hook's answer shows in
# ferryctl's terminal: operator -> server -> device long-poll -> the hook's pty -> live
# output -> server -> SSE -> ferryctl. Release build, everything on 127.0.0.1.
#
#   bench/interactive-latency.sh [LINES]     (default 50; prints the median, p90 and max)
set -euo pipefail
cd "$(dirname "$0")/.."
LINES=${1:-50}
. bench/lib.sh
bench_server
mkdir -p "$work/src"
echo data > "$work/src/file"
# Echoes every line until "q": one answer per keystroke line.
hook='while read -r l; do [ "$l" = q ] && exit 0; echo "got-$l"; done'
"$BIN/ferryctl" release build --item app --version 1.0.0 --from "$work/src" \
    --key "$work/keys/release.key" --out "$work/out" --post-install "$hook" >/dev/null
"$BIN/ferryctl" release publish "$work/out" >/dev/null
bench_device bench-device
FERRY_LOG=warn "$BIN/ferry-agent" --config "$work/bench-device.toml" --running-mode=full 2>>"$work/agent.log" &
agent_pid=$!
for _ in $(seq 1 100); do
    "$BIN/ferryctl" hosts list --json 2>/dev/null | grep -q bench-device && break
    sleep 0.1
done

python3 - "$BIN/ferryctl" "$LINES" <<'PY'
import os, pty, select, sys, time
ctl, lines = sys.argv[1], int(sys.argv[2])
pid, fd = pty.fork()
if pid == 0:
    os.execv(ctl, [ctl, "update", "trigger", "--host", "bench-device", "--item", "app", "--interactive"])
buf = b""
def wait_for(token, limit=30):
    global buf
    end = time.time() + limit
    while time.time() < end:
        if token in buf:
            buf = buf.split(token, 1)[1]
            return True
        r, _, _ = select.select([fd], [], [], 0.05)
        if fd in r:
            try:
                buf += os.read(fd, 65536)
            except OSError:
                return False
    return False
if not wait_for(b"attached"):
    sys.exit("ferryctl did not attach")
time.sleep(3)  # the device takes the job and starts the hook
times = []
for i in range(lines):
    t0 = time.monotonic()
    os.write(fd, f"{i}\r".encode())
    if not wait_for(f"got-{i}".encode()):
        sys.exit(f"no answer to line {i}")
    times.append((time.monotonic() - t0) * 1000)
os.write(fd, b"q\r")
wait_for(b"installed", 30)
os.waitpid(pid, 0)
times.sort()
pick = lambda q: times[min(len(times) - 1, int(q * len(times)))]
print(f"keystroke to answer over {lines} lines: min {times[0]:.1f} ms, median {pick(0.5):.1f} ms, p90 {pick(0.9):.1f} ms, max {times[-1]:.1f} ms")
PY
