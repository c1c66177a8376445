-- Campaigns that watch each wave's health after its installs (docs/campaigns.md).
ALTER TABLE campaigns ADD COLUMN observe_secs BIGINT NOT NULL DEFAULT 0;
ALTER TABLE campaigns ADD COLUMN rollback_on_regression BIGINT NOT NULL DEFAULT 0;
ALTER TABLE campaigns ADD COLUMN regression_max_share DOUBLE PRECISION NOT NULL DEFAULT 0.2;
ALTER TABLE campaigns ADD COLUMN regression_max_excess DOUBLE PRECISION NOT NULL DEFAULT 0.2;
ALTER TABLE campaigns ADD COLUMN regression_min_hosts BIGINT NOT NULL DEFAULT 1;
-- The wave being watched and since when; how many waves passed their window.
ALTER TABLE campaigns ADD COLUMN observing_wave BIGINT;
ALTER TABLE campaigns ADD COLUMN observing_since TEXT;
ALTER TABLE campaigns ADD COLUMN observed_waves BIGINT NOT NULL DEFAULT 0;
-- What each host's samples said during one wave's window.
CREATE TABLE campaign_health (
    campaign_id  TEXT COLLATE "C" NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    wave         BIGINT NOT NULL,
    host_id      TEXT COLLATE "C" NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    first_at     TEXT NOT NULL,
    last_at      TEXT NOT NULL,
    failed_at    TEXT,
    probes       TEXT NOT NULL DEFAULT '',
    samples      BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (campaign_id, wave, host_id)
);
-- A rollback a campaign asked for (its wave regressed): the reason; the device restores its kept backup.
ALTER TABLE updates ADD COLUMN rollback_reason TEXT;
