//! `wuyed import` through the real binary: a broken file is rejected whole with every bad row
//! named, a repeated import changes nothing, GBK files from Excel keep their Chinese names.

use std::path::{Path, PathBuf};

use crate::util::{copy_dir, repo_root, run, stderr, stdout};

/// A minimal configuration with the two demo communities and an absolute data dir.
pub(crate) fn config(dir: &Path) -> PathBuf {
    let cfg = dir.join("config");
    std::fs::create_dir_all(cfg.join("communities")).unwrap();
    std::fs::write(
        cfg.join("wuyed.toml"),
        format!(
            "[daemon]\ndata_dir = {:?}\n",
            dir.join("data").display().to_string()
        ),
    )
    .unwrap();
    for (id, name) in [("shuipan", "水畔花园"), ("shijixinzhu", "世纪新筑")] {
        std::fs::write(
            cfg.join("communities").join(format!("{id}.toml")),
            format!("id = \"{id}\"\nname = \"{name}\"\ntimezone = \"Asia/Shanghai\"\n"),
        )
        .unwrap();
    }
    cfg
}

fn db(dir: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(dir.join("data").join("wuye.db")).unwrap()
}

fn count(dir: &Path, table: &str) -> i64 {
    db(dir)
        .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

fn import(cfg: &Path, kind: &str, file: &Path, community: &str) -> std::process::Output {
    run(&[
        "import",
        kind,
        file.to_str().unwrap(),
        "--community",
        community,
        "--config",
        cfg.to_str().unwrap(),
    ])
}

fn demo(community: &str, kind: &str) -> PathBuf {
    repo_root()
        .join("config/data")
        .join(community)
        .join(format!("{kind}.csv"))
}

#[test]
fn a_broken_file_is_rejected_whole_with_every_bad_row_named() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path());
    let o = import(&cfg, "owners", &demo("shuipan", "owners"), "shuipan");
    assert!(o.status.success(), "{}", stderr(&o));

    let bills = tmp.path().join("bills.csv");
    std::fs::write(
        &bills,
        "household,fee_type,period,amount_yuan,due_date\n\
         1-1-101,物业费,2026-01,220.00,2026-01-15\n\
         1-1-101,物业费,2026-13,220.00,2026-02-15\n\
         1-1-102,property,2026-02,two hundred,2026-02-15\n\
         9-9-909,parking,2026Q1,450,2026-01-15\n\
         1-1-102,property,2026-03,220,2026-03-15\n\
         1-1-102,property,2026-04,220,\n",
    )
    .unwrap();
    let o = import(&cfg, "bills", &bills, "shuipan");
    assert_eq!(o.status.code(), Some(65), "{}", stderr(&o));
    let f = bills.display();
    let err = stderr(&o);
    let expected = [
        format!(
            "{f}:3: column period: expected a period like 2026-10, 2026Q4, 2026H2 or 2026, got \"2026-13\""
        ),
        format!(
            "{f}:4: column amount_yuan: expected an amount in yuan with at most 2 decimals, got \"two hundred\""
        ),
        format!(
            "{f}:5: column household: household \"9-9-909\" does not exist in community shuipan; import owners first"
        ),
        format!("{f}:7: column due_date: is required"),
        format!("error: 4 errors in 4 rows of {f}; nothing was imported"),
    ];
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines, expected, "stderr was:\n{err}");
    assert_eq!(
        count(tmp.path(), "bills"),
        0,
        "the good rows were not written either"
    );
}

#[test]
fn reimporting_the_demo_data_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path());
    let kinds = ["owners", "bills", "payments", "balances", "tickets"];
    for kind in kinds {
        let o = import(&cfg, kind, &demo("shuipan", kind), "shuipan");
        assert!(o.status.success(), "{kind}: {}", stderr(&o));
        assert!(
            stdout(&o).contains(" inserted, 0 updated, 0 unchanged"),
            "{}",
            stdout(&o)
        );
    }
    // The database was opened the way `wuyed run` opens it: every migration applied.
    let version: u32 = db(tmp.path())
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert!(version >= 2, "schema version {version}");
    assert_eq!(
        count(tmp.path(), "runs"),
        0,
        "the scheduler's tables are there too"
    );
    let bills_before = count(tmp.path(), "bills");
    assert_eq!(bills_before, 532);
    for kind in kinds {
        let o = import(&cfg, kind, &demo("shuipan", kind), "shuipan");
        assert!(o.status.success(), "{kind}: {}", stderr(&o));
        let out = stdout(&o);
        assert!(out.contains(": 0 inserted, 0 updated, "), "{kind}: {out}");
    }
    assert_eq!(count(tmp.path(), "bills"), bills_before);
    // The neighbour's data goes in beside it, not over it.
    let o = import(
        &cfg,
        "owners",
        &demo("shijixinzhu", "owners"),
        "shijixinzhu",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let shuipan_households: i64 = db(tmp.path())
        .query_row(
            "SELECT COUNT(*) FROM households WHERE community = 'shuipan'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(shuipan_households, 40);
    assert_eq!(count(tmp.path(), "households"), 80);
}

#[test]
fn gbk_files_keep_their_chinese_names() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path());
    let file = repo_root().join("tests/fixtures/owners-gbk.csv");
    assert!(
        std::str::from_utf8(&std::fs::read(&file).unwrap()).is_err(),
        "fixture must be GBK"
    );
    let o = import(&cfg, "owners", &file, "shuipan");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("3 inserted, 0 updated, 0 unchanged (read as GBK)"),
        "{}",
        stdout(&o)
    );
    let conn = db(tmp.path());
    let mut st = conn
        .prepare("SELECT name, preferred_contact FROM owners ORDER BY household")
        .unwrap();
    let owners: Vec<(String, String)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    // Chinese headers and values (联系方式 = 邮件) are understood, not just the names kept.
    let expected: Vec<(String, String)> = [("欧阳明", "sms"), ("诸葛亮", "email"), ("龚雪", "sms")]
        .iter()
        .map(|(n, c)| (n.to_string(), c.to_string()))
        .collect();
    assert_eq!(owners, expected);
}

#[test]
fn unknown_community_is_a_usage_error_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path());
    let o = import(&cfg, "owners", &demo("shuipan", "owners"), "lakeside");
    assert_eq!(o.status.code(), Some(64), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("community \"lakeside\" is not configured"),
        "{}",
        stderr(&o)
    );
    assert!(!tmp.path().join("data/wuye.db").exists());
}

#[test]
fn large_files_report_progress_when_asked() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path());
    let file = tmp.path().join("many.csv");
    let mut csv = String::from("building,unit,room,name,phone\n");
    for i in 0..2500 {
        csv.push_str(&format!(
            "9,{},{},业主{i},1380000{:04}\n",
            i / 100,
            i % 100,
            i % 10000
        ));
    }
    std::fs::write(&file, csv).unwrap();
    let o = run(&[
        "import",
        "owners",
        file.to_str().unwrap(),
        "--community",
        "shuipan",
        "--config",
        cfg.to_str().unwrap(),
        "--progress",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("1000/2500 rows") && err.contains("2500/2500 rows"),
        "{err}"
    );
    assert!(stdout(&o).contains("2500 inserted"), "{}", stdout(&o));
}

/// The shipped `config/` and the shipped demo data belong together: every file imports, and
/// every ticket's first receiver (首问负责人) is staff of its community, so escalation finds a
/// chain to walk.
#[test]
fn shipped_demo_data_imports_with_the_shipped_config() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("config");
    copy_dir(&repo_root().join("config"), &cfg);
    // Plugins may not be built in this checkout; the loader only needs the files to exist.
    let plugins = tmp.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let toml_path = cfg.join("wuyed.toml");
    let mut wuyed: toml::Table =
        toml::from_str(&std::fs::read_to_string(&toml_path).unwrap()).unwrap();
    for entry in std::fs::read_dir(cfg.join("communities")).unwrap() {
        let community: toml::Table =
            toml::from_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap()).unwrap();
        if let Some(workflows) = community.get("workflows").and_then(|w| w.as_table()) {
            for w in workflows.values() {
                if let Some(p) = w.get("plugin").and_then(|p| p.as_str()) {
                    std::fs::write(plugins.join(format!("{p}.wasm")), b"").unwrap();
                }
            }
        }
    }
    let set = |t: &mut toml::Table, section: &str, key: &str, v: String| {
        t.entry(section)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .unwrap()
            .insert(key.into(), toml::Value::String(v));
    };
    set(&mut wuyed, "plugins", "dir", plugins.display().to_string());
    set(
        &mut wuyed,
        "daemon",
        "data_dir",
        tmp.path().join("data").display().to_string(),
    );
    std::fs::write(&toml_path, toml::to_string(&wuyed).unwrap()).unwrap();

    for community in ["shuipan", "shijixinzhu"] {
        for kind in ["owners", "bills", "payments", "balances", "tickets"] {
            let o = import(&cfg, kind, &demo(community, kind), community);
            assert!(o.status.success(), "{community} {kind}: {}", stderr(&o));
        }
        let settings = wuye::config::load(&cfg).unwrap_or_else(|e| panic!("{e}"));
        let staff: Vec<String> = settings
            .communities
            .iter()
            .find(|c| c.id == community)
            .unwrap()
            .staff
            .iter()
            .map(|s| s.id.clone())
            .collect();
        let conn = db(tmp.path());
        let mut st = conn
            .prepare("SELECT DISTINCT first_receiver FROM tickets WHERE community = ?1")
            .unwrap();
        let receivers: Vec<String> = st
            .query_map([community], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert!(!receivers.is_empty());
        for r in receivers {
            assert!(
                staff.contains(&r),
                "{community}: first receiver {r} is not in staff {staff:?}"
            );
        }
    }
}
