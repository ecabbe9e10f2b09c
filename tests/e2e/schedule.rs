//! `wuyed next` and `wuyed calendar` as an administrator uses them: exact lines out, exit codes
//! that tell a typo from a working answer.

use std::fs;

use crate::util::{repo_root, run, stderr, stdout};

fn next(expr: &str, tz: &str, from: &str, n: &str) -> std::process::Output {
    run(&["next", "--cron", expr, "--tz", tz, "--from", from, "-n", n])
}

fn lines(o: &std::process::Output) -> Vec<String> {
    assert!(
        o.status.success(),
        "wuyed failed ({:?}): {}",
        o.status.code(),
        stderr(o)
    );
    stdout(o).lines().map(str::to_string).collect()
}

#[test]
fn next_weekday_names_skip_the_weekend() {
    // 2026-11-20 is a Friday.
    let o = next(
        "0 9 * * mon-FRI",
        "Asia/Shanghai",
        "2026-11-20T12:00:00+08:00",
        "3",
    );
    assert_eq!(
        lines(&o),
        [
            "2026-11-23T09:00:00+08:00",
            "2026-11-24T09:00:00+08:00",
            "2026-11-25T09:00:00+08:00"
        ]
    );
}

#[test]
fn next_follows_the_day_of_month_or_day_of_week_rule() {
    let o = next(
        "0 0 1,15 * MON",
        "Asia/Shanghai",
        "2026-11-30T12:00:00+08:00",
        "4",
    );
    assert_eq!(
        lines(&o),
        [
            "2026-12-01T00:00:00+08:00",
            "2026-12-07T00:00:00+08:00",
            "2026-12-14T00:00:00+08:00",
            "2026-12-15T00:00:00+08:00"
        ]
    );
    // Sunday written as 7.
    let o = next(
        "0 0 * * 7",
        "Asia/Shanghai",
        "2026-11-19T00:00:00+08:00",
        "2",
    );
    assert_eq!(
        lines(&o),
        ["2026-11-22T00:00:00+08:00", "2026-11-29T00:00:00+08:00"]
    );
}

#[test]
fn next_fires_a_time_skipped_by_spring_forward_once_at_the_end_of_the_gap() {
    let o = next(
        "30 2 * * *",
        "America/New_York",
        "2026-03-07T00:00:00-05:00",
        "3",
    );
    assert_eq!(
        lines(&o),
        [
            "2026-03-07T02:30:00-05:00",
            "2026-03-08T03:00:00-04:00",
            "2026-03-09T02:30:00-04:00"
        ]
    );
}

#[test]
fn next_fires_a_time_repeated_by_fall_back_once() {
    let o = next(
        "30 1 * * *",
        "Europe/London",
        "2026-10-24T12:00:00+01:00",
        "2",
    );
    assert_eq!(
        lines(&o),
        ["2026-10-25T01:30:00+01:00", "2026-10-26T01:30:00+00:00"]
    );
    // Lord Howe moves its clocks by half an hour.
    let o = next(
        "45 1 * * *",
        "Australia/Lord_Howe",
        "2026-04-04T12:00:00+11:00",
        "2",
    );
    assert_eq!(
        lines(&o),
        ["2026-04-05T01:45:00+11:00", "2026-04-06T01:45:00+10:30"]
    );
}

#[test]
fn next_defaults_to_five_instants_from_now() {
    let o = run(&["next", "--cron", "*/10 * * * *", "--tz", "UTC"]);
    let got = lines(&o);
    assert_eq!(got.len(), 5);
    let now = chrono::Utc::now();
    let first = chrono::DateTime::parse_from_rfc3339(&got[0]).unwrap();
    assert!(
        first > now - chrono::Duration::seconds(5),
        "{first} is not after now ({now})"
    );
    assert!(
        first <= now + chrono::Duration::minutes(10),
        "{first} is too far from now ({now})"
    );
}

#[test]
fn next_rejects_bad_input_with_exit_64_naming_the_problem() {
    let o = next(
        "0 9 * * MON-FRY",
        "Asia/Shanghai",
        "2026-11-20T12:00:00+08:00",
        "1",
    );
    assert_eq!(o.status.code(), Some(64));
    assert_eq!(
        stderr(&o),
        "error: --cron \"0 9 * * MON-FRY\": day-of-week field \"MON-FRY\": unknown name \"FRY\"\n"
    );
    assert!(stdout(&o).is_empty());

    let o = next(
        "0 9 * * *",
        "Asia/Shanghia",
        "2026-11-20T12:00:00+08:00",
        "1",
    );
    assert_eq!(o.status.code(), Some(64));
    assert_eq!(
        stderr(&o),
        "error: --tz \"Asia/Shanghia\": unknown IANA timezone (for example Asia/Shanghai, Europe/London)\n"
    );

    let o = next("0 9 * * *", "UTC", "next tuesday", "1");
    assert_eq!(o.status.code(), Some(64));
    assert!(stderr(&o).starts_with("error: --from \"next tuesday\" is not an RFC 3339 instant"));

    // --cron without --tz is a usage error from the argument parser.
    let o = run(&["next", "--cron", "0 9 * * *"]);
    assert_eq!(o.status.code(), Some(64));
    assert!(stderr(&o).contains("--tz <ZONE>"), "{}", stderr(&o));
}

#[test]
fn calendar_workdays_around_national_day_2026() {
    let config = repo_root().join("config");
    let o = run(&[
        "calendar",
        "workdays",
        "--config",
        config.to_str().unwrap(),
        "--calendar",
        "cn-mainland",
        "--from",
        "2026-09-28",
        "--to",
        "2026-10-12",
    ]);
    // Oct 1-7 off (国庆节), Oct 10 a Saturday make-up workday, Oct 11 an ordinary Sunday.
    assert_eq!(
        lines(&o),
        [
            "2026-09-28",
            "2026-09-29",
            "2026-09-30",
            "2026-10-08",
            "2026-10-09",
            "2026-10-10",
            "2026-10-12"
        ]
    );
    assert_eq!(stderr(&o), "");
}

#[test]
fn calendar_holidays_lists_names_and_warns_about_uncovered_years() {
    let config = repo_root().join("config");
    let o = run(&[
        "calendar",
        "holidays",
        "--config",
        config.to_str().unwrap(),
        "--calendar",
        "cn-mainland",
        "--from",
        "2026-12-01",
        "--to",
        "2027-01-31",
    ]);
    assert!(lines(&o).is_empty(), "{}", stdout(&o));
    assert_eq!(
        stderr(&o),
        "warning: calendar cn-mainland has no holidays for 2027 (it covers 2025-2026); those \
         years count weekends only\n"
    );

    let o = run(&[
        "calendar",
        "holidays",
        "--config",
        config.to_str().unwrap(),
        "--calendar",
        "cn-mainland",
        "--from",
        "2026-01-01",
        "--to",
        "2026-01-04",
    ]);
    assert_eq!(
        lines(&o),
        [
            "2026-01-01\tholiday\t元旦",
            "2026-01-02\tholiday\t元旦",
            "2026-01-03\tholiday\t元旦",
            "2026-01-04\tworkday\t元旦调休"
        ]
    );
}

#[test]
fn a_broken_calendar_file_is_a_configuration_error_naming_file_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("calendars")).unwrap();
    let file = dir.path().join("calendars/typo.toml");
    fs::write(
        &file,
        "weekend = [\"sat\", \"sun\"]\n\n[years.2026]\nworkdays = [\n  { name = \"国庆节调休\", date = 2026-10-12 },\n]\n",
    )
    .unwrap();
    let o = run(&[
        "calendar",
        "workdays",
        "--config",
        dir.path().to_str().unwrap(),
        "--calendar",
        "typo",
        "--from",
        "2026-10-01",
        "--to",
        "2026-10-12",
    ]);
    assert_eq!(o.status.code(), Some(78));
    assert_eq!(
        stderr(&o),
        format!(
            "error: {}: years.2026.workdays[0].date (line 5): 2026-10-12 is a Monday and a \
             workday anyway; a make-up workday is a weekend day\n",
            file.display()
        )
    );
    assert!(stdout(&o).is_empty());

    let o = run(&[
        "calendar",
        "workdays",
        "--config",
        dir.path().to_str().unwrap(),
        "--calendar",
        "typo",
        "--from",
        "2026-10-12",
        "--to",
        "2026-10-01",
    ]);
    assert_eq!(o.status.code(), Some(64));
    assert_eq!(
        stderr(&o),
        "error: --to 2026-10-01 is before --from 2026-10-12\n"
    );
}

/// A copy of the shipped `config/` whose workflows' plugin files exist (empty stand-ins: `next`
/// never loads a plugin), with `edit` applied to `communities/shijixinzhu.toml`.
fn config_copy(edit: &[(&str, &str)]) -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("config");
    crate::util::copy_dir(&repo_root().join("config"), &config);
    let plugins = tmp.path().join("plugins");
    fs::create_dir_all(&plugins).unwrap();
    for community in fs::read_dir(config.join("communities")).unwrap() {
        let text = fs::read_to_string(community.unwrap().path()).unwrap();
        for name in text.lines().filter_map(|l| l.strip_prefix("plugin = \"")) {
            fs::write(
                plugins.join(format!("{}.wasm", name.trim_end_matches('"'))),
                b"",
            )
            .unwrap();
        }
    }
    let file = config.join("communities/shijixinzhu.toml");
    let mut text = fs::read_to_string(&file).unwrap();
    for (from, to) in edit {
        assert!(
            text.contains(from),
            "shijixinzhu.toml no longer contains {from:?}"
        );
        text = text.replacen(from, to, 1);
    }
    fs::write(&file, text).unwrap();
    (tmp, config)
}

fn next_configured(config: &std::path::Path, args: &[&str]) -> std::process::Output {
    let mut cmd = crate::util::wuyed();
    for (name, _) in std::env::vars() {
        if name.starts_with("WUYE_") {
            cmd.env_remove(name);
        }
    }
    cmd.arg("next")
        .arg("--config")
        .arg(config)
        .args(args)
        .env(
            "WUYE_PLUGINS__DIR",
            config.parent().unwrap().join("plugins"),
        )
        .output()
        .expect("failed to start wuyed")
}

#[test]
fn next_for_a_configured_workflow_applies_zone_and_calendar() {
    // 世纪新筑's heartbeat (shipped switched off) turned on as a 09:00 job that shifts.
    let (_tmp, config) = config_copy(&[
        ("schedule = \"*/30 8-20 * * *\"", "schedule = \"0 9 * * *\""),
        (
            "on_non_workday = \"skip\"\nenabled = false",
            "on_non_workday = \"shift\"",
        ),
    ]);
    let args = [
        "--community",
        "shijixinzhu",
        "--workflow",
        "heartbeat",
        "--from",
        "2026-09-30T12:00:00+08:00",
        "-n",
        "3",
    ];
    // 国庆 Oct 1-7: their seven 09:00 slots shift onto Oct 8 and run once; Oct 10 is a make-up
    // Saturday.
    assert_eq!(
        lines(&next_configured(&config, &args)),
        [
            "2026-10-08T09:00:00+08:00",
            "2026-10-09T09:00:00+08:00",
            "2026-10-10T09:00:00+08:00"
        ]
    );

    let o = next_configured(
        &config,
        &["--community", "nowhere", "--workflow", "heartbeat"],
    );
    assert_eq!(o.status.code(), Some(64));
    assert!(
        stderr(&o).starts_with("error: no community \"nowhere\" in "),
        "{}",
        stderr(&o)
    );
    let o = next_configured(
        &config,
        &["--community", "shijixinzhu", "--workflow", "nope"],
    );
    assert_eq!(o.status.code(), Some(64));
    assert!(
        stderr(&o)
            .starts_with("error: community \"shijixinzhu\" has no workflow \"nope\" (known: "),
        "{}",
        stderr(&o)
    );
}

#[test]
fn next_for_a_broken_config_exits_78_with_the_errors() {
    let (_tmp, config) = config_copy(&[(
        "schedule = \"*/30 8-20 * * *\"",
        "schedule = \"*/30 8-20 * * MON-FRY\"",
    )]);
    let o = next_configured(
        &config,
        &["--community", "shijixinzhu", "--workflow", "heartbeat"],
    );
    assert_eq!(o.status.code(), Some(78));
    assert!(
        stderr(&o).contains("workflows.heartbeat.schedule")
            && stderr(&o).contains(r#"day-of-week field "MON-FRY": unknown name "FRY""#),
        "{}",
        stderr(&o)
    );
    assert!(stdout(&o).is_empty());
}
