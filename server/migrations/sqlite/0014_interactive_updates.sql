-- An interactive update's hooks run in a terminal an operator attaches to.
ALTER TABLE updates ADD COLUMN interactive INTEGER NOT NULL DEFAULT 0;
