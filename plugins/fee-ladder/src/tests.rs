//! The ladder as an owner lives it: day by day over months, against the mock community.

use chrono::{Duration, NaiveDate, NaiveTime};
use workflow_kit::{at_local, zone};

use super::*;

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn community() -> MockHost {
    let mut host = MockHost::new("shuipan");
    for (h, o) in [("1-101", "o1"), ("1-102", "o2")] {
        host.households.push(Household {
            id: h.into(),
            building: "1".into(),
            unit: h[2..].into(),
            owners: vec![o.into()],
        });
    }
    host
}

fn bill(id: &str, household: &str, fee: &str, period: &str, fen: i64, due: &str) -> Bill {
    Bill {
        id: id.into(),
        household: household.into(),
        fee_type: fee.into(),
        period: period.into(),
        amount_fen: fen,
        paid_fen: 0,
        due_date: due.into(),
    }
}

/// Runs the daily slot (10:00 local) on `date`; returns what went out as `household step` and
/// `role step` lines.
fn run_on(host: &mut MockHost, date: NaiveDate, params: &str) -> Vec<String> {
    run_late(host, date, params, 0)
}

/// [`run_on`], the run taken `late_ms` after its slot (a catch-up after downtime).
fn run_late(host: &mut MockHost, date: NaiveDate, params: &str, late_ms: i64) -> Vec<String> {
    host.clear_output();
    host.now = at_local(
        date,
        NaiveTime::from_hms_opt(10, 0, 0).unwrap(),
        zone("Asia/Shanghai").unwrap(),
    );
    let run = host.run("fee_reminder", params);
    host.now += late_ms;
    FeeReminder::<StandardRules>::default()
        .on_schedule(&run, host)
        .unwrap();
    let mut out: Vec<String> = host
        .messages
        .iter()
        .map(|m| match &m.to {
            Recipient::Household(h) | Recipient::Owner(h) => {
                format!("{date} {h} {} {}", m.step, m.template)
            }
        })
        .collect();
    out.extend(host.staff_notices.iter().map(|n| {
        let role = match n.role {
            Role::CustomerService => "CustomerService",
            Role::Supervisor => "Supervisor",
            Role::Manager => "Manager",
        };
        format!("{date} {role} {}", n.step)
    }));
    out
}

fn run_days(host: &mut MockHost, from: &str, to: &str, params: &str) -> Vec<String> {
    let (mut d, end) = (day(from), day(to));
    let mut out = Vec::new();
    while d <= end {
        out.extend(run_on(host, d, params));
        d += Duration::days(1);
    }
    out
}

/// Delivers a domain event to the plugin, as the daemon does for a subscribed workflow.
fn event(host: &mut MockHost, kind: &str, payload: &str) {
    let run = host.run("fee_reminder", "{}");
    let e = EventIn {
        kind: kind.into(),
        payload: payload.into(),
    };
    FeeReminder::<StandardRules>::default()
        .on_event(&run, &e, host)
        .unwrap();
}

fn var<'a>(m: &'a Message, key: &str) -> Option<&'a str> {
    m.vars
        .iter()
        .find(|f| f.key == key)
        .map(|f| f.value.as_str())
}

#[test]
fn an_unpaid_bill_climbs_the_whole_ladder_once_per_step_and_ends_in_a_written_demand() {
    let mut host = community();
    host.bills.push(bill(
        "b1",
        "1-101",
        "property",
        "2026-03",
        35_000,
        "2026-03-31",
    ));
    let out = run_days(&mut host, "2026-03-01", "2026-08-31", "{}");
    assert_eq!(
        out,
        [
            "2026-03-24 1-101 due-7d bill_notice",
            "2026-03-31 1-101 due bill_notice",
            "2026-04-07 1-101 overdue-7d bill_notice",
            "2026-04-30 1-101 overdue-30d bill_notice",
            "2026-05-30 Manager visit-60d:1-101",
            "2026-06-29 1-101 demand-90d bill_notice",
        ]
    );
}

#[test]
fn the_manager_visit_also_opens_a_desk_ticket() {
    let mut host = community();
    host.bills.push(bill(
        "b1",
        "1-101",
        "property",
        "2026-03",
        35_000,
        "2026-03-31",
    ));
    run_days(&mut host, "2026-05-29", "2026-05-29", "{}");
    run_on(&mut host, day("2026-05-30"), "{}");
    assert_eq!(host.new_tickets.len(), 1);
    assert_eq!(host.new_tickets[0].household.as_deref(), Some("1-101"));
    assert_eq!(host.new_tickets[0].kind, "fee-visit");
}

#[test]
fn one_message_per_household_lists_every_unpaid_item_with_amounts_and_the_total() {
    let mut host = community();
    host.bills.push(bill(
        "b1",
        "1-101",
        "property",
        "2026-03",
        35_000,
        "2026-03-31",
    ));
    host.bills.push(bill(
        "b2",
        "1-101",
        "parking",
        "2026-03",
        30_000,
        "2026-03-31",
    ));
    host.bills.push(bill(
        "b3",
        "1-102",
        "property",
        "2026-03",
        42_050,
        "2026-03-31",
    ));
    let out = run_on(&mut host, day("2026-03-31"), "{}");
    assert_eq!(
        out,
        [
            "2026-03-31 1-101 due bill_notice",
            "2026-03-31 1-102 due bill_notice"
        ]
    );
    let m = &host.messages[0];
    assert_eq!(
        var(m, "items"),
        Some("2026-03 parking ¥300.00\n2026-03 property ¥350.00")
    );
    assert_eq!(var(m, "total"), Some("650.00"));
    assert_eq!(var(m, "household.label"), Some("1栋101"));
    // English templates name it in English: the plugin cannot know who reads which language.
    assert_eq!(var(m, "household.label_en"), Some("Building 1, Room 101"));
    let bills: serde_json::Value = serde_json::from_str(var(m, "bills").unwrap()).unwrap();
    assert_eq!(bills[0]["amount"], "300.00");
    assert_eq!(bills[1]["fee_type"], "property");
    assert_eq!(var(m, "count"), Some("2"));
    assert_eq!(
        var(m, "late_fee"),
        None,
        "no late fee unless the community configures one"
    );
}

#[test]
fn payment_stops_the_ladder_and_a_reversal_restarts_it() {
    let mut host = community();
    host.bills.push(bill(
        "b1",
        "1-101",
        "property",
        "2026-03",
        35_000,
        "2026-03-31",
    ));
    run_days(&mut host, "2026-03-20", "2026-04-02", "{}");
    // Paid on 3 April: nothing more.
    host.bills[0].paid_fen = 35_000;
    let run = host.run("fee_reminder", "{}");
    let posted = EventIn {
        kind: "payment.posted".into(),
        payload: r#"{"bill_id": 1, "bill_settled": true}"#.into(),
    };
    FeeReminder::<StandardRules>::default()
        .on_event(&run, &posted, &mut host)
        .unwrap();
    assert!(run_days(&mut host, "2026-04-03", "2026-04-20", "{}").is_empty());
    // The bank reverses it on 21 April: the bill is back, at the step it stands at now.
    host.bills[0].paid_fen = 0;
    let reversed = EventIn {
        kind: "payment.reversed".into(),
        payload: r#"{"bill_id": "b1"}"#.into(),
    };
    FeeReminder::<StandardRules>::default()
        .on_event(&run, &reversed, &mut host)
        .unwrap();
    assert_eq!(
        run_days(&mut host, "2026-04-21", "2026-05-01", "{}"),
        [
            "2026-04-21 1-101 overdue-7d bill_notice",
            "2026-04-30 1-101 overdue-30d bill_notice"
        ]
    );
}

#[test]
fn after_downtime_only_the_step_reached_goes_out_but_a_passed_visit_is_still_asked_for() {
    let mut host = community();
    host.bills.push(bill(
        "b1",
        "1-101",
        "property",
        "2026-03",
        35_000,
        "2026-03-31",
    ));
    run_on(&mut host, day("2026-03-24"), "{}");
    let out = run_on(&mut host, day("2026-06-01"), "{}");
    assert_eq!(
        out,
        [
            "2026-06-01 1-101 overdue-30d bill_notice",
            "2026-06-01 Manager visit-60d:1-101"
        ]
    );
    assert!(run_on(&mut host, day("2026-06-02"), "{}").is_empty());
}

#[test]
fn a_configured_late_fee_is_computed_in_fen_and_capped() {
    let mut host = community();
    host.bills.push(bill(
        "b1",
        "1-101",
        "property",
        "2026-03",
        35_000,
        "2026-03-31",
    ));
    // 1‰ of the unpaid amount per day after 10 grace days, capped at 5%.
    let params = r#"{"late_fee": {"daily_per_mille": 1, "grace_days": 10, "cap_percent": 5}}"#;
    run_on(&mut host, day("2026-04-07"), params);
    assert_eq!(
        var(&host.messages[0], "late_fee"),
        None,
        "within the grace days"
    );
    run_on(&mut host, day("2026-04-30"), params);
    // 30 days late, 20 chargeable: 35,000 × 1‰ × 20 = 700 fen.
    assert_eq!(var(&host.messages[0], "late_fee"), Some("7.00"));
    run_on(&mut host, day("2026-06-29"), params);
    // 90 days: 80 × 35 = 2,800 fen, capped at 5% = 1,750.
    assert_eq!(var(&host.messages[0], "late_fee_fen"), Some("1750"));
}

#[test]
fn a_low_balance_is_alerted_once_per_crossing() {
    let mut host = community();
    host.balances.push(Balance {
        household: "1-102".into(),
        utility: "water".into(),
        balance_fen: 500,
        threshold_fen: 2_000,
    });
    assert_eq!(
        run_on(&mut host, day("2026-03-01"), "{}"),
        ["2026-03-01 1-102 low-water low_balance"]
    );
    assert_eq!(host.messages[0].category, Category::Urgent);
    assert!(
        run_on(&mut host, day("2026-03-02"), "{}").is_empty(),
        "still low: no second alert"
    );
    // Balances change by import, which the daemon reports as an event.
    host.balances[0].balance_fen = 10_000;
    event(&mut host, "import.balances", "{}");
    assert!(run_on(&mut host, day("2026-03-03"), "{}").is_empty());
    host.balances[0].balance_fen = 1_000;
    event(&mut host, "import.balances", "{}");
    assert_eq!(
        run_on(&mut host, day("2026-03-04"), "{}"),
        ["2026-03-04 1-102 low-water low_balance"]
    );
}

#[test]
fn a_custom_ladder_and_fee_type_filter_apply() {
    let mut host = community();
    host.bills.push(bill(
        "b1",
        "1-101",
        "property",
        "2026-03",
        35_000,
        "2026-03-31",
    ));
    host.bills.push(bill(
        "b2",
        "1-102",
        "parking",
        "2026-03",
        30_000,
        "2026-03-31",
    ));
    let params = r#"{"fee_types": ["property"], "ladder": [
        {"days": 14, "step": "late-14d", "template": "bill_notice", "notify": "supervisor", "staff_template": "fee_late"},
        {"days": 3, "step": "late-3d", "template": "bill_notice"}]}"#;
    assert_eq!(
        run_days(&mut host, "2026-03-25", "2026-04-30", params),
        [
            "2026-04-03 1-101 late-3d bill_notice",
            "2026-04-14 1-101 late-14d bill_notice",
            "2026-04-14 Supervisor late-14d:1-101"
        ]
    );
}

#[test]
fn bad_params_name_the_key() {
    let mut host = community();
    let check = |host: &mut MockHost, params: &str| {
        let run = host.run("fee_reminder", params);
        FeeReminder::<StandardRules>::default()
            .on_schedule(&run, host)
            .unwrap_err()
    };
    assert_eq!(
        check(
            &mut host,
            r#"{"ladder": [{"days": 0, "step": "x", "notify": "janitor"}]}"#
        ),
        PluginError::InvalidParams(
            "ladder[0].notify: unknown role \"janitor\" (customer_service, supervisor, manager)"
                .into()
        )
    );
    assert_eq!(
        check(&mut host, r#"{"ladder": [{"days": 0, "step": "x"}]}"#),
        PluginError::InvalidParams("ladder[0] (x): needs a template, a notify role or both".into())
    );
    assert!(
        matches!(check(&mut host, r#"{"ladder": [{"dayz": 0}]}"#), PluginError::InvalidParams(m) if m.contains("dayz"))
    );
}

#[test]
fn a_bill_with_a_broken_due_date_fails_the_run_naming_the_bill() {
    let mut host = community();
    host.bills.push(bill(
        "b9",
        "1-101",
        "property",
        "2026-03",
        35_000,
        "31/03/2026",
    ));
    let run = host.run("fee_reminder", "{}");
    let err = FeeReminder::<StandardRules>::default()
        .on_schedule(&run, &mut host)
        .unwrap_err();
    assert_eq!(
        err,
        PluginError::BadData("bill b9: due_date: \"31/03/2026\" is not a YYYY-MM-DD date".into())
    );
    assert!(host.messages.is_empty());
}

#[test]
fn labels_are_right_whether_looked_up_one_by_one_or_read_in_bulk() {
    let mut host = MockHost::new("shuipan");
    for i in 0..40 {
        let id = format!("2-{}", 201 + i);
        host.households.push(Household {
            id: id.clone(),
            building: "2".into(),
            unit: format!("{}", 201 + i),
            owners: vec![],
        });
        host.bills.push(bill(
            &format!("b{i}"),
            &id,
            "property",
            "2026-03",
            35_000,
            "2026-03-31",
        ));
    }
    run_on(&mut host, day("2026-03-31"), "{}");
    assert_eq!(host.messages.len(), 40);
    for (i, m) in host.messages.iter().enumerate() {
        assert_eq!(
            var(m, "household.label"),
            Some(format!("2栋{}", 201 + i).as_str())
        );
        assert_eq!(
            var(m, "household.label_en"),
            Some(format!("Building 2, Room {}", 201 + i).as_str())
        );
    }
}

/// Half a year of a small community as the desk lives it: monthly bills, some paid late, one
/// payment reversed, bills imported after their due date, a changed amount. `scans` counts the
/// runs that read the bills.
fn half_year(params: &str, with_events: bool) -> (Vec<String>, usize) {
    let mut host = community();
    for h in ["2-201", "2-202", "3-301"] {
        host.households.push(Household {
            id: h.into(),
            building: h[..1].into(),
            unit: h[2..].into(),
            owners: vec![],
        });
    }
    let households = ["1-101", "1-102", "2-201", "2-202", "3-301"];
    let mut n = 0;
    for month in 1..=6 {
        for (i, h) in households.iter().enumerate() {
            n += 1;
            // Most bills fall due on the 15th, as a billing system issues them; one household
            // pays on another day.
            let due = format!("2026-{month:02}-{}", if i == 4 { 25 } else { 15 });
            host.bills.push(bill(
                &n.to_string(),
                h,
                "property",
                &format!("2026-{month:02}"),
                10_000 + 100 * n,
                &due,
            ));
        }
    }
    let imported = host.bills.len();
    let (mut d, end) = (day("2026-01-01"), day("2026-07-31"));
    let mut out = Vec::new();
    let mut scans = 0;
    while d <= end {
        let notify = |host: &mut MockHost, kind: &str, payload: &str| {
            if with_events {
                event(host, kind, payload);
            }
        };
        match d.to_string().as_str() {
            // 1-101 pays its February bill in full on 20 February.
            "2026-02-20" => {
                host.bills[5].paid_fen = host.bills[5].amount_fen;
                notify(
                    &mut host,
                    "payment.posted",
                    r#"{"bill_id": "6", "bill_settled": true}"#,
                );
            }
            // ... and the bank reverses it on 10 March.
            "2026-03-10" => {
                host.bills[5].paid_fen = 0;
                notify(&mut host, "payment.reversed", r#"{"bill_id": "6"}"#);
            }
            // A parking bill due in January is imported only on 3 February.
            "2026-02-03" => {
                host.bills.push(bill(
                    "p1",
                    "2-202",
                    "parking",
                    "2026-01",
                    3_000,
                    "2026-01-20",
                ));
                notify(&mut host, "import.bills", r#"{"inserted": 1}"#);
            }
            // A re-import corrects the due date of 3-301's April bill.
            "2026-04-02" => {
                host.bills[19].due_date = "2026-04-28".into();
                notify(&mut host, "import.bills", r#"{"updated": 1}"#);
            }
            _ => {}
        }
        out.extend(run_on(&mut host, d, params));
        scans += usize::from(host.logs.iter().any(|l| l.message == "fee reminders"));
        d += Duration::days(1);
    }
    assert!(host.bills.len() > imported);
    (out, scans)
}

#[test]
fn runs_that_read_no_bills_send_exactly_what_a_daily_scan_sends() {
    let (daily, daily_scans) = half_year(r#"{"full_scan_days": 1}"#, true);
    let (default, scans) = half_year("{}", true);
    assert_eq!(daily_scans, 212, "full_scan_days = 1 scans on every run");
    assert_eq!(default, daily, "the same messages, on the same days");
    assert!(daily.len() > 100, "the scenario has work: {}", daily.len());
    assert!(
        scans * 2 < daily_scans,
        "most runs read nothing: {scans} scans in {daily_scans} days"
    );
}

#[test]
fn without_the_import_event_a_late_bill_is_still_reminded_within_the_week() {
    let (with, _) = half_year("{}", true);
    let (without, _) = half_year("{}", false);
    let late = |out: &[String]| -> Vec<String> {
        out.iter()
            .filter(|l| {
                l.contains("2-202") && l.as_str() >= "2026-02-03" && l.as_str() < "2026-02-11"
            })
            .cloned()
            .collect()
    };
    // Told of the import, the next run lists the late parking bill.
    assert_eq!(late(&with)[0], "2026-02-03 2-202 overdue-7d bill_notice");
    // Not told, the weekly scan finds it within 7 days.
    let found = late(&without);
    assert!(
        found.iter().any(|l| l.ends_with("overdue-7d bill_notice")),
        "{found:?}"
    );
}

/// A bill imported after its due date, with and without the `import.bills` event: told, the
/// next run lists it; not told, the periodic scan finds it exactly `full_scan_days` after the
/// last scan, before any other bill would have made a run read the bills.
#[test]
fn a_late_import_is_reminded_the_next_run_or_by_the_periodic_scan() {
    let on = |told: bool, params: &str| -> Vec<String> {
        let mut host = community();
        host.bills.push(bill(
            "b1",
            "1-101",
            "property",
            "2026-03",
            35_000,
            "2026-03-15",
        ));
        let mut out = run_days(&mut host, "2026-03-14", "2026-03-15", params);
        // Imported on the 16th, due on the 10th: already 6 days late.
        host.bills.push(bill(
            "b2",
            "1-102",
            "property",
            "2026-03",
            20_000,
            "2026-03-10",
        ));
        if told {
            event(&mut host, "import.bills", r#"{"inserted": 1}"#);
        }
        out.extend(run_days(&mut host, "2026-03-16", "2026-03-21", params));
        out.into_iter().filter(|l| l.contains("1-102")).collect()
    };
    assert_eq!(
        on(true, "{}"),
        [
            "2026-03-16 1-102 due bill_notice",
            "2026-03-17 1-102 overdue-7d bill_notice"
        ]
    );
    // b1's next step is on the 22nd; the scan every 3 days comes first, on the 18th.
    assert_eq!(
        on(false, r#"{"full_scan_days": 3}"#),
        ["2026-03-18 1-102 overdue-7d bill_notice"]
    );
}

/// A run taken long after its slot (a catch-up after downtime) scans, whatever the bookkeeping
/// says: what was imported meanwhile may only reach the plugin after it.
#[test]
fn a_catch_up_run_scans() {
    let mut host = community();
    host.bills.push(bill(
        "b1",
        "1-101",
        "property",
        "2026-03",
        35_000,
        "2026-03-15",
    ));
    run_on(&mut host, day("2026-03-15"), "{}");
    host.bills.push(bill(
        "b2",
        "1-102",
        "property",
        "2026-03",
        20_000,
        "2026-03-10",
    ));
    // The 16th's slot, run at 15:00 when the daemon came back.
    assert_eq!(
        run_late(&mut host, day("2026-03-16"), "{}", 5 * 60 * 60 * 1000),
        ["2026-03-16 1-102 due bill_notice"]
    );
}
