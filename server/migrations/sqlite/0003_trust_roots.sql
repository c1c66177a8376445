-- Signed trust roots, relayed to devices; each version is verified against the one before.
CREATE TABLE trust_roots (
    version       INTEGER PRIMARY KEY,
    envelope      TEXT NOT NULL,
    published_at  TEXT NOT NULL
);
