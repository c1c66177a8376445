#!/usr/bin/env bash
# What an idle device costs its link, per day and mode, over HTTPS as a fleet runs it: the
# bytes both ways between one agent and the server (counted on the wire by a relay, TLS
# included), for one `once` run (the hourly timer: x24), and for `full` mode with the default
# intervals (a 30 s long-poll, held open; measured over SECONDS, scaled to a day).
#
#   bench/idle-bytes.sh [SECONDS]   (300)
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_RUN=${1:-300}
source bench/lib.sh
# A CA and the server's certificate from it (a CA's own certificate is refused as a server's).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=bench CA" \
    -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
    -keyout "$work/tls.key" -out "$work/tls.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' > "$work/ext"
openssl x509 -req -in "$work/tls.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial \
    -days 2 -extfile "$work/ext" -out "$work/tls.pem" 2>/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
FERRY_LOG=warn "$BIN/ferry-server" --listen "127.0.0.1:$port" --data-dir "$work/data" \
    --tls-cert "$work/tls.pem" --tls-key "$work/tls.key" > "$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do [ -f "$work/data/operator.token" ] && break; sleep 0.1; done
relay_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# The relay counts every byte it passes, per direction, into $work/bytes.
python3 - "$relay_port" "$port" "$work/bytes" <<'PY' &
import socket, sys, threading
lport, sport, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
counts, lock = [0, 0], threading.Lock()
def pipe(a, b, i):
    try:
        while True:
            d = a.recv(65536)
            if not d:
                break
            b.sendall(d)
            with lock:
                counts[i] += len(d)
                open(out, "w").write(f"{counts[0]} {counts[1]}\n")
    except OSError:
        pass
    for s in (a, b):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", lport)); srv.listen(64)
while True:
    c, _ = srv.accept()
    u = socket.create_connection(("127.0.0.1", sport))
    threading.Thread(target=pipe, args=(c, u, 0), daemon=True).start()
    threading.Thread(target=pipe, args=(u, c, 1), daemon=True).start()
PY
relay_pid=$!
trap 'kill $relay_pid 2>/dev/null; bench_cleanup' EXIT
cat > "$work/agent.toml" <<EOT
server_url = "https://127.0.0.1:$relay_port"
server_ca = "$work/ca.pem"
enrol_token_file = "$work/data/enrol.token"
state_dir = "$work/state"
trusted_keys = []
hostname = "idle-1"

[[items]]
name = "app"
root = "$work/root"
EOT
mkdir -p "$work/keys" && "$BIN/ferryctl" keygen --out "$work/keys/release" >/dev/null
sed -i "s|trusted_keys = \[\]|trusted_keys = [\"$work/keys/release.pub\"]|" "$work/agent.toml"
bytes() { cat "$work/bytes" 2>/dev/null || echo "0 0"; }
agent_once() {
    "$BIN/ferry-agent" --config "$work/agent.toml" --running-mode=once > "$work/agent.log" 2>&1 ||
        { echo "ferry-agent failed:" >&2; cat "$work/agent.log" >&2; exit 1; }
}
sleep 0.5
agent_once   # enrols
read -r up0 down0 < <(bytes)
agent_once
read -r up1 down1 < <(bytes)
once=$(( (up1 - up0) + (down1 - down0) ))
echo "once (one idle run; the hourly timer): up $((up1 - up0)) B, down $((down1 - down0)) B; per day at 24 runs: $(( once * 24 / 1024 )) KiB"
"$BIN/ferry-agent" --config "$work/agent.toml" --running-mode=full >/dev/null 2>&1 &
agent_pid=$!
sleep 5
read -r up2 down2 < <(bytes)
sleep "$SECONDS_RUN"
read -r up3 down3 < <(bytes)
full=$(( (up3 - up2) + (down3 - down2) ))
echo "full (long-poll 30 s, held) over ${SECONDS_RUN} s: up $((up3 - up2)) B, down $((down3 - down2)) B; per day: $(( full * 86400 / SECONDS_RUN / 1024 )) KiB"
