-- Tags and friendly names: the device's own (from its config) and the operator's, which wins.
ALTER TABLE hosts ADD COLUMN device_tags TEXT NOT NULL DEFAULT '';
ALTER TABLE hosts ADD COLUMN device_friendly_name TEXT;
ALTER TABLE hosts ADD COLUMN operator_tags TEXT;
ALTER TABLE hosts ADD COLUMN operator_friendly_name TEXT;
