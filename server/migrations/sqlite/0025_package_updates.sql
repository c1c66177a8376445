-- Upgrades of the packages a host's sources found: an update row whose item is
-- `SOURCE packages`; `packages` holds each package's version before and after, as JSON
-- ([{"name","from","to"}]). A batch entry that plans one holds the names to upgrade.
ALTER TABLE updates ADD COLUMN packages TEXT;
ALTER TABLE batch_entries ADD COLUMN packages TEXT;
-- The upstream release an offered upgrade is, where the source is a forge's releases
-- (JSON: {"url", "published_at", "summary"}).
ALTER TABLE host_packages ADD COLUMN release TEXT;
