-- Tenants (docs/users.md): users, their tokens, enrolment tokens, hosts and campaigns
-- belong to one. The server makes the `default` tenant at its first start on this schema and
-- gives it everything that belongs to none, so a single-tenant install never names one.
CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL
);
ALTER TABLE users ADD COLUMN tenant_id TEXT REFERENCES tenants (id);
ALTER TABLE tokens ADD COLUMN tenant_id TEXT REFERENCES tenants (id);
ALTER TABLE hosts ADD COLUMN tenant_id TEXT REFERENCES tenants (id);
ALTER TABLE campaigns ADD COLUMN tenant_id TEXT REFERENCES tenants (id);
ALTER TABLE audit ADD COLUMN tenant_id TEXT;
CREATE INDEX hosts_tenant ON hosts (tenant_id);
