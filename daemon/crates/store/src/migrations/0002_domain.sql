-- 0002 domain: the service desk's own data, every row keyed by community.
--
-- Conventions: instants are UTC RFC 3339 text with seconds and a `Z` (sortable as text), dates
-- are `YYYY-MM-DD` in the community's local calendar, money is INTEGER fen (never REAL).
-- Natural keys (UNIQUE constraints) are what `wuyed import` upserts on, so importing a file
-- twice changes nothing.

-- Households (户): one flat, addressed as building-unit-room (`3-2-1202`).
CREATE TABLE IF NOT EXISTS households (
    community TEXT NOT NULL,
    id        TEXT NOT NULL,
    building  TEXT NOT NULL,
    unit      TEXT NOT NULL,
    room      TEXT NOT NULL,
    PRIMARY KEY (community, id)
) WITHOUT ROWID;

-- Owners (业主); several per household (co-owners). Natural key: household + name.
CREATE TABLE IF NOT EXISTS owners (
    id                INTEGER PRIMARY KEY,
    community         TEXT NOT NULL,
    household         TEXT NOT NULL,
    name              TEXT NOT NULL,
    phone             TEXT,
    email             TEXT,
    language          TEXT NOT NULL CHECK (language IN ('zh-CN', 'en')),
    preferred_contact TEXT NOT NULL CHECK (preferred_contact IN ('email', 'sms')),
    UNIQUE (community, household, name),
    FOREIGN KEY (community, household) REFERENCES households (community, id)
);

-- Bills (账单). Natural key: household + fee type + period. `paid_fen` is the sum of the
-- bill's payments that were not reversed, kept by the triggers below (never written by code),
-- so a reversal reopens the bill and the money cannot disagree with a status flag. It exists
-- so "who owes what" reads only the unpaid bills through a partial index instead of summing a
-- year of payments per bill (100,000 households: 4 s → tens of ms).
CREATE TABLE IF NOT EXISTS bills (
    id         INTEGER PRIMARY KEY,
    community  TEXT NOT NULL,
    household  TEXT NOT NULL,
    fee_type   TEXT NOT NULL,
    period     TEXT NOT NULL,
    amount_fen INTEGER NOT NULL CHECK (amount_fen > 0),
    due_date   TEXT NOT NULL,
    paid_fen   INTEGER NOT NULL DEFAULT 0,
    UNIQUE (community, household, fee_type, period),
    FOREIGN KEY (community, household) REFERENCES households (community, id)
);
CREATE INDEX IF NOT EXISTS bills_by_due ON bills (community, due_date);
CREATE INDEX IF NOT EXISTS bills_unpaid ON bills (community, household, due_date)
    WHERE paid_fen < amount_fen;

-- Payments (缴费). Natural key: the billing system's reference (receipt number). A reversal
-- (冲正) keeps the row and stamps `reversed_at`, so the history stays visible.
CREATE TABLE IF NOT EXISTS payments (
    id              INTEGER PRIMARY KEY,
    community       TEXT NOT NULL,
    reference       TEXT NOT NULL,
    bill_id         INTEGER NOT NULL REFERENCES bills (id),
    amount_fen      INTEGER NOT NULL CHECK (amount_fen > 0),
    paid_at         TEXT NOT NULL,
    method          TEXT NOT NULL DEFAULT '',
    reversed_at     TEXT,
    reversal_reason TEXT,
    UNIQUE (community, reference)
);
CREATE INDEX IF NOT EXISTS payments_by_bill ON payments (bill_id);

-- Keep bills.paid_fen equal to the sum of the bill's unreversed payments.
CREATE TRIGGER IF NOT EXISTS payments_paid_ai AFTER INSERT ON payments BEGIN
    UPDATE bills SET paid_fen = (SELECT COALESCE(SUM(p.amount_fen), 0) FROM payments p
                                 WHERE p.bill_id = bills.id AND p.reversed_at IS NULL)
    WHERE id = NEW.bill_id;
END;
CREATE TRIGGER IF NOT EXISTS payments_paid_au AFTER UPDATE ON payments BEGIN
    UPDATE bills SET paid_fen = (SELECT COALESCE(SUM(p.amount_fen), 0) FROM payments p
                                 WHERE p.bill_id = bills.id AND p.reversed_at IS NULL)
    WHERE id IN (OLD.bill_id, NEW.bill_id);
END;
CREATE TRIGGER IF NOT EXISTS payments_paid_ad AFTER DELETE ON payments BEGIN
    UPDATE bills SET paid_fen = (SELECT COALESCE(SUM(p.amount_fen), 0) FROM payments p
                                 WHERE p.bill_id = bills.id AND p.reversed_at IS NULL)
    WHERE id = OLD.bill_id;
END;

-- Prepaid utility balances (水电预付费) with the level under which the owner is warned.
CREATE TABLE IF NOT EXISTS utility_balances (
    community     TEXT NOT NULL,
    household     TEXT NOT NULL,
    utility       TEXT NOT NULL CHECK (utility IN ('water', 'electricity')),
    balance_fen   INTEGER NOT NULL,
    threshold_fen INTEGER NOT NULL CHECK (threshold_fen >= 0),
    as_of         TEXT NOT NULL,
    PRIMARY KEY (community, household, utility),
    FOREIGN KEY (community, household) REFERENCES households (community, id)
) WITHOUT ROWID;

-- Tickets: repairs (报修) and complaints (投诉). Natural key: the desk's ticket number.
-- `first_receiver` is the staff member who took the call and stays answerable (首问负责制).
-- A bad callback clears `closed_at` and counts a reopening.
CREATE TABLE IF NOT EXISTS tickets (
    id             INTEGER PRIMARY KEY,
    community      TEXT NOT NULL,
    no             TEXT NOT NULL,
    household      TEXT,
    kind           TEXT NOT NULL CHECK (kind IN ('repair', 'complaint')),
    summary        TEXT NOT NULL DEFAULT '',
    first_receiver TEXT NOT NULL,
    assignee       TEXT,
    opened_at      TEXT NOT NULL,
    assigned_at    TEXT,
    closed_at      TEXT,
    reopened       INTEGER NOT NULL DEFAULT 0,
    UNIQUE (community, no),
    FOREIGN KEY (community, household) REFERENCES households (community, id)
);
CREATE INDEX IF NOT EXISTS tickets_closed ON tickets (community, closed_at);

-- Callbacks (回访) after a ticket closed. A callback answers the closing it follows: a ticket
-- is "closed without callback" while no callback is dated at or after its `closed_at`.
CREATE TABLE IF NOT EXISTS callbacks (
    id        INTEGER PRIMARY KEY,
    community TEXT NOT NULL,
    ticket_id INTEGER NOT NULL REFERENCES tickets (id),
    done_at   TEXT NOT NULL,
    done_by   TEXT NOT NULL,
    satisfied INTEGER NOT NULL CHECK (satisfied IN (0, 1)),
    score     INTEGER NOT NULL CHECK (score BETWEEN 1 AND 5),
    notes     TEXT NOT NULL DEFAULT '',
    UNIQUE (ticket_id, done_at)
);

-- Survey campaigns (满意度调查), one invitation per household with an unguessable token, and at
-- most one response per invitation.
CREATE TABLE IF NOT EXISTS survey_campaigns (
    id        INTEGER PRIMARY KEY,
    community TEXT NOT NULL,
    key       TEXT NOT NULL,
    opens_at  TEXT NOT NULL,
    closes_at TEXT NOT NULL,
    UNIQUE (community, key)
);

CREATE TABLE IF NOT EXISTS survey_invitations (
    id          INTEGER PRIMARY KEY,
    community   TEXT NOT NULL,
    campaign_id INTEGER NOT NULL REFERENCES survey_campaigns (id),
    household   TEXT NOT NULL,
    token       TEXT NOT NULL UNIQUE,
    invited_at  TEXT NOT NULL,
    UNIQUE (campaign_id, household),
    FOREIGN KEY (community, household) REFERENCES households (community, id)
);

-- Scores 1–5 per service area; NULL means "no opinion" for that area.
CREATE TABLE IF NOT EXISTS survey_responses (
    invitation_id INTEGER PRIMARY KEY REFERENCES survey_invitations (id),
    community     TEXT NOT NULL,
    answered_at   TEXT NOT NULL,
    reception     INTEGER CHECK (reception BETWEEN 1 AND 5),
    repairs       INTEGER CHECK (repairs BETWEEN 1 AND 5),
    cleaning      INTEGER CHECK (cleaning BETWEEN 1 AND 5),
    security      INTEGER CHECK (security BETWEEN 1 AND 5),
    greenery      INTEGER CHECK (greenery BETWEEN 1 AND 5),
    comment       TEXT NOT NULL DEFAULT ''
);

-- Community events (社区活动): plan, announcement, RSVPs, summary afterwards. Named
-- `community_events` because `events` is the domain-event outbox below.
CREATE TABLE IF NOT EXISTS community_events (
    id           INTEGER PRIMARY KEY,
    community    TEXT NOT NULL,
    key          TEXT NOT NULL,
    title        TEXT NOT NULL,
    planned_for  TEXT NOT NULL,
    location     TEXT NOT NULL DEFAULT '',
    announced_at TEXT,
    summary      TEXT,
    summary_at   TEXT,
    UNIQUE (community, key)
);

CREATE TABLE IF NOT EXISTS rsvps (
    event_id     INTEGER NOT NULL REFERENCES community_events (id),
    community    TEXT NOT NULL,
    household    TEXT NOT NULL,
    attendees    INTEGER NOT NULL CHECK (attendees >= 0),
    responded_at TEXT NOT NULL,
    PRIMARY KEY (event_id, household)
);

-- Domain-event outbox: what happened (ticket closed, payment posted/reversed, survey answered),
-- written in the same transaction as the change itself, taken by the scheduler as event runs.
CREATE TABLE IF NOT EXISTS events (
    id          INTEGER PRIMARY KEY,
    community   TEXT NOT NULL,
    kind        TEXT NOT NULL,
    payload     TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    consumed_at TEXT
);
CREATE INDEX IF NOT EXISTS events_pending ON events (consumed_at, id);
