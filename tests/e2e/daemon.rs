//! The whole daemon on the shipped demo: real plugins, the demo owners and bills, the outbox and
//! the HTTP API, on a clock started just before 10:00 on a Monday. What the service desk and the
//! owners of both demo communities would receive, exactly once.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{copy_dir, plugins_dir, repo_root, wuyed};

const TOKEN: &str = "desk-token-0123456789";

/// The shipped demo in a temporary directory, its data imported; other modules start it too.
pub(crate) struct Demo {
    _dir: tempfile::TempDir,
    pub(crate) config: PathBuf,
    data: PathBuf,
    /// The port of `http.listen`.
    pub(crate) port: u16,
    /// The environment every `wuyed` command of the demo gets; add overrides before `start`.
    pub(crate) env: Vec<(String, String)>,
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Demo {
    /// The shipped config, untouched but for environment overrides: plugins, data directory,
    /// HTTP port, an API token, and no jitter so the 10:00 runs start at 10:00.
    pub(crate) fn new() -> Demo {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        copy_dir(&repo_root().join("config"), &config);
        let data = dir.path().join("data");
        let port = free_port();
        let mut env = vec![
            ("WUYE_PLUGINS__DIR", plugins_dir().display().to_string()),
            ("WUYE_DAEMON__DATA_DIR", data.display().to_string()),
            ("WUYE_HTTP__LISTEN", format!("127.0.0.1:{port}")),
            (
                "WUYE_HTTP__TOKENS",
                format!(r#"[{{ name = "desk", token = "{TOKEN}", communities = ["*"] }}]"#),
            ),
        ];
        for id in ["SHUIPAN", "SHIJIXINZHU"] {
            for wf in ["FEE_REMINDER", "QUARTERLY_SURVEY"] {
                env.push((
                    Box::leak(
                        format!("WUYE_COMMUNITY__{id}__WORKFLOWS__{wf}__JITTER").into_boxed_str(),
                    ),
                    "0s".into(),
                ));
            }
        }
        let env = env.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        let demo = Demo {
            _dir: dir,
            config,
            data,
            port,
            env,
        };
        for community in ["shuipan", "shijixinzhu"] {
            let files = demo.config.join("data").join(community);
            crate::util::import_dir(|| demo.cmd(), &demo.config, community, &files);
        }
        demo
    }

    pub(crate) fn cmd(&self) -> Command {
        let mut c = wuyed();
        c.envs(self.env.iter().map(|(k, v)| (k, v)));
        c
    }

    pub(crate) fn start(&self, clock_start: &str) -> Child {
        let log = std::fs::File::create(self.data.join(format!("log-{}", free_port()))).unwrap();
        self.cmd()
            .args(["run", "--config"])
            .arg(&self.config)
            .args(["--clock-start", clock_start])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap()
    }

    /// The number of a ticket of `community` still open in the demo data.
    fn open_ticket(&self, community: &str) -> String {
        self.db()
            .query_row(
                "SELECT no FROM tickets WHERE community = ?1 AND closed_at IS NULL LIMIT 1",
                [community],
                |r| r.get(0),
            )
            .unwrap()
    }

    /// `wuyed simulate --config <the demo's> ARGS...`, its whole output.
    fn simulate(&self, args: &[&std::ffi::OsStr]) -> std::process::Output {
        self.cmd()
            .args(["simulate", "--config"])
            .arg(&self.config)
            .args(args)
            .output()
            .unwrap()
    }

    pub(crate) fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.data.join("wuye.db")).unwrap()
    }

    pub(crate) fn count(&self, sql: &str) -> i64 {
        self.db().query_row(sql, [], |r| r.get(0)).unwrap_or(-1)
    }

    /// Waits until `sql` counts at least `n`, or fails after a minute.
    pub(crate) fn wait_for(&self, what: &str, sql: &str, n: i64) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.count(sql) < n {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits until the daemon's API accepts connections, or fails after a minute.
    pub(crate) fn wait_listening(&self) {
        self.wait_listening_at(self.port);
    }

    pub(crate) fn wait_listening_at(&self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the API never started listening");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Subject lines of the delivered mail, by recipient address.
    fn mail(&self) -> BTreeMap<String, Vec<String>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let dir = self.data.join("outbox/mail");
        for entry in std::fs::read_dir(dir).into_iter().flatten() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            let header = |name: &str| {
                text.lines()
                    .find(|l| l.starts_with(name))
                    .map(|l| l[name.len()..].trim().to_string())
                    .unwrap_or_default()
            };
            out.entry(header("To:"))
                .or_default()
                .push(header("Subject:"));
        }
        out
    }

    fn post(&self, path: &str, body: &str) -> String {
        self.request("POST", path, "application/json", body)
    }

    /// One HTTP/1.1 request with the desk's token; the whole answer, status line first.
    pub(crate) fn request(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: &str,
    ) -> String {
        self.request_at(self.port, method, path, content_type, body)
    }

    /// [`Demo::request`] to another port of the daemon (`http.public_listen`).
    pub(crate) fn request_at(
        &self,
        port: u16,
        method: &str,
        path: &str,
        content_type: &str,
        body: &str,
    ) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {TOKEN}\r\n\
             Content-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        answer
    }
}

pub(crate) fn stop(mut child: Child) {
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let status = child.wait().unwrap();
    assert!(status.success(), "wuyed run exited with {status}");
}

const SENT: &str = "SELECT count(*) FROM outbox WHERE status = 'sent'";

/// A plugin that prints to stdout and floods stderr, on the thread `simulate` drives its
/// clock from: it used to panic the simulation ("Cannot start a runtime from within a
/// runtime"), losing the plugin's own words. Now its lines are the run's log lines.
#[test]
fn simulate_survives_a_plugin_that_prints_and_shows_its_lines() {
    let mut demo = Demo::new();
    for (key, value) in [
        ("ENABLED", "true"),
        ("PLUGIN", "misbehaving"),
        ("SCHEDULE", "0 9 * * *"),
        ("PARAMS", r#"{ mode = "print" }"#),
    ] {
        demo.env.push((
            format!("WUYE_COMMUNITY__SHUIPAN__WORKFLOWS__HEARTBEAT__{key}"),
            value.to_string(),
        ));
    }
    // simulate logs nothing unless asked: its output is the messages.
    demo.env.push(("RUST_LOG".into(), "wuye=warn".into()));
    let out = demo.simulate(&[
        "--from".as_ref(),
        "2026-11-23".as_ref(),
        "--to".as_ref(),
        "2026-11-24".as_ref(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        err.contains("[stderr] warning: no rule for building 9"),
        "the plugin's stderr is in the log: {err}"
    );
}

#[test]
fn the_demo_reminds_each_household_once_spares_the_payment_plan_and_escalates_a_closed_ticket() {
    let demo = Demo::new();
    let daemon = demo.start("2026-11-23T09:59:58+08:00");
    demo.wait_for(
        "both fee reminder runs",
        // The scheduled runs: the imports' events ran the workflow too, reading nothing.
        "SELECT count(*) FROM runs WHERE workflow = 'fee_reminder' AND trigger_kind = 'schedule' \
         AND state = 'done'",
        2,
    );
    let queued = demo.count("SELECT count(*) FROM outbox");
    assert!(queued > 20, "fee reminders queued only {queued} messages");
    demo.wait_for("every message delivered", SENT, queued);

    let db = demo.db();
    let notices: Vec<(String, String)> = db
        .prepare(
            "SELECT community, recipient FROM outbox WHERE workflow = 'fee_reminder' \
             AND template = 'fee_reminder/bill_notice'",
        )
        .and_then(|mut st| {
            st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .unwrap();
    assert!(
        notices.iter().any(|(c, _)| c == "shuipan")
            && notices.iter().any(|(c, _)| c == "shijixinzhu"),
        "both communities send bill notices: {notices:?}"
    );
    // One notice per household, however many bills it owes.
    let mut households: Vec<&(String, String)> = notices.iter().collect();
    households.sort();
    households.dedup();
    assert_eq!(
        households.len(),
        notices.len(),
        "a household got two bill notices"
    );

    // 世纪新筑's own plugin: household 1-1-801 owes money but is on a payment plan.
    let owes: i64 = db
        .query_row(
            "SELECT count(*) FROM bills b WHERE b.community = 'shijixinzhu' AND b.household = '1-1-801' \
             AND b.paid_fen < b.amount_fen",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(owes > 0, "the demo household on a plan is in arrears");
    assert!(
        !notices.contains(&("shijixinzhu".to_string(), "household:1-1-801".to_string())),
        "the household on a payment plan got a reminder: {notices:?}"
    );
    assert_eq!(
        demo.mail().values().map(Vec::len).sum::<usize>() as i64
            + demo.count("SELECT count(*) FROM outbox WHERE channel = 'sms' AND status = 'sent'"),
        queued
    );

    // A repair ticket closed through the API becomes a callback-escalation run with a timer at
    // its SLA deadline.
    let open = demo.open_ticket("shuipan");
    let answer = demo.post(
        &format!("/api/v1/communities/shuipan/tickets/{open}/close"),
        "{}",
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    demo.wait_for(
        "the callback escalation run of the closed ticket",
        "SELECT count(*) FROM runs WHERE workflow = 'callback_escalation' \
         AND trigger_kind = 'event' AND state = 'done'",
        1,
    );
    assert!(demo.count("SELECT count(*) FROM timers WHERE workflow = 'callback_escalation' AND state = 'pending'") >= 1);
    stop(daemon);

    // A restart at the same moment sends nothing again.
    let mail_before = demo.mail();
    let daemon = demo.start("2026-11-23T10:00:30+08:00");
    std::thread::sleep(Duration::from_secs(4));
    stop(daemon);
    assert_eq!(demo.count("SELECT count(*) FROM outbox"), queued);
    assert_eq!(demo.mail(), mail_before);
}

#[test]
fn simulate_shows_the_coming_weeks_day_by_day_and_leaves_the_real_store_alone() {
    let demo = Demo::new();
    let span = ["--from", "2026-11-23", "--to", "2026-12-22"].map(std::ffi::OsStr::new);
    let out = demo.simulate(&span);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    // The first morning: both communities' ladders, each household once.
    assert_eq!(lines[0], "2026-11-23", "{text}");
    let first_day: Vec<&str> = lines[1..]
        .iter()
        .take_while(|l| l.starts_with("  "))
        .copied()
        .collect();
    for community in ["shuipan", "shijixinzhu"] {
        assert!(
            first_day
                .iter()
                .any(|l| l.contains(community) && l.contains("fee_reminder/bill_notice")),
            "{text}"
        );
    }
    // December's bills fall due on the 15th: a notice to the households that owe them.
    assert!(lines.contains(&"2026-12-15"), "{text}");
    assert!(
        lines.last().unwrap().ends_with("day(s) with messages"),
        "{text}"
    );
    // Nothing was queued in the real database, and the same question gives the same answer.
    assert_eq!(demo.count("SELECT count(*) FROM outbox"), 0);
    let again = demo.simulate(&span);
    assert_eq!(String::from_utf8_lossy(&again.stdout), text);
}

/// A simulated span beyond the years the business calendar lists (next year's holidays are
/// published late in the year) is simulated with weekends only, and `wuyed simulate` says so.
#[test]
fn simulate_warns_when_the_calendar_does_not_cover_the_span() {
    let demo = Demo::new();
    let stderr = |from: &str, to: &str| {
        let args = ["--from", from, "--to", to].map(std::ffi::OsStr::new);
        let out = demo.simulate(&args);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{err}");
        err
    };
    let err = stderr("2026-12-30", "2027-01-02");
    let warning = "warning: calendar cn-mainland has no holidays for 2027";
    // Both demo communities use the calendar: one warning.
    assert_eq!(err.matches(warning).count(), 1, "{err}");
    assert!(!stderr("2026-12-01", "2026-12-02").contains("warning"));
}

/// A template that cannot render makes every fee run fail: `wuyed simulate` lists each failed
/// run with its reason on stdout (no RUST_LOG needed) and exits non-zero, instead of printing
/// a quiet month. (Where the configuration check already finds the typo, it stops the
/// simulation with exit 78 naming it, which tells the administrator as much.)
#[test]
fn simulate_lists_runs_a_template_typo_broke_and_exits_non_zero() {
    let demo = Demo::new();
    let file = demo
        .config
        .join("templates/fee_reminder/bill_notice.zh-CN.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("合计 {{ total }} 元"));
    std::fs::write(
        &file,
        text.replace("合计 {{ total }} 元", "合计 {{ totl }} 元"),
    )
    .unwrap();
    let span = ["--from", "2026-11-23", "--to", "2026-11-24"].map(std::ffi::OsStr::new);
    let out = demo.simulate(&span);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    if out.status.code() == Some(78) {
        assert!(stderr.contains("totl"), "{stderr}");
        return;
    }
    assert_eq!(out.status.code(), Some(70), "{stdout}{stderr}");
    let failed = stdout
        .split_once("run(s) failed:\n")
        .unwrap_or_else(|| panic!("no failed runs listed:\n{stdout}"))
        .1;
    assert!(
        failed.contains("2026-11-23 10:00  shuipan fee_reminder:"),
        "{failed}"
    );
    // The reason names the template and the line (`{{ totl }}` is undefined there).
    assert!(
        failed.contains("template fee_reminder/bill_notice.zh-CN.toml#text: undefined value"),
        "{failed}"
    );
    assert!(
        stderr.contains("run(s) failed in the simulated span"),
        "{stderr}"
    );
}

/// A plugin that traps (it forges a resource handle): its runs are listed with the trap, exit 70.
/// (`mode = "panic"` is not used: under `simulate` a plugin panic is reported as "Cannot start
/// a runtime from within a runtime", a separate bug.)
#[test]
fn simulate_lists_a_failing_plugins_runs_with_the_reason() {
    let demo = Demo::new();
    let community = demo.config.join("communities/shuipan.toml");
    let mut text = std::fs::read_to_string(&community).unwrap();
    text.push_str(
        "\n[workflows.broken]\nplugin = \"misbehaving\"\nschedule = \"0 11 * * *\"\n\
         params = { mode = \"forge\" }\n",
    );
    std::fs::write(&community, text).unwrap();
    let span = ["--from", "2026-11-23", "--to", "2026-11-24"].map(std::ffi::OsStr::new);
    let out = demo.simulate(&span);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(70),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The other workflows' messages are still shown, then the two failed runs.
    assert!(stdout.contains("fee_reminder/bill_notice"), "{stdout}");
    let failed = stdout.split_once("2 run(s) failed:\n").unwrap().1;
    for day in ["2026-11-23", "2026-11-24"] {
        assert!(
            failed.contains(&format!("{day} 11:00  shuipan broken:")),
            "{failed}"
        );
    }
    assert!(
        failed.contains("plugin misbehaving, hook on-schedule: Trap: unknown handle index"),
        "{failed}"
    );
}

/// A community without households simulates to nothing; `wuyed simulate` says why.
#[test]
fn simulate_warns_about_a_community_without_households() {
    let demo = Demo::new();
    std::fs::write(
        demo.config.join("communities/kongdi.toml"),
        "id = \"kongdi\"\nname = \"空地小区\"\n",
    )
    .unwrap();
    let span = ["--from", "2026-11-23", "--to", "2026-11-23"].map(std::ffi::OsStr::new);
    let out = demo.simulate(&span);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning: community kongdi has no households in "),
        "{stderr}"
    );
    assert!(!stderr.contains("community shuipan"), "{stderr}");
}

/// Split or not, `wuyed simulate` shows the same minute for a message quiet hours hold back,
/// also for messages of event and timer runs, whose keys carry row ids that count differently
/// in each part's copy of the data.
#[test]
fn simulate_shows_the_same_send_minutes_in_parts_as_in_one() {
    let demo = Demo::new();
    // Both communities' open tickets closed, as the API would record it: the callback
    // workflow's event runs set timers at their deadlines, in the afternoon, whose runs tell the
    // supervisors. Quiet hours over those afternoons hold the notices back.
    let db = demo.db();
    for community in ["shuipan", "shijixinzhu"] {
        let file = demo
            .config
            .join("communities")
            .join(format!("{community}.toml"));
        let text = std::fs::read_to_string(&file).unwrap();
        let text = match text.find("[quiet_hours]") {
            Some(at) => {
                let old = "[quiet_hours]\nstart = \"21:00\"\nend = \"08:00\"\n";
                assert_eq!(&text[at..at + old.len()], old);
                text.replacen(old, "", 1)
            }
            None => text,
        };
        // Before the first table, so the keys are the community's own.
        let at = text.find("\n[").unwrap() + 1;
        let text = format!(
            "{}[quiet_hours]\nstart = \"12:00\"\nend = \"17:00\"\n\n{}",
            &text[..at],
            &text[at..]
        );
        std::fs::write(&file, text).unwrap();
        let no = demo.open_ticket(community);
        let (id, kind, first_receiver): (i64, String, String) = db
            .query_row(
                "SELECT id, kind, first_receiver FROM tickets WHERE community = ?1 AND no = ?2",
                [community, no.as_str()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        let closed_at = "2026-11-23T01:30:00Z";
        db.execute(
            "UPDATE tickets SET closed_at = ?1 WHERE id = ?2",
            rusqlite::params![closed_at, id],
        )
        .unwrap();
        let payload = serde_json::json!({
            "ticket_id": id, "no": no, "kind": kind, "closed_at": closed_at,
            "assignee": null, "first_receiver": first_receiver,
        });
        db.execute(
            "INSERT INTO events (community, kind, payload, created_at) \
             VALUES (?1, 'ticket.closed', ?2, ?3)",
            rusqlite::params![community, payload.to_string(), closed_at],
        )
        .unwrap();
    }
    let run = |jobs: &str| {
        let out = demo
            .cmd()
            .env("RUST_LOG", "wuye::cli::simulate=info")
            .args(["simulate", "--config"])
            .arg(&demo.config)
            .args([
                "--from",
                "2026-11-23",
                "--to",
                "2026-11-26",
                "--format",
                "json",
            ])
            .args(["--jobs", jobs])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        // Each community on its own copy: their timers' row ids differ from one part's.
        assert!(err.contains(&format!("in {jobs} part(s)")), "{err}");
        String::from_utf8(out.stdout).unwrap()
    };
    let (one, two) = (run("1"), run("2"));
    // Both supervisors' notices were held until 17:00 and spread over the next half hour.
    let held: Vec<&str> = one
        .lines()
        .filter(|l| l.contains("callback_escalation/callback_overdue"))
        .collect();
    for community in ["shuipan", "shijixinzhu"] {
        assert!(
            held.iter()
                .any(|l| l.contains(&format!("\"community\":\"{community}\""))
                    && l.contains("T17:")
                    && !l.contains("T17:00:00")),
            "{one}"
        );
    }
    let differ: Vec<(&str, &str)> = one
        .lines()
        .zip(two.lines())
        .filter(|(a, b)| a != b)
        .collect();
    assert!(differ.is_empty(), "in one part, then in two: {differ:#?}");
    assert_eq!(one.lines().count(), two.lines().count());
}

/// `wuyed simulate` runs communities side by side on copies of the data, except where an SMS
/// per-number limit would count one community's messages against another's: then they share
/// a part, as they share the limit for real.
#[test]
fn simulate_keeps_communities_sharing_a_limited_sms_number_in_one_part() {
    let demo = Demo::new();
    let parts = || {
        let out = demo
            .cmd()
            .env("RUST_LOG", "wuye::cli::simulate=info")
            .args(["simulate", "--config"])
            .arg(&demo.config)
            .args(["--from", "2026-11-23", "--to", "2026-11-23", "--jobs", "2"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{err}");
        if err.contains("in 1 part(s)") {
            1
        } else {
            assert!(err.contains("in 2 part(s)"), "{err}");
            2
        }
    };
    assert_eq!(parts(), 2, "no SMS limit: nothing to share");

    // 世纪新筑's staff mobiles are 水畔花园 owners' numbers in the demo data; new ones here.
    let file = demo.config.join("communities").join("shijixinzhu.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("phone = \"138 0000 0011\""));
    std::fs::write(
        &file,
        text.replace("phone = \"138 0000 00", "phone = \"137 0000 00"),
    )
    .unwrap();

    // A limit alone links nobody.
    let wuyed_toml = demo.config.join("wuyed.toml");
    let mut config = std::fs::read_to_string(&wuyed_toml).unwrap();
    config.push_str("\n[delivery.sms]\nprovider = \"file\"\ndaily_limit = 5\n");
    std::fs::write(&wuyed_toml, config).unwrap();
    assert_eq!(parts(), 2, "a limit, but no number in both communities");

    // An owner of 世纪新筑 with the number of an owner of 水畔花园.
    let db = demo.db();
    let shuipan: String = db
        .query_row(
            "SELECT phone FROM owners WHERE community = 'shuipan' AND phone IS NOT NULL LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let moved = db
        .execute(
            "UPDATE owners SET phone = ?1 WHERE id = \
             (SELECT id FROM owners WHERE community = 'shijixinzhu' LIMIT 1)",
            [&shuipan],
        )
        .unwrap();
    assert_eq!(moved, 1);
    assert_eq!(
        parts(),
        1,
        "an owner's number in both communities under a limit"
    );
    db.execute(
        "UPDATE owners SET phone = '13900000000' WHERE community = 'shijixinzhu' AND phone = ?1",
        [&shuipan],
    )
    .unwrap();
    assert_eq!(parts(), 2, "the shared owner number is gone");

    // A staff member of 世纪新筑 with the mobile of one at 水畔花园.
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replace("137 0000 0011", "138-0000-0001")).unwrap();
    assert_eq!(
        parts(),
        1,
        "a staff number in both communities under a limit"
    );
}

#[test]
fn an_event_the_desk_records_is_announced_with_its_place_and_each_households_own_rsvp_link() {
    let demo = Demo::new();
    // Half a minute before 10:00: the event is recorded for tomorrow morning, so its
    // announcement goes at once and the reminder to those who signed up at 10:00 today.
    let daemon = demo.start("2026-11-23T09:59:30+08:00");
    demo.wait_listening();
    let answer = demo.request(
        "PUT",
        "/api/v1/communities/shuipan/events/2026H2-fair",
        "application/json",
        r#"{"title":"便民服务日","starts_at":"2026-11-24T09:30:00+08:00","location":"中心花园"}"#,
    );
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    demo.wait_for(
        "the announcement run",
        "SELECT count(*) FROM runs WHERE workflow = 'semiannual_event' \
         AND trigger_kind = 'timer' AND state = 'done'",
        1,
    );
    // Every household of 水畔花园 is told, by email or SMS, or listed for the desk to call.
    let households = demo.count("SELECT count(*) FROM households WHERE community = 'shuipan'");
    let announced =
        demo.count("SELECT count(*) FROM outbox WHERE template = 'semiannual_event/announcement'");
    let to_call =
        demo.count("SELECT count(*) FROM delivery_unreachable WHERE workflow = 'semiannual_event'");
    assert!(announced > households / 2, "{announced} of {households}");
    assert_eq!(announced + to_call, households);
    let db = demo.db();
    let bodies: Vec<(String, String)> = db
        .prepare(
            "SELECT recipient, body_text FROM outbox \
             WHERE template = 'semiannual_event/announcement' ORDER BY recipient",
        )
        .and_then(|mut st| {
            st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .unwrap();
    assert!(
        bodies.iter().all(|(_, b)| b.contains("中心花园")),
        "the place is in every announcement: {bodies:#?}"
    );
    let link = |body: &str| {
        let at = body.find("/rsvp/").expect("an RSVP link");
        body[at..at + "/rsvp/".len() + 22].to_string()
    };
    let mut links: Vec<String> = bodies.iter().map(|(_, b)| link(b)).collect();
    links.sort();
    links.dedup();
    assert_eq!(links.len(), bodies.len(), "each household has its own link");

    // One household signs up for two through its link.
    let (who, body) = &bodies[0];
    let page = link(body);
    let shown = demo.request("GET", &page, "text/plain", "");
    assert!(
        shown.starts_with("HTTP/1.1 200") && shown.contains("便民服务日"),
        "{shown}"
    );
    let signed = demo.request(
        "POST",
        &page,
        "application/x-www-form-urlencoded",
        "attendees=2",
    );
    assert!(signed.contains("2"), "{signed}");

    // At 10:00 the eve reminder goes to that household alone.
    demo.wait_for(
        "the reminder to the household that signed up",
        "SELECT count(*) FROM outbox WHERE template = 'semiannual_event/rsvp_reminder'",
        1,
    );
    std::thread::sleep(Duration::from_secs(2));
    let reminded: Vec<String> = db
        .prepare("SELECT recipient FROM outbox WHERE template = 'semiannual_event/rsvp_reminder'")
        .and_then(|mut st| {
            st.query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .unwrap();
    assert_eq!(reminded, std::slice::from_ref(who));

    // A repair the desk closes late in the records (closed a week ago, entered now) is already
    // past its callback deadline: the supervisor (主管) is told at once, and the step is on
    // record for the monthly callbacks report.
    let open = demo.open_ticket("shuipan");
    let answer = demo.post(
        &format!("/api/v1/communities/shuipan/tickets/{open}/close"),
        r#"{"closed_at":"2026-11-16T16:00:00+08:00"}"#,
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    demo.wait_for(
        "the escalation on record",
        &format!(
            "SELECT count(*) FROM ticket_notices n JOIN tickets t ON t.id = n.ticket_id \
             WHERE t.no = '{open}' AND n.role = 'supervisor'"
        ),
        1,
    );
    stop(daemon);
    let report = demo
        .cmd()
        .args([
            "report",
            "callbacks",
            "--community",
            "shuipan",
            "--period",
            "2026Q4",
        ])
        .args(["--as-of", "2026-11-30", "--config"])
        .arg(&demo.config)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&report.stdout);
    assert!(
        text.contains("回访升级工作流已升级：主管 1 单，经理 0 单"),
        "{text}{}",
        String::from_utf8_lossy(&report.stderr)
    );
}

#[test]
fn simulate_json_says_what_delivery_did_with_each_message() {
    let demo = Demo::new();
    let out = demo.simulate(
        &[
            "--from",
            "2027-03-01",
            "--to",
            "2027-03-01",
            "--format",
            "json",
        ]
        .map(std::ffi::OsStr::new),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let messages: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Each half year's planning reminder reaches the planners of both communities, 世纪新筑's
    // supervisor (a phone, no email) by SMS, at the 09:00 slot.
    for (community, recipient, channel) in [
        ("shuipan", "staff:zhou-ming", "email"),
        ("shijixinzhu", "staff:zhao-lei", "sms"),
    ] {
        let m = messages
            .iter()
            .find(|m| {
                m["community"] == community && m["template"] == "semiannual_event/planning_reminder"
            })
            .unwrap_or_else(|| panic!("no planning reminder for {community}:\n{text}"));
        assert_eq!(m["recipient"], recipient, "{m}");
        assert_eq!(m["channel"], channel, "{m}");
        assert_eq!(m["delivery"], "sent", "{m}");
        assert_eq!(m["sent_at"], "2027-03-01T09:00:00+08:00", "{m}");
    }
    // Everything says what became of it, and nothing was sent inside quiet hours (21:00-08:00).
    for m in &messages {
        let delivery = m["delivery"].as_str().unwrap_or_else(|| panic!("{m}"));
        if delivery == "sent" {
            let at = m["sent_at"].as_str().unwrap();
            let hour: u32 = at[11..13].parse().unwrap();
            assert!((8..21).contains(&hour), "sent in quiet hours: {m}");
        } else {
            assert!(m["sent_at"].is_null(), "{m}");
            assert!(m["detail"].is_string(), "{m}");
        }
    }
}

/// `simulate --script`: the desk's payments, played through the API on the virtual clock,
/// stop a household's reminders from the day it pays; a step the API refuses stops the
/// simulation with the file, the step and the API's reason.
#[test]
fn a_scripted_payment_stops_the_households_reminders_in_the_simulation() {
    let demo = Demo::new();
    let simulate = |script: Option<&std::path::Path>| {
        let mut args = [
            "--from",
            "2026-11-23",
            "--to",
            "2027-01-31",
            "--format",
            "json",
            "--community",
            "shuipan",
        ]
        .map(std::ffi::OsStr::new)
        .to_vec();
        if let Some(s) = script {
            args.extend([std::ffi::OsStr::new("--script"), s.as_os_str()]);
        }
        demo.simulate(&args)
    };
    let notices_to = |out: &std::process::Output, household: &str| -> Vec<String> {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|m| {
                m["template"] == "fee_reminder/bill_notice"
                    && m["recipient"] == format!("household:{household}")
                    && m["delivery"] == "sent"
            })
            .map(|m| m["at"].as_str().unwrap().to_string())
            .collect()
    };
    // A household in arrears that keeps being reminded after the first morning.
    let debtor: String = demo
        .db()
        .query_row(
            "SELECT household FROM bills WHERE community = 'shuipan' AND paid_fen < amount_fen \
             GROUP BY household ORDER BY count(*) DESC, household LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let before = notices_to(&simulate(None), &debtor);
    assert!(
        before.iter().any(|at| at.as_str() > "2026-11-25"),
        "{debtor} is reminded after the first days: {before:?}"
    );

    // The script: on 24 November at 15:00 the household pays everything it owes.
    let mut script = String::new();
    let db = demo.db();
    let mut st = db
        .prepare(
            "SELECT fee_type, period, amount_fen - paid_fen FROM bills \
             WHERE community = 'shuipan' AND household = ?1 AND paid_fen < amount_fen",
        )
        .unwrap();
    let owed: Vec<(String, String, i64)> = st
        .query_map([&debtor], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for (i, (fee, period, amount)) in owed.iter().enumerate() {
        script.push_str(&format!(
            "[[step]]\nat = \"2026-11-24T15:00:00+08:00\"\n\
             post = \"/api/v1/communities/shuipan/payments\"\n\
             body = {{ reference = \"SIM-{i}\", household = \"{debtor}\", fee_type = \"{fee}\", \
             period = \"{period}\", amount_fen = {amount} }}\n\n"
        ));
    }
    let file = demo.data.join("desk.toml");
    std::fs::create_dir_all(&demo.data).unwrap();
    std::fs::write(&file, &script).unwrap();
    let after = notices_to(&simulate(Some(&file)), &debtor);
    assert!(
        after.iter().all(|at| at.as_str() < "2026-11-24T07:00:00"),
        "nothing after the payment: {after:?}"
    );
    assert!(!after.is_empty(), "the first morning's notice still went");
    // The real store saw none of it.
    assert_eq!(
        demo.count("SELECT count(*) FROM payments WHERE reference LIKE 'SIM-%'"),
        0
    );

    // A step the API refuses names itself.
    std::fs::write(
        &file,
        "[[step]]\nat = \"2026-11-24T15:00:00+08:00\"\n\
         post = \"/api/v1/communities/shuipan/payments\"\n\
         body = { reference = \"SIM-X\", household = \"9-9-999\", fee_type = \"property\", \
         period = \"2026-11\", amount_fen = 100 }\n",
    )
    .unwrap();
    let refused = simulate(Some(&file));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        err.contains("desk.toml: step 1") && err.contains("the API refused it"),
        "{err}"
    );
}
