-- A digest of the facts a host last reported: an instance that has not seen the host yet
-- compares with it instead of writing the same facts again.
ALTER TABLE hosts ADD COLUMN facts_hash BIGINT;
