-- A release's changelog or release page, from its manifest.
ALTER TABLE releases ADD COLUMN release_url TEXT;
