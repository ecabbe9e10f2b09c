//! What an administrator relies on to run wuyed for real: `--version` naming the commit,
//! `wuyed backup` while the daemon writes, private file modes, and the man pages and shell
//! completions packages ship (made from the real command line).

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::import::config;
use crate::util::{repo_root, run, stderr, stdout, wuyed};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn version_names_the_package_version_and_the_commit() {
    let out = run(&["--version"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let version = format!("wuyed {} (", env!("CARGO_PKG_VERSION"));
    assert!(text.starts_with(&version), "{text}");
    // Built from this checkout: the commit must be HEAD's (build.rs re-runs when HEAD moves).
    let head = Command::new("git")
        .arg("-C")
        .arg(repo_root())
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success() && repo_root().join(".git").exists());
    match head {
        Some(head) => {
            let head = String::from_utf8_lossy(&head.stdout).trim().to_string();
            assert!(text.contains(&format!("(commit {head}")), "{text}");
        }
        None => assert!(text.contains("(unknown commit)"), "{text}"),
    }
}

#[test]
fn a_backup_taken_while_the_database_is_written_is_whole_and_private() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let owners = repo_root().join("config/data/shuipan/owners.csv");
    let out = run(&[
        "import",
        "owners",
        owners.to_str().unwrap(),
        "--community",
        "shuipan",
        "--config",
        cfg.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let data = dir.path().join("data");
    let db = data.join("wuye.db");
    // Owners' data is nobody else's business, whatever the umask.
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&db), 0o600);
    let imported: i64 = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("SELECT count(*) FROM owners", [], |r| r.get(0))
        .unwrap();
    assert!(imported > 0);

    // A writer committing as fast as it can, as the daemon does at its busiest.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, db) = (stop.clone(), db.clone());
        std::thread::spawn(move || {
            let conn = rusqlite::Connection::open(&db).unwrap();
            conn.busy_timeout(std::time::Duration::from_secs(10))
                .unwrap();
            let mut written = 0i64;
            while !stop.load(Ordering::SeqCst) {
                conn.execute(
                    "INSERT INTO audit (at, community, workflow, event, summary) \
                     VALUES ('2026-11-22T00:00:00.000Z', 'shuipan', 'fee_reminder', 'test', ?1)",
                    [written],
                )
                .unwrap();
                written += 1;
            }
            written
        })
    };
    let audit = |path: &Path| -> i64 {
        rusqlite::Connection::open(path)
            .unwrap()
            .query_row("SELECT count(*) FROM audit", [], |r| r.get(0))
            .unwrap()
    };
    let mut seen = Vec::new();
    for i in 0..3 {
        if i == 0 {
            // SQLite gives the log it creates beside the database the database's own mode.
            std::thread::sleep(std::time::Duration::from_millis(100));
            assert_eq!(mode(&data.join("wuye.db-wal")), 0o600);
        }
        std::thread::sleep(std::time::Duration::from_millis(150));
        let copy = dir.path().join(format!("backup-{i}.db"));
        let before = audit(&db);
        let out = run(&[
            "backup",
            "--config",
            cfg.to_str().unwrap(),
            "--to",
            copy.to_str().unwrap(),
        ]);
        let after = audit(&db);
        assert!(out.status.success(), "{}", stderr(&out));
        let said = stdout(&out);
        assert!(said.contains(&copy.display().to_string()), "{said}");
        assert!(said.contains("integrity ok"), "{said}");
        assert!(said.contains(&format!("{imported} owners")), "{said}");
        assert_eq!(mode(&copy), 0o600);
        // A self-contained file: open it alone and find the data.
        assert!(!dir.path().join(format!("backup-{i}.db-wal")).exists());
        let conn = rusqlite::Connection::open(&copy).unwrap();
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok");
        let owners: i64 = conn
            .query_row(
                "SELECT count(*) FROM owners WHERE community = 'shuipan'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(owners, imported);
        // One instant's state: every row committed before the backup started, none after
        // it ended, and no gap (rows are numbered in commit order).
        let (rows, last): (i64, i64) = conn
            .query_row(
                "SELECT count(*), coalesce(max(CAST(summary AS INTEGER)), -1) FROM audit",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert!(
            before <= rows && rows <= after,
            "{before} <= {rows} <= {after}"
        );
        assert_eq!(last, rows - 1, "the copy has a gap");
        seen.push(rows);
    }
    stop.store(true, Ordering::SeqCst);
    let written = writer.join().unwrap();
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    assert!(written > seen[2], "the writer kept writing throughout");

    // An existing file is never replaced by mistake.
    let copy = dir.path().join("backup-0.db");
    let before = std::fs::read(&copy).unwrap();
    let out = run(&[
        "backup",
        "--config",
        cfg.to_str().unwrap(),
        "--to",
        copy.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(74), "{}", stderr(&out));
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    assert_eq!(std::fs::read(&copy).unwrap(), before);
    let out = run(&[
        "backup",
        "--config",
        cfg.to_str().unwrap(),
        "--to",
        copy.to_str().unwrap(),
        "--force",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(audit(&copy), written);
}

#[test]
fn man_pages_and_completions_come_from_the_real_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let man = dir.path().join("man");
    let out = wuyed()
        .args(["generate", "man"])
        .arg(&man)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let page = std::fs::read_to_string(man.join("wuyed.1")).unwrap();
    assert!(page.contains(".TH wuyed 1"), "{page}");
    assert!(page.contains(env!("CARGO_PKG_VERSION")));
    // Every visible subcommand has its page; the packagers' own stays out of sight.
    for sub in ["run", "check", "backup", "outbox", "simulate"] {
        let sub_page = std::fs::read_to_string(man.join(format!("wuyed-{sub}.1"))).unwrap();
        assert!(page.contains(sub), "wuyed.1 does not list {sub}");
        assert!(sub_page.contains(&format!("wuyed\\-{sub}")), "{sub_page}");
    }
    let backup = std::fs::read_to_string(man.join("wuyed-backup.1")).unwrap();
    assert!(backup.contains("\\-\\-force"), "{backup}");
    assert!(!man.join("wuyed-generate.1").exists());

    for (shell, file, needle) in [
        ("bash", "wuyed.bash", "--stop-timeout"),
        ("zsh", "_wuyed", "--stop-timeout"),
        ("fish", "wuyed.fish", "stop-timeout"),
    ] {
        let out = wuyed()
            .args(["generate", "completions", shell, "--dir"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let script = std::fs::read_to_string(dir.path().join(file)).unwrap();
        assert!(script.contains(needle), "{shell}: {script}");
        assert!(script.contains("backup"), "{shell}: {script}");
    }
    // Without --dir the script goes to stdout, for `source <(wuyed generate completions bash)`.
    let out = run(&["generate", "completions", "bash"]);
    assert!(stdout(&out).contains("_wuyed()"), "{}", stdout(&out));
    // Hidden from --help: administrators never need it.
    assert!(!stdout(&run(&["--help"])).contains("generate"));
}
