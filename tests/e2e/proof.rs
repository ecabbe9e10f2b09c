//! The proof suite's common ground (`scripts/proof.sh`): a community whose every household owes a
//! fee reminder today, imported through the real `wuyed import`, a `wuyed run` daemon on a clock
//! that starts two seconds before the 10:00 fee run and keeps running across restarts, and the
//! checks every trial ends with, read from the outbox and from what the real servers received.
//!
//! Why through the real binary and its own data files rather than by queueing rows as the
//! delivery tests do: a kill may land anywhere, in the plugin run, in the completing transaction
//! that queues 10,000 messages, in a send or in the commit recording it, and only the whole
//! daemon has all of those. The tests themselves are `#[ignore]` and named `proof_*`: they take
//! minutes, so `cargo test` skips them and `scripts/proof.sh` runs them.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset};

use crate::util::{copy_dir, import_dir, plugins_dir, repo_root, wuyed};

pub const COMMUNITY: &str = "proof";
/// Two seconds before the 10:00 fee run, on the day every bill of the community falls due (a
/// Tuesday, so no calendar question arises).
pub const CLOCK_START: &str = "2026-12-15T09:59:58+08:00";
pub const DUE_DATE: &str = "2026-12-15";

/// An environment variable as a number, or `default`.
pub fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?}: expected a whole number")),
        Err(_) => default,
    }
}

/// One line of the proof summary: printed, and appended to `$WUYE_PROOF_SUMMARY` when set
/// (`scripts/proof.sh` prints that file at the end).
pub fn summary(line: &str) {
    eprintln!("PROOF {line}");
    if let Some(path) = std::env::var_os("WUYE_PROOF_SUMMARY") {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        writeln!(f, "{line}").unwrap();
    }
}

/// How the community's owners are reached.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    Email,
    Sms,
}

/// Household `i`'s id, and the address its reminder must reach. Addresses of households in
/// `refused` contain "refuse" (the SMTP sink's `--reject refuse`).
pub fn household(i: usize) -> String {
    // 25 floors x 4 flats per unit, 2 units per building.
    let b = i / 200 + 1;
    let u = (i / 100) % 2 + 1;
    let room = format!("{}{:02}", (i / 4) % 25 + 1, i % 4 + 1);
    format!("{b}-{u}-{room}")
}

pub fn email_of(i: usize, refused: bool) -> String {
    if refused {
        format!("refuse-h{i}@example.com")
    } else {
        format!("h{i}@example.com")
    }
}

pub fn phone_of(i: usize) -> String {
    format!("139{i:08}")
}

/// A config folder and a data folder in a temp dir, the community imported.
pub struct Proof {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    /// `daemon.data_dir`; each daemon started gets it through `WUYE_DAEMON__DATA_DIR`, so a
    /// trial can switch to a fresh copy.
    pub data: PathBuf,
    pub households: usize,
    /// Where the daemon's clock started and when, so a restart continues it.
    clock: (DateTime<FixedOffset>, Instant),
    mount: Option<PathBuf>,
}

pub struct Spec<'a> {
    pub households: usize,
    pub reach: Reach,
    /// Appended to wuyed.toml: `[delivery...]` tables.
    pub delivery: &'a str,
    /// Households (by index) whose address the SMTP sink refuses.
    pub refused: &'a [usize],
    /// Put the data folder on a tmpfs of this many MiB (needs root), unmounted on drop.
    pub tmpfs_mib: Option<u32>,
}

impl Proof {
    pub fn new(spec: &Spec) -> Proof {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        let data = dir.path().join("data");
        std::fs::create_dir_all(config.join("communities")).unwrap();
        std::fs::create_dir_all(&data).unwrap();
        let mount = spec.tmpfs_mib.map(|mib| {
            let out = Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "proof-data"])
                .arg(&data)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "mounting a tmpfs on {} needs root: {}",
                data.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            data.clone()
        });
        std::fs::write(
            config.join("wuyed.toml"),
            format!(
                "[daemon]\ndata_dir = \"data\"\ntimezone = \"Asia/Shanghai\"\n\n\
                 [http]\nlisten = \"\"\n\n[plugins]\ndir = \"{}\"\n\
                 deadline_ms = 5000\n\n{}\n",
                plugins_dir().display(),
                spec.delivery
            ),
        )
        .unwrap();
        std::fs::write(
            config.join("communities/proof.toml"),
            format!(
                "id = \"{COMMUNITY}\"\nname = \"试验花园\"\ntimezone = \"Asia/Shanghai\"\nlocale = \"zh-CN\"\n\n\
                 [quiet_hours]\nstart = \"00:00\"\nend = \"00:00\"\n\n\
                 [[staff]]\nid = \"lin-hua\"\nname = \"林华\"\nrole = \"manager\"\nemail = \"lin.hua@proof.example\"\n\n\
                 [workflows.fee_reminder]\nplugin = \"fee_reminder\"\nschedule = \"0 10 * * *\"\n\
                 catch_up = \"latest\"\ncatch_up_window = \"1d\"\njitter = \"0s\"\nnotifies = [\"manager\"]\n"
            ),
        )
        .unwrap();
        copy_dir(
            &repo_root().join("config/templates"),
            &config.join("templates"),
        );

        // Every household: one owner, one property bill due today, unpaid.
        let import = dir.path().join("import");
        std::fs::create_dir_all(&import).unwrap();
        let mut owners =
            String::from("building,unit,room,name,phone,email,language,preferred_contact\n");
        let mut bills = String::from("household,fee_type,period,amount_fen,due_date\n");
        for i in 0..spec.households {
            let h = household(i);
            let mut parts = h.splitn(3, '-');
            let (b, u, room) = (
                parts.next().unwrap(),
                parts.next().unwrap(),
                parts.next().unwrap(),
            );
            let (phone, email, pref) = match spec.reach {
                Reach::Email => (
                    String::new(),
                    email_of(i, spec.refused.contains(&i)),
                    "email",
                ),
                Reach::Sms => (phone_of(i), String::new(), "sms"),
            };
            owners.push_str(&format!(
                "{b},{u},{room},业主{i},{phone},{email},zh-CN,{pref}\n"
            ));
            bills.push_str(&format!(
                "{h},property,2026-12,{},{DUE_DATE}\n",
                20000 + i % 97
            ));
        }
        std::fs::write(import.join("owners.csv"), owners).unwrap();
        std::fs::write(import.join("bills.csv"), bills).unwrap();
        let proof = Proof {
            config,
            data,
            households: spec.households,
            clock: (
                DateTime::parse_from_rfc3339(CLOCK_START).unwrap(),
                Instant::now(),
            ),
            mount,
            dir,
        };
        import_dir(|| proof.cmd(), &proof.config, COMMUNITY, &import);
        proof
    }

    /// `wuyed` with this proof's data folder.
    pub fn cmd(&self) -> Command {
        let mut c = wuyed();
        c.env("WUYE_DAEMON__DATA_DIR", &self.data);
        c
    }

    pub fn db_path(&self) -> PathBuf {
        self.data.join("wuye.db")
    }

    pub fn db(&self) -> rusqlite::Connection {
        let c = rusqlite::Connection::open(self.db_path()).unwrap();
        c.busy_timeout(Duration::from_secs(60)).unwrap();
        c
    }

    /// Restarts the daemon's clock at [`CLOCK_START`] from now (a new trial's fee run).
    pub fn reset_clock(&mut self) {
        self.clock.1 = Instant::now();
    }

    /// The daemon's clock now: [`CLOCK_START`] plus the real time since the clock was reset, so
    /// a restarted daemon finds the time that passed while it was down.
    pub fn clock_now(&self) -> String {
        let elapsed = chrono::Duration::from_std(self.clock.1.elapsed()).unwrap();
        (self.clock.0 + elapsed).to_rfc3339()
    }

    /// Starts `wuyed run` on the running clock, JSON log to a file; `env` adds variables (a
    /// failpoint).
    pub fn start(&self, env: &[(&str, &str)]) -> Daemon {
        static STARTS: AtomicUsize = AtomicUsize::new(0);
        let log = self.dir.path().join(format!(
            "wuyed-{}.log",
            STARTS.fetch_add(1, Ordering::Relaxed)
        ));
        let child = self
            .cmd()
            .args(["--log-format", "json", "run", "--config"])
            .arg(&self.config)
            .args(["--clock-start", &self.clock_now()])
            .env("RUST_LOG", "info")
            .env_remove("NOTIFY_SOCKET")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("failed to start wuyed");
        Daemon { child, log }
    }

    /// Every fee-reminder row of the outbox.
    pub fn rows(&self) -> Vec<Row> {
        let conn = self.db();
        let mut stmt = conn
            .prepare(
                "SELECT recipient, address, message_id, status, attempts, last_error FROM outbox \
                 WHERE community = ?1 AND workflow = 'fee_reminder' ORDER BY id",
            )
            .unwrap();
        stmt.query_map([COMMUNITY], |r| {
            Ok(Row {
                recipient: r.get(0)?,
                address: r.get(1)?,
                message_id: r.get(2)?,
                status: r.get(3)?,
                attempts: r.get(4)?,
                last_error: r.get(5)?,
            })
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
    }

    /// How many fee-reminder rows are in `status`; 0 while the database cannot be read.
    pub fn count(&self, status: &str) -> usize {
        let Ok(conn) = rusqlite::Connection::open(self.db_path()) else {
            return 0;
        };
        let _ = conn.busy_timeout(Duration::from_secs(5));
        conn.query_row(
            "SELECT count(*) FROM outbox WHERE community = ?1 AND workflow = 'fee_reminder' \
             AND status = ?2",
            [COMMUNITY, status],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n as usize)
        .unwrap_or(0)
    }

    /// `PRAGMA integrity_check` of the database as the last process left it.
    pub fn integrity(&self) -> String {
        self.db()
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap()
    }
    /// How many fee-reminder rows are in each state, for a failure message.
    pub fn statuses(&self) -> String {
        let conn = self.db();
        let mut stmt = conn
            .prepare(
                "SELECT status, count(*) FROM outbox WHERE community = ?1 \
                 AND workflow = 'fee_reminder' GROUP BY status ORDER BY status",
            )
            .unwrap();
        let counts: Vec<String> = stmt
            .query_map([COMMUNITY], |r| {
                Ok(format!(
                    "{} {}",
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?
                ))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        format!("outbox: {}", counts.join(", "))
    }

    /// Polls `done` every 100 ms until it holds; fails after `secs` (a hang guard, not a timing
    /// assertion) or as soon as the daemon exits, with the outbox's states and the log's end.
    pub fn wait_until(
        &self,
        what: &str,
        secs: u64,
        daemon: &mut Daemon,
        mut done: impl FnMut() -> bool,
    ) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !done() {
            if let Some(status) = daemon.child.try_wait().unwrap() {
                panic!(
                    "wuyed exited ({status}) while waiting for {what}; {}:\n{}",
                    self.statuses(),
                    daemon.tail()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no {what} within {secs} s; {}:\n{}",
                self.statuses(),
                daemon.tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Proof {
    fn drop(&mut self) {
        if let Some(m) = &self.mount {
            let _ = Command::new("umount").arg("-l").arg(m).status();
        }
    }
}

#[derive(Debug, Clone)]
pub struct Row {
    pub recipient: String,
    pub address: String,
    pub message_id: String,
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
}

/// A running `wuyed run`; SIGKILLed on drop.
pub struct Daemon {
    pub child: Child,
    pub log: PathBuf,
}

impl Daemon {
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The log's JSON lines whose message contains `text`.
    pub fn logged(&self, text: &str) -> Vec<serde_json::Value> {
        self.log_text()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["message"].as_str().is_some_and(|m| m.contains(text)))
            .collect()
    }

    /// Waits (up to 60 s) until the daemon says it is running, so a SIGTERM finds its handler.
    pub fn wait_running(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.log_text().contains("\"wuyed running\"") {
            assert!(self.alive(), "wuyed exited at start:\n{}", self.tail());
            assert!(
                Instant::now() < deadline,
                "wuyed did not start:\n{}",
                self.tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        self.child.wait().unwrap();
    }

    /// SIGTERM, and the exit status within 60 s (hang guard).
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        self.wait_exit(Duration::from_secs(60))
            .unwrap_or_else(|| panic!("wuyed did not stop within 60 s:\n{}", self.tail()))
    }

    /// The exit status, or `None` if still running after `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return Some(s);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The last lines of the log, for a failure message.
    pub fn tail(&self) -> String {
        let text = self.log_text();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One message as the SMTP sink stored it.
#[derive(Debug, Clone)]
pub struct Mail {
    pub to: String,
    pub message_id: String,
}

/// The recipient address and Message-ID of each stored message, in arrival order. Read here
/// rather than with tests/support/parse_mail.py: tens of thousands of files per trial, and both
/// headers are plain ASCII in what wuye writes (display names are encoded words, the address in
/// angle brackets after them).
pub fn read_mail(files: &[PathBuf]) -> Vec<Mail> {
    files
        .iter()
        .map(|f| {
            let raw = std::fs::read(f).unwrap();
            let text = String::from_utf8_lossy(&raw);
            let head = text.split("\r\n\r\n").next().unwrap_or_default();
            // Unfold continuation lines.
            let head = head.replace("\r\n ", " ").replace("\r\n\t", " ");
            let header = |name: &str| {
                head.split("\r\n")
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
                    })
                    .unwrap_or_else(|| panic!("{}: no {name} header", f.display()))
            };
            let to = header("To");
            let to = match (to.rfind('<'), to.rfind('>')) {
                (Some(a), Some(b)) if a < b => to[a + 1..b].to_string(),
                _ => to,
            };
            Mail {
                to: to.to_ascii_lowercase(),
                message_id: bare_id(&header("Message-ID")),
            }
        })
        .collect()
}

/// A Message-ID without its angle brackets, as the outbox and a header may differ in that.
pub fn bare_id(id: &str) -> String {
    id.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_string()
}

/// What the end of a trial found, for the summary.
#[derive(Debug, Default)]
pub struct Delivered {
    /// Copies beyond the first, each carrying its first Message-ID.
    pub resent: usize,
}

/// The checks every email trial ends with: each household's reminder queued once, every
/// expected one at the server under the Message-ID its outbox row holds (a resend included),
/// and nothing at the server that no row accounts for. `expect_once`: no copy at all may be
/// repeated (faults where a resend is not acceptable).
pub fn check_email(
    proof: &Proof,
    mail: &[Mail],
    skip: &BTreeSet<String>,
    expect_once: bool,
) -> Delivered {
    let rows = proof.rows();
    let households: BTreeSet<&str> = rows.iter().map(|r| r.recipient.as_str()).collect();
    assert_eq!(
        rows.len(),
        proof.households,
        "one reminder row per household expected; {} households have {} rows",
        households.len(),
        rows.len()
    );
    assert_eq!(households.len(), rows.len(), "a household was queued twice");
    let by_address: BTreeMap<String, &Row> = rows
        .iter()
        .map(|r| (r.address.to_ascii_lowercase(), r))
        .collect();
    let mut ids: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut copies: BTreeMap<&str, usize> = BTreeMap::new();
    for m in mail {
        let row = by_address
            .get(&m.to)
            .unwrap_or_else(|| panic!("mail to {} that no outbox row accounts for", m.to));
        assert_eq!(
            m.message_id,
            bare_id(&row.message_id),
            "a copy to {} carries another Message-ID than its outbox row's first one",
            m.to
        );
        ids.entry(&m.to).or_default().insert(&m.message_id);
        *copies.entry(&m.to).or_default() += 1;
    }
    let two: Vec<_> = ids.iter().filter(|(_, s)| s.len() > 1).collect();
    assert!(two.is_empty(), "recipients with two Message-IDs: {two:?}");
    let lost: Vec<&str> = by_address
        .keys()
        .map(String::as_str)
        .filter(|a| !skip.contains(*a) && !copies.contains_key(a))
        .collect();
    assert!(
        lost.is_empty(),
        "{} households lost (no reminder reached the server), e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    if expect_once {
        let twice: Vec<_> = copies.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "sent twice: {twice:?}");
    }
    Delivered {
        resent: mail.len() - copies.len(),
    }
}
