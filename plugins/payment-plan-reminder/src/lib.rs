//! payment-plan-reminder: how a community replaces a standard workflow with its own rule.
//!
//! 世纪新筑 agrees payment plans (分期还款) with owners in arrears: while a plan runs, the
//! household pays by instalments and must not be chased by the reminder ladder. This plugin is
//! the standard `fee-reminder` (used as a library) with one rule changed: households on a plan
//! are skipped. Everything else (the ladder, one message per household, stop on payment,
//! restart on reversal, balance alerts) is the standard behaviour.
//!
//! Plans live in the plugin's key-value store as `plan:<household>` = last day of the plan
//! (`YYYY-MM-DD`, inclusive), so they survive restarts and belong to this community only. They
//! are set by:
//! - the `payment_plans` param (`{ "3-301" = "2026-12-31" }`), copied into the store on each
//!   run, so an administrator can agree a plan by editing the community file;
//! - a `payment_plan.agreed` event (`{"household": "3-301", "until": "2026-12-31"}`) and
//!   `payment_plan.ended` (`{"household": "3-301"}`), for a desk system that records them.
//!
//! A plan whose last day has passed no longer protects the household: the ladder resumes at the
//! step its bills stand at.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use fee_ladder::{FeeReminder, LateFeeRule};
use serde::Deserialize;
use workflow_kit::{local_date, parse_date, zone};
use wuye_plugin_sdk::prelude::*;

/// Skips households whose plan covers the run's date.
#[derive(Debug, Default, Clone, Copy)]
pub struct PlanRules {
    today: Option<NaiveDate>,
}

impl LateFeeRule for PlanRules {
    fn remind_household(&self, household: &str, host: &dyn Host) -> bool {
        let until = host
            .kv_get(&format!("plan:{household}"))
            .and_then(|d| NaiveDate::parse_from_str(&d, "%Y-%m-%d").ok());
        match (until, self.today) {
            (Some(until), Some(today)) => today > until,
            _ => true,
        }
    }

    /// The day after the plan's last day: the ladder looks at the household again then.
    fn exemption_ends(&self, household: &str, host: &dyn Host) -> Option<NaiveDate> {
        host.kv_get(&format!("plan:{household}"))
            .and_then(|d| NaiveDate::parse_from_str(&d, "%Y-%m-%d").ok())
            .and_then(|until| until.succ_opt())
    }
}

/// The standard params plus `payment_plans`.
#[derive(Debug, Deserialize)]
struct Plans {
    #[serde(default)]
    payment_plans: BTreeMap<String, String>,
}

#[derive(Debug, Default)]
pub struct PaymentPlanReminder;

impl PaymentPlanReminder {
    /// Copies `payment_plans` into the store and gives the standard plugin its own params.
    fn split(run: &Run, host: &mut dyn Host) -> Result<Run, PluginError> {
        let mut params: serde_json::Map<String, serde_json::Value> = run.params()?;
        let plans: Plans = serde_json::from_value(serde_json::json!({
            "payment_plans": params.remove("payment_plans").unwrap_or_else(|| serde_json::json!({}))
        }))
        .map_err(|e| PluginError::InvalidParams(format!("payment_plans: {e}")))?;
        for (household, until) in &plans.payment_plans {
            let until =
                parse_date(&format!("payment_plans.{household}"), until).map_err(|e| match e {
                    PluginError::BadData(m) => PluginError::InvalidParams(m),
                    other => other,
                })?;
            let key = format!("plan:{household}");
            if host.kv_get(&key).as_deref() != Some(until.to_string().as_str()) {
                host.kv_put(&key, &until.to_string());
                fee_ladder::request_scan(host, "payment plan changed");
            }
        }
        Ok(Run {
            params: serde_json::Value::Object(params).to_string(),
            ..run.clone()
        })
    }
}

#[derive(Debug, Deserialize)]
struct PlanEvent {
    household: String,
    #[serde(default)]
    until: Option<String>,
}

impl Plugin for PaymentPlanReminder {
    fn on_schedule(&mut self, run: &Run, host: &mut dyn Host) -> Result<(), PluginError> {
        let run = Self::split(run, host)?;
        let today = local_date(run.due_at, zone(&host.timezone())?);
        FeeReminder::with_rules(PlanRules { today: Some(today) }).remind(&run, host)
    }

    fn on_event(
        &mut self,
        _run: &Run,
        event: &EventIn,
        host: &mut dyn Host,
    ) -> Result<(), PluginError> {
        match event.kind.as_str() {
            "payment_plan.agreed" | "payment_plan.ended" => {
                let e: PlanEvent = serde_json::from_str(&event.payload).map_err(|err| {
                    PluginError::BadData(format!("{} payload: {err}", event.kind))
                })?;
                let key = format!("plan:{}", e.household);
                match (event.kind.as_str(), e.until) {
                    ("payment_plan.agreed", Some(until)) => {
                        let until = parse_date(&format!("{} payload: until", event.kind), &until)?;
                        host.kv_put(&key, &until.to_string());
                    }
                    ("payment_plan.agreed", None) => {
                        return Err(PluginError::BadData(
                            "payment_plan.agreed payload: missing field `until`".into(),
                        ));
                    }
                    _ => host.kv_delete(&key),
                }
                // A plan agreed or ended changes who is chased from the next run on.
                fee_ladder::request_scan(host, &event.kind);
                Ok(())
            }
            _ => FeeReminder::with_rules(PlanRules::default()).payment_event(event, host),
        }
    }
}

export_plugin!(PaymentPlanReminder);
// The ladder's declaration, then what this plugin adds to it.
wuye_plugin_sdk::manifest!(concat!(
    include_str!("../../fee-ladder/manifest.toml"),
    include_str!("../manifest.toml")
));

#[cfg(test)]
mod tests {
    use chrono::NaiveTime;
    use workflow_kit::at_local;

    use super::*;

    fn neighbours() -> MockHost {
        let mut host = MockHost::new("shijixinzhu");
        for (i, h) in ["3-301", "3-302"].iter().enumerate() {
            host.households.push(Household {
                id: (*h).into(),
                building: "3".into(),
                unit: h[2..].into(),
                owners: vec![format!("o{i}")],
            });
            host.bills.push(Bill {
                id: format!("b{i}"),
                household: (*h).into(),
                fee_type: "property".into(),
                period: "2026-03".into(),
                amount_fen: 41_000,
                paid_fen: 0,
                due_date: "2026-03-31".into(),
            });
        }
        host
    }

    fn day(host: &mut MockHost, date: &str, params: &str, standard: bool) -> Vec<String> {
        host.clear_output();
        let d = NaiveDate::parse_from_str(date, "%Y-%m-%d").unwrap();
        host.now = at_local(
            d,
            NaiveTime::from_hms_opt(10, 0, 0).unwrap(),
            zone("Asia/Shanghai").unwrap(),
        );
        let run = host.run("fee_reminder", params);
        if standard {
            FeeReminder::<fee_ladder::StandardRules>::default()
                .on_schedule(&run, host)
                .unwrap();
        } else {
            PaymentPlanReminder.on_schedule(&run, host).unwrap();
        }
        host.messages
            .iter()
            .map(|m| match &m.to {
                Recipient::Household(h) | Recipient::Owner(h) => format!("{date} {h} {}", m.step),
            })
            .collect()
    }

    /// The ladder reads no bills on days nothing can happen; the plan's end is such a day, so
    /// it must say so (`exemption_ends`) for 3-301 to be chased the day after, not at the next
    /// periodic scan.
    #[test]
    fn the_day_after_a_plan_ends_the_household_is_chased_without_daily_scans_before() {
        let params = r#"{"payment_plans": {"3-301": "2026-05-20"}, "full_scan_days": 366}"#;
        let mut host = neighbours();
        let mut sent = Vec::new();
        let mut scans = Vec::new();
        let mut d = NaiveDate::from_ymd_opt(2026, 5, 1).unwrap();
        while d <= NaiveDate::from_ymd_opt(2026, 5, 25).unwrap() {
            let date = d.to_string();
            sent.extend(day(&mut host, &date, params, false));
            if host.logs.iter().any(|l| l.message == "fee reminders") {
                scans.push(date);
            }
            d += chrono::Duration::days(1);
        }
        // 3-302 had its 30-day notice on 1 May (the first run); 3-301 waits for its plan.
        assert_eq!(
            sent,
            [
                "2026-05-01 3-302 overdue-30d",
                "2026-05-21 3-301 overdue-30d"
            ]
        );
        assert_eq!(scans, ["2026-05-01", "2026-05-21"], "no scan between");
    }

    #[test]
    fn a_household_on_a_plan_is_not_chased_while_its_neighbour_and_the_standard_plugin_are() {
        let params = r#"{"payment_plans": {"3-301": "2026-05-31"}}"#;
        let mut custom = neighbours();
        let mut standard = neighbours();
        let mut got = (Vec::new(), Vec::new());
        for d in ["2026-03-31", "2026-04-07", "2026-04-30", "2026-06-01"] {
            got.0.extend(day(&mut custom, d, params, false));
            got.1.extend(day(&mut standard, d, "{}", true));
        }
        assert_eq!(
            got.0,
            [
                "2026-03-31 3-302 due",
                "2026-04-07 3-302 overdue-7d",
                "2026-04-30 3-302 overdue-30d",
                // The plan ended on 31 May: the ladder resumes where the bill stands.
                "2026-06-01 3-301 overdue-30d",
            ]
        );
        assert_eq!(
            got.1,
            [
                "2026-03-31 3-301 due",
                "2026-03-31 3-302 due",
                "2026-04-07 3-301 overdue-7d",
                "2026-04-07 3-302 overdue-7d",
                "2026-04-30 3-301 overdue-30d",
                "2026-04-30 3-302 overdue-30d",
            ]
        );
        assert_eq!(
            custom.kv.get("plan:3-301").map(String::as_str),
            Some("2026-05-31")
        );
    }

    #[test]
    fn plans_agreed_and_ended_by_events_are_kept_in_the_kv_store() {
        let mut host = neighbours();
        let run = host.run("fee_reminder", "{}");
        let agreed = EventIn {
            kind: "payment_plan.agreed".into(),
            payload: r#"{"household": "3-302", "until": "2026-12-31"}"#.into(),
        };
        PaymentPlanReminder
            .on_event(&run, &agreed, &mut host)
            .unwrap();
        assert_eq!(
            day(&mut host, "2026-03-31", "{}", false),
            ["2026-03-31 3-301 due"]
        );
        let ended = EventIn {
            kind: "payment_plan.ended".into(),
            payload: r#"{"household": "3-302"}"#.into(),
        };
        PaymentPlanReminder
            .on_event(&run, &ended, &mut host)
            .unwrap();
        assert_eq!(
            day(&mut host, "2026-04-07", "{}", false),
            ["2026-04-07 3-301 overdue-7d", "2026-04-07 3-302 overdue-7d"]
        );
    }

    #[test]
    fn a_bad_plan_date_names_the_household() {
        let mut host = neighbours();
        let run = host.run(
            "fee_reminder",
            r#"{"payment_plans": {"3-301": "end of year"}}"#,
        );
        assert_eq!(
            PaymentPlanReminder
                .on_schedule(&run, &mut host)
                .unwrap_err(),
            PluginError::InvalidParams(
                "payment_plans.3-301: \"end of year\" is not a YYYY-MM-DD date".into()
            )
        );
    }
}
