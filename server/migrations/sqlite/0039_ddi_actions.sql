-- hawkBit DDI actions (docs/ddi.md): the number a DDI client knows an update by (clients read
-- it as a 32-bit integer), and whether the client closed it (`offered`, `closed`): a
-- cancelled update's action is offered as `cancelAction` until the client answers.
CREATE TABLE ddi_actions (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    update_id  TEXT NOT NULL UNIQUE,
    host_id    TEXT NOT NULL,
    state      TEXT NOT NULL DEFAULT 'offered',
    created_at TEXT NOT NULL
);
CREATE INDEX ddi_actions_open ON ddi_actions (host_id) WHERE state <> 'closed';
