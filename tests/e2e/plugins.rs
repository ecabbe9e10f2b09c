//! `wuyed plugin test | check | new` from the real binary, as a plugin author uses them.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::{repo_root, run, stderr, stdout};

fn wasm_dir() -> PathBuf {
    crate::util::plugins_dir()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

const FIXTURE: &str = r#"
[run]
now = "2026-09-23T01:00:00Z"
params = { notify = "manager" }

[kv]
beats = "41"

[community]
id = "lakeside"
name = "水畔花园"

[[community.households]]
id = "1-101"
owners = ["o1"]
"#;

#[test]
fn plugin_test_shows_intents_kv_logs_and_resources_against_limits() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = dir.path().join("fixture.toml");
    std::fs::write(&fixture, FIXTURE).unwrap();
    let wasm = wasm_dir().join("heartbeat.wasm");
    let out = run(&["plugin", "test", s(&wasm), "--fixture", s(&fixture)]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "plugin heartbeat (wuye:plugin@0.3.0), hook on-schedule, community lakeside"
    );
    assert_eq!(lines[1], "result: ok");
    assert!(
        lines[2].starts_with("time: ") && lines[2].ends_with(" ms of 1000 ms limit"),
        "{}",
        lines[2]
    );
    assert!(
        lines[3].starts_with("peak memory: ") && lines[3].ends_with(" of 64.0 MiB limit"),
        "{}",
        lines[3]
    );
    assert_eq!(
        &lines[4..],
        [
            "intents (1):",
            "  notify manager template heartbeat step beat-42 beats=\"42\"",
            "kv writes (1):",
            "  beats = \"42\"",
            "logs (1):",
            "  INFO heartbeat community=lakeside workflow=heartbeat trigger=schedule beats=42",
        ]
    );
}

#[test]
fn plugin_test_reports_a_runaway_plugin_under_the_fixtures_limits() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = dir.path().join("loop.toml");
    std::fs::write(
        &fixture,
        "[run]\nparams = { mode = \"loop\" }\n[limits]\ndeadline_ms = 200\n[community]\nid = \"lakeside\"\n",
    )
    .unwrap();
    let wasm = wasm_dir().join("misbehaving.wasm");
    let out = run(&["plugin", "test", s(&wasm), "--fixture", s(&fixture)]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains("result: FAILED (Deadline): stopped after the CPU deadline of 200 ms\n"),
        "{text}"
    );
    assert!(
        text.contains("misbehaving::Misbehaving"),
        "backtrace names the function: {text}"
    );
    assert!(
        stderr(&out).contains("the plugin failed: Deadline"),
        "{}",
        stderr(&out)
    );
}

/// A plugin that sleeps for an hour: `plugin test` used to hang for that hour.
#[test]
fn plugin_test_stops_a_sleeping_plugin_at_its_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = dir.path().join("sleep.toml");
    std::fs::write(
        &fixture,
        "[run]\nparams = { mode = \"sleep\" }\n[limits]\ndeadline_ms = 200\n[community]\nid = \"lakeside\"\n",
    )
    .unwrap();
    let wasm = wasm_dir().join("misbehaving.wasm");
    let started = std::time::Instant::now();
    let out = run(&["plugin", "test", s(&wasm), "--fixture", s(&fixture)]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stdout(&out)
            .contains("result: FAILED (Deadline): stopped after the CPU deadline of 200 ms\n"),
        "{}",
        stdout(&out)
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
}

#[test]
fn plugin_test_shows_what_the_plugin_printed_as_log_lines() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = dir.path().join("print.toml");
    std::fs::write(
        &fixture,
        "[run]\nparams = { mode = \"print\" }\n[community]\nid = \"lakeside\"\n",
    )
    .unwrap();
    let wasm = wasm_dir().join("misbehaving.wasm");
    let out = run(&["plugin", "test", s(&wasm), "--fixture", s(&fixture)]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    assert!(
        text.contains("  INFO [stdout] rules loaded for lakeside"),
        "{text}"
    );
    assert!(
        text.contains("  WARN [stderr] warning: no rule for building 9"),
        "{text}"
    );
    assert!(
        text.contains("log limit"),
        "the flood is cut visibly: {text}"
    );
}

#[test]
fn plugin_test_names_the_fixture_file_and_key_of_a_mistake() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = dir.path().join("bad.toml");
    std::fs::write(&fixture, "[community]\nid = \"x\"\n[[community.bills]]\nid = \"b1\"\nhousehold = \"h\"\nfee_type = \"property\"\nperiod = \"2026-09\"\namount_fen = \"lots\"\ndue_date = \"2026-09-30\"\n").unwrap();
    let out = run(&[
        "plugin",
        "test",
        s(&wasm_dir().join("heartbeat.wasm")),
        "--fixture",
        s(&fixture),
    ]);
    assert_eq!(out.status.code(), Some(65), "EX_DATAERR");
    let err = stderr(&out);
    assert!(
        err.contains("bad.toml") && err.contains("line 8") && err.contains("amount_fen"),
        "{err}"
    );
}

#[test]
fn plugin_check_accepts_both_wit_versions_and_refuses_a_non_plugin() {
    let d = wasm_dir();
    let out = run(&[
        "plugin",
        "check",
        s(&d.join("heartbeat.wasm")),
        s(&d.join("legacy_v010.wasm")),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("heartbeat.wasm: ok (wuye:plugin@0.3.0"),
        "{text}"
    );
    assert!(
        text.contains("legacy_v010.wasm: ok (wuye:plugin@0.1.0"),
        "{text}"
    );

    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("notes.wasm");
    std::fs::write(&junk, "(component)").unwrap();
    let out = run(&["plugin", "check", s(&junk)]);
    assert_eq!(out.status.code(), Some(78), "EX_CONFIG");
    assert!(
        stderr(&out).contains(&format!(
            "{}: not a wuye plugin: it exports no `wuye:plugin/hooks` interface (exports: none)",
            junk.display()
        )),
        "{}",
        stderr(&out)
    );
}

#[test]
fn plugin_new_scaffolds_a_crate_whose_mock_test_build_and_preview_all_work() {
    let dir = tempfile::tempdir().unwrap();
    let parent = dir.path().join("plugins");
    std::fs::create_dir_all(&parent).unwrap();
    let sdk = repo_root().join("plugin-sdk");
    let out = run(&[
        "plugin",
        "new",
        "late-fee",
        "--dir",
        s(&parent),
        "--sdk",
        s(&sdk),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("build:   cargo build --release --target wasm32-wasip2 -p late-fee")
    );
    // It tells where the templates go and what to add to a community file.
    assert!(
        stdout(&out).contains("[workflows.late_fee]\nplugin = \"late_fee\""),
        "{}",
        stdout(&out)
    );
    let krate = parent.join("late-fee");
    for locale in ["zh-CN", "en"] {
        let t = krate.join(format!("templates/late_fee/fee_due.{locale}.toml"));
        assert!(t.is_file(), "{} missing", t.display());
    }
    // The fixture's comment is the preview command that works from where the crate lives.
    let fixture = std::fs::read_to_string(krate.join("fixture.toml")).unwrap();
    assert!(
        fixture.starts_with(&format!(
            "# Preview, from here: wuyed plugin test {}",
            krate
                .join("target/wasm32-wasip2/release/late_fee.wasm")
                .display()
        )),
        "{fixture}"
    );

    // A target dir of its own: the scaffold is a workspace of its own, as it would be for an author.
    let cargo = || {
        let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        c.current_dir(&krate)
            .env("CARGO_TARGET_DIR", dir.path().join("target"));
        c
    };
    // The scaffold's MockHost test passes natively...
    let test = cargo().args(["test", "--offline", "-q"]).output().unwrap();
    assert!(
        test.status.success(),
        "{}",
        String::from_utf8_lossy(&test.stderr)
    );
    // ...it builds to a component with one command...
    let build = cargo()
        .args([
            "build",
            "--offline",
            "--release",
            "--target",
            "wasm32-wasip2",
        ])
        .output()
        .unwrap();
    assert!(
        build.status.success(),
        "{}",
        String::from_utf8_lossy(&build.stderr)
    );
    // ...and its fixture previews in the sandbox.
    let wasm = dir
        .path()
        .join("target/wasm32-wasip2/release/late_fee.wasm");
    let out = run(&[
        "plugin",
        "test",
        s(&wasm),
        "--fixture",
        s(&krate.join("fixture.toml")),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The community's date (Shanghai), the label built by the SDK, the total in yuan.
    assert!(
        stdout(&out).contains(
            "  send household 1-101 template fee_due step due-2026-09-23 [Transactional, Preferred] household.label=\"1栋101\" total=\"350.00\""
        ),
        "{}",
        stdout(&out)
    );

    let again = run(&[
        "plugin",
        "new",
        "late-fee",
        "--dir",
        s(&parent),
        "--sdk",
        s(&sdk),
    ]);
    assert_eq!(again.status.code(), Some(64));
    let bad = run(&[
        "plugin",
        "new",
        "Late_Fee",
        "--dir",
        s(&parent),
        "--sdk",
        s(&sdk),
    ]);
    assert_eq!(bad.status.code(), Some(64));
}

/// A community holding a desk task (`task`, added after WIT 0.3.0) beside a repair and a
/// complaint, for the plugins pinned to older worlds, which trap on a kind theirs lacks.
const WITH_A_DESK_TASK: &str = r#"
[community]
id = "lakeside"

[[community.households]]
id = "1-101"

[[community.tickets]]
id = "R-1"
household = "1-101"
kind = "repair"
opened_at = "2026-09-20T01:00:00Z"

[[community.tickets]]
id = "W7-0"
household = "1-101"
kind = "task"
opened_at = "2026-09-20T01:00:00Z"
closed_at = "2026-09-21T01:00:00Z"

[[community.tickets]]
id = "C-1"
household = "1-101"
kind = "complaint"
opened_at = "2026-09-20T01:00:00Z"
"#;

#[test]
fn plugin_test_shows_an_old_world_its_own_ticket_kinds_and_not_later_events() {
    let dir = tempfile::tempdir().unwrap();
    for plugin in ["legacy_v010", "legacy_v020"] {
        let fixture = dir.path().join("tickets.toml");
        std::fs::write(&fixture, WITH_A_DESK_TASK).unwrap();
        let wasm = wasm_dir().join(format!("{plugin}.wasm"));
        let out = run(&["plugin", "test", s(&wasm), "--fixture", s(&fixture)]);
        let text = stdout(&out);
        assert!(out.status.success(), "{plugin}: {text}\n{}", stderr(&out));
        assert!(text.contains("result: ok"), "{plugin}: {text}");
        assert!(
            text.contains(r#"tickets = "repair=1 complaint=1""#),
            "{plugin} reads the kinds its world has: {text}"
        );
        assert!(
            !text.contains("task") && !text.contains("W7-0"),
            "{plugin}: {text}"
        );

        // The desk task's closing and an import: neither reaches the plugin, whose world
        // predates both (it would trap), and the run says so.
        for (event, payload) in [
            (
                "ticket.closed",
                r#"{"ticket_id": 9, "no": "W7-0", "kind": "task"}"#,
            ),
            (
                "import.bills",
                r#"{"file": "bills.csv", "inserted": 3, "updated": 0}"#,
            ),
        ] {
            let fixture = dir.path().join("event.toml");
            std::fs::write(
                &fixture,
                format!(
                    "[run]\nhook = \"event\"\nevent = \"{event}\"\npayload = '{payload}'\n{WITH_A_DESK_TASK}"
                ),
            )
            .unwrap();
            let out = run(&["plugin", "test", s(&wasm), "--fixture", s(&fixture)]);
            let text = stdout(&out);
            assert!(
                out.status.success(),
                "{plugin} {event}: {text}\n{}",
                stderr(&out)
            );
            assert!(text.contains("result: ok"), "{plugin} {event}: {text}");
            assert!(
                text.contains(&format!("event {event} not delivered")),
                "{plugin} {event}: {text}"
            );
            assert!(!text.contains("last-event"), "{plugin} {event}: {text}");
        }
    }
}
