-- When a report's device clock disagreed with the server's, history keeps the server's time
-- in finished_at and the device's own reading here.
ALTER TABLE updates ADD COLUMN device_finished_at TEXT;
