SUMMARY = "Ferry over-the-air update agent"
DESCRIPTION = "Pull-based update agent: polls a Ferry server, verifies ed25519-signed \
manifests, installs staged tarballs atomically with rollback, and reports back."
LICENSE = "Apache-2.0"
LIC_FILES_CHKSUM = "file://LICENSE;md5=3b83ef96387f14655fc854ddc3c6bd57"

# Set FERRY_SRC_URI (a git URL of the Ferry repository, e.g. your mirror) and SRCREV in
# local.conf; the recipe refuses to guess where your sources live.
FERRY_SRC_URI ??= ""
python () {
    if not d.getVar('FERRY_SRC_URI'):
        bb.fatal("meta-ferry: set FERRY_SRC_URI and SRCREV in local.conf to build ferry-agent")
}
SRC_URI = "${FERRY_SRC_URI} \
           file://agent.toml \
          "
S = "${WORKDIR}/git"

inherit cargo cargo-update-recipe-crates systemd

# Build only the agent from the workspace.
CARGO_BUILD_FLAGS += "-p ferry-agent"
CARGO_SRC_DIR = ""

# One of the two is enabled: the timer (one cycle hourly, the default) or, with
# FERRY_AGENT_UNIT = "ferry-agent.service" in local.conf, the long-running `full` mode. Both
# units are installed either way.
FERRY_AGENT_UNIT ??= "ferry-agent.timer"
SYSTEMD_SERVICE:${PN} = "${FERRY_AGENT_UNIT}"
SYSTEMD_AUTO_ENABLE:${PN} ?= "enable"

do_install:append() {
    install -d ${D}${sysconfdir}/ferry
    install -m 0600 ${WORKDIR}/agent.toml ${D}${sysconfdir}/ferry/agent.toml
    install -d ${D}${systemd_system_unitdir}
    for unit in ferry-agent.service ferry-agent-once.service ferry-agent.timer; do
        install -m 0644 ${S}/systemd/$unit ${D}${systemd_system_unitdir}/$unit
    done
    install -d -m 0700 ${D}${localstatedir}/lib/ferry-agent
}

CONFFILES:${PN} = "${sysconfdir}/ferry/agent.toml"
FILES:${PN} += "${systemd_system_unitdir} ${localstatedir}/lib/ferry-agent"
