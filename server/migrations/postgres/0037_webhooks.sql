-- Webhooks (docs/operations.md, "Webhooks"): endpoints a tenant's admin added, the events
-- written in the same transaction as what they tell of (the outbox), and each endpoint's
-- delivery of each event with its attempts.
CREATE TABLE webhooks (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    url         TEXT NOT NULL,
    -- The event types, as ",install.finished,campaign.paused," (matched with LIKE).
    events      TEXT NOT NULL,
    -- The signing secret, sealed with the data directory's secrets key.
    secret      BYTEA NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_by  TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE TABLE webhook_events (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL,
    type       TEXT NOT NULL,
    payload    TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE webhook_deliveries (
    event_id        TEXT NOT NULL,
    webhook_id      TEXT NOT NULL,
    -- pending, delivered, failed (gave up)
    state           TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    -- An instance sending it holds it until then.
    claimed_until   TEXT,
    last_attempt_at TEXT,
    last_status     BIGINT,
    last_error      TEXT,
    delivered_at    TEXT,
    PRIMARY KEY (event_id, webhook_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, state);
CREATE INDEX webhook_events_created ON webhook_events (created_at);
