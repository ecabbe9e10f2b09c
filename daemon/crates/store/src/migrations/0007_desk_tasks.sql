-- Desk tasks: tickets a workflow opens for the desk's own work, such as the fee ladder's visit
-- to a household 60 days in arrears (上门催缴). They are neither repairs nor complaints: no owner
-- is owed a callback on them, and they must not count in the callback rate or as complaints.
-- Until this version they were stored as complaints, numbered `W<run>-<n>`, with the plugin's
-- own kind first in the summary (`[fee-visit] ...`); those become tasks here. A plugin that
-- asked for a complaint or a repair (`[complaint] ...`) keeps it.
--
-- SQLite cannot change a CHECK constraint in place, so the table is rebuilt, the documented
-- way: store/migrations.rs runs migrations with foreign keys off and checks them before commit.
CREATE TABLE tickets_rebuilt (
    id             INTEGER PRIMARY KEY,
    community      TEXT NOT NULL,
    no             TEXT NOT NULL,
    household      TEXT,
    kind           TEXT NOT NULL CHECK (kind = 'repair' OR kind = 'complaint' OR kind = 'task'),
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
INSERT INTO tickets_rebuilt (id, community, no, household, kind, summary, first_receiver,
                             assignee, opened_at, assigned_at, closed_at, reopened)
    SELECT id, community, no, household,
           CASE WHEN kind = 'complaint' AND no GLOB 'W[0-9]*-[0-9]*'
                     AND summary GLOB '[[]?*] *'
                     AND lower(substr(summary, 2, instr(summary, ']') - 2))
                         NOT IN ('repair', 'complaint', '报修', '投诉')
                THEN 'task' ELSE kind END,
           summary, first_receiver, assignee, opened_at, assigned_at, closed_at, reopened
    FROM tickets;
DROP TABLE tickets;
ALTER TABLE tickets_rebuilt RENAME TO tickets;
CREATE INDEX IF NOT EXISTS tickets_closed ON tickets (community, closed_at);
