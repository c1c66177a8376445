-- Software a device's sources found installed (`[[sources]]` in agent.toml), replaced whole
-- when the device's digest changes; searched by name, and by pending upgrade, across the fleet.
CREATE TABLE host_packages (
    host_id  TEXT NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    source   TEXT NOT NULL,
    name     TEXT NOT NULL,
    version  TEXT NOT NULL,
    -- The upgrade the source offers, and its category (security, bugfix, feature, unknown).
    latest   TEXT,
    category TEXT
);
CREATE INDEX host_packages_name ON host_packages (name);
CREATE INDEX host_packages_host ON host_packages (host_id);
CREATE INDEX host_packages_pending ON host_packages (category) WHERE latest IS NOT NULL;
ALTER TABLE hosts ADD COLUMN inventory_digest TEXT;
-- Each host's list in numbers, written with the list: the MQTT bridge's host summaries read
-- one row per host instead of counting every package.
CREATE TABLE host_package_counts (
    host_id  TEXT PRIMARY KEY REFERENCES hosts (id) ON DELETE CASCADE,
    total    BIGINT NOT NULL,
    pending  BIGINT NOT NULL,
    security BIGINT NOT NULL,
    bugfix   BIGINT NOT NULL,
    feature  BIGINT NOT NULL
);
