-- Each tenant's own trust root chain (docs/users.md); the default tenant's stays in
-- trust_roots.
CREATE TABLE tenant_trust_roots (
    tenant_id     TEXT NOT NULL REFERENCES tenants (id),
    version       BIGINT NOT NULL,
    envelope      TEXT NOT NULL,
    published_at  TEXT NOT NULL,
    PRIMARY KEY (tenant_id, version)
);
