-- A release an operator withdrew (it failed, it is unsafe): no longer offered, counted or
-- advertised; kept for the history that names it.
ALTER TABLE releases ADD COLUMN withdrawn_at TEXT;
ALTER TABLE releases ADD COLUMN withdrawn_reason TEXT;
