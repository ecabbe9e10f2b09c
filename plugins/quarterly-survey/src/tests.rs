//! A quarter of surveying against the mock community: invitations, reminder, report, tickets.

use super::*;

fn ms(s: &str) -> Timestamp {
    chrono::DateTime::parse_from_rfc3339(s)
        .unwrap()
        .timestamp_millis()
}

fn community(households: usize) -> MockHost {
    let mut host = MockHost::new("shuipan");
    for i in 1..=households {
        host.households.push(Household {
            id: format!("1-{:03}", 100 + i),
            building: "1".into(),
            unit: format!("{}", 100 + i),
            owners: vec![format!("o{i}")],
        });
    }
    host
}

fn answer(host: &mut MockHost, survey: &str, household: &str, scores: [u8; 5], comment: &str) {
    for ((area, _), score) in AREAS.iter().zip(scores) {
        host.survey_answers.push(SurveyAnswer {
            survey: survey.into(),
            household: household.into(),
            area: (*area).into(),
            score,
            comment: if *area == "cleaning" {
                comment.into()
            } else {
                String::new()
            },
        });
    }
}

fn open_at(host: &mut MockHost, when: &str, params: &str) {
    host.clear_output();
    host.now = ms(when);
    let run = host.run("quarterly_survey", params);
    QuarterlySurvey.on_schedule(&run, host).unwrap();
}

fn fire_all(host: &mut MockHost, params: &str) {
    host.timers.sort();
    for (at, payload) in std::mem::take(&mut host.timers) {
        host.now = at;
        let run = host.run("quarterly_survey", params);
        QuarterlySurvey.on_timer(&run, &payload, host).unwrap();
    }
}

fn var<'a>(vars: &'a [wuye_plugin_sdk::Field], key: &str) -> &'a str {
    vars.iter()
        .find(|f| f.key == key)
        .map(|f| f.value.as_str())
        .unwrap_or("")
}

#[test]
fn the_first_workday_run_invites_every_household_once_and_schedules_reminder_and_close() {
    let mut host = community(4);
    open_at(&mut host, "2026-07-01T09:00:00+08:00", "{}");
    assert_eq!(host.messages.len(), 4);
    assert!(
        host.messages
            .iter()
            .all(|m| m.step == "invite" && m.category == Category::Informational)
    );
    assert_eq!(var(&host.messages[0].vars, "quarter"), "2026Q3");
    assert_eq!(host.messages[0].template, "invitation");
    assert_eq!(var(&host.messages[0].vars, "closes_on"), "2026-07-15");
    let at: Vec<Timestamp> = host.timers.iter().map(|t| t.0).collect();
    assert_eq!(
        at,
        [
            ms("2026-07-08T09:00:00+08:00"),
            ms("2026-07-15T09:00:00+08:00")
        ]
    );
    // A repeated run of the slot (catch-up after a crash) invites nobody twice.
    let timers = host.timers.clone();
    open_at(&mut host, "2026-07-01T09:00:00+08:00", "{}");
    assert!(host.messages.is_empty() && host.timers.is_empty());
    host.timers = timers;
}

#[test]
fn the_reminder_goes_only_to_households_that_have_not_answered() {
    let mut host = community(4);
    open_at(&mut host, "2026-07-01T09:00:00+08:00", "{}");
    answer(&mut host, "2026Q3", "1-101", [5, 5, 5, 5, 5], "");
    answer(&mut host, "2026Q3", "1-103", [4, 4, 4, 4, 4], "");
    host.timers.sort();
    let (at, payload) = host.timers.remove(0);
    host.clear_output();
    host.now = at;
    let run = host.run("quarterly_survey", "{}");
    QuarterlySurvey.on_timer(&run, &payload, &mut host).unwrap();
    assert_eq!(var(&host.messages[0].vars, "closes_on"), "2026-07-15");
    let to: Vec<_> = host
        .messages
        .iter()
        .map(|m| (m.to.clone(), m.step.as_str()))
        .collect();
    assert_eq!(
        to,
        [
            (Recipient::Household("1-102".into()), "remind"),
            (Recipient::Household("1-104".into()), "remind")
        ]
    );
}

#[test]
fn the_close_reports_rates_per_area_against_last_quarter_and_files_tickets_for_low_scores() {
    let mut host = community(8);
    // Q2: 4 of 8 answered; cleaning satisfied 2 of 4 (50%).
    open_at(&mut host, "2026-04-01T09:00:00+08:00", "{}");
    answer(&mut host, "2026Q2", "1-101", [5, 5, 5, 5, 5], "");
    answer(&mut host, "2026Q2", "1-102", [5, 4, 4, 5, 5], "");
    answer(&mut host, "2026Q2", "1-103", [4, 3, 3, 4, 4], "");
    answer(&mut host, "2026Q2", "1-104", [4, 4, 2, 4, 4], "");
    fire_all(&mut host, "{}");
    // Q3: 5 of 8 answered; cleaning satisfied 3 of 5 (60%), one 1-point score with a comment.
    open_at(&mut host, "2026-07-01T09:00:00+08:00", "{}");
    answer(&mut host, "2026Q3", "1-101", [5, 5, 5, 5, 5], "");
    answer(&mut host, "2026Q3", "1-102", [5, 5, 4, 5, 5], "");
    answer(&mut host, "2026Q3", "1-103", [4, 4, 4, 4, 4], "");
    answer(&mut host, "2026Q3", "1-105", [3, 3, 3, 3, 3], "");
    answer(
        &mut host,
        "2026Q3",
        "1-106",
        [2, 2, 1, 2, 2],
        "楼道垃圾三天没人清",
    );
    fire_all(&mut host, "{}");

    let report = host
        .staff_notices
        .iter()
        .find(|n| n.step == "report:2026Q3")
        .expect("a report for 2026Q3");
    assert_eq!(report.role, Role::Manager);
    let v = &report.vars;
    assert_eq!(
        (
            var(v, "invited"),
            var(v, "answered"),
            var(v, "response_rate")
        ),
        ("8", "5", "62.5%")
    );
    assert_eq!(
        (var(v, "rate_cleaning"), var(v, "delta_cleaning")),
        ("60.0%", "+10.0 pp")
    );
    // 15 of the 25 answers are 4 or 5.
    assert_eq!(var(v, "satisfaction_rate"), "60.0%");
    assert_eq!(
        (var(v, "rate_repairs"), var(v, "delta_repairs")),
        ("60.0%", "-15.0 pp")
    );
    assert_eq!(
        var(v, "table").lines().nth(3),
        Some("保洁 (cleaning): 60.0% (5 answers), vs 2026Q2: +10.0 pp")
    );
    // Only a low score *with a comment* becomes a ticket (1-106's other 2s have none).
    assert_eq!(host.new_tickets.len(), 1);
    assert_eq!(host.new_tickets[0].household.as_deref(), Some("1-106"));
    assert_eq!(
        host.new_tickets[0].summary,
        "满意度调查 2026Q3 保洁 1分: 楼道垃圾三天没人清"
    );
}

#[test]
fn a_quarter_with_nobody_invited_says_so_instead_of_dividing_by_zero() {
    let mut host = community(0);
    open_at(&mut host, "2026-10-08T09:00:00+08:00", "{}");
    fire_all(&mut host, "{}");
    let v = &host.staff_notices[0].vars;
    assert_eq!(var(v, "response_rate"), "n/a (nobody invited)");
    assert_eq!(var(v, "rate_greenery"), "n/a");
}

#[test]
fn an_explicit_campaign_limits_the_invitations_to_its_households() {
    let mut host = community(4);
    host.surveys.push(Survey {
        id: "shuipan-2026Q3".into(),
        opens_at: ms("2026-07-01T09:00:00+08:00"),
        closes_at: ms("2026-07-15T09:00:00+08:00"),
        invited: vec!["1-102".into(), "1-104".into()],
    });
    open_at(&mut host, "2026-07-01T09:00:00+08:00", "{}");
    assert_eq!(host.messages.len(), 2);
    assert_eq!(var(&host.messages[0].vars, "survey"), "shuipan-2026Q3");
}

#[test]
fn params_are_checked() {
    let mut host = community(1);
    let run = host.run(
        "quarterly_survey",
        r#"{"remind_after_days": 14, "close_after_days": 7}"#,
    );
    assert_eq!(
        QuarterlySurvey.on_schedule(&run, &mut host).unwrap_err(),
        PluginError::InvalidParams(
            "remind_after_days: 14 must be before close_after_days (7)".into()
        )
    );
    let run = host.run("quarterly_survey", r#"{"report_to": "boss"}"#);
    assert!(
        matches!(QuarterlySurvey.on_schedule(&run, &mut host).unwrap_err(), PluginError::InvalidParams(m) if m.starts_with("report_to:"))
    );
}
