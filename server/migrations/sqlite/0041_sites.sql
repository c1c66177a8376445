-- Peers at a site (docs/delivery.md): where a device is, where it serves the verified
-- artifacts it keeps and which (sha256, space-separated), and why it is no longer offered.
ALTER TABLE hosts ADD COLUMN site TEXT;
ALTER TABLE hosts ADD COLUMN share_url TEXT;
ALTER TABLE hosts ADD COLUMN share_holds TEXT NOT NULL DEFAULT '';
ALTER TABLE hosts ADD COLUMN share_fault TEXT;
CREATE INDEX hosts_site ON hosts (site) WHERE site IS NOT NULL;
-- When a device of a site was let fetch the release from the server (the site's others wait
-- for it to share, docs/delivery.md).
ALTER TABLE updates ADD COLUMN server_fetch_at TEXT;
