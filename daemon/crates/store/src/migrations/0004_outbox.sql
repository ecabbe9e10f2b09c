-- Delivery: the outbox, opt-out records, owners nobody could reach, and the per-number SMS log.
-- Instants are Unix milliseconds (UTC): they sort and compare as integers; the CLI formats them.

-- One row per message to one recipient. The UNIQUE key is its idempotency key (community,
-- workflow, slot, recipient, step): a repeated run or a retried effect can never queue a
-- second copy.
CREATE TABLE IF NOT EXISTS outbox (
    id              INTEGER PRIMARY KEY,
    community       TEXT    NOT NULL,
    workflow        TEXT    NOT NULL,
    -- The run's due instant (RFC 3339) or `timer:<id>`: which occurrence this message belongs to.
    slot            TEXT    NOT NULL,
    -- `household:<id>`, `owner:<id>` or `staff:<id>`: who, independent of the address used.
    recipient       TEXT    NOT NULL,
    step            TEXT    NOT NULL,
    channel         TEXT    NOT NULL CHECK (channel IN ('email', 'sms')),
    address         TEXT    NOT NULL,
    display_name    TEXT,
    locale          TEXT    NOT NULL,
    category        TEXT    NOT NULL CHECK (category IN ('transactional', 'urgent', 'informational')),
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
    status          TEXT    NOT NULL CHECK (status IN ('pending', 'deferred', 'sending', 'sent',
                        'failed', 'dead', 'expired', 'cancelled', 'unknown')),
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
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (status, next_attempt_at);
CREATE INDEX IF NOT EXISTS outbox_by_community ON outbox (community, status);

-- PIPL: who opted out of what, when and how; revoking keeps the row and records when and how.
CREATE TABLE IF NOT EXISTS delivery_optout (
    id          INTEGER PRIMARY KEY,
    community   TEXT    NOT NULL,
    owner       TEXT    NOT NULL,
    channel     TEXT    NOT NULL CHECK (channel IN ('email', 'sms')),
    category    TEXT    NOT NULL CHECK (category IN ('informational')),
    recorded_at INTEGER NOT NULL,
    how         TEXT    NOT NULL,
    revoked_at  INTEGER,
    revoked_how TEXT
);
CREATE INDEX IF NOT EXISTS delivery_optout_owner ON delivery_optout (community, owner, channel);

-- Owners no channel could reach: the desk calls them instead of nobody noticing.
CREATE TABLE IF NOT EXISTS delivery_unreachable (
    id          INTEGER PRIMARY KEY,
    community   TEXT    NOT NULL,
    workflow    TEXT    NOT NULL,
    slot        TEXT    NOT NULL,
    recipient   TEXT    NOT NULL,
    step        TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    why         TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    handled_at  INTEGER,
    UNIQUE (community, workflow, slot, recipient, step)
);

-- Every SMS handed to a provider, for the providers' per-number limits.
CREATE TABLE IF NOT EXISTS delivery_sms_log (
    provider    TEXT    NOT NULL,
    address     TEXT    NOT NULL,
    content     TEXT    NOT NULL,
    sent_at     INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS delivery_sms_log_number ON delivery_sms_log (address, sent_at);
