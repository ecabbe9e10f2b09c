//! Shared helpers for the end-to-end tests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `wuyed` binary cargo built for this test run.
pub fn wuyed() -> Command {
    Command::new(env!("CARGO_BIN_EXE_wuyed"))
}

/// The repository root (for the shipped `config/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("daemon/ has a parent")
        .to_path_buf()
}

/// Runs `wuyed` with `args` and returns its output.
pub fn run(args: &[&str]) -> Output {
    wuyed().args(args).output().expect("failed to start wuyed")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Builds every plugin of the workspace for wasm32-wasip2, once per test run, exactly as
/// `scripts/build-plugins.sh` does (so after that script it is a no-op), and returns the folder of
/// the `.wasm` files.
pub fn plugins_dir() -> PathBuf {
    static BUILD: std::sync::Once = std::sync::Once::new();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    let target = if target.is_absolute() {
        target
    } else {
        repo_root().join(target)
    };
    BUILD.call_once(|| {
        let status = Command::new("bash")
            .arg(repo_root().join("scripts/build-plugins.sh"))
            .env("CARGO_TARGET_DIR", &target)
            .status()
            .expect("cannot run scripts/build-plugins.sh");
        assert!(status.success(), "building the plugins failed");
    });
    target.join("wasm32-wasip2/release")
}

/// Copies a folder tree (the shipped `config/` into a test's temp dir).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// `wuyed import KIND DIR/KIND.csv --community ID --config CONFIG` for each kind whose file is
/// in `dir`, in the order the domain needs them (owners before their bills); each must succeed.
/// `cmd` gives a `wuyed` command with the test's environment.
pub fn import_dir(cmd: impl Fn() -> Command, config: &Path, community: &str, dir: &Path) {
    for kind in ["owners", "bills", "payments", "balances", "tickets"] {
        let file = dir.join(format!("{kind}.csv"));
        if !file.is_file() {
            continue;
        }
        let out = cmd()
            .args(["import", kind])
            .arg(&file)
            .args(["--community", community, "--config"])
            .arg(config)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "import {kind} {community}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The heartbeat's email, SMS and subject, counting beats: what the daemon tests send.
pub const HEARTBEAT_TEMPLATE: &str = "subject = \"beat {{ beats }}\"\n\
     text = \"{{ recipient.name }}, the heartbeat counted {{ beats }}.\"\n\
     sms = \"beat {{ beats }}\"\n";

/// Community `shuipan` under `cfg` (made if missing) with no quiet hours and a heartbeat every
/// second telling its manager by email, and the heartbeat's template: a daemon with mail to
/// send at every moment, for tests that disturb it while it sends.
pub fn write_heartbeat_community(cfg: &Path) {
    std::fs::create_dir_all(cfg.join("communities")).unwrap();
    std::fs::create_dir_all(cfg.join("templates/heartbeat")).unwrap();
    std::fs::write(
        cfg.join("templates/heartbeat/heartbeat.en.toml"),
        HEARTBEAT_TEMPLATE,
    )
    .unwrap();
    std::fs::write(
        cfg.join("communities/shuipan.toml"),
        "id = \"shuipan\"\nname = \"Shuipan Garden\"\ntimezone = \"Asia/Shanghai\"\nlocale = \"en\"\n\n\
         [quiet_hours]\nstart = \"00:00\"\nend = \"00:00\"\n\n\
         [[staff]]\nid = \"lin-hua\"\nname = \"Lin Hua\"\nrole = \"manager\"\nemail = \"lin.hua@shuipan.example\"\n\n\
         [workflows.heartbeat]\nplugin = \"heartbeat\"\nschedule = \"* * * * * *\"\ncatch_up = \"skip\"\n\
         notifies = [\"manager\"]\nparams = { notify = \"manager\" }\n",
    )
    .unwrap();
}

/// `wuyed run --config CFG` with its JSON log lines (stderr) collected as they come, killed on
/// drop: for tests that watch a running daemon's log while they act on it (signal it, stop it,
/// wait for a line). One type for all of them, so a fix to "collect even after a failed
/// assertion" or "fail with the log when the daemon died" reaches every such test.
pub struct LoggedDaemon {
    pub child: std::process::Child,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl LoggedDaemon {
    /// The command [`LoggedDaemon::start`] runs, for a test that adds arguments or variables.
    pub fn command(cfg: &Path) -> Command {
        let mut cmd = wuyed();
        cmd.args(["--log-format", "json", "run", "--config"])
            .arg(cfg)
            .env("RUST_LOG", "info")
            .env_remove("NOTIFY_SOCKET");
        cmd
    }

    pub fn start(cfg: &Path) -> LoggedDaemon {
        LoggedDaemon::spawn(LoggedDaemon::command(cfg))
    }

    /// Starts `cmd` (usually from [`LoggedDaemon::command`]), collecting its stderr.
    pub fn spawn(mut cmd: Command) -> LoggedDaemon {
        use std::io::BufRead as _;
        let mut child = cmd
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("failed to start wuyed");
        let stderr = child.stderr.take().unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                // Still collected after a failed assertion poisoned the lock.
                sink.lock().unwrap_or_else(|e| e.into_inner()).push(line);
            }
        });
        LoggedDaemon { child, log }
    }

    fn lines(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Everything logged so far, one line per record.
    pub fn log(&self) -> String {
        self.lines().join("\n")
    }

    /// How many lines were logged so far: a mark for [`LoggedDaemon::logged_since`].
    pub fn line_count(&self) -> usize {
        self.lines().len()
    }

    /// Whether any line logged so far contains `needle`.
    pub fn logged(&self, needle: &str) -> bool {
        self.logged_since(0, needle)
    }

    /// Whether a line logged after the first `mark` lines contains `needle`.
    pub fn logged_since(&self, mark: usize, needle: &str) -> bool {
        self.lines()[mark..].iter().any(|l| l.contains(needle))
    }

    /// The log lines that are JSON records and satisfy `pred`.
    pub fn records(&self, pred: impl Fn(&serde_json::Value) -> bool) -> Vec<serde_json::Value> {
        self.lines()
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| pred(v))
            .collect()
    }

    /// The first JSON record satisfying `pred`, waiting up to `limit`; fails with the log if the
    /// daemon exits or the time runs out first.
    pub fn wait_record(
        &mut self,
        what: &str,
        limit: std::time::Duration,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(v) = self.records(&pred).into_iter().next() {
                return v;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "wuyed exited ({status}) before logging {what}:\n{}",
                    self.log()
                );
            }
            assert!(
                std::time::Instant::now() < deadline,
                "wuyed did not log {what} within {limit:?}:\n{}",
                self.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Waits until a line contains `needle`; fails with the log if the daemon exits or `limit`
    /// passes first.
    pub fn wait_log(&mut self, needle: &str, limit: std::time::Duration) {
        let deadline = std::time::Instant::now() + limit;
        while !self.logged(needle) {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "wuyed exited ({status}) before logging {needle:?}:\n{}",
                    self.log()
                );
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no {needle:?} in the log within {limit:?}:\n{}",
                self.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Polls `f` until it holds; fails with the daemon's log after `limit`.
    pub fn wait_until(&self, what: &str, limit: std::time::Duration, mut f: impl FnMut() -> bool) {
        let deadline = std::time::Instant::now() + limit;
        while !f() {
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}; log:\n{}",
                self.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// Sends `kill -NAME` (TERM, HUP, ...).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name} failed");
    }

    /// The exit status, waiting up to 30 s (a hang guard: fails with the log).
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "wuyed did not exit within 30 s:\n{}",
                self.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// SIGTERM; it must exit 0 within 30 s.
    pub fn stop(mut self) {
        self.signal("TERM");
        let status = self.wait_exit();
        assert_eq!(status.code(), Some(0), "{status}\n{}", self.log());
    }
}

impl Drop for LoggedDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
