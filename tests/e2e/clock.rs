//! The wall clock jumping under a running `wuyed run`, as an NTP step, a VM resumed from a
//! snapshot or an administrator's `date -s` makes it jump: no slot runs twice, none is lost
//! (a slot the jump passed is recorded as run or missed, by its catch-up policy), and nothing
//! goes out in quiet hours.
//!
//! The real binary runs under libfaketime (`apt-get install faketime`): its wall clock is the
//! real one plus an offset read from a file (`FAKETIME_TIMESTAMP_FILE`, re-read on every call
//! with `FAKETIME_NO_CACHE`), so a test jumps the clock by rewriting one line while the daemon
//! runs. The monotonic clock is left alone (`FAKETIME_DONT_FAKE_MONOTONIC`), as NTP leaves it:
//! that is what the daemon's timers sleep on, and the case worth testing. No test hook in the
//! daemon is involved.
//!
//! Mail goes to a real SMTP sink (aiosmtpd, tests/support/smtp_sink.py). Quiet hours are
//! 21:00-08:00 in Asia/Shanghai; every test ends by checking that each slot has one run row,
//! the sink got each message once, and no message was sent in quiet hours by the daemon's clock.
//!
//! The `proof_clock_*` tests are `#[ignore]`d and run by the proof script
//! (`cargo test --test e2e -- --ignored proof_`); the quick ones also run in the ordinary suite.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset, TimeZone, Timelike, Utc};

use crate::deliver_support::{PyServer, parse_mail};
use crate::util::{LoggedDaemon, plugins_dir};

/// Where Debian's `faketime` package puts the library; the `MT` one is for threaded programs.
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

const TEMPLATE: &str = "subject = \"beat {{ beats }}\"\n\
                        text = \"{{ recipient.name }}, the heartbeat counted {{ beats }}.\"\n";

/// Shanghai local time on a given day, as the tests think of slots.
fn local(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(&format!("{text}+08:00"))
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .with_timezone(&Utc)
}

fn shanghai(t: DateTime<Utc>) -> DateTime<FixedOffset> {
    t.with_timezone(&FixedOffset::east_opt(8 * 3600).unwrap())
}

/// The store's form of a run's due instant.
fn due(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// A daemon whose wall clock the test moves.
struct Jumpy {
    dir: tempfile::TempDir,
    /// Seconds added to the real clock, as written to the faketime file.
    offset: i64,
    daemon: LoggedDaemon,
    sink: PyServer,
}

impl Jumpy {
    /// Starts `wuyed run` with its clock reading `start`, the heartbeat workflow on `schedule`
    /// (catch-up "all" within 2 days, so every slot a jump passes runs late rather than being
    /// dropped) telling the manager every beat.
    fn start(schedule: &str, start: DateTime<Utc>) -> Jumpy {
        assert!(
            Path::new(LIBFAKETIME).exists(),
            "{LIBFAKETIME} is missing: install libfaketime (`apt-get install faketime`); \
             scripts/test.sh does"
        );
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("config");
        std::fs::create_dir_all(cfg.join("communities")).unwrap();
        std::fs::create_dir_all(cfg.join("templates/heartbeat")).unwrap();
        std::fs::write(cfg.join("templates/heartbeat/heartbeat.en.toml"), TEMPLATE).unwrap();
        let sink = PyServer::start("smtp_sink.py", &dir.path().join("sink"), &[]);
        std::fs::write(
            cfg.join("wuyed.toml"),
            format!(
                "[daemon]\ndata_dir = \"../data\"\ntimezone = \"Asia/Shanghai\"\n\n\
                 [http]\nlisten = \"\"\n\n[plugins]\ndir = {:?}\n\n\
                 [delivery]\nquiet_spread = \"1m\"\n\n\
                 [delivery.email]\nfrom = \"Shuipan desk <desk@shuipan.example>\"\n\
                 smtp = {{ host = \"127.0.0.1\", port = {}, tls = \"none\" }}\n",
                plugins_dir().display().to_string(),
                sink.port
            ),
        )
        .unwrap();
        std::fs::write(
            cfg.join("communities/shuipan.toml"),
            format!(
                "id = \"shuipan\"\nname = \"Shuipan Garden\"\ntimezone = \"Asia/Shanghai\"\n\
                 locale = \"en\"\n\n[quiet_hours]\nstart = \"21:00\"\nend = \"08:00\"\n\n\
                 [[staff]]\nid = \"lin-hua\"\nname = \"Lin Hua\"\nrole = \"manager\"\n\
                 email = \"lin.hua@shuipan.example\"\n\n\
                 [workflows.heartbeat]\nplugin = \"heartbeat\"\nschedule = \"{schedule}\"\n\
                 catch_up = \"all\"\ncatch_up_window = \"2d\"\nnotifies = [\"manager\"]\n\
                 params = {{ notify = \"manager\" }}\n"
            ),
        )
        .unwrap();
        let offset = (start - Utc::now()).num_seconds();
        let clock_file = dir.path().join("faketime.rc");
        write_offset(&clock_file, offset);

        let mut cmd = LoggedDaemon::command(&cfg);
        cmd.env("LD_PRELOAD", LIBFAKETIME)
            .env("FAKETIME_TIMESTAMP_FILE", &clock_file)
            .env("FAKETIME_NO_CACHE", "1")
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
        let daemon = LoggedDaemon::spawn(cmd);
        let jumpy = Jumpy {
            dir,
            offset,
            daemon,
            sink,
        };
        // The clock really is faked: the daemon logs its next run from the faked "now".
        jumpy.wait("the scheduler to start", |j| j.logged("next run"));
        jumpy
    }

    fn clock_file(&self) -> PathBuf {
        self.dir.path().join("faketime.rc")
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("data/wuye.db")
    }

    /// The daemon's "now".
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + chrono::Duration::seconds(self.offset)
    }

    /// Steps the daemon's wall clock by `by`, at once.
    fn jump(&mut self, by: chrono::Duration) {
        self.offset += by.num_seconds();
        write_offset(&self.clock_file(), self.offset);
    }

    /// Steps the daemon's wall clock to `to`.
    fn jump_to(&mut self, to: DateTime<Utc>) {
        let by = to - self.now();
        self.jump(by);
    }

    fn log_text(&self) -> String {
        self.daemon.log()
    }

    fn logged(&self, message: &str) -> bool {
        !self.daemon.records(|v| v["message"] == message).is_empty()
    }

    /// Waits up to 60 s (a hang guard: each wait here takes seconds) for `done`.
    fn wait(&self, what: &str, done: impl Fn(&Jumpy) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !done(self) {
            assert!(
                Instant::now() < deadline,
                "no {what} within 60 s; runs: {:?}\n{}",
                self.runs(),
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Lets the daemon's clock run for `secs` real seconds.
    fn idle(&self, secs: u64) {
        std::thread::sleep(Duration::from_secs(secs));
    }

    /// (due instant, state) of every heartbeat run, by due instant.
    fn runs(&self) -> Vec<(String, String)> {
        let Ok(conn) = rusqlite::Connection::open(self.db()) else {
            return Vec::new();
        };
        let Ok(mut stmt) = conn.prepare(
            "SELECT due_at, state FROM runs WHERE workflow = 'heartbeat' AND trigger_kind = 'schedule' \
             ORDER BY due_at, id",
        ) else {
            return Vec::new();
        };
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap_or_default()
    }

    /// Whether every slot in `slots` has a finished run, and nothing is still to run.
    fn ran(&self, slots: &[DateTime<Utc>]) -> bool {
        let runs = self.runs();
        slots.iter().all(|s| {
            runs.iter()
                .any(|(at, state)| *at == due(*s) && state == "done")
        })
    }

    /// (slot, status, sent_at) of every message, oldest first.
    fn outbox(&self) -> Vec<(String, String, Option<DateTime<Utc>>)> {
        let conn = rusqlite::Connection::open(self.db()).unwrap();
        let mut stmt = conn
            .prepare("SELECT slot, status, sent_at FROM outbox ORDER BY id")
            .unwrap();
        stmt.query_map([], |r| {
            let sent: Option<i64> = r.get(2)?;
            Ok((
                r.get(0)?,
                r.get(1)?,
                sent.map(|ms| Utc.timestamp_millis_opt(ms).unwrap()),
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
    }

    fn sent(&self) -> usize {
        self.outbox().iter().filter(|m| m.1 == "sent").count()
    }

    /// Stops the daemon and checks what must hold whatever the clock did: the schedule runs are
    /// exactly `expected` (one row each, all done), every message went out once (the sink's
    /// Message-IDs are distinct and as many as the outbox's sent rows), none in quiet hours.
    fn finish(mut self, expected: &[DateTime<Utc>]) {
        self.daemon.signal("TERM");
        let status = self.daemon.wait_exit();
        assert!(status.success(), "wuyed failed:\n{}", self.log_text());

        let runs = self.runs();
        let want: Vec<(String, String)> = expected
            .iter()
            .map(|s| (due(*s), "done".to_string()))
            .collect();
        assert_eq!(runs, want, "schedule runs\n{}", self.log_text());

        let outbox = self.outbox();
        let slots: BTreeSet<&String> = outbox.iter().map(|m| &m.0).collect();
        assert_eq!(slots.len(), outbox.len(), "a slot queued two messages");
        for (slot, status, sent_at) in &outbox {
            if let Some(at) = sent_at {
                let hour = shanghai(*at).hour();
                assert!(
                    (8..21).contains(&hour),
                    "the message of slot {slot} was sent at {} local, in quiet hours",
                    shanghai(*at)
                );
            }
            assert!(
                status == "sent" || status == "deferred",
                "message of slot {slot} is {status}"
            );
        }
        let mail = parse_mail(&self.sink.files("eml"));
        let ids: BTreeSet<&str> = mail
            .iter()
            .map(|m| m["message_id"].as_str().unwrap())
            .collect();
        assert_eq!(ids.len(), mail.len(), "the sink got a message twice");
        assert_eq!(
            mail.len(),
            self.sent(),
            "the sink and the outbox disagree on what was sent"
        );
        let test = std::thread::current().name().unwrap_or("clock").to_string();
        crate::proof::summary(&format!(
            "{test}: {} slots run once each, {} messages sent once, none in quiet hours",
            expected.len(),
            mail.len()
        ));
    }
}

/// libfaketime's relative form: seconds added to the real clock.
fn write_offset(file: &Path, offset: i64) {
    // Written whole and renamed, so the daemon never reads half a line.
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, format!("{offset:+}\n")).unwrap();
    std::fs::rename(&tmp, file).unwrap();
}

fn hours(n: i64) -> chrono::Duration {
    chrono::Duration::hours(n)
}

/// The clock steps back across a slot that has just run, so it reaches the slot's time a second
/// time: the slot does not run again. Quick (about 15 s), so it also runs in the ordinary suite.
#[test]
fn a_slot_passed_twice_after_the_clock_steps_back_runs_once() {
    back_across_a_slot();
}

#[test]
#[ignore = "proof: run by scripts/proof.sh"]
fn proof_clock_back_across_a_slot() {
    back_across_a_slot();
}

fn back_across_a_slot() {
    let eight = local("2026-11-23T08:00:00");
    let mut d = Jumpy::start("0 * * * *", eight - chrono::Duration::seconds(3));
    d.wait("08:00 run", |d| d.ran(&[eight]));
    d.wait("08:00 message sent", |d| d.sent() == 1);
    // Back to 07:59:52 or so: the daemon's clock reads 08:00:00 again some 8 s later.
    d.jump(chrono::Duration::seconds(-10));
    assert!(d.now() < eight, "the jump did not go back across 08:00");
    // Idle until the clock is well past 08:00 again (however fast the first run went, the
    // daemon must see 08:00 a second time).
    let past = eight + chrono::Duration::seconds(3);
    d.idle((past - d.now()).num_seconds().max(0) as u64 + 1);
    assert!(d.now() > past);
    d.finish(&[eight]);
}

/// +1 h from 20:40 to 21:40: the five slots the jump passed run late (catch-up "all"), once
/// each, and their messages, queued in quiet hours, wait for the morning; stepping to the
/// morning then sends each once, none before 08:00.
#[test]
#[ignore = "proof: run by scripts/proof.sh"]
fn proof_clock_forward_one_hour() {
    let start = local("2026-11-23T20:40:00");
    let mut d = Jumpy::start("*/10 * * * *", start - chrono::Duration::seconds(3));
    d.wait("20:40 run", |d| d.ran(&[start]));
    d.wait("20:40 message sent", |d| d.sent() == 1);
    d.jump(hours(1));
    let passed: Vec<DateTime<Utc>> = (0..=6)
        .map(|i| start + chrono::Duration::minutes(10 * i))
        .collect();
    d.wait("the slots the jump passed", |d| d.ran(&passed));
    assert_eq!(d.sent(), 1, "a message went out in quiet hours");
    // Next morning, 08:05: the held messages go out (spread over a minute from 08:00).
    let morning = local("2026-11-24T08:05:00");
    d.jump_to(morning);
    let all: Vec<DateTime<Utc>> = (0..)
        .map(|i| start + chrono::Duration::minutes(10 * i))
        .take_while(|t| *t <= morning)
        .collect();
    d.wait("the night's slots", |d| d.ran(&all));
    d.wait("the held messages", |d| d.sent() == all.len());
    d.finish(&all);
}

/// +1 d from 20:00 to 20:00 the next day, an hourly schedule: the 24 slots the jump passed run
/// once each, the messages of those found in the evening go out at once (20:00 is not quiet).
#[test]
#[ignore = "proof: run by scripts/proof.sh"]
fn proof_clock_forward_one_day() {
    let start = local("2026-11-23T20:00:00");
    let mut d = Jumpy::start("0 * * * *", start - chrono::Duration::seconds(3));
    d.wait("20:00 run", |d| d.ran(&[start]));
    d.jump(hours(24));
    let all: Vec<DateTime<Utc>> = (0..=24).map(|i| start + hours(i)).collect();
    d.wait("the day's slots", |d| d.ran(&all));
    d.wait("their messages", |d| d.sent() == all.len());
    d.finish(&all);
}

/// -1 h right after the 08:00 slot: nothing runs in the hour lived twice, and when the clock
/// comes back past 08:00 (a step forward here, time passing in life) 08:00 does not run again;
/// 09:00 runs once. The 07:xx replay is in quiet hours: nothing may be sent then.
#[test]
#[ignore = "proof: run by scripts/proof.sh"]
fn proof_clock_back_one_hour() {
    let eight = local("2026-11-23T08:00:00");
    let mut d = Jumpy::start("0 * * * *", eight - chrono::Duration::seconds(3));
    d.wait("08:00 run", |d| d.ran(&[eight]));
    d.wait("08:00 message sent", |d| d.sent() == 1);
    d.jump(hours(-1));
    d.idle(8);
    assert_eq!(d.runs().len(), 1, "something ran in the hour lived twice");
    // 07:59:57 again, then across 08:00 in real time.
    d.jump_to(eight - chrono::Duration::seconds(3));
    d.idle(8);
    assert_eq!(d.runs().len(), 1, "08:00 ran again");
    let nine = eight + hours(1);
    d.jump_to(nine - chrono::Duration::seconds(3));
    d.wait("09:00 run", |d| d.ran(&[eight, nine]));
    d.wait("09:00 message sent", |d| d.sent() == 2);
    d.finish(&[eight, nine]);
}

/// -1 d right after the 09:00 slot: yesterday's 09:00 comes round again and does not run (it is
/// before the last slot recorded), and when the clock is set right again only 10:00 runs next.
#[test]
#[ignore = "proof: run by scripts/proof.sh"]
fn proof_clock_back_one_day() {
    let nine = local("2026-11-23T09:00:00");
    let mut d = Jumpy::start("0 * * * *", nine - chrono::Duration::seconds(3));
    d.wait("09:00 run", |d| d.ran(&[nine]));
    // To 08:59:5x yesterday: the clock reads 09:00 again a few seconds later, a day early.
    d.jump(-(hours(24) + chrono::Duration::seconds(5)));
    assert!(d.now() < nine - hours(24));
    d.idle(8);
    assert_eq!(d.runs().len(), 1, "yesterday's slot ran: {:?}", d.runs());
    let ten = nine + hours(1);
    d.jump_to(ten - chrono::Duration::seconds(3));
    d.wait("10:00 run", |d| d.ran(&[nine, ten]));
    d.wait("two messages sent", |d| d.sent() == 2);
    d.finish(&[nine, ten]);
}
