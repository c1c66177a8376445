-- A batch whose installs run their hooks in an operator's terminal, one at a time.
ALTER TABLE batches ADD COLUMN interactive INTEGER NOT NULL DEFAULT 0;
