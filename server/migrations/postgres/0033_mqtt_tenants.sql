-- A broker connection added through the API belongs to its tenant and publishes that
-- tenant's hosts (docs/mqtt.md); NULL (those added before tenants): every host.
ALTER TABLE mqtt_connections ADD COLUMN tenant_id TEXT;
