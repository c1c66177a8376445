-- Which hosts have work (pending jobs, recent cancellations) is read for the whole fleet in
-- one query after updates change: by status, so it reads the open updates, not the history.
CREATE INDEX updates_status_finished ON updates (status, finished_at);
