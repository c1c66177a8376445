-- Devices that speak hawkBit's DDI API (docs/ddi.md): hosts of kind `ddi` (agents are
-- `agent`), the attributes they sent (configData), their target tokens and each tenant's
-- gateway token, sealed with the secrets key so ferryctl can show them again.
ALTER TABLE hosts ADD COLUMN kind TEXT NOT NULL DEFAULT 'agent';
ALTER TABLE hosts ADD COLUMN ddi_attributes TEXT;
CREATE TABLE ddi_tokens (
    token_hash TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL,
    -- NULL: the tenant's gateway token.
    host_id    TEXT UNIQUE,
    sealed     BYTEA NOT NULL,
    created_at TEXT NOT NULL
);
CREATE UNIQUE INDEX ddi_tokens_gateway ON ddi_tokens (tenant_id) WHERE host_id IS NULL;
CREATE INDEX hosts_ddi ON hosts (tenant_id, hostname) WHERE kind = 'ddi';
