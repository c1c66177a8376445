-- Freeze detection: the release date of the newest signed manifest each device has verified.
ALTER TABLE hosts ADD COLUMN newest_manifest_at TEXT;
