-- Finished and failed member installs when a campaign was last resumed: its failure
-- threshold judges only what finished since.
ALTER TABLE campaigns ADD COLUMN baseline_finished INTEGER NOT NULL DEFAULT 0;
ALTER TABLE campaigns ADD COLUMN baseline_failed INTEGER NOT NULL DEFAULT 0;
