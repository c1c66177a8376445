#!/usr/bin/env bash
# The Debian packages, checked the way Debian checks them and then used:
#   1. build ferry-agent, ferry-server and ferryctl 0.1.0 and 0.1.1 (scripts/package, from the
#      binaries in BIN_DIR, default target/debug);
#   2. lintian: no errors (warnings are printed);
#   3. install 0.1.0 into a throw-away Debian root (a copy of ROOTFS, made by debootstrap) with
#      dpkg, maintainer scripts and all: every file lands with its owner and mode, the agent's
#      timer (and only it) and the server are enabled;
#   4. one real update with the installed binaries: the server as its system user on
#      127.0.0.1, ferryctl builds and publishes a release, the agent installs it;
#   5. upgrade to 0.1.1: the agent's state, the installed item, the server's data and an
#      edited conffile stay;
#   6. purge: state and data go, the install root stays.
set -euo pipefail
cd "$(dirname "$0")/../.."

ROOTFS="${FERRY_TEST_ROOTFS:-/var/cache/ferry-test/bookworm}"
BIN_DIR="${BIN_DIR:-target/debug}"
fail() { echo "FAIL (packaging): $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "must run as root (dpkg into a chroot)"
[ -x "$ROOTFS/usr/bin/dpkg" ] || fail "no Debian root at $ROOTFS: scripts/test makes one with debootstrap"
command -v lintian >/dev/null || fail "lintian is missing (apt-get install lintian)"

rm -f target/debian/*.deb
scripts/package --bin-dir "$BIN_DIR" >/dev/null
scripts/package --bin-dir "$BIN_DIR" --version 0.1.1 >/dev/null
arch="$(dpkg --print-architecture)"
debs_v1=(target/debian/ferry-agent_0.1.0_$arch.deb target/debian/ferry-server_0.1.0_$arch.deb target/debian/ferryctl_0.1.0_$arch.deb)
debs_v2=(target/debian/ferry-agent_0.1.1_$arch.deb target/debian/ferry-server_0.1.1_$arch.deb target/debian/ferryctl_0.1.1_$arch.deb)
for d in "${debs_v1[@]}" "${debs_v2[@]}"; do [ -f "$d" ] || fail "$d was not built"; done

echo "== lintian"
lintian --fail-on error -I "${debs_v1[@]}" \
    || fail "lintian reports errors"

work="$(mktemp -d /var/tmp/ferry-deb.XXXXXX)"
root="$work/root"
server_pid=""
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
    for m in "$root/proc" "$root/dev"; do mountpoint -q "$m" && umount -l "$m"; done
    rm -rf "$work"
}
trap cleanup EXIT
echo "== throw-away root"
cp -a "$ROOTFS" "$root"
mount --bind /dev "$root/dev"
mount -t proc proc "$root/proc"
in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root "$@"; }
mkdir -p "$root/tmp/debs"
cp "${debs_v1[@]}" "${debs_v2[@]}" "$root/tmp/debs/"

echo "== install 0.1.0"
in_root dpkg -i /tmp/debs/ferry-agent_0.1.0_$arch.deb /tmp/debs/ferry-server_0.1.0_$arch.deb \
    /tmp/debs/ferryctl_0.1.0_$arch.deb >/dev/null || fail "dpkg -i 0.1.0 failed"

# OWNER:GROUP MODE PATH, as a person would check with stat.
expect_stat() {
    local want="$1" path="$2"
    local got
    got="$(in_root stat -c '%U:%G %a' "$path" 2>/dev/null)" || fail "$path is missing"
    [ "$got" = "$want" ] || fail "$path is $got, expected $want"
}
expect_stat "root:root 755" /usr/bin/ferry-agent
expect_stat "root:root 755" /usr/bin/ferry-server
expect_stat "root:root 755" /usr/bin/ferryctl
expect_stat "root:root 755" /etc/ferry
expect_stat "root:root 600" /etc/ferry/agent.toml
expect_stat "root:root 644" /etc/ferry/server.toml
expect_stat "root:root 700" /var/lib/ferry-agent
expect_stat "ferry-server:ferry-server 700" /var/lib/ferry-server
for unit in ferry-agent.service ferry-agent-once.service ferry-agent.timer ferry-server.service; do
    expect_stat "root:root 644" "/lib/systemd/system/$unit"
done
expect_stat "root:root 644" /lib/systemd/system/ferry-server.service.d/debian.conf
expect_stat "root:root 644" /usr/share/doc/ferry-agent/changelog.gz
expect_stat "root:root 644" /usr/share/doc/ferry-agent/copyright
expect_stat "root:root 644" /usr/share/man/man8/ferry-agent.8.gz
expect_stat "root:root 644" /usr/share/man/man8/ferry-server.8.gz
expect_stat "root:root 644" /usr/share/man/man1/ferryctl.1.gz
in_root getent passwd ferry-server | grep -q ':/var/lib/ferry-server:' \
    || fail "the system user ferry-server is missing or has another home"
in_root dpkg-query -W -f='${Conffiles}\n' ferry-agent | grep -q '/etc/ferry/agent.toml' \
    || fail "/etc/ferry/agent.toml is not a conffile"
in_root dpkg-query -W -f='${Conffiles}\n' ferry-server | grep -q '/etc/ferry/server.toml' \
    || fail "/etc/ferry/server.toml is not a conffile"
[ -L "$root/etc/systemd/system/timers.target.wants/ferry-agent.timer" ] \
    || fail "ferry-agent.timer is not enabled"
[ ! -e "$root/etc/systemd/system/multi-user.target.wants/ferry-agent.service" ] \
    || fail "ferry-agent.service is enabled beside the timer"
[ -L "$root/etc/systemd/system/multi-user.target.wants/ferry-server.service" ] \
    || fail "ferry-server.service is not enabled"

echo "== the shipped agent config manages nothing, and says so without failing the unit"
gen=/lib/systemd/system-generators/ferry-agent-generator
expect_stat "root:root 755" $gen
in_root $gen /tmp/gen-empty || fail "the generator fails on the shipped config"
[ ! -e "$root/tmp/gen-empty/ferry-agent.service.d" ] || fail "the generator wrote a drop-in for no item"
unconfigured="$(in_root ferry-agent --config /etc/ferry/agent.toml --running-mode=once 2>&1)" \
    || fail "the shipped config fails the agent: $unconfigured"
echo "$unconfigured" | grep -q "not configured yet" || fail "the shipped config says: $unconfigured"
grep -q '^\[\[items\]\]' "$root/etc/ferry/agent.toml" && fail "the shipped config manages an item"

echo "== one real update with the installed binaries"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    runuser -u ferry-server -- /usr/bin/ferry-server --config /etc/ferry/server.toml \
    --listen "127.0.0.1:$port" >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
    [ -s "$root/var/lib/ferry-server/operator.token" ] && break
    sleep 0.1
done
[ -s "$root/var/lib/ferry-server/operator.token" ] || { cat "$work/server.log" >&2; fail "the server did not start"; }
for _ in $(seq 1 100); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1',$port),1)" 2>/dev/null && break
    sleep 0.1
done
ctl() { in_root ferryctl --server "http://127.0.0.1:$port" --token @/var/lib/ferry-server/operator.token "$@"; }
mkdir -p "$root/root/src/bin"
printf '#!/bin/sh\necho web 1.0.0\n' > "$root/root/src/bin/web"
chmod 755 "$root/root/src/bin/web"
in_root ferryctl keygen --out /root/keys/release >/dev/null
in_root ferryctl release build --item web --version 1.0.0 --from /root/src \
    --key /root/keys/release.key --out /root/out >/dev/null
ctl release publish /root/out >/dev/null || fail "publishing failed"
cp "$root/root/keys/release.pub" "$root/etc/ferry/release.pub"
cp "$root/var/lib/ferry-server/enrol.token" "$root/etc/ferry/enrol.token"
# The device's edits to its conffile: this server, and the item it manages.
cat > "$root/etc/ferry/agent.toml" <<TOML
server_url = "http://127.0.0.1:$port"
enrol_token_file = "/etc/ferry/enrol.token"
trusted_keys = ["/etc/ferry/release.pub"]
auto_install = true

[[items]]
name = "web"
root = "/srv/web"
TOML
# The generator opens the units' sandbox to the configured root, for both agent units.
in_root $gen /tmp/gen || fail "the generator failed"
for unit in ferry-agent.service ferry-agent-once.service; do
    grep -qx 'ReadWritePaths="-/srv/web"' "$root/tmp/gen/$unit.d/50-ferry-roots.conf" \
        || fail "the generator did not open /srv/web for $unit"
done
in_root ferry-agent --config /etc/ferry/agent.toml --running-mode=once \
    || fail "the installed agent's update failed"
[ "$(in_root /srv/web/current/bin/web)" = "web 1.0.0" ] || fail "web 1.0.0 is not in place"
ctl history list | grep -q installed || fail "the server has no history of the install"

echo "== upgrade to 0.1.1"
in_root dpkg -i /tmp/debs/ferry-agent_0.1.1_$arch.deb /tmp/debs/ferry-server_0.1.1_$arch.deb \
    /tmp/debs/ferryctl_0.1.1_$arch.deb >/dev/null || fail "dpkg -i 0.1.1 failed"
[ "$(in_root dpkg-query -W -f='${Version}' ferry-agent)" = "0.1.1" ] || fail "ferry-agent is not 0.1.1"
grep -q "127.0.0.1:$port" "$root/etc/ferry/agent.toml" || fail "the upgrade replaced the edited agent.toml"
in_root ferry-agent --config /etc/ferry/agent.toml --running-mode=status | grep -q 'installed: 1.0.0' \
    || fail "the upgrade lost the agent's state"
[ "$(in_root /srv/web/current/bin/web)" = "web 1.0.0" ] || fail "the upgrade touched the installed item"
[ -s "$root/var/lib/ferry-server/ferry.db" ] || fail "the upgrade lost the server's data"
expect_stat "ferry-server:ferry-server 700" /var/lib/ferry-server
in_root ferry-agent --config /etc/ferry/agent.toml --running-mode=check \
    || fail "the agent no longer talks to the server after the upgrade"

echo "== purge"
kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""
in_root dpkg --purge ferry-agent ferry-server ferryctl >/dev/null || fail "dpkg --purge failed"
[ ! -e "$root/var/lib/ferry-agent" ] || fail "purge left /var/lib/ferry-agent"
[ ! -e "$root/var/lib/ferry-server" ] || fail "purge left /var/lib/ferry-server"
[ ! -e "$root/etc/ferry/agent.toml" ] || fail "purge left the conffile agent.toml"
[ -x "$root/srv/web/current/bin/web" ] || fail "purge removed the device's install root"
echo "packaging: ok (lintian clean of errors; install, update, upgrade, purge in a Debian root)"
