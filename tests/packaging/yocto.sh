#!/usr/bin/env bash
# The Yocto layer, checked with the ecosystem's own linter and against the sources:
#   1. oelint-adv (pinned, from PyPI) on every recipe for the layer's release series: no
#      errors (warnings are printed);
#   2. the crate:// lists match Cargo.lock (yocto/scripts/update-crates --check);
#   3. the agent.toml the agent recipe writes from FERRY_* variables is one the agent accepts.
set -euo pipefail
cd "$(dirname "$0")/../.."
fail() { echo "FAIL (yocto): $*" >&2; exit 1; }
layer=yocto/meta-ferry
OELINT_VERSION=9.11.2

venv=target/oelint-venv
if [ ! -x "$venv/bin/oelint-adv" ] || ! "$venv/bin/oelint-adv" --version | grep -q "$OELINT_VERSION"; then
    python3 -m venv "$venv" 2>/dev/null || {
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
        python3 -m venv "$venv"
    }
    "$venv/bin/pip" install -q --disable-pip-version-check "oelint-adv==$OELINT_VERSION" \
        || fail "cannot install oelint-adv $OELINT_VERSION from PyPI"
fi

echo "== oelint-adv"
series="$(sed -n 's/^LAYERSERIES_COMPAT_meta-ferry = "\(.*\)"/\1/p' "$layer/conf/layer.conf")"
[ -n "$series" ] || fail "layer.conf has no LAYERSERIES_COMPAT_meta-ferry"
recipes=("$layer"/recipes-*/*/*.bb)
[ "${#recipes[@]}" -ge 2 ] || fail "expected the ferry-agent and ferry-server recipes, found ${recipes[*]}"
for release in $series; do
    # homepageping would reach out to the network; the tests talk only to loopback.
    out="$("$venv/bin/oelint-adv" --quiet --exit-zero --release "$release" --mode all --relpaths \
        --suppress oelint.vars.homepageping "${recipes[@]}" 2>&1)"
    echo "$out" | grep -v ':info:' || true
    if echo "$out" | grep -q ':error:'; then
        fail "oelint-adv reports errors for $release"
    fi
    echo "oelint-adv $release: $(echo "$out" | grep -c ':warning:' || true) warnings, 0 errors"
done

echo "== crate lists"
yocto/scripts/update-crates --check || fail "the crate lists do not match Cargo.lock"

echo "== the agent.toml the recipe writes"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# The recipe's do_install:append, with bitbake's variables as an integrator would set them.
python3 - "$layer/recipes-ferry/ferry-agent/ferry-agent_git.bb" "$work" <<'PY'
import re, sys
recipe, work = sys.argv[1], sys.argv[2]
text = open(recipe).read()
body = re.search(r"do_install:append\(\) \{\n(.*?)\n\}\n", text, re.S).group(1)
values = {
    "D": work + "/image", "sysconfdir": "/etc", "localstatedir": work + "/var",
    "UNPACKDIR": work + "/unpack", "S": ".", "systemd_system_unitdir": "/lib/systemd/system",
    "FERRY_SERVER_URL": "https://updates.example.org", "FERRY_REPOSITORY_URL": "",
    "FERRY_RELEASE_KEYS": "release.pub", "FERRY_ITEMS": "web:/srv/web app:/opt/app",
    "FERRY_AUTO_INSTALL": "true", "FERRY_DEVICE_CLASS": "raspberrypi4",
    "FERRY_TRUST_ROOT": "", "FERRY_SIGNATURE_THRESHOLD": "1", "FERRY_POLL_INTERVAL": "600",
    "FERRY_DEVICE_KEY": "pkcs11:token=ferry;object=device?module-path=/bin/true",
    "FERRY_DEVICE_CERTIFICATE": "", "FERRY_SERVER_CA": "",
}
def sub(m):
    if m.group(1) not in values:
        sys.exit(f"the recipe uses ${{{m.group(1)}}}, unknown to this check")
    return values[m.group(1)]
script = re.sub(r"\$\{([A-Za-z0-9_]+)\}", sub, body)
open(work + "/install.sh", "w").write("set -e\n" + script + "\n")
PY
mkdir -p "$work/unpack"
target/debug/ferryctl keygen --out "$work/unpack/release" >/dev/null
sh "$work/install.sh" || fail "the recipe's do_install fails"
cfg="$work/image/etc/ferry/agent.toml"
[ "$(stat -c %a "$cfg")" = 600 ] || fail "agent.toml is not mode 0600"
# The installed config names /etc/ferry/keys/release.pub; check it against the key where the
# image would have it.
sed "s#/etc/ferry/keys/#$work/image/etc/ferry/keys/#; s#$work/var#$work/state#" "$cfg" > "$work/check.toml"
grep -q 'device_class = "raspberrypi4"' "$work/check.toml" || fail "device_class is missing"
grep -q 'poll_interval_secs = 600' "$work/check.toml" || fail "poll_interval_secs is missing"
grep -q 'signature_threshold = 1' "$work/check.toml" || fail "signature_threshold is missing"
# No key and no trust root: the recipe refuses to build (SkipRecipe, naming what to set).
grep -q 'SkipRecipe("set FERRY_RELEASE_KEYS' "$layer/recipes-ferry/ferry-agent/ferry-agent_git.bb" \
    || fail "the recipe builds an agent that trusts no key"
status="$(target/debug/ferry-agent --config "$work/check.toml" --running-mode=status)" \
    || { cat "$cfg" >&2; fail "the agent refuses the recipe's agent.toml"; }
echo "$status" | grep -q '\[web\] root /srv/web' || fail "item web is missing: $status"
echo "$status" | grep -q '\[app\] root /opt/app' || fail "item app is missing: $status"
# The units' sandbox is opened to each item's root, for both agent units.
for unit in ferry-agent.service ferry-agent-once.service; do
    dropin="$work/image/lib/systemd/system/$unit.d/50-ferry-roots.conf"
    [ -f "$dropin" ] || fail "no ReadWritePaths drop-in for $unit"
    grep -qx 'ReadWritePaths=-/srv/web' "$dropin" && grep -qx 'ReadWritePaths=-/opt/app' "$dropin" \
        || { cat "$dropin" >&2; fail "the $unit drop-in does not open the item roots"; }
done
# A key in the TPM: the units may reach /dev/tpmrm0 and tpm2-pkcs11 keeps its store in the state directory.
grep -q '^key = "pkcs11:token=ferry;object=device' "$cfg" || fail "key (FERRY_DEVICE_KEY) is missing"
for unit in ferry-agent.service ferry-agent-once.service; do
    dropin="$work/image/lib/systemd/system/$unit.d/50-ferry-tpm.conf"
    grep -qx 'DeviceAllow=/dev/tpmrm0 rw' "$dropin" || fail "no TPM drop-in for $unit"
done
echo "yocto: ok"
