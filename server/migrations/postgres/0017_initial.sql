-- Ferry server schema on PostgreSQL, equal to SQLite's after its migration 17. Timestamps are
-- RFC 3339 UTC text and versions semver text, as on SQLite; flags are 0/1 integers. Text
-- compares byte by byte (COLLATE "C") whatever the database's locale, so lists sort as they
-- do on SQLite.
CREATE TABLE tokens (
    id          TEXT COLLATE "C" PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('operator', 'enrol')),
    name        TEXT NOT NULL,
    hash        TEXT NOT NULL UNIQUE,
    created_at  TEXT COLLATE "C" NOT NULL,
    revoked_at  TEXT
);

CREATE TABLE hosts (
    id                      TEXT COLLATE "C" PRIMARY KEY,
    hostname                TEXT COLLATE "C" NOT NULL,
    token_hash              TEXT NOT NULL UNIQUE,
    os                      TEXT NOT NULL DEFAULT '',
    os_version              TEXT NOT NULL DEFAULT '',
    arch                    TEXT NOT NULL DEFAULT '',
    agent_version           TEXT NOT NULL DEFAULT '',
    device_class            TEXT,
    enrolled_at             TEXT NOT NULL,
    last_seen               TEXT COLLATE "C" NOT NULL,
    newest_manifest_at      TEXT,
    device_tags             TEXT NOT NULL DEFAULT '',
    device_friendly_name    TEXT,
    operator_tags           TEXT,
    operator_friendly_name  TEXT,
    utc_offset_secs         BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX hosts_hostname ON hosts (hostname);

CREATE TABLE installed (
    host_id  TEXT COLLATE "C" NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    item     TEXT COLLATE "C" NOT NULL,
    version  TEXT COLLATE "C",
    PRIMARY KEY (host_id, item)
);
CREATE INDEX installed_item_version ON installed (item, version);

CREATE TABLE releases (
    item             TEXT COLLATE "C" NOT NULL,
    version          TEXT COLLATE "C" NOT NULL,
    category         TEXT NOT NULL,
    released_at      TEXT NOT NULL,
    expires_at       TEXT NOT NULL,
    notes            TEXT NOT NULL,
    layout           TEXT NOT NULL,
    artifact_name    TEXT NOT NULL,
    artifact_size    BIGINT NOT NULL,
    artifact_sha256  TEXT NOT NULL,
    signed_by        TEXT NOT NULL,
    envelope         TEXT NOT NULL,
    published_at     TEXT NOT NULL,
    release_url      TEXT,
    PRIMARY KEY (item, version)
);

CREATE TABLE updates (
    id            TEXT COLLATE "C" PRIMARY KEY,
    host_id       TEXT COLLATE "C" NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    item          TEXT COLLATE "C" NOT NULL,
    version       TEXT NOT NULL,
    from_version  TEXT,
    status        TEXT NOT NULL,
    actor         TEXT NOT NULL,
    message       TEXT NOT NULL DEFAULT '',
    output        TEXT NOT NULL DEFAULT '',
    created_at    TEXT COLLATE "C" NOT NULL,
    finished_at   TEXT COLLATE "C",
    interactive   BIGINT NOT NULL DEFAULT 0,
    record_input  BIGINT NOT NULL DEFAULT 1,
    typed         TEXT NOT NULL DEFAULT '',
    fetched       TEXT
);
CREATE INDEX updates_host_status ON updates (host_id, status);
CREATE INDEX updates_pending ON updates (host_id, item) WHERE status = 'pending';

CREATE TABLE reports (
    report_id    TEXT PRIMARY KEY,
    host_id      TEXT NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    update_id    TEXT NOT NULL,
    received_at  TEXT NOT NULL
);

CREATE TABLE trust_roots (
    version       BIGINT PRIMARY KEY,
    envelope      TEXT NOT NULL,
    published_at  TEXT NOT NULL
);

CREATE TABLE batches (
    id           TEXT COLLATE "C" PRIMARY KEY,
    kind         TEXT NOT NULL CHECK (kind IN ('host', 'item')),
    description  TEXT NOT NULL,
    created_at   TEXT COLLATE "C" NOT NULL,
    actor        TEXT NOT NULL DEFAULT 'user',
    interactive  BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE batch_entries (
    batch_id     TEXT COLLATE "C" NOT NULL REFERENCES batches (id) ON DELETE CASCADE,
    seq          BIGINT NOT NULL,
    host_id      TEXT COLLATE "C" NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    item         TEXT NOT NULL,
    version      TEXT NOT NULL,
    update_id    TEXT,
    skip_reason  TEXT,
    PRIMARY KEY (batch_id, seq)
);
CREATE INDEX batch_entries_host ON batch_entries (host_id, update_id);

CREATE TABLE campaigns (
    id                  TEXT COLLATE "C" PRIMARY KEY,
    name                TEXT NOT NULL,
    item                TEXT NOT NULL,
    version             TEXT NOT NULL,
    target              TEXT NOT NULL,
    require_acceptance  BIGINT NOT NULL,
    waves               TEXT NOT NULL,
    success_threshold   DOUBLE PRECISION NOT NULL,
    max_failure_rate    DOUBLE PRECISION NOT NULL,
    "window"            TEXT,
    status              TEXT NOT NULL,
    status_reason       TEXT NOT NULL DEFAULT '',
    created_at          TEXT COLLATE "C" NOT NULL,
    baseline_finished   BIGINT NOT NULL DEFAULT 0,
    baseline_failed     BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE campaign_members (
    campaign_id  TEXT COLLATE "C" NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    host_id      TEXT COLLATE "C" NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    seq          BIGINT NOT NULL,
    wave         BIGINT NOT NULL,
    accepted_at  TEXT,
    update_id    TEXT,
    joined_at    TEXT NOT NULL,
    PRIMARY KEY (campaign_id, host_id)
);
CREATE INDEX campaign_members_update ON campaign_members (update_id);

CREATE TABLE items (
    name         TEXT COLLATE "C" PRIMARY KEY,
    featured     BIGINT NOT NULL DEFAULT 0,
    icon_url     TEXT,
    deactivated  BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE mqtt_connections (
    name              TEXT COLLATE "C" PRIMARY KEY,
    url               TEXT NOT NULL,
    username          TEXT,
    password_sealed   BYTEA,
    ca_sealed         BYTEA,
    client_id         TEXT,
    topic_prefix      TEXT,
    discovery         BIGINT,
    discovery_prefix  TEXT,
    created_at        TEXT NOT NULL
);
