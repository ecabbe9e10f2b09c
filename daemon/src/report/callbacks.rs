//! 回访报告: what happened after tickets closed. The callback rate (回访率) is closed tickets with
//! a callback over closed tickets; each callback is on time or late against the community's SLA
//! (24 h for repairs and 48 h for complaints unless `callback_escalation.params` says
//! otherwise), and a closed ticket still without callback is either pending (inside the SLA at
//! the report's reference instant) or missed. Satisfaction among callbacks counts every callback
//! done in the period, including the unhappy ones that reopened their ticket (a reopened ticket
//! is no longer "closed", so counting only closed tickets' callbacks would hide exactly those).
//! Callbacks are judged as of the day the report is run (or `--as-of`), not the period's end:
//! an SLA that starts on the period's last evening ends after it.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};

use crate::domain::TicketKind;
use crate::store::report::{CallbackDone, ClosedTicket};

use super::html::{self, Page, Series};
use super::text::{Align, Table, heading};
use super::{Period, Ratio, fmt_mean};

/// Hours a callback may take after the ticket closes, per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sla {
    pub repair_hours: i64,
    pub complaint_hours: i64,
}

impl Default for Sla {
    fn default() -> Self {
        Sla {
            repair_hours: 24,
            complaint_hours: 48,
        }
    }
}

impl Sla {
    fn of(&self, kind: TicketKind) -> Duration {
        Duration::hours(match kind {
            TicketKind::Repair => self.repair_hours,
            TicketKind::Complaint => self.complaint_hours,
            // Desk tasks owe no callback; `compute` leaves them out before asking.
            TicketKind::Task => 0,
        })
    }
}

/// Where a closed ticket's callback stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    OnTime,
    Late,
    /// No callback, and the SLA has run out.
    Missed,
    /// No callback yet, still inside the SLA.
    Pending,
}

/// Where `t`'s callback stood at `as_of`; a callback done later does not count yet.
pub fn status(t: &ClosedTicket, sla: &Sla, as_of: DateTime<Utc>) -> Status {
    let deadline = t.closed_at + sla.of(t.kind);
    match t.callback.as_ref().filter(|c| c.done_at <= as_of) {
        Some(c) if c.done_at <= deadline => Status::OnTime,
        Some(_) => Status::Late,
        None if as_of >= deadline => Status::Missed,
        None => Status::Pending,
    }
}

/// Counts for one row (a kind, a staff member, or everything).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tally {
    pub closed: i64,
    pub with_callback: i64,
    pub on_time: i64,
    pub late: i64,
    pub missed: i64,
    pub pending: i64,
    pub reopened: i64,
    /// Callbacks done in the period (any ticket), their satisfied count and score sum.
    pub callbacks: i64,
    pub satisfied: i64,
    pub score_sum: i64,
}

impl Tally {
    fn add_closed(&mut self, st: Status, reopened: bool) {
        self.closed += 1;
        match st {
            Status::OnTime => self.on_time += 1,
            Status::Late => self.late += 1,
            Status::Missed => self.missed += 1,
            Status::Pending => self.pending += 1,
        }
        if matches!(st, Status::OnTime | Status::Late) {
            self.with_callback += 1;
        }
        if reopened {
            self.reopened += 1;
        }
    }
    fn add_callback(&mut self, satisfied: bool, score: u8) {
        self.callbacks += 1;
        self.satisfied += i64::from(satisfied);
        self.score_sum += i64::from(score);
    }
    /// 回访率: closed tickets with a callback over closed tickets.
    pub fn callback_rate(&self) -> Ratio {
        Ratio::new(self.with_callback, self.closed)
    }
    /// On time among the callbacks that are due (pending ones are not due yet).
    pub fn on_time_rate(&self) -> Ratio {
        Ratio::new(self.on_time, self.closed - self.pending)
    }
    pub fn satisfied_rate(&self) -> Ratio {
        Ratio::new(self.satisfied, self.callbacks)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Callbacks {
    pub community_name: String,
    pub period: Period,
    pub sla: Sla,
    /// The local day callbacks are judged at the end of, and that instant.
    pub as_of_day: NaiveDate,
    pub as_of: DateTime<Utc>,
    pub repair: Tally,
    pub complaint: Tally,
    pub total: Tally,
    /// Per first receiver, who owns the callback (首问负责制), labelled with the configured
    /// staff name.
    pub owners: Vec<(String, Tally)>,
    /// Per assignee who did the work ("" = unassigned): satisfaction here is about the repair.
    pub staff: Vec<(String, Tally)>,
    /// Tickets the callback workflow escalated in the period, per role told (`supervisor`,
    /// `manager`), from the notices recorded with each run.
    pub escalations: Vec<(String, i64)>,
}

/// Figures of the period. `names` maps staff ids to the names in the community's config;
/// `as_of` is the instant callbacks are judged at: the end of the day the report is run (or
/// `--as-of`), not the period's end, because a ticket closed on the period's last evening is
/// due its callback the next day and the report should say whether it got it.
pub fn compute(
    community_name: &str,
    period: Period,
    sla: Sla,
    (as_of_day, as_of): (NaiveDate, DateTime<Utc>),
    closed: &[ClosedTicket],
    done: &[CallbackDone],
    names: &BTreeMap<String, String>,
) -> Callbacks {
    let mut repair = Tally::default();
    let mut complaint = Tally::default();
    let mut total = Tally::default();
    let mut by_staff: BTreeMap<String, Tally> = BTreeMap::new();
    let mut by_owner: BTreeMap<String, Tally> = BTreeMap::new();
    for t in closed {
        let st = status(t, &sla, as_of);
        let re = t.reopened > 0;
        match t.kind {
            TicketKind::Repair => repair.add_closed(st, re),
            TicketKind::Complaint => complaint.add_closed(st, re),
            // A desk task (a fee visit) is the desk's own work: nobody is called back about it.
            TicketKind::Task => continue,
        }
        total.add_closed(st, re);
        by_staff
            .entry(t.assignee.clone().unwrap_or_default())
            .or_default()
            .add_closed(st, re);
        by_owner
            .entry(t.first_receiver.clone())
            .or_default()
            .add_closed(st, re);
    }
    for d in done {
        let c = &d.callback;
        match d.kind {
            TicketKind::Repair => repair.add_callback(c.satisfied, c.score),
            TicketKind::Complaint => complaint.add_callback(c.satisfied, c.score),
            TicketKind::Task => continue,
        }
        total.add_callback(c.satisfied, c.score);
        by_staff
            .entry(d.assignee.clone().unwrap_or_default())
            .or_default()
            .add_callback(c.satisfied, c.score);
        by_owner
            .entry(d.first_receiver.clone())
            .or_default()
            .add_callback(c.satisfied, c.score);
    }
    let label = |m: BTreeMap<String, Tally>| -> Vec<(String, Tally)> {
        m.into_iter()
            .map(|(id, t)| {
                let label = if id.is_empty() {
                    "（未指派 unassigned）".to_string()
                } else {
                    match names.get(&id) {
                        Some(n) => format!("{n} ({id})"),
                        None => id,
                    }
                };
                (label, t)
            })
            .collect()
    };
    let owners = label(by_owner);
    let staff = label(by_staff);
    Callbacks {
        community_name: community_name.to_string(),
        period,
        sla,
        as_of_day,
        as_of,
        repair,
        complaint,
        total,
        owners,
        staff,
        escalations: Vec::new(),
    }
}

const OWNERS: &str = "按首问负责人 (by first receiver, who owns the callback)";
const ASSIGNEES: &str = "按处理人 (by assignee, who did the work)";

fn row(label: &str, t: &Tally) -> Vec<String> {
    vec![
        label.to_string(),
        t.closed.to_string(),
        t.with_callback.to_string(),
        t.callback_rate().percent(),
        t.on_time.to_string(),
        t.late.to_string(),
        t.missed.to_string(),
        t.pending.to_string(),
        t.callbacks.to_string(),
        t.satisfied_rate().percent(),
        fmt_mean(t.score_sum, t.callbacks),
    ]
}

fn columns(first: &str) -> Table {
    Table::new(&[
        (first, Align::Left),
        ("结案 (closed)", Align::Right),
        ("已回访 (done)", Align::Right),
        ("回访率 (rate)", Align::Right),
        ("及时 (on time)", Align::Right),
        ("超时 (late)", Align::Right),
        ("未回访 (missed)", Align::Right),
        ("未到期 (pending)", Align::Right),
        ("回访次数 (calls)", Align::Right),
        ("满意率 (satisfied)", Align::Right),
        ("平均分 (mean)", Align::Right),
    ])
}

impl Callbacks {
    fn title(&self) -> String {
        format!("{} 回访报告 (callback report)", self.community_name)
    }

    fn meta(&self) -> String {
        format!(
            "期间 (period): {}; 回访时限 (callback SLA): 报修 (repair) {} h, 投诉 (complaint) {} h; \
             截至 (as of): {} 日终 (end of day)",
            self.period.describe(),
            self.sla.repair_hours,
            self.sla.complaint_hours,
            self.as_of_day
        )
    }

    fn kind_table(&self) -> Table {
        let mut t = columns("类别 (kind)");
        t.row(row("报修 (repair)", &self.repair));
        t.row(row("投诉 (complaint)", &self.complaint));
        t.row(row("合计 (total)", &self.total));
        t
    }

    fn staff_table(&self, first: &str, rows: &[(String, Tally)]) -> Table {
        let mut t = columns(first);
        for (name, tally) in rows {
            t.row(row(name, tally));
        }
        t
    }

    fn summary_lines(&self) -> Vec<String> {
        let t = &self.total;
        if t.closed == 0 && t.callbacks == 0 {
            return vec![format!(
                "本期没有结案工单，也没有回访 (no ticket closed and no callback done in {})",
                self.period
            )];
        }
        vec![
            format!(
                "回访率 (callback rate): {} ({} / {} closed)",
                t.callback_rate().percent(),
                t.with_callback,
                t.closed
            ),
            format!(
                "及时率 (on time, of callbacks due): {} ({} / {})",
                t.on_time_rate().percent(),
                t.on_time,
                t.closed - t.pending
            ),
            format!(
                "回访满意率 (satisfied among callbacks): {} ({} / {}), 平均分 (mean score) {}",
                t.satisfied_rate().percent(),
                t.satisfied,
                t.callbacks,
                fmt_mean(t.score_sum, t.callbacks)
            ),
            format!(
                "超过时限、应升级至主管 (past the SLA, due for escalation to the supervisor): {} \
                 ({} late + {} missed)",
                t.late + t.missed,
                t.late,
                t.missed
            ),
            format!(
                "曾因不满意重开 (reopened after a bad callback): {}",
                t.reopened
            ),
            self.escalation_line(),
        ]
    }

    /// What the workflow did about the overdue ones, as recorded (首问负责制: every step).
    fn escalation_line(&self) -> String {
        let count = |role: &str| {
            self.escalations
                .iter()
                .find(|(r, _)| r == role)
                .map_or(0, |(_, n)| *n)
        };
        format!(
            "已升级 (escalated by the callback workflow): 主管 (supervisor) {} 单, 经理 (manager) {} 单",
            count("supervisor"),
            count("manager")
        )
    }

    pub fn to_text(&self) -> String {
        let mut s = heading(&self.title());
        s.push_str(&self.meta());
        s.push_str("\n\n");
        for l in self.summary_lines() {
            s.push_str(&l);
            s.push('\n');
        }
        if self.total.closed == 0 && self.total.callbacks == 0 {
            return s;
        }
        s.push_str("\n按类别 (by kind)\n");
        s.push_str(&self.kind_table().render());
        s.push_str(&format!("\n{OWNERS}\n"));
        s.push_str(
            &self
                .staff_table("首问负责人 (owner)", &self.owners)
                .render(),
        );
        s.push_str(&format!("\n{ASSIGNEES}\n"));
        s.push_str(&self.staff_table("处理人 (assignee)", &self.staff).render());
        s
    }

    pub fn to_html(&self) -> String {
        let mut p = Page::new(&self.title(), &self.meta());
        let lines = self.summary_lines();
        if self.total.closed == 0 && self.total.callbacks == 0 {
            p.note(&lines[0]);
            return p.finish();
        }
        for l in &lines {
            p.p(l);
        }
        let groups = vec![
            "报修 repair".to_string(),
            "投诉 complaint".to_string(),
            "合计 total".to_string(),
        ];
        let values: Vec<Vec<Option<i64>>> = [&self.repair, &self.complaint, &self.total]
            .iter()
            .map(|t| {
                vec![
                    t.callback_rate().permille(),
                    t.on_time_rate().permille(),
                    t.satisfied_rate().permille(),
                ]
            })
            .collect();
        p.chart(&html::bar_chart(
            "回访率、及时率、满意率 (callback rate, on time, satisfied)",
            &groups,
            &[
                Series {
                    name: "回访率 (callback rate)",
                    color: "#2b6cb0",
                },
                Series {
                    name: "及时率 (on time)",
                    color: "#38a169",
                },
                Series {
                    name: "满意率 (satisfied)",
                    color: "#d69e2e",
                },
            ],
            &values,
            1000,
            &html::permille_label,
        ));
        p.h2("按类别 (by kind)");
        p.table(&self.kind_table());
        p.h2(OWNERS);
        p.table(&self.staff_table("首问负责人 (owner)", &self.owners));
        p.h2(ASSIGNEES);
        p.table(&self.staff_table("处理人 (assignee)", &self.staff));
        p.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::report::CallbackBrief;
    use chrono::TimeZone;

    fn at(d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 9, d, h, 0, 0).unwrap()
    }

    fn closed(
        no: &str,
        kind: TicketKind,
        who: &str,
        c: DateTime<Utc>,
        cb: Option<(DateTime<Utc>, bool, u8)>,
    ) -> ClosedTicket {
        ClosedTicket {
            no: no.into(),
            kind,
            first_receiver: "chen-jing".into(),
            assignee: (!who.is_empty()).then(|| who.to_string()),
            closed_at: c,
            reopened: 0,
            callback: cb.map(|(d, s, sc)| CallbackBrief {
                done_at: d,
                done_by: "chen-jing".into(),
                satisfied: s,
                score: sc,
            }),
        }
    }

    fn done(t: &ClosedTicket) -> CallbackDone {
        CallbackDone {
            ticket_no: t.no.clone(),
            kind: t.kind,
            first_receiver: t.first_receiver.clone(),
            assignee: t.assignee.clone(),
            callback: t.callback.clone().unwrap(),
        }
    }

    #[test]
    fn sla_splits_on_time_late_missed_and_pending() {
        use TicketKind::*;
        let tickets = vec![
            // Repair: called back after exactly 24 h: on time.
            closed(
                "T1",
                Repair,
                "zhou-ming",
                at(1, 8),
                Some((at(2, 8), true, 5)),
            ),
            // Repair: after 25 h: late.
            closed(
                "T2",
                Repair,
                "zhou-ming",
                at(3, 8),
                Some((at(4, 9), true, 4)),
            ),
            // Complaint: 30 h is inside 48 h.
            closed(
                "T3",
                Complaint,
                "wang-li",
                at(5, 8),
                Some((at(6, 14), false, 2)),
            ),
            // Repair, no callback, closed long before the reference instant: missed.
            closed("T4", Repair, "", at(10, 8), None),
            // Complaint closed 10 h before the reference instant: pending.
            closed("T5", Complaint, "wang-li", at(29, 14), None),
        ];
        let sla = Sla::default();
        let as_of = at(30, 0);
        let st: Vec<Status> = tickets.iter().map(|t| status(t, &sla, as_of)).collect();
        assert_eq!(
            st,
            [
                Status::OnTime,
                Status::Late,
                Status::OnTime,
                Status::Missed,
                Status::Pending
            ]
        );
        let dones: Vec<CallbackDone> = tickets[..3].iter().map(done).collect();
        // A fee visit the ladder opened and the manager closed: desk work, in no figure below.
        let mut tickets = tickets;
        tickets.push(closed("W7-0", Task, "lin-hua", at(2, 9), None));
        let names = BTreeMap::from([
            ("zhou-ming".to_string(), "周明".to_string()),
            ("chen-jing".to_string(), "陈静".to_string()),
        ]);
        let r = compute(
            "水畔花园",
            "2026-09".parse().unwrap(),
            sla,
            (NaiveDate::from_ymd_opt(2026, 9, 29).unwrap(), as_of),
            &tickets,
            &dones,
            &names,
        );
        let t = r.total;
        assert_eq!(t.callback_rate().percent(), "60.0%"); // 3 of 5
        assert_eq!(t.on_time_rate().percent(), "50.0%"); // 2 of the 4 due
        assert_eq!(t.satisfied_rate().percent(), "66.7%"); // 2 of 3
        assert_eq!(fmt_mean(t.score_sum, t.callbacks), "3.67");
        assert_eq!(r.repair.callback_rate().percent(), "66.7%");
        assert_eq!(r.complaint.callback_rate().percent(), "50.0%");
        let staff: Vec<(&str, i64, i64)> = r
            .staff
            .iter()
            .map(|(n, t)| (n.as_str(), t.closed, t.with_callback))
            .collect();
        assert_eq!(
            staff,
            [
                ("（未指派 unassigned）", 1, 0),
                ("wang-li", 2, 1),
                ("周明 (zhou-ming)", 2, 2)
            ]
        );
        let text = r.to_text();
        assert!(
            text.contains("回访率 (callback rate): 60.0% (3 / 5 closed)\n"),
            "{text}"
        );
        assert!(
            text.contains("及时率 (on time, of callbacks due): 50.0% (2 / 4)\n"),
            "{text}"
        );
        let page = r.to_html();
        assert_eq!(page.matches("<rect class=\"bar\"").count(), 9);
    }

    #[test]
    fn a_callback_after_the_reference_instant_does_not_count_yet() {
        let t = closed(
            "T1",
            TicketKind::Repair,
            "x",
            at(1, 8),
            Some((at(2, 6), true, 5)),
        );
        let sla = Sla::default();
        assert_eq!(status(&t, &sla, at(2, 0)), Status::Pending);
        assert_eq!(status(&t, &sla, at(2, 6)), Status::OnTime);
        let late = closed(
            "T2",
            TicketKind::Repair,
            "x",
            at(1, 8),
            Some((at(3, 6), true, 5)),
        );
        assert_eq!(status(&late, &sla, at(2, 12)), Status::Missed);
        assert_eq!(status(&late, &sla, at(3, 12)), Status::Late);
    }

    #[test]
    fn configured_sla_changes_what_is_late() {
        let t = closed(
            "T2",
            TicketKind::Repair,
            "x",
            at(3, 8),
            Some((at(4, 9), true, 4)),
        );
        let sla = Sla {
            repair_hours: 48,
            complaint_hours: 72,
        };
        assert_eq!(status(&t, &sla, at(30, 0)), Status::OnTime);
    }

    #[test]
    fn nothing_closed_says_so_instead_of_zero_percent() {
        let r = compute(
            "水畔花园",
            "2026-02".parse().unwrap(),
            Sla::default(),
            (NaiveDate::from_ymd_opt(2026, 2, 28).unwrap(), at(1, 0)),
            &[],
            &[],
            &BTreeMap::new(),
        );
        assert_eq!(r.total.callback_rate().percent(), "—");
        let text = r.to_text();
        assert!(
            text.ends_with(
                "本期没有结案工单，也没有回访 (no ticket closed and no callback done in 2026-02)\n"
            ),
            "{text}"
        );
        assert!(!r.to_html().contains("<svg"));
    }
}
