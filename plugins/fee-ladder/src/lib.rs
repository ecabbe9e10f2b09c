//! fee-ladder: the payment reminder ladder (催缴) of a community, and low prepaid balance alerts.
//!
//! The logic of the `fee-reminder` plugin as a library (no exported hooks, so a community's own
//! plugin such as `payment-plan-reminder` can build on it and export its own).
//!
//! Each run (daily, from the community's schedule) looks at every unpaid bill and where its due
//! date stands on the ladder, in the community's local calendar. The default ladder is the one a
//! careful desk uses: a gentle notice 7 days before the due date, one on the day, firmer ones 7
//! and 30 days after, a task for the manager to visit at 60 days, and a written demand (书面催告)
//! at 90 days. The ladder ends there: no step ever cuts water, power or access.
//!
//! Rules the owners notice:
//! - **Each step once per bill.** The last step sent for a bill is kept in the plugin's key-value
//!   store (`bill:<id>` = the step's day offset). After downtime only the step the bill has
//!   reached now is sent, not every step it went past: one message, not four.
//! - **One message per household**, listing all its unpaid items (period, fee, amount) and the
//!   total, in the tone of the sternest step reached this run.
//! - **Stops the moment payment is recorded**: a paid bill is no longer unpaid, so it leaves the
//!   ladder; the `payment.posted` event also forgets its progress.
//! - **Restarts if a payment is reversed**: `payment.reversed` forgets the bill's progress, so the
//!   next run sends the step the bill stands at again.
//! - **Late fee** by [`LateFeeRule`]; the default (`late_fee` param absent) charges none. A
//!   community's own plugin may implement its rule (see [`FeeReminder::with_rules`]).
//! - **Low prepaid balance** (water, electricity): one alert per crossing below the threshold;
//!   the alert re-arms when the balance is back at or above it.
//!
//! Why a scan rather than one durable timer per bill: the scan reads the unpaid bills (the only
//! data it needs) and cannot drift from them as they are imported, paid and reversed, while
//! timers would have to be kept in step with every import. But the scan only runs on days
//! something can happen (`ScanState`): each full scan works out the first day a known bill
//! reaches a step it has not had, and the runs before that day read nothing, unless the data
//! changed meanwhile (an import, a reversal, a payment plan: events), a household was exempt, or
//! `full_scan_days` have passed (default 7: the safety net for a writer that sends no event).
//! Bills reach steps on a few days a month, so most daily runs cost a few key-value reads. The
//! benchmark in docs/BENCHMARKS.md measures both.

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;
use serde::Deserialize;
use workflow_kit::{amount, local_date, parse_date, role, yuan, zone};
use wuye_plugin_sdk::prelude::*;

/// One rung of the ladder.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Days relative to the due date (negative: before it).
    pub days: i32,
    /// Names the step in the idempotency key and the audit (`due-7d`, `overdue-30d`).
    pub step: String,
    /// Template for the owners; absent for a staff-only step.
    #[serde(default)]
    pub template: Option<String>,
    /// Role to tell (`manager` for a visit), with a desk ticket per household.
    #[serde(default)]
    pub notify: Option<String>,
    /// Template of the staff notice (default `manager_visit`).
    #[serde(default)]
    pub staff_template: Option<String>,
}

/// The late fee rule from params: `daily_per_mille` of the unpaid amount per day past
/// `grace_days` after the due date, capped at `cap_percent` of the unpaid amount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LateFeeParams {
    pub daily_per_mille: u32,
    #[serde(default)]
    pub grace_days: u32,
    #[serde(default = "hundred")]
    pub cap_percent: u32,
}

fn hundred() -> u32 {
    100
}

/// The workflow's `params` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    #[serde(default = "default_ladder")]
    pub ladder: Vec<Step>,
    /// Only these fee types (`property`, `parking`); all when empty.
    #[serde(default)]
    pub fee_types: Vec<String>,
    #[serde(default)]
    pub late_fee: Option<LateFeeParams>,
    /// Template of the low balance alert; `None` turns the alert off.
    #[serde(default = "default_balance_template")]
    pub balance_template: Option<String>,
    /// At most this many days between two full scans, whatever the ladder's own bookkeeping
    /// says (1: scan on every run).
    #[serde(default = "default_full_scan_days")]
    pub full_scan_days: u32,
}

fn default_full_scan_days() -> u32 {
    7
}

fn default_balance_template() -> Option<String> {
    Some("low_balance".into())
}

/// The ladder described in the module docs.
pub fn default_ladder() -> Vec<Step> {
    let owner = |days, step: &str, template: &str| Step {
        days,
        step: step.into(),
        template: Some(template.into()),
        notify: None,
        staff_template: None,
    };
    vec![
        owner(-7, "due-7d", "bill_notice"),
        owner(0, "due", "bill_notice"),
        owner(7, "overdue-7d", "bill_notice"),
        owner(30, "overdue-30d", "bill_notice"),
        Step {
            days: 60,
            step: "visit-60d".into(),
            template: None,
            notify: Some("manager".into()),
            staff_template: Some("manager_visit".into()),
        },
        owner(90, "demand-90d", "bill_notice"),
    ]
}

impl Params {
    /// Params of a run, checked: the ladder sorted by day, unique, with something to do.
    pub fn of(run: &Run) -> Result<Params, PluginError> {
        let mut p: Params = run.params()?;
        p.ladder.sort_by_key(|s| s.days);
        for (i, s) in p.ladder.iter().enumerate() {
            if s.template.is_none() && s.notify.is_none() {
                return Err(PluginError::InvalidParams(format!(
                    "ladder[{i}] ({}): needs a template, a notify role or both",
                    s.step
                )));
            }
            if let Some(r) = &s.notify {
                role(&format!("ladder[{i}].notify"), r)?;
            }
            if i > 0 && p.ladder[i - 1].days == s.days {
                return Err(PluginError::InvalidParams(format!(
                    "ladder: two steps at {} days ({} and {})",
                    s.days,
                    p.ladder[i - 1].step,
                    s.step
                )));
            }
        }
        if !(1..=366).contains(&p.full_scan_days) {
            return Err(PluginError::InvalidParams(format!(
                "full_scan_days: {} is not between 1 (scan on every run) and 366",
                p.full_scan_days
            )));
        }
        if let Some(f) = p.late_fee
            && f.cap_percent > 100
        {
            return Err(PluginError::InvalidParams(format!(
                "late_fee.cap_percent: {} is above 100",
                f.cap_percent
            )));
        }
        Ok(p)
    }
}

/// How a community charges for paying late. Override it in a community's own plugin.
pub trait LateFeeRule {
    /// The late fee in fen for `bill`, `days_late` days after its due date.
    fn late_fee(&self, params: &Params, bill: &Bill, days_late: i64) -> i64 {
        let Some(f) = params.late_fee else { return 0 };
        let unpaid = i128::from(bill.amount_fen - bill.paid_fen).max(0);
        let days = (days_late - i64::from(f.grace_days)).max(0);
        let fee = unpaid * i128::from(f.daily_per_mille) * i128::from(days) / 1000;
        let cap = unpaid * i128::from(f.cap_percent) / 100;
        i64::try_from(fee.min(cap)).unwrap_or(i64::MAX)
    }

    /// Whether this household gets reminders at all (a payment plan, a dispute in court...).
    fn remind_household(&self, household: &str, host: &dyn Host) -> bool {
        let _ = (household, host);
        true
    }

    /// The first day a household [`remind_household`](Self::remind_household) turned away may
    /// be reminded again without anything else happening (the day after its plan ends). `None`,
    /// the default: not known, so the next run looks again. Runs read no bills on days when
    /// nothing reaches a step; an exemption that lapses by itself has to say when it does.
    fn exemption_ends(&self, household: &str, host: &dyn Host) -> Option<NaiveDate> {
        let _ = (household, host);
        None
    }
}

/// The default rules: late fee from params (none unless configured), every household reminded.
#[derive(Debug, Default, Clone, Copy)]
pub struct StandardRules;

impl LateFeeRule for StandardRules {}

/// The plugin, generic over the community's rules.
#[derive(Debug, Default)]
pub struct FeeReminder<R: LateFeeRule = StandardRules> {
    rules: R,
}

impl<R: LateFeeRule> FeeReminder<R> {
    pub fn with_rules(rules: R) -> Self {
        FeeReminder { rules }
    }

    /// One pass of the ladder and the balance alerts, as of the run's slot.
    pub fn remind(&self, run: &Run, host: &mut dyn Host) -> Result<(), PluginError> {
        let params = Params::of(run)?;
        let tz = zone(&host.timezone())?;
        let today = local_date(run.due_at, tz);
        let community = host.community_id();

        let state = ScanState::load(host);
        // A run taken long after its slot (catch-up after downtime) scans: events written while
        // the daemon was down may only be routed after it.
        let late = host.now() - run.due_at > LATE_RUN_MS;
        let why = if late {
            Some("late run")
        } else {
            state.scan_needed(today, &run.params)
        };
        let Some(why) = why else {
            host.log(
                Level::Info,
                "fee reminders: no bill reaches a step today",
                &[
                    ("community", &community),
                    ("date", &today.to_string()),
                    (
                        "next_scan",
                        &state.next.map(|d| d.to_string()).unwrap_or_default(),
                    ),
                ],
            );
            return Ok(());
        };

        // Bills further out than the ladder's first step have reached nothing yet: they are
        // neither reminded nor listed. Those that reach it before the next safety scan are read
        // too, only for the day they do.
        let first_step = params.ladder.first().map_or(0, |s| s.days);
        let horizon = today - chrono::Duration::days(i64::from(first_step));
        let read_to = horizon + chrono::Duration::days(i64::from(params.full_scan_days));
        // The next scan: the first day a bill read here reaches a step it has not had, an
        // exemption lapses, or `full_scan_days` have passed, whichever comes first.
        let mut next = today + chrono::Duration::days(i64::from(params.full_scan_days));
        let mut per_household: BTreeMap<String, Vec<(Bill, NaiveDate)>> = BTreeMap::new();
        for bill in host.unpaid_bills_due_by(&read_to.to_string()) {
            if !params.fee_types.is_empty() && !params.fee_types.contains(&bill.fee_type) {
                continue;
            }
            // The context is only written out for a bad date: this runs once per unpaid bill.
            let due = match bill.due_date.parse::<NaiveDate>() {
                Ok(d) => d,
                Err(_) => parse_date(&format!("bill {}: due_date", bill.id), &bill.due_date)?,
            };
            if due > horizon {
                next = next.min(due + chrono::Duration::days(i64::from(first_step)));
                continue;
            }
            per_household
                .entry(bill.household.clone())
                .or_default()
                .push((bill, due));
        }

        let mut sent = 0usize;
        let mut skipped = 0usize;
        // What each household gets this run; labels are read afterwards, for those only.
        let mut due: Vec<Reminder<'_>> = Vec::new();
        for (household, mut bills) in per_household {
            if !self.rules.remind_household(&household, host) {
                skipped += 1;
                next = next.min(
                    self.rules
                        .exemption_ends(&household, host)
                        .unwrap_or(today + chrono::Duration::days(1)),
                );
                continue;
            }
            bills.sort_by(|a, b| {
                (a.1, &a.0.period, &a.0.fee_type).cmp(&(b.1, &b.0.period, &b.0.fee_type))
            });
            // The sternest step any bill newly reached decides the tone; every bill that has
            // reached the ladder is listed.
            let mut owner_step: Option<&Step> = None;
            let mut staff_steps: Vec<&Step> = Vec::new();
            let mut listed: Vec<(Bill, i64)> = Vec::new();
            for (bill, due) in bills {
                let days = (today - due).num_days();
                let Some(reached) = params
                    .ladder
                    .iter()
                    .rev()
                    .find(|s| i64::from(s.days) <= days)
                else {
                    continue;
                };
                let key = format!("bill:{}", bill.id);
                listed.push((bill, days));
                let last: Option<i32> = host.kv_get(&key).and_then(|v| v.parse().ok());
                if let Some(s) = params
                    .ladder
                    .iter()
                    .find(|s| s.days > reached.days.max(last.unwrap_or(i32::MIN)))
                {
                    next = next.min(due + chrono::Duration::days(i64::from(s.days)));
                }
                if last.is_some_and(|l| l >= reached.days) {
                    continue;
                }
                host.kv_put(&key, &reached.days.to_string());
                // Staff steps passed over since the last run still matter (a visit is a task);
                // owner steps collapse into the latest one.
                for s in params.ladder.iter().filter(|s| {
                    s.notify.is_some() && s.days <= reached.days && last.is_none_or(|l| s.days > l)
                }) {
                    if !staff_steps.iter().any(|x| x.step == s.step) {
                        staff_steps.push(s);
                    }
                }
                if let Some(s) = params.ladder.iter().rev().find(|s| {
                    s.template.is_some()
                        && s.days <= reached.days
                        && last.is_none_or(|l| s.days > l)
                }) && owner_step.is_none_or(|o| s.days > o.days)
                {
                    owner_step = Some(s);
                }
            }
            if listed.is_empty() || (owner_step.is_none() && staff_steps.is_empty()) {
                continue;
            }
            due.push(Reminder {
                household,
                listed,
                owner_step,
                staff_steps,
            });
        }
        state.save(host, today, next, &run.params);
        let labels = labels(host, due.iter().map(|r| r.household.clone()).collect());
        for Reminder {
            household,
            listed,
            owner_step,
            staff_steps,
        } in due
        {
            let total: i64 = listed.iter().map(|(b, _)| b.amount_fen - b.paid_fen).sum();
            let late: i64 = listed
                .iter()
                .map(|(b, d)| self.rules.late_fee(&params, b, *d))
                .sum();
            let items = listed
                .iter()
                .map(|(b, _)| {
                    format!(
                        "{} {} {}",
                        b.period,
                        b.fee_type,
                        yuan(b.amount_fen - b.paid_fen)
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            // Structured for the templates (`{% for b in bills %}`): a JSON list in one variable.
            let bills_json = json(
                &listed
                    .iter()
                    .map(|(b, _)| BillVar {
                        id: &b.id,
                        fee_type: &b.fee_type,
                        period: &b.period,
                        amount: amount(b.amount_fen - b.paid_fen),
                        due_date: &b.due_date,
                    })
                    .collect::<Vec<_>>(),
            );
            let bill_ids = json(&listed.iter().map(|(b, _)| &b.id).collect::<Vec<_>>());
            let days_overdue = listed.iter().map(|(_, d)| *d).max().unwrap_or(0).max(0);
            let label = label(&labels, &household);
            if let Some(step) = owner_step {
                let mut msg = Message::to_household(
                    &household,
                    step.template.as_deref().unwrap_or_default(),
                    &step.step,
                )
                .var("household.label", &label.zh)
                .var("household.label_en", &label.en)
                .var("bills", &bills_json)
                .var("bill_ids", &bill_ids)
                .var("items", &items)
                .var("count", listed.len())
                .var("total", amount(total))
                .var("total_fen", total)
                .var("tone", tone(step.days))
                .var("days_overdue", days_overdue);
                if late > 0 {
                    msg = msg.var("late_fee", amount(late)).var("late_fee_fen", late);
                }
                host.send(msg);
                sent += 1;
            }
            for step in staff_steps {
                let r = role("ladder.notify", step.notify.as_deref().unwrap_or_default())?;
                let template = step.staff_template.as_deref().unwrap_or("manager_visit");
                host.notify_staff(
                    StaffNotice::new(r, template, &format!("{}:{household}", step.step))
                        .var("household.label", &label.zh)
                        .var("household.label_en", &label.en)
                        .var("items", &items)
                        .var("total", amount(total))
                        .var("days_overdue", days_overdue)
                        .var("bill_ids", &bill_ids),
                );
                host.create_ticket(NewTicket {
                    household: Some(household.clone()),
                    kind: "fee-visit".into(),
                    summary: format!(
                        "上门催缴 (fee visit): {} owes {} ({})",
                        label.zh,
                        yuan(total),
                        step.step
                    ),
                });
            }
        }

        let alerts = match &params.balance_template {
            Some(t) => self.balance_alerts(t, host),
            None => 0,
        };
        host.log(
            Level::Info,
            "fee reminders",
            &[
                ("community", &community),
                ("date", &today.to_string()),
                ("scan", why),
                ("next_scan", &next.to_string()),
                ("households_reminded", &sent.to_string()),
                ("households_exempt", &skipped.to_string()),
                ("balance_alerts", &alerts.to_string()),
            ],
        );
        Ok(())
    }

    /// One alert per crossing below a threshold; re-armed once the balance recovers.
    fn balance_alerts(&self, template: &str, host: &mut dyn Host) -> usize {
        let mut crossed = Vec::new();
        for b in host.balances() {
            let key = format!("low:{}:{}", b.household, b.utility);
            let low = b.balance_fen < b.threshold_fen;
            let alerted = host.kv_get(&key).is_some();
            if low && !alerted {
                host.kv_put(&key, &b.balance_fen.to_string());
                crossed.push(b);
            } else if !low && alerted {
                host.kv_delete(&key);
            }
        }
        let labels = labels(host, crossed.iter().map(|b| b.household.clone()).collect());
        let alerts = crossed.len();
        for b in crossed {
            let label = label(&labels, &b.household);
            host.send(
                Message::to_household(&b.household, template, &format!("low-{}", b.utility))
                    .var("household.label", label.zh)
                    .var("household.label_en", label.en)
                    .var("utility", &b.utility)
                    .var("balance", amount(b.balance_fen))
                    .var("threshold", amount(b.threshold_fen))
                    .category(Category::Urgent),
            );
        }
        alerts
    }

    /// Payments move bills off and back onto the ladder; imported files (`import.*`) and
    /// reversals make the next run scan.
    pub fn payment_event(&self, event: &EventIn, host: &mut dyn Host) -> Result<(), PluginError> {
        let import = event.kind.starts_with("import.");
        if import || event.kind == "payment.reversed" {
            // First, so a payload this code cannot read still leaves the scan asked for.
            request_scan(host, &event.kind);
        }
        if import {
            return Ok(());
        }
        #[derive(Deserialize)]
        struct Payload {
            bill_id: serde_json::Value,
            #[serde(default)]
            bill_settled: Option<bool>,
        }
        let p: Payload = serde_json::from_str(&event.payload)
            .map_err(|e| PluginError::BadData(format!("{} payload: {e}", event.kind)))?;
        let bill = match p.bill_id {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        };
        let forget = match event.kind.as_str() {
            "payment.reversed" => true,
            "payment.posted" => p.bill_settled.unwrap_or(true),
            _ => false,
        };
        if forget {
            host.kv_delete(&format!("bill:{bill}"));
            host.log(
                Level::Info,
                "fee ladder reset",
                &[("bill", &bill), ("why", &event.kind)],
            );
        }
        Ok(())
    }
}

/// Makes the next run scan every unpaid bill, whatever day it is: the data changed in a way the
/// ladder's bookkeeping cannot know (bills imported, a payment reversed, a payment plan ended).
/// `why` is logged by that run.
pub fn request_scan(host: &mut dyn Host, why: &str) {
    host.kv_put(RESCAN_KEY, why);
}

/// How long after its slot a run counts as late (a catch-up) and scans whatever the bookkeeping
/// says.
const LATE_RUN_MS: i64 = 60 * 60 * 1000;

/// The ladder's bookkeeping between runs, next to each bill's progress (`bill:<id>`).
const SCANNED_KEY: &str = "ladder:scanned";
const NEXT_KEY: &str = "ladder:next";
const PARAMS_KEY: &str = "ladder:params";
const RESCAN_KEY: &str = "ladder:rescan";

/// When the last full scan ran, with which params, and the first day after it on which a bill
/// it read reaches a step it has not had (or an exemption lapses). Until that day, with the same
/// params and no data changed, a scan would find nothing to send, so the run reads no bills.
#[derive(Debug)]
struct ScanState {
    scanned: Option<NaiveDate>,
    next: Option<NaiveDate>,
    params: Option<String>,
    rescan: Option<String>,
}

impl ScanState {
    fn load(host: &dyn Host) -> ScanState {
        let date = |key| {
            host.kv_get(key)
                .and_then(|d| NaiveDate::parse_from_str(&d, "%Y-%m-%d").ok())
        };
        ScanState {
            scanned: date(SCANNED_KEY),
            next: date(NEXT_KEY),
            params: host.kv_get(PARAMS_KEY),
            rescan: host.kv_get(RESCAN_KEY),
        }
    }

    /// Why this run must scan, or `None` when it has nothing to find. The periodic scan needs no
    /// check of its own: `next` is never later than `full_scan_days` after the scan that wrote it.
    fn scan_needed(&self, today: NaiveDate, params: &str) -> Option<&str> {
        let (Some(scanned), Some(next)) = (self.scanned, self.next) else {
            return Some("first run");
        };
        if let Some(why) = &self.rescan {
            return Some(why);
        }
        if self.params.as_deref() != Some(params) {
            return Some("params changed");
        }
        if today < scanned {
            // The clock went back (a simulation on a copy of a later state): start afresh.
            return Some("date before the last scan");
        }
        if today >= next {
            return Some("next scan day");
        }
        None
    }

    /// Records a scan made `today`. What was loaded is what is in the store: nothing between
    /// loading and saving writes these keys.
    fn save(&self, host: &mut dyn Host, today: NaiveDate, next: NaiveDate, params: &str) {
        host.kv_put(SCANNED_KEY, &today.to_string());
        host.kv_put(NEXT_KEY, &next.to_string());
        if self.params.as_deref() != Some(params) {
            host.kv_put(PARAMS_KEY, params);
        }
        if self.rescan.is_some() {
            host.kv_delete(RESCAN_KEY);
        }
    }
}

/// A bill as the templates see it in `bills`.
#[derive(serde::Serialize)]
struct BillVar<'a> {
    id: &'a str,
    fee_type: &'a str,
    period: &'a str,
    amount: String,
    due_date: &'a str,
}

/// `value` as JSON text, written straight from the borrowed data (no `serde_json::Value` tree
/// per bill: on a due date this runs for every household in arrears).
fn json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// One household's reminder of a run: the bills listed (with days since due), the owner step
/// that decides the tone, the staff steps reached.
struct Reminder<'a> {
    household: String,
    listed: Vec<(Bill, i64)>,
    owner_step: Option<&'a Step>,
    staff_steps: Vec<&'a Step>,
}

/// A household's label in each language its templates are written in ([`Household::label`],
/// [`Household::label_en`]).
struct Label {
    zh: String,
    en: String,
}

/// Labels of the households a run writes to, read in one host call for those households only:
/// on a due date in a large community thousands are written to, and reading every household
/// (or one call each) cost more than the reminders.
fn labels(host: &dyn Host, households: Vec<String>) -> HashMap<String, Label> {
    if households.is_empty() {
        return HashMap::new();
    }
    host.households_by_id(&households)
        .iter()
        .map(|h| {
            let label = Label {
                zh: h.label(),
                en: h.label_en(),
            };
            (h.id.clone(), label)
        })
        .collect()
}

/// The household's label, or its id (in every language) when the household is unknown.
fn label(labels: &HashMap<String, Label>, household: &str) -> Label {
    match labels.get(household) {
        Some(l) => Label {
            zh: l.zh.clone(),
            en: l.en.clone(),
        },
        None => Label {
            zh: household.to_string(),
            en: household.to_string(),
        },
    }
}

/// How firm the wording is at a step, for templates that vary it (`gentle` before the due date,
/// `due` on it, `firm` after, `demand` from 90 days: the written demand).
pub fn tone(days: i32) -> &'static str {
    match days {
        ..0 => "gentle",
        0 => "due",
        1..90 => "firm",
        _ => "demand",
    }
}

impl<R: LateFeeRule + Default> Plugin for FeeReminder<R> {
    fn on_schedule(&mut self, run: &Run, host: &mut dyn Host) -> Result<(), PluginError> {
        self.remind(run, host)
    }

    fn on_event(
        &mut self,
        _run: &Run,
        event: &EventIn,
        host: &mut dyn Host,
    ) -> Result<(), PluginError> {
        self.payment_event(event, host)
    }
}

#[cfg(test)]
mod tests;
