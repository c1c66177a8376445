-- What the device downloaded for an update (bytes, from a delta or not), as JSON.
ALTER TABLE updates ADD COLUMN fetched TEXT;
