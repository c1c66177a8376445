#!/usr/bin/env bash
# Held long-polls on one ferry-server instance: DEVICES devices each hold a check-in open,
# and the server's memory per held long-poll is reported (RSS with them held, less RSS
# before). More connections than one loopback address has ports: the server and the load
# generator run in a network namespace of their own, the long-polls spread over 127.0.0.1-4.
# Needs root (the namespace, a raised open-files limit).
#
#   bench/longpoll.sh [DEVICES]     (default: 100000)
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICES=${1:-100000}
[ "$(id -u)" -eq 0 ] || { echo "bench/longpoll.sh needs root (a network namespace, the open-files limit)" >&2; exit 1; }
cargo build --release --locked -q -p ferry-server -p ferry-e2e -p ferryctl --bins
BIN=$PWD/target/release
# One socket per long-poll in each process, and room for the rest. Where the hard limit
# cannot be raised (no CAP_SYS_RESOURCE, as in some containers), as many devices as it allows
# are measured and the figure for DEVICES projected from them.
WANTED=$DEVICES
fds=$((DEVICES + 2000))
ulimit -Hn "$fds" 2>/dev/null || true
if [ "$(ulimit -Hn)" != unlimited ] && [ "$(ulimit -Hn)" -lt "$fds" ]; then
    DEVICES=$(( $(ulimit -Hn) - 2000 ))
    echo "the open-files hard limit is $(ulimit -Hn) and cannot be raised here: measuring $DEVICES devices, projecting $WANTED"
    fds=$(ulimit -Hn)
fi
ulimit -n "$fds"
work=$(mktemp -d "${TMPDIR:-/var/tmp}/ferry-longpoll.XXXXXX")
ns=ferry-bench-$$
server_pid=
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
ip netns add "$ns"
inns() { ip netns exec "$ns" "$@"; }
inns ip link set lo up
inns sysctl -q -w net.ipv4.ip_local_port_range="1024 65535"
inns sysctl -q -w net.core.somaxconn=65535
inns sysctl -q -w net.ipv4.tcp_max_syn_backlog=65535

# Long-polls held up to 5 minutes, so opening the whole fleet fits in one wait.
printf 'long_poll_max_secs = 300\nenrolments_per_minute = 1000000\n' > "$work/server.toml"
FERRY_LOG=warn inns "$BIN/ferry-server" --listen 127.0.0.1:8080 --data-dir "$work/server" \
    --config "$work/server.toml" > "$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do inns curl -fs http://127.0.0.1:8080/healthz >/dev/null && break; sleep 0.1; done
# `ip netns exec` may run the server as its child: measure the server itself.
child=$(pgrep -P "$server_pid" -x ferry-server || true)
[ -n "$child" ] && server_pid=$child
rss() { awk '/VmRSS/ {print $2}' "/proc/$server_pid/status"; }
echo "server RSS at start: $(( $(rss) / 1024 )) MiB"
export FERRY_SERVER=http://127.0.0.1:8080 FERRY_TOKEN="@$work/server/operator.token"
mkdir -p "$work/payload" && echo x > "$work/payload/x"
inns "$BIN/ferryctl" keygen --out "$work/keys/release" >/dev/null
inns "$BIN/ferryctl" release build --item bench --version 1.0.0 --from "$work/payload" \
    --key "$work/keys/release.key" --out "$work/out" >/dev/null
inns "$BIN/ferryctl" release publish "$work/out" >/dev/null

before=
inns "$BIN/ferry-loadgen" --server http://127.0.0.1:8080 \
    --enrol-token "$(cat "$work/server/enrol.token")" \
    --operator-token "$(cat "$work/server/operator.token")" \
    --devices "$DEVICES" --concurrency 256 --item bench --longpoll-only \
    --wait-secs 280 --local-addresses 4 --server-pid "$server_pid" |
while IFS= read -r line; do
    case "$line" in
    READY-FOR-RSS-BEFORE)
        before=$(rss)
        echo "server RSS before the long-polls: $((before / 1024)) MiB" ;;
    READY-FOR-RSS)
        held=$(rss)
        echo "server RSS with every device long-polling: $((held / 1024)) MiB"
        per=$(( (held - before) * 1024 / DEVICES ))
        echo "memory per held long-poll: $per bytes ($DEVICES devices)"
        echo "projected for $WANTED held long-polls: $(( per * WANTED / 1048576 )) MiB (plus $((before / 1024)) MiB before)" ;;
    *) echo "$line" ;;
    esac
done
