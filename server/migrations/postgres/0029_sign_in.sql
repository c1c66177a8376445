-- Signing in to the web UI as a user (docs/users.md): a password, kept as an argon2id hash
-- (PHC string), or an OpenID Connect identity, by its issuer's subject.
ALTER TABLE users ADD COLUMN password_hash TEXT;
ALTER TABLE users ADD COLUMN oidc_subject TEXT;
CREATE UNIQUE INDEX users_oidc_subject ON users (oidc_subject);
