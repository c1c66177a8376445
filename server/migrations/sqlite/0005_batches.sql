-- Batch updates: many installs dispatched one at a time per host, in order.
CREATE TABLE batches (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('host', 'item')),
    description TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

CREATE TABLE batch_entries (
    batch_id     TEXT NOT NULL REFERENCES batches (id) ON DELETE CASCADE,
    seq          INTEGER NOT NULL,
    host_id      TEXT NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    item         TEXT NOT NULL,
    version      TEXT NOT NULL,
    update_id    TEXT,            -- set when dispatched; the update's status is the entry's
    skip_reason  TEXT,            -- set when soft-skipped
    PRIMARY KEY (batch_id, seq)
);
CREATE INDEX batch_entries_host ON batch_entries (host_id, update_id);
