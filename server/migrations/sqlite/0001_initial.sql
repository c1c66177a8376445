-- Ferry server schema, version 1. Timestamps are RFC 3339 UTC text; versions are semver text.
CREATE TABLE tokens (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('operator', 'enrol')),
    name        TEXT NOT NULL,
    hash        TEXT NOT NULL UNIQUE,   -- sha256 of the token; the token itself is never stored
    created_at  TEXT NOT NULL,
    revoked_at  TEXT
);

CREATE TABLE hosts (
    id            TEXT PRIMARY KEY,
    hostname      TEXT NOT NULL,
    token_hash    TEXT NOT NULL UNIQUE,
    os            TEXT NOT NULL DEFAULT '',
    os_version    TEXT NOT NULL DEFAULT '',
    arch          TEXT NOT NULL DEFAULT '',
    agent_version TEXT NOT NULL DEFAULT '',
    device_class  TEXT,
    enrolled_at   TEXT NOT NULL,
    last_seen     TEXT NOT NULL
);
CREATE INDEX hosts_hostname ON hosts (hostname);

CREATE TABLE installed (
    host_id  TEXT NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    item     TEXT NOT NULL,
    version  TEXT,
    PRIMARY KEY (host_id, item)
);

CREATE TABLE releases (
    item             TEXT NOT NULL,
    version          TEXT NOT NULL,
    category         TEXT NOT NULL,
    released_at      TEXT NOT NULL,
    expires_at       TEXT NOT NULL,
    notes            TEXT NOT NULL,
    layout           TEXT NOT NULL,
    artifact_name    TEXT NOT NULL,
    artifact_size    INTEGER NOT NULL,
    artifact_sha256  TEXT NOT NULL,
    signed_by        TEXT NOT NULL,     -- comma-separated key ids as claimed in the envelope
    envelope         TEXT NOT NULL,     -- the signed envelope, relayed byte for byte
    published_at     TEXT NOT NULL,
    PRIMARY KEY (item, version)
);

CREATE TABLE updates (
    id            TEXT PRIMARY KEY,
    host_id       TEXT NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    item          TEXT NOT NULL,
    version       TEXT NOT NULL,
    from_version  TEXT,
    status        TEXT NOT NULL,        -- pending, installed, failed, rolled_back, refused
    actor         TEXT NOT NULL,        -- user, device
    message       TEXT NOT NULL DEFAULT '',
    output        TEXT NOT NULL DEFAULT '',
    created_at    TEXT NOT NULL,
    finished_at   TEXT
);
CREATE INDEX updates_host_status ON updates (host_id, status);

CREATE TABLE reports (
    report_id    TEXT PRIMARY KEY,
    host_id      TEXT NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    update_id    TEXT NOT NULL,
    received_at  TEXT NOT NULL
);
