-- A release whose installs may download over a metered link (`ferryctl release
-- metered-allowed`, docs/delivery.md).
ALTER TABLE releases ADD COLUMN metered_allowed BIGINT NOT NULL DEFAULT 0;
