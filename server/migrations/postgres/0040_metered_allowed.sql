-- An install that may download over a metered link (`ferryctl update trigger
-- --metered-allowed`, docs/delivery.md).
ALTER TABLE updates ADD COLUMN metered_allowed BIGINT NOT NULL DEFAULT 0;
