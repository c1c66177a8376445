-- What a change changed, where it fits (docs/users.md): the fields of the record that differ,
-- before and after (JSON), or the whole record a removal took away.
ALTER TABLE audit ADD COLUMN before_value TEXT;
ALTER TABLE audit ADD COLUMN after_value TEXT;
