-- Device identity (docs/security.md): every certificate a device authenticates with, the
-- ones the server's device CA issued and the factory certificates it accepted, by the
-- SHA-256 of its DER. A row outlives its host (revoked_at set when the host is removed), so a
-- removed device's certificate is never accepted again, not even as a factory certificate.
CREATE TABLE device_certificates (
    fingerprint  TEXT PRIMARY KEY,
    host_id      TEXT NOT NULL,
    serial       TEXT NOT NULL,
    source       TEXT NOT NULL,
    not_after    TEXT NOT NULL,
    issued_at    TEXT NOT NULL,
    revoked_at   TEXT
);
CREATE INDEX device_certificates_host ON device_certificates (host_id);
-- How the host proves itself: 'token' or 'certificate'.
ALTER TABLE hosts ADD COLUMN auth TEXT NOT NULL DEFAULT 'token';
-- The last time two devices used this host's identity at once, and from where.
ALTER TABLE hosts ADD COLUMN clone_seen TEXT;
