-- Schema 5: what the semiannual event and callback workflows need to close their loops.
--
-- An event is announced with a time, not only a day: owners are told "Saturday 09:30", and the
-- day-before reminder is computed from it. NULL for events planned before this version (their
-- local midnight stands in, as before).
ALTER TABLE community_events ADD COLUMN starts_at TEXT;

-- One RSVP link per (event, household), with an unguessable token like a survey invitation:
-- the link is the only credential, and it names neither household nor owner.
CREATE TABLE IF NOT EXISTS rsvp_invitations (
    id         INTEGER PRIMARY KEY,
    community  TEXT NOT NULL,
    event_id   INTEGER NOT NULL REFERENCES community_events (id),
    household  TEXT NOT NULL,
    token      TEXT NOT NULL UNIQUE,
    invited_at TEXT NOT NULL,
    UNIQUE (event_id, household),
    FOREIGN KEY (community, household) REFERENCES households (community, id)
);

-- Every staff notice a workflow sent about a ticket (首问负责制 wants each step on record): the
-- callback reminder to 客服, the escalations to 主管 and 经理. Written in the run's transaction,
-- keyed by the notice's outbox step so a redone run records nothing twice.
CREATE TABLE IF NOT EXISTS ticket_notices (
    id          INTEGER PRIMARY KEY,
    community   TEXT NOT NULL,
    ticket_id   INTEGER NOT NULL REFERENCES tickets (id),
    role        TEXT NOT NULL,
    template    TEXT NOT NULL,
    step        TEXT NOT NULL,
    notified_at TEXT NOT NULL,
    UNIQUE (ticket_id, step)
);
CREATE INDEX IF NOT EXISTS ticket_notices_time ON ticket_notices (community, notified_at);
