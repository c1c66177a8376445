-- Each tenant's own catalog (docs/users.md): an item, and an artifact file, belong to the
-- tenant that published it first. Those with no row are the default tenant's (everything
-- published before tenants).
CREATE TABLE item_owners (
    item       TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id)
);
CREATE TABLE artifact_owners (
    name       TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id)
);
