-- Who started a batch (`user` through the API or ferryctl, `mqtt` from a host's Install
-- button); its installs carry it into the history.
ALTER TABLE batches ADD COLUMN actor TEXT NOT NULL DEFAULT 'user';
