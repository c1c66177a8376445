-- MQTT broker connections added through the API (those of server.toml are not stored).
-- The password and CA certificate are sealed with AES-256-GCM under DATA_DIR/secrets.key.
CREATE TABLE mqtt_connections (
    name              TEXT PRIMARY KEY,
    url               TEXT NOT NULL,
    username          TEXT,
    password_sealed   BLOB,
    ca_sealed         BLOB,
    client_id         TEXT,
    topic_prefix      TEXT,
    discovery         INTEGER,
    discovery_prefix  TEXT,
    created_at        TEXT NOT NULL
);
