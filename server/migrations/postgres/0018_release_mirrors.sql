-- Base URLs that also serve a release's artifact (a mirror, a CDN), as a JSON array; devices
-- try them before the server's own copy.
ALTER TABLE releases ADD COLUMN mirrors TEXT NOT NULL DEFAULT '[]';
