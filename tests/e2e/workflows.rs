//! The four standard workflow plugins (and a community's own fee reminder) built for
//! wasm32-wasip2 and run by the real `wuyed plugin test` in the sandbox, against the fixtures
//! shipped beside each plugin: what a community's staff and owners would be sent, exactly.
//!
//! The plugins' rules over months of virtual time are unit-tested natively against `MockHost`
//! (`cargo test -p fee-ladder -p callback-escalation -p quarterly-survey -p semiannual-event
//! -p payment-plan-reminder`); these tests prove the same code behaves identically once compiled
//! to a component, inside the host's limits, with params arriving as the daemon passes them.

use std::path::PathBuf;

use crate::util::{repo_root, run, stderr, stdout};

fn wasm(name: &str) -> PathBuf {
    crate::util::plugins_dir().join(format!("{name}.wasm"))
}

/// Runs `wuyed plugin test` on a shipped fixture; returns the lines after the resource figures
/// (intents, kv writes, logs), which are deterministic.
fn preview(plugin: &str, crate_dir: &str, fixture: &str) -> Vec<String> {
    let wasm = wasm(plugin);
    let fixture = repo_root()
        .join("plugins")
        .join(crate_dir)
        .join("fixtures")
        .join(fixture);
    let out = run(&[
        "plugin",
        "test",
        wasm.to_str().unwrap(),
        "--fixture",
        fixture.to_str().unwrap(),
    ]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    assert_eq!(lines[1], "result: ok", "{text}");
    lines[4..].to_vec()
}

#[test]
fn fee_reminder_sends_one_notice_per_household_at_its_sternest_new_step_and_alerts_a_low_balance() {
    let out = preview("fee_reminder", "fee-reminder", "overdue.toml");
    assert_eq!(out[0], "intents (2):");
    assert!(
        out[1].starts_with(
            "  send household 1-101 template bill_notice step overdue-30d [Transactional, Preferred] household.label=\"1栋101\" household.label_en=\"Building 1, Room 101\" bills="
        ),
        "{}",
        out[1]
    );
    assert!(out[1].ends_with(
        r#"items="2026-03 property ¥350.00\n2026-04 parking ¥300.00" count="2" total="650.00" total_fen="65000" tone="firm" days_overdue="30""#
    ), "{}", out[1]);
    assert_eq!(
        out[2],
        r#"  send household 1-102 template low_balance step low-electricity [Urgent, Preferred] household.label="1栋102" household.label_en="Building 1, Room 102" utility="electricity" balance="8.00" threshold="20.00""#
    );
    assert_eq!(
        &out[3..10],
        [
            "kv writes (6):",
            "  bill:b1 = \"30\"",
            "  bill:b2 = \"0\"",
            // The first day a bill reaches its next step (b2 overdue 7 days): no run before it
            // reads the bills.
            "  ladder:next = \"2026-05-07\"",
            "  ladder:params = \"{}\"",
            "  ladder:scanned = \"2026-04-30\"",
            "  low:1-102:electricity = \"800\""
        ]
    );
}

#[test]
fn a_communitys_own_fee_reminder_skips_the_household_on_a_payment_plan() {
    let out = preview(
        "payment_plan_reminder",
        "payment-plan-reminder",
        "plan.toml",
    );
    assert_eq!(out[0], "intents (1):");
    assert!(
        out[1].starts_with("  send household 3-302 template bill_notice step due "),
        "{}",
        out[1]
    );
    assert_eq!(
        &out[2..9],
        [
            "kv writes (6):",
            "  bill:b2 = \"0\"",
            "  ladder:next = \"2026-04-07\"",
            "  ladder:params = \"{}\"",
            // The plan copied from the params asked for a scan, which this run was.
            "  ladder:rescan deleted",
            "  ladder:scanned = \"2026-03-31\"",
            "  plan:3-301 = \"2026-05-31\""
        ]
    );
    assert!(
        out.last()
            .unwrap()
            .contains("households_reminded=1 households_exempt=1"),
        "{out:?}"
    );
}

#[test]
fn a_closed_repair_gets_its_escalation_timer_at_the_sla_counted_in_reception_hours() {
    let out = preview("callback_escalation", "callback-escalation", "closed.toml");
    assert_eq!(
        out,
        [
            "intents (1):",
            // Friday 16:00 + 24 desk hours of 9 a day = Wednesday 13:00 (05:00 UTC).
            r#"  timer at 2026-09-23T05:00:00+00:00 payload "{\"ticket\":\"R-0001\",\"closed_at\":1789718400000,\"step\":\"supervisor\",\"due_at\":1790139600000}""#,
            "kv writes (2):",
            "  chain:R-0001 = \"1789718400000\"",
            "  ticket:R-0001 = \"due@1790139600000\"",
            "logs (0):",
        ]
    );
}

#[test]
fn the_quarterly_survey_invites_every_household_and_times_its_reminder_and_close() {
    let out = preview("quarterly_survey", "quarterly-survey", "open.toml");
    assert_eq!(
        &out[..5],
        [
            "intents (4):",
            r#"  send household 1-101 template invitation step invite [Informational, Preferred] quarter="2026Q3" survey="2026Q3" household="1-101" closes_on="2026-07-15""#,
            r#"  send household 1-102 template invitation step invite [Informational, Preferred] quarter="2026Q3" survey="2026Q3" household="1-102" closes_on="2026-07-15""#,
            r#"  timer at 2026-07-08T01:00:00+00:00 payload "{\"quarter\":\"2026Q3\",\"action\":\"remind\"}""#,
            r#"  timer at 2026-07-15T01:00:00+00:00 payload "{\"quarter\":\"2026Q3\",\"action\":\"close\"}""#,
        ]
    );
}

#[test]
fn no_event_recorded_by_the_deadline_tells_the_manager_and_keeps_looking() {
    let out = preview("semiannual_event", "semiannual-event", "missing.toml");
    assert_eq!(
        &out[..3],
        [
            "intents (2):",
            r#"  notify manager template no_event step missing:2026H2 half="2026H2" deadline="2026-10-01""#,
            r#"  timer at 2026-10-08T01:00:00+00:00 payload "{\"action\":\"check\",\"half\":\"2026H2\",\"deadline\":1790816400000}""#,
        ]
    );
}

/// `plugin test --config --community`: the fee reminder's intents rendered through the shipped
/// templates, as the owner would read them, email and SMS.
#[test]
fn plugin_test_with_a_config_shows_the_rendered_messages_of_each_channel() {
    let fixture = repo_root().join("plugins/fee-reminder/fixtures/overdue.toml");
    let out = run(&[
        "plugin",
        "test",
        wasm("fee_reminder").to_str().unwrap(),
        "--fixture",
        fixture.to_str().unwrap(),
        "--config",
        repo_root().join("config").to_str().unwrap(),
        "--community",
        "shuipan",
    ]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    for line in [
        "    email subject: 水畔花园：1栋101 逾期账单提醒",
        "      合计 650.00 元。如已缴纳，请忽略本通知；如有疑问，请联系物业服务中心。",
        "    sms [SMS_000000002]: 【水畔花园】1栋102电费余额8.00元，低于20.00元，请及时充值。",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "no line {line:?} in\n{text}"
        );
    }
}

/// A template that passes `check` (every variable it names exists) but cannot render what this
/// run sends fails the preview, naming the file: found here, not at the first real run.
#[test]
fn plugin_test_with_a_config_fails_on_a_message_its_template_cannot_render() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("config");
    crate::util::copy_dir(&repo_root().join("config"), &config);
    let notice = config.join("templates/fee_reminder/bill_notice.zh-CN.toml");
    let text = std::fs::read_to_string(&notice).unwrap();
    // Assumes a third bill; this household has two.
    let edited = text.replacen("{{ total }}", "{{ bills[2].amount }}", 1);
    assert_ne!(edited, text);
    std::fs::write(&notice, edited).unwrap();
    let fixture = repo_root().join("plugins/fee-reminder/fixtures/overdue.toml");
    let out = crate::util::wuyed()
        .env("WUYE_PLUGINS__DIR", crate::util::plugins_dir())
        .args(["plugin", "test"])
        .arg(wasm("fee_reminder"))
        .arg("--fixture")
        .arg(&fixture)
        .arg("--config")
        .arg(&config)
        .args(["--community", "shuipan"])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(78), "{}\n{err}", stdout(&out));
    assert!(
        err.contains(&format!("error: {}: email: ", notice.display())),
        "{err}"
    );
    assert!(
        err.contains("1 message(s) cannot be rendered with the templates of shuipan"),
        "{err}"
    );
}
