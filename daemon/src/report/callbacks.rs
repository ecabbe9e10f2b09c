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

use crate::domain::{Language, TicketKind};
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
    /// The language of every label (the community's locale; `compute` gives zh-CN).
    pub lang: Language,
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
                // "" stays "": nobody was assigned, said in the report's language.
                let label = match names.get(&id) {
                    Some(n) => format!("{n} ({id})"),
                    None => id,
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
        lang: Language::ZhCn,
    }
}

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

fn columns(first: &str, l: Language) -> Table {
    Table::new(&[
        (first, Align::Left),
        (l.pick("结案", "Closed"), Align::Right),
        (l.pick("已回访", "Called back"), Align::Right),
        (l.pick("回访率", "Rate"), Align::Right),
        (l.pick("及时", "On time"), Align::Right),
        (l.pick("超时", "Late"), Align::Right),
        (l.pick("未回访", "Missed"), Align::Right),
        (l.pick("未到期", "Pending"), Align::Right),
        (l.pick("回访次数", "Calls"), Align::Right),
        (l.pick("满意率", "Satisfied"), Align::Right),
        (l.pick("平均分", "Mean"), Align::Right),
    ])
}

impl Callbacks {
    fn title(&self) -> String {
        match self.lang {
            Language::ZhCn => format!("{} 回访报告", self.community_name),
            Language::En => format!("{}: callback report", self.community_name),
        }
    }

    fn meta(&self) -> String {
        let (period, sla) = (self.period.describe(), &self.sla);
        match self.lang {
            Language::ZhCn => format!(
                "期间：{period}；回访时限：报修 {} 小时，投诉 {} 小时；截至 {} 日终",
                sla.repair_hours, sla.complaint_hours, self.as_of_day
            ),
            Language::En => format!(
                "Period: {period}; callback SLA: repairs {} h, complaints {} h; as of the end of {}",
                sla.repair_hours, sla.complaint_hours, self.as_of_day
            ),
        }
    }

    fn owners_heading(&self) -> &'static str {
        self.lang.pick(
            "按首问负责人（回访责任人）",
            "By first receiver (who owns the callback)",
        )
    }

    fn assignees_heading(&self) -> &'static str {
        self.lang.pick(
            "按处理人（维修、处理的人）",
            "By assignee (who did the work)",
        )
    }

    fn kind_heading(&self) -> &'static str {
        self.lang.pick("按类别", "By kind")
    }

    fn kind_table(&self) -> Table {
        let l = self.lang;
        let mut t = columns(l.pick("类别", "Kind"), l);
        t.row(row(l.pick("报修", "Repairs"), &self.repair));
        t.row(row(l.pick("投诉", "Complaints"), &self.complaint));
        t.row(row(html::total(l), &self.total));
        t
    }

    fn staff_table(&self, first: &str, rows: &[(String, Tally)]) -> Table {
        let mut t = columns(first, self.lang);
        for (name, tally) in rows {
            let name = if name.is_empty() {
                self.lang.pick("（未指派）", "(unassigned)")
            } else {
                name.as_str()
            };
            t.row(row(name, tally));
        }
        t
    }

    fn owner_table(&self) -> Table {
        self.staff_table(self.lang.pick("首问负责人", "First receiver"), &self.owners)
    }

    fn assignee_table(&self) -> Table {
        self.staff_table(self.lang.pick("处理人", "Assignee"), &self.staff)
    }

    fn nothing(&self) -> bool {
        self.total.closed == 0 && self.total.callbacks == 0
    }

    fn summary_lines(&self) -> Vec<String> {
        let t = &self.total;
        let due = t.closed - t.pending;
        let (rate, on_time, satisfied, mean) = (
            t.callback_rate().percent(),
            t.on_time_rate().percent(),
            t.satisfied_rate().percent(),
            fmt_mean(t.score_sum, t.callbacks),
        );
        match self.lang {
            Language::ZhCn if self.nothing() => {
                vec![format!("本期（{}）没有结案工单，也没有回访", self.period)]
            }
            Language::En if self.nothing() => vec![format!(
                "No ticket closed and no callback done in {}",
                self.period
            )],
            Language::ZhCn => vec![
                format!(
                    "回访率：{rate}（结案 {} 单，已回访 {} 单）",
                    t.closed, t.with_callback
                ),
                format!(
                    "及时率：{on_time}（应回访 {due} 单，及时 {} 单）",
                    t.on_time
                ),
                format!(
                    "回访满意率：{satisfied}（回访 {} 次，满意 {} 次），平均分 {mean}",
                    t.callbacks, t.satisfied
                ),
                format!(
                    "超过时限、应升级至主管：{} 单（超时回访 {} 单，未回访 {} 单）",
                    t.late + t.missed,
                    t.late,
                    t.missed
                ),
                format!("因回访不满意重开：{} 单", t.reopened),
                self.escalation_line(),
            ],
            Language::En => vec![
                format!(
                    "Callback rate: {rate} ({} of {} closed)",
                    t.with_callback, t.closed
                ),
                format!(
                    "On time, of callbacks due: {on_time} ({} of {due})",
                    t.on_time
                ),
                format!(
                    "Satisfied among callbacks: {satisfied} ({} of {}), mean score {mean}",
                    t.satisfied, t.callbacks
                ),
                format!(
                    "Past the SLA, due for escalation to the supervisor: {} ({} late, {} missed)",
                    t.late + t.missed,
                    t.late,
                    t.missed
                ),
                format!("Reopened after a bad callback: {}", t.reopened),
                self.escalation_line(),
            ],
        }
    }

    /// What the workflow did about the overdue ones, as recorded (首问负责制: every step).
    fn escalation_line(&self) -> String {
        let count = |role: &str| {
            self.escalations
                .iter()
                .find(|(r, _)| r == role)
                .map_or(0, |(_, n)| *n)
        };
        let (supervisor, manager) = (count("supervisor"), count("manager"));
        match self.lang {
            Language::ZhCn => {
                format!("回访升级工作流已升级：主管 {supervisor} 单，经理 {manager} 单")
            }
            Language::En => format!(
                "Escalated by the callback workflow: to the supervisor {supervisor}, to the manager {manager}"
            ),
        }
    }

    pub fn to_text(&self) -> String {
        let mut s = heading(&self.title());
        s.push_str(&self.meta());
        s.push_str("\n\n");
        for l in self.summary_lines() {
            s.push_str(&l);
            s.push('\n');
        }
        if self.nothing() {
            return s;
        }
        s.push_str(&format!("\n{}\n", self.kind_heading()));
        s.push_str(&self.kind_table().render());
        s.push_str(&format!("\n{}\n", self.owners_heading()));
        s.push_str(&self.owner_table().render());
        s.push_str(&format!("\n{}\n", self.assignees_heading()));
        s.push_str(&self.assignee_table().render());
        s
    }

    pub fn to_html(&self) -> String {
        let l = self.lang;
        let mut p = Page::new(&self.title(), &self.meta(), l);
        let lines = self.summary_lines();
        if self.nothing() {
            p.note(&lines[0]);
            return p.finish();
        }
        for line in &lines {
            p.p(line);
        }
        let groups = vec![
            l.pick("报修", "Repairs").to_string(),
            l.pick("投诉", "Complaints").to_string(),
            html::total(l).to_string(),
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
            l.pick(
                "回访率、及时率、满意率",
                "Callback rate, on time, satisfied",
            ),
            &groups,
            &[
                Series {
                    name: l.pick("回访率", "Callback rate"),
                    color: "#2b6cb0",
                },
                Series {
                    name: l.pick("及时率", "On time"),
                    color: "#38a169",
                },
                Series {
                    name: l.pick("满意率", "Satisfied"),
                    color: "#d69e2e",
                },
            ],
            &values,
            1000,
            &html::permille_label,
            l,
        ));
        p.h2(self.kind_heading());
        p.table(&self.kind_table());
        p.h2(self.owners_heading());
        p.table(&self.owner_table());
        p.h2(self.assignees_heading());
        p.table(&self.assignee_table());
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
        let mut r = compute(
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
                ("", 1, 0), // unassigned, labelled in the report's language
                ("wang-li", 2, 1),
                ("周明 (zhou-ming)", 2, 2)
            ]
        );
        let text = r.to_text();
        assert!(
            text.contains("回访率：60.0%（结案 5 单，已回访 3 单）\n"),
            "{text}"
        );
        assert!(
            text.contains("及时率：50.0%（应回访 4 单，及时 2 单）\n"),
            "{text}"
        );
        assert!(text.contains("（未指派）"), "{text}");
        r.lang = Language::En;
        let text = r.to_text();
        assert!(
            text.contains("Callback rate: 60.0% (3 of 5 closed)\n"),
            "{text}"
        );
        assert!(
            text.contains("On time, of callbacks due: 50.0% (2 of 4)\n"),
            "{text}"
        );
        assert!(text.contains("(unassigned)"), "{text}");
        let page = r.to_html();
        assert_eq!(page.matches("<rect class=\"bar\"").count(), 9);
    }

    #[test]
    fn each_language_prints_labels_in_that_language_only() {
        use crate::report::wording::{cjk, latin_words, visible};
        let t1 = closed(
            "T1",
            TicketKind::Repair,
            "zhou-ming",
            at(1, 8),
            Some((at(2, 8), true, 5)),
        );
        let t2 = closed(
            "T2",
            TicketKind::Complaint,
            "",
            at(3, 8),
            Some((at(6, 9), false, 2)),
        );
        let t3 = closed("T3", TicketKind::Repair, "wang-li", at(10, 8), None);
        let names = BTreeMap::from([("zhou-ming".to_string(), "周明".to_string())]);
        // Config-supplied text: the community's and staff names and ids, the period.
        let data = [
            "水畔花园",
            "周明",
            "zhou-ming",
            "wang-li",
            "chen-jing",
            "2026-09",
        ];
        let day = NaiveDate::from_ymd_opt(2026, 9, 29).unwrap();
        for tickets in [vec![t1, t2, t3], vec![]] {
            let dones: Vec<CallbackDone> = tickets
                .iter()
                .filter(|t| t.callback.is_some())
                .map(done)
                .collect();
            let mut r = compute(
                "水畔花园",
                "2026-09".parse().unwrap(),
                Sla::default(),
                (day, at(30, 0)),
                &tickets,
                &dones,
                &names,
            );
            r.escalations = vec![("supervisor".into(), 1)];
            for page in [r.to_text(), visible(&r.to_html())] {
                assert_eq!(latin_words(&page, &data), Vec::<String>::new(), "{page}");
            }
            r.lang = Language::En;
            for page in [r.to_text(), visible(&r.to_html())] {
                assert_eq!(cjk(&page, &data), "", "{page}");
            }
        }
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
            text.ends_with("本期（2026-02）没有结案工单，也没有回访\n"),
            "{text}"
        );
        assert!(!r.to_html().contains("<svg"));
    }
}
