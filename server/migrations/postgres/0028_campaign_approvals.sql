-- Campaigns that wait for a second user's approval before their first wave opens
-- (docs/users.md): who created it, and who approved it, when.
CREATE TABLE campaign_approvals (
    campaign_id  TEXT PRIMARY KEY REFERENCES campaigns (id) ON DELETE CASCADE,
    created_by   TEXT NOT NULL,
    approved_by  TEXT,
    approved_at  TEXT
);
