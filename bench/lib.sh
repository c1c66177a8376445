# Shared by the bench/ scripts (source it after `cd` to the repository root): a release build,
# a work directory removed at exit, a ferry-server on a free 127.0.0.1 port with a release
# key, and small helpers. Sets BIN, work, port, server_pid, FERRY_SERVER and FERRY_TOKEN.
cargo build --release --bins --locked -q
BIN=$PWD/target/release
work=$(mktemp -d "${TMPDIR:-/var/tmp}/ferry-bench.XXXXXX")
server_pid=
agent_pid=
bench_cleanup() {
    [ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null
    rm -rf "$work"
}
trap bench_cleanup EXIT
ms() { date +%s%3N; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# Starts the server for a fleet of simulated devices (enrolment and request budgets out of
# the way), logging at level $1; sets port and server_pid.
bench_fleet_server() {
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    printf 'enrolments_per_minute = 1000000\ndevice_request_burst = 100000\ndevice_requests_per_sec = 10000\n' > "$work/server.toml"
    FERRY_LOG=$1 "$BIN/ferry-server" --config "$work/server.toml" --listen "127.0.0.1:$port" \
        --data-dir "$work/data" > "$work/server.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 1 100); do [ -f "$work/data/operator.token" ] && break; sleep 0.1; done
    [ -f "$work/data/operator.token" ] || { echo "ferry-server did not start:" >&2; cat "$work/server.log" >&2; exit 1; }
}

# Starts the server (data in $work/data, log in $work/server.log) and makes a release key.
bench_server() {
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    FERRY_LOG=${FERRY_LOG:-warn} "$BIN/ferry-server" --listen "127.0.0.1:$port" --data-dir "$work/data" > "$work/server.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 1 100); do [ -f "$work/data/operator.token" ] && break; sleep 0.1; done
    [ -f "$work/data/operator.token" ] || { echo "ferry-server did not start:" >&2; cat "$work/server.log" >&2; exit 1; }
    export FERRY_SERVER="http://127.0.0.1:$port" FERRY_TOKEN="@$work/data/operator.token"
    "$BIN/ferryctl" keygen --out "$work/keys/release" >/dev/null
}

# Writes $work/NAME.toml: a device of this server managing item `app` under $work/root-NAME.
bench_device() {
    cat > "$work/$1.toml" <<EOT
server_url = "http://127.0.0.1:$port"
enrol_token_file = "$work/data/enrol.token"
state_dir = "$work/state-$1"
trusted_keys = ["$work/keys/release.pub"]
hostname = "$1"

[[items]]
name = "app"
root = "$work/root-$1"
EOT
}
