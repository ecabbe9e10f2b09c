//! Simulation benchmark (issue 5): a year of 10 communities × 500 households through the real
//! `wuyed simulate`. Target: under 10 s.
//!
//! Generates a configuration with ten copies of the demo's 水畔花园 (the four real workflows, no
//! heartbeat) and, per community, 500 owners, monthly property bills from 2026-07 to 2027-12
//! (one household in five never pays; the others pay each bill before its due date), closed
//! tickets without their callback, imports them through `wuyed import` (the real path), then
//! times `wuyed simulate --from 2027-01-01 --to 2027-12-31 --format json` twice: the first
//! compiles the four plugins into the data directory's cache, the second finds them there.
//!
//! Run: `scripts/build-plugins.sh && cargo bench -p wuye --bench simulate --profile dev` (the
//! README's binary) or without `--profile dev` for release.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

mod support;

const COMMUNITIES: usize = 10;
const HOUSEHOLDS: usize = 500;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn plugins_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target"));
    let dir = target.join("wasm32-wasip2/release");
    assert!(
        dir.join("fee_reminder.wasm").exists(),
        "{} has no fee_reminder.wasm: run scripts/build-plugins.sh first",
        dir.display()
    );
    std::fs::canonicalize(dir).unwrap()
}

/// The demo community file with the heartbeat block cut out and a new id and name.
fn community_toml(demo: &str, n: usize) -> String {
    let start = demo
        .find("[workflows.heartbeat]")
        .expect("shuipan.toml has a heartbeat block");
    let end = demo
        .find("# The four workflows of the service desk")
        .expect("shuipan.toml introduces the four workflows");
    format!("{}{}", &demo[..start], &demo[end..])
        .replace("id = \"shuipan\"", &format!("id = \"c{n:02}\""))
        .replace("name = \"水畔花园\"", &format!("name = \"小区{n:02}\""))
}

/// `(building, unit, room)` of household `i`: 5 buildings × 2 units × 50 rooms.
fn address(i: usize) -> (usize, usize, usize) {
    (
        i / 100 + 1,
        (i / 50) % 2 + 1,
        (i % 50) / 2 * 100 + 101 + i % 2,
    )
}

fn write_data(dir: &Path, n: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let mut owners =
        String::from("building,unit,room,name,phone,email,language,preferred_contact\n");
    let mut bills = String::from("household,fee_type,period,amount_fen,due_date\n");
    let mut payments = String::from(
        "reference,household,fee_type,period,amount_fen,paid_at,method,reversed_at,reversal_reason\n",
    );
    let mut tickets = String::from(
        "no,kind,first_receiver,opened_at,household,summary,assignee,assigned_at,closed_at,callback_at,callback_by,satisfied,score,notes\n",
    );
    let months: Vec<(i32, u32)> = (7..=12)
        .map(|m| (2026, m))
        .chain((1..=12).map(|m| (2027, m)))
        .collect();
    for i in 0..HOUSEHOLDS {
        let (b, u, r) = address(i);
        let h = format!("{b}-{u}-{r}");
        // Half prefer SMS, half email; everyone has both.
        let preferred = if i % 2 == 0 { "sms" } else { "email" };
        writeln!(
            owners,
            "{b},{u},{r},业主{i},139{n:02}{i:06},o{n}-{i}@example.com,zh-CN,{preferred}"
        )
        .unwrap();
        for (y, m) in &months {
            writeln!(bills, "{h},property,{y}-{m:02},25000,{y}-{m:02}-15").unwrap();
            // One household in five is in arrears: it never pays.
            if i % 5 != 0 {
                writeln!(
                    payments,
                    "P{n}-{i}-{y}{m:02},{h},property,{y}-{m:02},25000,{y}-{m:02}-10 10:00,bank,,"
                )
                .unwrap();
            }
        }
        // A closed repair without its callback every 25 households, for the escalation ladder.
        if i % 25 == 0 {
            writeln!(
                tickets,
                "T{n}-{i},repair,chen-jing,2026-12-28 09:00,{h},漏水,weixiu,2026-12-28 10:00,2026-12-30 16:00,,,,,"
            )
            .unwrap();
        }
    }
    for (name, text) in [
        ("owners", owners),
        ("bills", bills),
        ("payments", payments),
        ("tickets", tickets),
    ] {
        std::fs::write(dir.join(format!("{name}.csv")), text).unwrap();
    }
}

fn wuyed(command: &str, config: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_wuyed"));
    c.env("RUST_LOG", "error")
        .arg(command)
        .arg("--config")
        .arg(config);
    c
}

fn main() {
    let tmp = tempfile::tempdir().unwrap();
    // SIMULATE_BENCH_TO=2027-02-28 for a shorter span; SIMULATE_BENCH_KEEP=1 keeps the generated
    // config and data (their path is printed) for profiling.
    let to = std::env::var("SIMULATE_BENCH_TO").unwrap_or_else(|_| "2027-12-31".into());
    let tmp_path = if std::env::var_os("SIMULATE_BENCH_KEEP").is_some() {
        tmp.keep()
    } else {
        tmp.path().to_path_buf()
    };
    let tmp = &tmp_path;
    let config = tmp.join("config");
    std::fs::create_dir_all(config.join("communities")).unwrap();
    support::copy_dir(&repo().join("config/calendars"), &config.join("calendars"));
    support::copy_dir(&repo().join("config/templates"), &config.join("templates"));
    std::fs::write(
        config.join("wuyed.toml"),
        format!(
            "[daemon]\ndata_dir = \"../data\"\ntimezone = \"Asia/Shanghai\"\nlog_level = \"error\"\n\n\
             [plugins]\ndir = \"{}\"\n",
            plugins_dir().display()
        ),
    )
    .unwrap();
    let demo = std::fs::read_to_string(repo().join("config/communities/shuipan.toml")).unwrap();
    let t = Instant::now();
    for n in 1..=COMMUNITIES {
        std::fs::write(
            config.join(format!("communities/c{n:02}.toml")),
            community_toml(&demo, n),
        )
        .unwrap();
        let data = tmp.join(format!("csv/c{n:02}"));
        write_data(&data, n);
        for kind in ["owners", "bills", "payments", "tickets"] {
            let out = wuyed("import", &config)
                .arg(kind)
                .arg(data.join(format!("{kind}.csv")))
                .args(["--community", &format!("c{n:02}")])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "import {kind} c{n:02}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    println!("config: {}", config.display());
    println!(
        "imported {COMMUNITIES} communities × {HOUSEHOLDS} households (18 monthly bills each, 20% never paid) in {:.1?}",
        t.elapsed()
    );

    for label in ["first (compiles the plugins)", "second (plugin cache warm)"] {
        let t = Instant::now();
        let out = wuyed("simulate", &config)
            .args(["--from", "2027-01-01", "--to", &to, "--format", "json"])
            .output()
            .unwrap();
        let took = t.elapsed();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let mut by_delivery = std::collections::BTreeMap::<String, usize>::new();
        let mut by_workflow = std::collections::BTreeMap::<String, usize>::new();
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            *by_delivery
                .entry(v["delivery"].as_str().unwrap_or("?").to_string())
                .or_default() += 1;
            *by_workflow
                .entry(v["workflow"].as_str().unwrap_or("?").to_string())
                .or_default() += 1;
        }
        println!(
            "simulate 2027-01-01..{to}, {label}: {:.2} s, {} messages; {by_workflow:?}; {by_delivery:?}",
            took.as_secs_f64(),
            text.lines().count()
        );
    }
}
