-- Software items: presentation (featured, icon) and whether they are still offered.
CREATE TABLE items (
    name         TEXT PRIMARY KEY,
    featured     INTEGER NOT NULL DEFAULT 0,
    icon_url     TEXT,
    deactivated  INTEGER NOT NULL DEFAULT 0
);
