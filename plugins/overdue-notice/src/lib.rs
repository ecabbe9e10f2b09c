//! overdue-notice: one notice per household with bills past due, listing every unpaid item with
//! its period and amount, sent once per household per day (remembered in kv would cost a write per
//! household; the step name carries the date instead, and the outbox's idempotency key does the
//! rest). The real fee-reminder ladder lives with the workflows; this compact one is the SDK
//! example and the 100,000-household benchmark's plugin.

use std::collections::BTreeMap;

use wuye_plugin_sdk::calendar::days_between;
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

impl Plugin for OverdueNotice {
    fn on_schedule(&mut self, run: &Run, host: &mut dyn Host) -> Result<(), PluginError> {
        let params: Params = run.params()?;
        let template = params.template.as_deref().unwrap_or("fee_overdue");
        // The community's date of the run's slot: in Shanghai the 23rd starts at 16:00 UTC on
        // the 22nd, and a run caught up late still counts from its own day.
        let today = run.local_date(host)?;
        let grace = params.grace_days.unwrap_or(0);
        let mut overdue: BTreeMap<String, Vec<Bill>> = BTreeMap::new();
        for bill in host.unpaid_bills() {
            if days_between(bill.due()?, today) > grace {
                overdue
                    .entry(bill.household.clone())
                    .or_default()
                    .push(bill);
            }
        }
        let step = format!("overdue-{today}");
        for (household, bills) in &overdue {
            let total: Money = bills.iter().map(Bill::outstanding).sum();
            let items = bills
                .iter()
                .map(|b| format!("{} {} {}", b.fee_type, b.period, b.outstanding().amount()))
                .collect::<Vec<_>>()
                .join("; ");
            host.send(
                Message::to_household(household, template, &step)
                    .var("items", items)
                    .var("total_yuan", total.amount())
                    // Paid before the notice goes out: the daemon drops it.
                    .about_bills(bills.iter().map(|b| &b.id)),
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
        host.at("2026-09-23T08:00:00+08:00");
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
        assert_eq!(m.step, "overdue-2026-09-23");
        assert_eq!(
            m.get("items"),
            Some("property 2026-08 350.00; property 2026-09 100.50")
        );
        assert_eq!(m.get("total_yuan"), Some("450.50"));
        assert_eq!(m.get("bill_ids"), Some(r#"["b1","b2"]"#));
    }

    #[test]
    fn the_day_is_the_communitys_before_eight_in_the_morning() {
        let mut host = MockHost::new("lakeside");
        // 07:00 on 1 October in Shanghai is still 30 September in UTC: the bill due on the
        // 30th is a day overdue on the owner's calendar.
        host.at("2026-10-01T07:00:00+08:00");
        host.bills = vec![bill("b3", "1-101", "2026-09-30", 35_000, 0)];
        let run = host.run("fee", "{}");
        OverdueNotice.on_schedule(&run, &mut host).unwrap();
        assert_eq!(host.messages.len(), 1);
        assert_eq!(host.messages[0].step, "overdue-2026-10-01");
    }

    #[test]
    fn grace_days_hold_back_recent_bills() {
        let mut host = MockHost::new("lakeside");
        host.at("2026-09-23T09:00:00+08:00");
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
