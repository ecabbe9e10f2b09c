-- The outbox's CHECK constraints, spelled with OR. SQLite evaluates a constant IN list of three
-- or more through a temporary b-tree built at every execution, and a CHECK runs on every insert
-- (and, for `status`, on every status change): a quarter of the cost of queuing a message went
-- into building and dropping those b-trees. Same rules, same columns; the table is rebuilt
-- because SQLite cannot change a CHECK in place (store/migrations.rs runs this with foreign
-- keys off and checks them before commit).
CREATE TABLE outbox_rebuilt (
    id              INTEGER PRIMARY KEY,
    community       TEXT    NOT NULL,
    workflow        TEXT    NOT NULL,
    -- The run's due instant (RFC 3339) or `timer:<id>`: which occurrence this message belongs to.
    slot            TEXT    NOT NULL,
    -- `household:<id>`, `owner:<id>` or `staff:<id>`: who, independent of the address used.
    recipient       TEXT    NOT NULL,
    step            TEXT    NOT NULL,
    channel         TEXT    NOT NULL CHECK (channel = 'email' OR channel = 'sms'),
    address         TEXT    NOT NULL,
    display_name    TEXT,
    locale          TEXT    NOT NULL,
    category        TEXT    NOT NULL CHECK (category = 'transactional' OR category = 'urgent'
                                            OR category = 'informational'),
    template        TEXT    NOT NULL,
    subject         TEXT,
    body_text       TEXT    NOT NULL,
    body_html       TEXT,
    sms_code        TEXT,
    -- JSON array of [name, value] pairs, in the template's order.
    sms_params      TEXT,
    -- JSON the directory understands (`{"bills": [12, 13]}`), re-checked just before sending.
    reason          TEXT    NOT NULL DEFAULT 'null',
    message_id      TEXT    NOT NULL,
    status          TEXT    NOT NULL CHECK (status = 'pending' OR status = 'deferred'
                        OR status = 'sending' OR status = 'sent' OR status = 'failed'
                        OR status = 'dead' OR status = 'expired' OR status = 'cancelled'
                        OR status = 'unknown'),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    provider_id     TEXT,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    sent_at         INTEGER,
    UNIQUE (community, workflow, slot, recipient, step)
);
INSERT INTO outbox_rebuilt (id, community, workflow, slot, recipient, step, channel, address,
        display_name, locale, category, template, subject, body_text, body_html, sms_code,
        sms_params, reason, message_id, status, attempts, next_attempt_at, expires_at,
        provider_id, last_error, created_at, updated_at, sent_at)
    SELECT id, community, workflow, slot, recipient, step, channel, address,
        display_name, locale, category, template, subject, body_text, body_html, sms_code,
        sms_params, reason, message_id, status, attempts, next_attempt_at, expires_at,
        provider_id, last_error, created_at, updated_at, sent_at
    FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_rebuilt RENAME TO outbox;
CREATE INDEX IF NOT EXISTS outbox_waiting ON outbox (next_attempt_at, id)
    WHERE (status = 'pending' OR status = 'deferred' OR status = 'failed');
CREATE INDEX IF NOT EXISTS outbox_by_community ON outbox (community, status);
