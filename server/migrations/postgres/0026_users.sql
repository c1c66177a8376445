-- Users (docs/users.md): a name, a role, optionally limited to hosts with a tag. An operator
-- token belongs to a user; the server gives tokens made before users existed to the `admin`
-- user it creates at its first start on this schema.
CREATE TABLE users (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    role        TEXT NOT NULL,
    tag         TEXT,
    created_at  TEXT NOT NULL
);
ALTER TABLE tokens ADD COLUMN user_id TEXT REFERENCES users (id) ON DELETE CASCADE;
