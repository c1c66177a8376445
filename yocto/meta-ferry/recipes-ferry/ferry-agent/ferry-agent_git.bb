SUMMARY = "Ferry over-the-air update agent"
DESCRIPTION = "Pull-based update agent: checks a Ferry server or a static release \
               repository, verifies ed25519-signed manifests against keys pinned on the \
               device, installs staged tarballs atomically with rollback, and reports back."

require recipes-ferry/ferry/ferry.inc
# The crate:// list for the offline build, generated from Cargo.lock by
# yocto/scripts/update-crates (the project's tests check it matches).
require ${BPN}-crates.inc

# What the image's /etc/ferry/agent.toml says (docs/configuration.md). Set them in
# local.conf, your distro or a .bbappend:
# - where releases come from: a Ferry server, a static release repository, or both;
FERRY_SERVER_URL ??= ""
FERRY_REPOSITORY_URL ??= ""
# - the release public keys the device trusts: file names (`ferryctl keygen` .pub files)
#   that a .bbappend adds to SRC_URI; installed as /etc/ferry/keys/NAME;
FERRY_RELEASE_KEYS ??= ""
# - or a signed trust root (`ferryctl root init`): a file name the .bbappend adds to SRC_URI,
#   installed as /etc/ferry/root.json, so release keys rotate through the server;
FERRY_TRUST_ROOT ??= ""
# - how many distinct trusted keys must sign a release (empty: the agent's default, 1);
FERRY_SIGNATURE_THRESHOLD ??= ""
# - seconds between cycles in the long-running mode (empty: the agent's default, 3600);
FERRY_POLL_INTERVAL ??= ""
# - the items it manages, as NAME:ROOT pairs ("web:/srv/web app:/opt/app");
FERRY_ITEMS ??= ""
# - whether it installs new releases without an operator, and its device class.
FERRY_AUTO_INSTALL ??= "false"
FERRY_DEVICE_CLASS ??= "${MACHINE}"
# - device identity (docs/install.md, "Factory provisioning"): where the factory writes each
#   device's own key and certificate (paths on the device, never files in the image: every
#   device has its own), or a PKCS#11 URI for a key in the TPM ("pkcs11:token=ferry;object=device?pin-source=/etc/ferry/tpm.pin");
FERRY_DEVICE_KEY ??= ""
FERRY_DEVICE_CERTIFICATE ??= ""
# - the CA that signed the server's certificate: a file name the .bbappend adds to SRC_URI,
#   installed as /etc/ferry/server-ca.pem and pinned (empty: the system's roots).
FERRY_SERVER_CA ??= ""
# One of the two is enabled: the timer (one cycle an hour, the default) or the long-running
# `full` mode, ferry-agent.service. Both units are installed either way.
FERRY_AGENT_UNIT ??= "ferry-agent.timer"

CARGO_BUILD_FLAGS += "-p ferry-agent"

# Scarthgap unpacks SRC_URI files into WORKDIR; styhead and later name UNPACKDIR (set by
# bitbake.conf, which this does not override).
UNPACKDIR ??= "${WORKDIR}"

# An image whose agent trusts no key would refuse every release (the agent will not even
# start): refuse to build it, and say what to set.
python () {
    if not d.getVar("FERRY_RELEASE_KEYS") and not d.getVar("FERRY_TRUST_ROOT"):
        raise bb.parse.SkipRecipe("set FERRY_RELEASE_KEYS (release .pub files) or FERRY_TRUST_ROOT (a signed trust root) in your layer: an agent that trusts no key installs nothing (yocto/meta-ferry/README.md)")
}

inherit systemd

SYSTEMD_SERVICE:${PN} = "${FERRY_AGENT_UNIT}"
SYSTEMD_AUTO_ENABLE:${PN} = "enable"

do_install:append() {
    install -d -m 0755 ${D}${sysconfdir}/ferry ${D}${sysconfdir}/ferry/keys
    keys=""
    for key in ${FERRY_RELEASE_KEYS}; do
        install -m 0644 ${UNPACKDIR}/$key ${D}${sysconfdir}/ferry/keys/$key
        keys="$keys\"${sysconfdir}/ferry/keys/$key\", "
    done
    cfg=${D}${sysconfdir}/ferry/agent.toml
    {
        echo "# ferry-agent configuration (docs/configuration.md), written by meta-ferry."
        [ -n "${FERRY_SERVER_URL}" ] && echo "server_url = \"${FERRY_SERVER_URL}\""
        [ -n "${FERRY_SERVER_URL}" ] && echo "enrol_token_file = \"${sysconfdir}/ferry/enrol.token\""
        [ -n "${FERRY_REPOSITORY_URL}" ] && echo "repository_url = \"${FERRY_REPOSITORY_URL}\""
        echo "state_dir = \"${localstatedir}/lib/ferry-agent\""
        if [ -n "${FERRY_TRUST_ROOT}" ]; then
            install -m 0644 ${UNPACKDIR}/${FERRY_TRUST_ROOT} ${D}${sysconfdir}/ferry/root.json
            echo "trust_root = \"${sysconfdir}/ferry/root.json\""
        else
            echo "trusted_keys = [${keys%, }]"
        fi
        [ -n "${FERRY_SIGNATURE_THRESHOLD}" ] && echo "signature_threshold = ${FERRY_SIGNATURE_THRESHOLD}"
        [ -n "${FERRY_POLL_INTERVAL}" ] && echo "poll_interval_secs = ${FERRY_POLL_INTERVAL}"
        echo "auto_install = ${FERRY_AUTO_INSTALL}"
        [ -n "${FERRY_DEVICE_CLASS}" ] && echo "device_class = \"${FERRY_DEVICE_CLASS}\""
        [ -n "${FERRY_DEVICE_KEY}" ] && echo "key = \"${FERRY_DEVICE_KEY}\""
        [ -n "${FERRY_DEVICE_CERTIFICATE}" ] && echo "certificate = \"${FERRY_DEVICE_CERTIFICATE}\""
        if [ -n "${FERRY_SERVER_CA}" ]; then
            install -m 0644 ${UNPACKDIR}/${FERRY_SERVER_CA} ${D}${sysconfdir}/ferry/server-ca.pem
            echo "server_ca = \"${sysconfdir}/ferry/server-ca.pem\""
        fi
        for pair in ${FERRY_ITEMS}; do
            printf '\n[[items]]\nname = "%s"\nroot = "%s"\n' "${pair%%:*}" "${pair#*:}"
        done
    } > $cfg
    chmod 0600 $cfg
    install -d ${D}${systemd_system_unitdir}
    for unit in ferry-agent.service ferry-agent-once.service ferry-agent-share.service ferry-agent.timer; do
        install -m 0644 ${S}/systemd/$unit ${D}${systemd_system_unitdir}/$unit
    done
    # The units' sandbox opens the usual roots only: open each configured item's root too.
    if [ -n "${FERRY_ITEMS}" ]; then
        for unit in ferry-agent.service ferry-agent-once.service; do
            install -d ${D}${systemd_system_unitdir}/$unit.d
            {
                echo "# Written by meta-ferry from FERRY_ITEMS: the item roots the agent writes."
                echo "[Service]"
                for pair in ${FERRY_ITEMS}; do
                    echo "ReadWritePaths=-${pair#*:}"
                done
            } > ${D}${systemd_system_unitdir}/$unit.d/50-ferry-roots.conf
            chmod 0644 ${D}${systemd_system_unitdir}/$unit.d/50-ferry-roots.conf
        done
    fi
    # A key in the TPM: the units' sandbox lets the agent reach the TPM's resource manager,
    # and tpm2-pkcs11 keeps its store in the state directory.
    case "${FERRY_DEVICE_KEY}" in
    pkcs11:*)
        for unit in ferry-agent.service ferry-agent-once.service; do
            install -d ${D}${systemd_system_unitdir}/$unit.d
            {
                echo "# Written by meta-ferry: the device key is in the TPM (FERRY_DEVICE_KEY)."
                echo "[Service]"
                echo "PrivateDevices=false"
                echo "DevicePolicy=closed"
                echo "DeviceAllow=/dev/tpmrm0 rw"
                echo "Environment=TPM2_PKCS11_STORE=${localstatedir}/lib/ferry-agent/tpm2-pkcs11"
            } > ${D}${systemd_system_unitdir}/$unit.d/50-ferry-tpm.conf
            chmod 0644 ${D}${systemd_system_unitdir}/$unit.d/50-ferry-tpm.conf
        done
        ;;
    esac
    install -d -m 0700 ${D}${localstatedir}/lib/ferry-agent
}

CONFFILES:${PN} = "${sysconfdir}/ferry/agent.toml"
FILES:${PN} += "${systemd_system_unitdir} ${localstatedir}/lib/ferry-agent"
