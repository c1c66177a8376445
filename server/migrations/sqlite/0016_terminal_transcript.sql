-- What the operator typed into an interactive install's terminal (marked as input in the
-- history), unless the trigger asked not to keep it (secrets).
ALTER TABLE updates ADD COLUMN record_input INTEGER NOT NULL DEFAULT 1;
ALTER TABLE updates ADD COLUMN typed TEXT NOT NULL DEFAULT '';
