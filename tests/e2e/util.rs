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

/// `wuyed run --config CFG` with its JSON log lines (stderr) collected as they come, killed on
/// drop: for tests that watch a running daemon's log while they act on it.
pub struct LoggedDaemon {
    pub child: std::process::Child,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl LoggedDaemon {
    pub fn start(cfg: &Path) -> LoggedDaemon {
        use std::io::BufRead as _;
        let mut child = wuyed()
            .args(["--log-format", "json", "run", "--config"])
            .arg(cfg)
            .env("RUST_LOG", "info")
            .env_remove("NOTIFY_SOCKET")
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

    /// Everything logged so far, one line per record.
    pub fn log(&self) -> String {
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .join("\n")
    }

    /// How many lines were logged so far: a mark for [`LoggedDaemon::logged_since`].
    pub fn line_count(&self) -> usize {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether a line logged after the first `mark` lines contains `needle`.
    pub fn logged_since(&self, mark: usize, needle: &str) -> bool {
        self.log.lock().unwrap_or_else(|e| e.into_inner())[mark..]
            .iter()
            .any(|l| l.contains(needle))
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
}

impl Drop for LoggedDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
