//! overdue-notice: one notice per household with bills past due, listing every unpaid item with
//! its period and amount, sent once per household per day (remembered in kv would cost a write per
//! household; the step name carries the date instead, and the outbox's idempotency key does the
//! rest). The real fee-reminder ladder lives with the workflows; this compact one is the SDK
//! example and the 100,000-household benchmark's plugin.

use std::collections::BTreeMap;

use wuye_plugin_sdk::prelude::*;

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    /// Template of the notice (default `fee_overdue`).
    template: Option<String>,
    /// Days after the due date before a bill counts as overdue (default 0).
    grace_days: Option<i64>,
}

#[derive(Default)]
pub struct OverdueNotice;

/// Days since 1970-01-01 of a `YYYY-MM-DD` date (proleptic Gregorian).
fn days(date: &str) -> Option<i64> {
    let mut it = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, d) = (it.next()??, it.next()??, it.next()??);
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

fn yuan(fen: i64) -> String {
    format!("{}.{:02}", fen / 100, fen % 100)
}

impl Plugin for OverdueNotice {
    fn on_schedule(&mut self, run: &Run, host: &mut dyn Host) -> Result<(), PluginError> {
        let params: Params = run.params()?;
        let template = params.template.as_deref().unwrap_or("fee_overdue");
        let today = run.due_at.div_euclid(DAY_MS);
        let grace = params.grace_days.unwrap_or(0);
        let mut overdue: BTreeMap<String, Vec<Bill>> = BTreeMap::new();
        for bill in host.unpaid_bills() {
            let due = days(&bill.due_date).ok_or_else(|| {
                PluginError::BadData(format!(
                    "bill {}: due_date {:?} is not YYYY-MM-DD",
                    bill.id, bill.due_date
                ))
            })?;
            if today > due + grace {
                overdue
                    .entry(bill.household.clone())
                    .or_default()
                    .push(bill);
            }
        }
        let step = format!("overdue-{today}");
        for (household, bills) in &overdue {
            let total: i64 = bills.iter().map(|b| b.amount_fen - b.paid_fen).sum();
            let items = bills
                .iter()
                .map(|b| {
                    format!(
                        "{} {} {}",
                        b.fee_type,
                        b.period,
                        yuan(b.amount_fen - b.paid_fen)
                    )
                })
                .collect::<Vec<_>>()
                .join("; ");
            host.send(
                Message::to_household(household, template, &step)
                    .var("items", items)
                    .var("total_yuan", yuan(total)),
            );
        }
        host.log(
            Level::Info,
            "overdue notices",
            &[("households", &overdue.len().to_string())],
        );
        Ok(())
    }
}

export_plugin!(OverdueNotice);
wuye_plugin_sdk::manifest!(include_str!("../manifest.toml"));

#[cfg(test)]
mod tests {
    use super::*;

    fn bill(id: &str, household: &str, due: &str, amount: i64, paid: i64) -> Bill {
        Bill {
            id: id.into(),
            household: household.into(),
            fee_type: "property".into(),
            period: due[..7].into(),
            amount_fen: amount,
            paid_fen: paid,
            due_date: due.into(),
        }
    }

    #[test]
    fn one_notice_per_household_listing_only_overdue_unpaid_items() {
        let mut host = MockHost::new("lakeside");
        host.now = 1_790_121_600_000; // 2026-09-23T00:00:00Z
        host.bills = vec![
            bill("b1", "1-101", "2026-08-31", 35_000, 0),
            bill("b2", "1-101", "2026-09-15", 12_050, 2_000),
            bill("b3", "1-101", "2026-09-30", 35_000, 0), // not due yet
            bill("b4", "2-202", "2026-08-31", 35_000, 35_000), // paid
        ];
        let run = host.run("fee", "{}");
        OverdueNotice.on_schedule(&run, &mut host).unwrap();
        assert_eq!(host.messages.len(), 1);
        let m = &host.messages[0];
        assert_eq!(m.to, Recipient::Household("1-101".into()));
        assert_eq!(m.step, "overdue-20719");
        assert_eq!(
            m.vars
                .iter()
                .map(|f| (f.key.as_str(), f.value.as_str()))
                .collect::<Vec<_>>(),
            [
                ("items", "property 2026-08 350.00; property 2026-09 100.50"),
                ("total_yuan", "450.50")
            ]
        );
    }

    #[test]
    fn grace_days_hold_back_recent_bills() {
        let mut host = MockHost::new("lakeside");
        host.now = 1_790_121_600_000;
        host.bills = vec![bill("b2", "1-101", "2026-09-15", 100, 0)];
        let run = host.run("fee", r#"{"grace_days": 10}"#);
        OverdueNotice.on_schedule(&run, &mut host).unwrap();
        assert!(host.messages.is_empty());
    }

    #[test]
    fn a_malformed_due_date_is_bad_data_naming_the_bill() {
        let mut host = MockHost::new("lakeside");
        host.bills = vec![bill("b9", "1-101", "2026-13-xx", 100, 0)];
        let run = host.run("fee", "{}");
        let err = OverdueNotice.on_schedule(&run, &mut host).unwrap_err();
        assert!(matches!(err, PluginError::BadData(m) if m.starts_with("bill b9")));
    }
}
