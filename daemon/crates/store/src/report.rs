//! Read-only SQL behind `wuyed report`: the rows of one community and one period that the
//! report module turns into figures. Every function takes the community id and touches no other
//! community's rows; nothing here writes.
//!
//! Money is summed in SQL as INTEGER fen. "Collected" is taken as the books stood at an instant
//! (payments made by then, minus reversals made by then), so a report on a past quarter prints
//! the same figures next month as today.

use std::path::Path;

use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{Connection, OpenFlags, Row, params};

use wuye_core::domain::{TicketKind, fmt_ts, parse_ts};

/// Opens the database read-only: a report never changes the data or creates a file.
pub fn open_read_only(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(conn)
}

/// Whether the database has the domain tables (migration 0002) a report reads; a database
/// the daemon created before any import may not.
pub fn has_domain_schema(conn: &Connection) -> rusqlite::Result<bool> {
    conn.prepare_cached(
        "SELECT COUNT(*) = 4 FROM sqlite_master WHERE type = 'table'
           AND name IN ('bills', 'payments', 'tickets', 'survey_campaigns')",
    )?
    .query_row([], |r| r.get(0))
}

fn ts(r: &Row<'_>, idx: usize) -> rusqlite::Result<DateTime<Utc>> {
    let s: String = r.get(idx)?;
    parse_ts(&s).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            idx,
            rusqlite::types::Type::Text,
            format!("not an instant: {s:?}").into(),
        )
    })
}

fn kind(r: &Row<'_>, idx: usize) -> rusqlite::Result<TicketKind> {
    let s: String = r.get(idx)?;
    s.parse().map_err(|e: String| {
        rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, e.into())
    })
}

// ----- satisfaction -----

/// A survey campaign opened in the period, with its invitation and response counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignTally {
    pub key: String,
    pub opens_at: DateTime<Utc>,
    pub invited: i64,
    pub answered: i64,
}

/// Campaigns that opened in `[from, to)`, oldest first.
pub fn campaigns_opened(
    conn: &Connection,
    community: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> rusqlite::Result<Vec<CampaignTally>> {
    let mut st = conn.prepare_cached(
        "SELECT c.key, c.opens_at,
                (SELECT COUNT(*) FROM survey_invitations i WHERE i.campaign_id = c.id),
                (SELECT COUNT(*) FROM survey_responses r
                   JOIN survey_invitations i ON i.id = r.invitation_id
                  WHERE i.campaign_id = c.id)
         FROM survey_campaigns c
         WHERE c.community = ?1 AND c.opens_at >= ?2 AND c.opens_at < ?3
         ORDER BY c.opens_at, c.key",
    )?;
    st.query_map(params![community, fmt_ts(from), fmt_ts(to)], |r| {
        Ok(CampaignTally {
            key: r.get(0)?,
            opens_at: ts(r, 1)?,
            invited: r.get(2)?,
            answered: r.get(3)?,
        })
    })?
    .collect()
}

/// One household's answer: scores in the order of `ServiceArea::ALL`, `None` = no opinion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseRow {
    pub campaign: String,
    pub household: String,
    pub scores: [Option<u8>; 5],
    pub comment: String,
}

/// Responses to the campaigns that opened in `[from, to)`, by campaign then household.
pub fn responses_opened(
    conn: &Connection,
    community: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> rusqlite::Result<Vec<ResponseRow>> {
    let mut st = conn.prepare_cached(
        "SELECT c.key, i.household, r.reception, r.repairs, r.cleaning, r.security,
                r.greenery, r.comment
         FROM survey_responses r
         JOIN survey_invitations i ON i.id = r.invitation_id
         JOIN survey_campaigns c ON c.id = i.campaign_id
         WHERE c.community = ?1 AND c.opens_at >= ?2 AND c.opens_at < ?3
         ORDER BY c.opens_at, c.key, i.household",
    )?;
    st.query_map(params![community, fmt_ts(from), fmt_ts(to)], |r| {
        Ok(ResponseRow {
            campaign: r.get(0)?,
            household: r.get(1)?,
            scores: [r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?],
            comment: r.get(7)?,
        })
    })?
    .collect()
}

// ----- callbacks -----

/// A callback as the report needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackBrief {
    pub done_at: DateTime<Utc>,
    pub done_by: String,
    pub satisfied: bool,
    pub score: u8,
}

/// A ticket closed in the period and the first callback that answers that closing (dated at or
/// after it), if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosedTicket {
    pub no: String,
    pub kind: TicketKind,
    /// Who took the call and owns the callback (首问负责制).
    pub first_receiver: String,
    pub assignee: Option<String>,
    pub closed_at: DateTime<Utc>,
    pub reopened: u32,
    pub callback: Option<CallbackBrief>,
}

/// Tickets whose (latest) closing falls in `[from, to)`, by closing time.
pub fn tickets_closed(
    conn: &Connection,
    community: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> rusqlite::Result<Vec<ClosedTicket>> {
    let mut st = conn.prepare_cached(
        "SELECT t.no, t.kind, t.assignee, t.closed_at, t.reopened,
                c.done_at, c.done_by, c.satisfied, c.score, t.first_receiver
         FROM tickets t
         LEFT JOIN callbacks c ON c.id = (
             SELECT c2.id FROM callbacks c2
              WHERE c2.ticket_id = t.id AND c2.done_at >= t.closed_at
              ORDER BY c2.done_at, c2.id LIMIT 1)
         WHERE t.community = ?1 AND t.closed_at >= ?2 AND t.closed_at < ?3
         ORDER BY t.closed_at, t.no",
    )?;
    st.query_map(params![community, fmt_ts(from), fmt_ts(to)], |r| {
        let done_at: Option<String> = r.get(5)?;
        let callback = match done_at {
            None => None,
            Some(_) => Some(CallbackBrief {
                done_at: ts(r, 5)?,
                done_by: r.get(6)?,
                satisfied: r.get::<_, i64>(7)? != 0,
                score: r.get(8)?,
            }),
        };
        Ok(ClosedTicket {
            no: r.get(0)?,
            kind: kind(r, 1)?,
            first_receiver: r.get(9)?,
            assignee: r.get(2)?,
            closed_at: ts(r, 3)?,
            reopened: r.get(4)?,
            callback,
        })
    })?
    .collect()
}

/// A callback done in the period, with its ticket's kind and assignee.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackDone {
    pub ticket_no: String,
    pub kind: TicketKind,
    pub first_receiver: String,
    pub assignee: Option<String>,
    pub callback: CallbackBrief,
}

/// Callbacks done in `[from, to)`, including those that found the owner unhappy and reopened
/// the ticket (which is then no longer closed).
pub fn callbacks_done(
    conn: &Connection,
    community: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> rusqlite::Result<Vec<CallbackDone>> {
    let mut st = conn.prepare_cached(
        "SELECT t.no, t.kind, t.assignee, c.done_at, c.done_by, c.satisfied, c.score,
                t.first_receiver
         FROM callbacks c JOIN tickets t ON t.id = c.ticket_id
         WHERE c.community = ?1 AND c.done_at >= ?2 AND c.done_at < ?3
         ORDER BY c.done_at, c.id",
    )?;
    st.query_map(params![community, fmt_ts(from), fmt_ts(to)], |r| {
        Ok(CallbackDone {
            ticket_no: r.get(0)?,
            kind: kind(r, 1)?,
            first_receiver: r.get(7)?,
            assignee: r.get(2)?,
            callback: CallbackBrief {
                done_at: ts(r, 3)?,
                done_by: r.get(4)?,
                satisfied: r.get::<_, i64>(5)? != 0,
                score: r.get(6)?,
            },
        })
    })?
    .collect()
}

/// Tickets a workflow escalated in `[from, to)`, per role told (supervisor, manager), counting
/// each ticket once per role; the reminder to customer service is not an escalation.
pub fn escalations(
    conn: &Connection,
    community: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> rusqlite::Result<Vec<(String, i64)>> {
    let mut st = conn.prepare_cached(
        "SELECT role, COUNT(DISTINCT ticket_id) FROM ticket_notices
         WHERE community = ?1 AND notified_at >= ?2 AND notified_at < ?3
           AND role <> 'customer_service'
         GROUP BY role ORDER BY CASE role WHEN 'supervisor' THEN 0 ELSE 1 END, role",
    )?;
    st.query_map(params![community, fmt_ts(from), fmt_ts(to)], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })?
    .collect()
}

// ----- fees -----

/// Bills of one fee type due in the period, and what had been collected on them at an instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeeTally {
    pub fee_type: String,
    pub bills: i64,
    pub billed_fen: i64,
    /// Capped at each bill's amount: an overpayment does not make a rate above 100%.
    pub collected_fen: i64,
    /// Bills fully paid at the instant.
    pub paid_bills: i64,
}

/// Bills due in `[from, to)` (local dates) per fee type, collected as the books stood at `at`.
pub fn billed_by_fee_type(
    conn: &Connection,
    community: &str,
    from: NaiveDate,
    to: NaiveDate,
    at: DateTime<Utc>,
) -> rusqlite::Result<Vec<FeeTally>> {
    let mut st = conn.prepare_cached(
        // The per-bill sum is an aggregate in the inner query so SQLite computes it once per
        // bill; as a scalar subquery it was inlined into both outer uses (twice the work).
        "SELECT fee_type, COUNT(*), SUM(amount_fen), SUM(MIN(paid, amount_fen)),
                SUM(paid >= amount_fen)
         FROM (SELECT b.fee_type, b.amount_fen,
                      COALESCE(SUM(p.amount_fen) FILTER (WHERE p.paid_at <= ?4
                               AND (p.reversed_at IS NULL OR p.reversed_at > ?4)), 0) AS paid
               FROM bills b LEFT JOIN payments p ON p.bill_id = b.id
               WHERE b.community = ?1 AND b.due_date >= ?2 AND b.due_date < ?3
               GROUP BY b.id)
         GROUP BY fee_type ORDER BY fee_type",
    )?;
    st.query_map(
        params![community, from.to_string(), to.to_string(), fmt_ts(at)],
        |r| {
            Ok(FeeTally {
                fee_type: r.get(0)?,
                bills: r.get(1)?,
                billed_fen: r.get(2)?,
                collected_fen: r.get(3)?,
                paid_bills: r.get(4)?,
            })
        },
    )?
    .collect()
}

/// Money received in `[from, to)` per fee type, whatever period its bill was for (arrears paid
/// late count here), less payments reversed by `at`.
pub fn received_by_fee_type(
    conn: &Connection,
    community: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    at: DateTime<Utc>,
) -> rusqlite::Result<Vec<(String, i64)>> {
    let mut st = conn.prepare_cached(
        "SELECT b.fee_type, SUM(p.amount_fen)
         FROM payments p JOIN bills b ON b.id = p.bill_id
         WHERE p.community = ?1 AND p.paid_at >= ?2 AND p.paid_at < ?3
           AND (p.reversed_at IS NULL OR p.reversed_at > ?4)
         GROUP BY b.fee_type ORDER BY b.fee_type",
    )?;
    st.query_map(
        params![community, fmt_ts(from), fmt_ts(to), fmt_ts(at)],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?
    .collect()
}

/// A bill that was past due and not fully paid at some instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverdueBill {
    pub household: String,
    pub due_date: NaiveDate,
    /// What was still owed at the instant.
    pub outstanding_fen: i64,
}

/// Bills due on or before `due_by` that were not fully paid at `at` (payments made by then,
/// reversals made by then), by household then due date.
///
/// Summing every bill's payments as of `at` costs seconds at 100,000 households, so only the
/// bills that can have been unpaid at `at` are looked at: those unpaid now (the partial index
/// `bills_unpaid`) and those that received a payment after `at`. A bill paid at `at` and
/// unpaid now was reversed since, so it is in the first set; a bill unpaid at `at` and paid
/// now was paid after `at`, so it is in the second.
pub fn overdue_as_of(
    conn: &Connection,
    community: &str,
    at: DateTime<Utc>,
    due_by: NaiveDate,
) -> rusqlite::Result<Vec<OverdueBill>> {
    // The first candidate set has no due-date bound on purpose: with one, SQLite prefers the
    // due-date index and walks every old bill instead of the small partial index.
    let mut st = conn.prepare_cached(
        "WITH candidates (id) AS (
             SELECT id FROM bills WHERE community = ?1 AND paid_fen < amount_fen
             UNION
             SELECT bill_id FROM payments WHERE community = ?1 AND paid_at > ?3)
         SELECT b.household, b.due_date,
                b.amount_fen - COALESCE(SUM(p.amount_fen) FILTER (WHERE p.paid_at <= ?3
                               AND (p.reversed_at IS NULL OR p.reversed_at > ?3)), 0) AS owed
         FROM candidates c JOIN bills b ON b.id = c.id
         LEFT JOIN payments p ON p.bill_id = b.id
         WHERE b.due_date <= ?2
         GROUP BY b.id HAVING owed > 0
         ORDER BY b.household, b.due_date, b.id",
    )?;
    st.query_map(params![community, due_by.to_string(), fmt_ts(at)], |r| {
        let d: String = r.get(1)?;
        Ok(OverdueBill {
            household: r.get(0)?,
            due_date: NaiveDate::parse_from_str(&d, "%Y-%m-%d").map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(
                    1,
                    rusqlite::types::Type::Text,
                    Box::new(e),
                )
            })?,
            outstanding_fen: r.get(2)?,
        })
    })?
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{DomainRead, apply_schema};
    use chrono::TimeZone;

    /// The candidate shortcut gives the same bills and amounts as summing every bill's
    /// payments (the domain store's `unpaid_bills_as_of`), across payments after the instant,
    /// reversals before and after it, partial payments and other communities.
    #[test]
    fn overdue_as_of_agrees_with_summing_every_bill() {
        let conn = Connection::open_in_memory().unwrap();
        apply_schema(&conn).unwrap();
        conn.execute_batch(
            "INSERT INTO households VALUES ('a','1-1-101','1','1','101'), ('a','1-1-102','1','1','102'),
                                           ('b','1-1-101','1','1','101');
             INSERT INTO bills (id, community, household, fee_type, period, amount_fen, due_date) VALUES
               (1,'a','1-1-101','property','2026-07',22000,'2026-07-15'),
               (2,'a','1-1-101','property','2026-08',22000,'2026-08-15'),
               (3,'a','1-1-101','property','2026-09',22000,'2026-09-15'),
               (4,'a','1-1-102','property','2026-07',22000,'2026-07-15'),
               (5,'a','1-1-102','parking','2026Q3',45000,'2026-07-05'),
               (6,'a','1-1-102','property','2026-10',22000,'2026-10-15'),
               (7,'b','1-1-101','property','2026-07',22000,'2026-07-15');
             INSERT INTO payments (community, reference, bill_id, amount_fen, paid_at, reversed_at) VALUES
               ('a','p1',1,22000,'2026-07-10T02:00:00Z',NULL),
               ('a','p2',2,22000,'2026-10-20T02:00:00Z',NULL),
               ('a','p3',3,22000,'2026-09-10T02:00:00Z','2026-10-05T02:00:00Z'),
               ('a','p4',4,22000,'2026-07-10T02:00:00Z','2026-08-01T02:00:00Z'),
               ('a','p5',4,22000,'2026-08-02T02:00:00Z',NULL),
               ('a','p6',5,20000,'2026-07-01T02:00:00Z',NULL),
               ('a','p7',6,22000,'2026-10-10T02:00:00Z',NULL);",
        )
        .unwrap();
        let at = Utc.with_ymd_and_hms(2026, 9, 30, 16, 0, 0).unwrap();
        let due_by = NaiveDate::from_ymd_opt(2026, 9, 29).unwrap();
        let fast: Vec<(String, NaiveDate, i64)> = overdue_as_of(&conn, "a", at, due_by)
            .unwrap()
            .into_iter()
            .map(|b| (b.household, b.due_date, b.outstanding_fen))
            .collect();
        let slow: Vec<(String, NaiveDate, i64)> = DomainRead::new(&conn, "a")
            .unpaid_bills_as_of(at, due_by)
            .unwrap()
            .into_iter()
            .map(|u| (u.bill.household, u.bill.due_date, u.outstanding_fen))
            .collect();
        assert_eq!(fast, slow);
        let d = |m, day| NaiveDate::from_ymd_opt(2026, m, day).unwrap();
        // Bill 2 was paid only in October; bill 3's September payment still stood on
        // 09-30; bill 4 was reversed and paid again; bill 5 was paid in part.
        assert_eq!(
            fast,
            [
                ("1-1-101".to_string(), d(8, 15), 22000),
                ("1-1-102".to_string(), d(7, 5), 25000),
            ]
        );
    }
}
