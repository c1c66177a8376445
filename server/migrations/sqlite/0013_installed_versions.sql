-- The web UI's dashboard counts hosts per installed (item, version): read from this index
-- alone rather than the whole table.
CREATE INDEX installed_item_version ON installed (item, version);
