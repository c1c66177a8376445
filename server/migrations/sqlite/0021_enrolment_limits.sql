-- Enrolment tokens limited in time and uses, or whose hosts wait for an operator's
-- acceptance before they are given anything; existing hosts are accepted.
ALTER TABLE tokens ADD COLUMN expires_at TEXT;
ALTER TABLE tokens ADD COLUMN uses_left BIGINT;
ALTER TABLE tokens ADD COLUMN needs_acceptance BIGINT NOT NULL DEFAULT 0;
ALTER TABLE hosts ADD COLUMN accepted BIGINT NOT NULL DEFAULT 1;
