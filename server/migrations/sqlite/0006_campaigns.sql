-- Campaigns: fleet rollouts with targeting, acceptance, waves, thresholds and windows.
CREATE TABLE campaigns (
    id                  TEXT PRIMARY KEY,
    name                TEXT NOT NULL,
    item                TEXT NOT NULL,
    version             TEXT NOT NULL,
    target              TEXT NOT NULL,      -- JSON of campaign::Target
    require_acceptance  INTEGER NOT NULL,
    waves               TEXT NOT NULL,      -- JSON of [campaign::WaveSize]
    success_threshold   REAL NOT NULL,
    max_failure_rate    REAL NOT NULL,
    window              TEXT,               -- JSON of campaign::Window, or NULL: any time
    status              TEXT NOT NULL,      -- running, paused, cancelled
    status_reason       TEXT NOT NULL DEFAULT '',
    created_at          TEXT NOT NULL
);

CREATE TABLE campaign_members (
    campaign_id  TEXT NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    host_id      TEXT NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    seq          INTEGER NOT NULL,
    wave         INTEGER NOT NULL,
    accepted_at  TEXT,
    update_id    TEXT,
    joined_at    TEXT NOT NULL,
    PRIMARY KEY (campaign_id, host_id)
);
CREATE INDEX campaign_members_update ON campaign_members (update_id);

-- The device's UTC offset, for maintenance windows in its local time.
ALTER TABLE hosts ADD COLUMN utc_offset_secs INTEGER NOT NULL DEFAULT 0;
