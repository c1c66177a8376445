-- The MQTT bridge reads every pending update of the fleet at once: a small partial index,
-- so that read does not walk the whole history.
CREATE INDEX updates_pending ON updates (host_id, item) WHERE status = 'pending';
