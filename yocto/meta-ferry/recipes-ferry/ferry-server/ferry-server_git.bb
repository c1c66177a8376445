SUMMARY = "Ferry fleet update server"
DESCRIPTION = "Stores signed releases, keeps a fleet's inventory and history, hands out \
               installs operators ask for (triggers, batches, campaigns), serves a web UI \
               and bridges state to MQTT with Home Assistant discovery. It never holds a \
               release private key."

require recipes-ferry/ferry/ferry.inc
# The crate:// list for the offline build, generated from Cargo.lock by
# yocto/scripts/update-crates (the project's tests check it matches).
require ${BPN}-crates.inc

SRC_URI += "file://static-user.conf"

CARGO_BUILD_FLAGS += "-p ferry-server"

inherit systemd useradd

# A system user of its own; the unit's drop-in turns DynamicUser off so it is used.
USERADD_PACKAGES = "${PN}"
USERADD_PARAM:${PN} = "--system --user-group --home-dir ${localstatedir}/lib/ferry-server \
                       --no-create-home --shell /sbin/nologin ferry-server"

SYSTEMD_SERVICE:${PN} = "ferry-server.service"
SYSTEMD_AUTO_ENABLE:${PN} = "enable"

do_install:append() {
    install -d -m 0755 ${D}${sysconfdir}/ferry
    install -m 0644 ${S}/server/server.example.toml ${D}${sysconfdir}/ferry/server.toml
    install -d ${D}${systemd_system_unitdir}/ferry-server.service.d
    install -m 0644 ${S}/systemd/ferry-server.service ${D}${systemd_system_unitdir}/
    install -m 0644 ${UNPACKDIR}/static-user.conf ${D}${systemd_system_unitdir}/ferry-server.service.d/static-user.conf
    install -d -m 0700 -o ferry-server -g ferry-server ${D}${localstatedir}/lib/ferry-server
}

CONFFILES:${PN} = "${sysconfdir}/ferry/server.toml"
FILES:${PN} += "${systemd_system_unitdir} ${localstatedir}/lib/ferry-server"
