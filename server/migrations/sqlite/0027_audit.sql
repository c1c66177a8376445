-- The audit log (docs/users.md): every change an operator asked for, refused or not, in the
-- order it arrived. Nothing edits or deletes a row; a removed user's entries keep their name.
CREATE TABLE audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at          TEXT NOT NULL,
    user_id     TEXT,
    user_name   TEXT NOT NULL,
    method      TEXT NOT NULL,
    path        TEXT NOT NULL,
    status      INTEGER NOT NULL,
    address     TEXT,
    request_id  TEXT NOT NULL
);
CREATE INDEX audit_user ON audit (user_name, seq);
CREATE INDEX audit_at ON audit (at);
