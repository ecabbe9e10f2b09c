//! `wuyed report` at scale: how long each report takes for one community of 100,000 households
//! with a year of monthly property bills (1.2 million), quarterly parking bills for a fifth of
//! them, 5,000 tickets with callbacks and two survey quarters (100,000 invitations each, 60%
//! answered). The reports are run the way the CLI runs them (`report::build` on a read-only
//! connection), so the figures include SQL, arithmetic and rendering.
//!
//! Run: `cargo bench -p wuye --bench report --profile dev`; `REPORT_BENCH_HOUSEHOLDS=20000` for a
//! smaller run; `REPORT_BENCH_KEEP=1` keeps the database for a look with `sqlite3`.

use std::time::Instant;

use chrono::{Duration, NaiveDate, TimeZone, Utc};
use rusqlite::{Connection, params};
use wuye::report::{Format, Kind, Period, build, language_of};
use wuye::store::domain::apply_schema;

fn main() {
    let households: usize = std::env::var("REPORT_BENCH_HOUSEHOLDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config");
    std::fs::create_dir_all(cfg.join("communities")).unwrap();
    std::fs::write(
        cfg.join("wuyed.toml"),
        format!(
            "[daemon]\ndata_dir = {:?}\n",
            dir.path().join("data").display().to_string()
        ),
    )
    .unwrap();
    std::fs::write(
        cfg.join("communities/bench.toml"),
        "id = \"bench\"\nname = \"基准小区\"\ntimezone = \"Asia/Shanghai\"\n",
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    let path = dir.path().join("data/wuye.db");
    let mut conn = Connection::open(&path).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    apply_schema(&conn).unwrap();
    let t = Instant::now();
    seed(&mut conn, households);
    println!("seed: {households} households in {:.2?}", t.elapsed());
    drop(conn);

    let settings = wuye::config::load(&cfg).expect("bench config loads");
    let community = settings.community("bench").unwrap();
    let conn = wuye::store::report::open_read_only(&path).unwrap();
    let period: Period = "2026Q3".parse().unwrap();
    let today = NaiveDate::from_ymd_opt(2026, 11, 21).unwrap();
    let lang = language_of(community);
    for kind in [Kind::Satisfaction, Kind::Callbacks, Kind::Fees] {
        for format in [Format::Text, Format::Html] {
            // Once to warm the page cache, as a second run by the office would be.
            build(&conn, community, kind, period, today, format, lang).unwrap();
            let t = Instant::now();
            let out = build(&conn, community, kind, period, today, format, lang).unwrap();
            println!(
                "report {kind:?} {format:?} 2026Q3: {:.2?} ({} bytes)",
                t.elapsed(),
                out.len()
            );
        }
    }
    if std::env::var_os("REPORT_BENCH_KEEP").is_some() {
        println!("kept: {}", dir.keep().display());
        return;
    }
    let year: Period = "2026".parse().unwrap();
    let t = Instant::now();
    build(
        &conn,
        community,
        Kind::Fees,
        year,
        today,
        Format::Text,
        lang,
    )
    .unwrap();
    println!("report Fees Text 2026 (whole year): {:.2?}", t.elapsed());
}

fn seed(conn: &mut Connection, households: usize) {
    let tx = conn.transaction().unwrap();
    {
        let mut h = tx
            .prepare("INSERT INTO households (community, id, building, unit, room) VALUES ('bench', ?1, ?2, '1', ?3)")
            .unwrap();
        let mut b = tx
            .prepare("INSERT INTO bills (community, household, fee_type, period, amount_fen, due_date) VALUES ('bench', ?1, ?2, ?3, ?4, ?5)")
            .unwrap();
        let mut p = tx
            .prepare("INSERT INTO payments (community, reference, bill_id, amount_fen, paid_at) VALUES ('bench', ?1, ?2, ?3, ?4)")
            .unwrap();
        let mut pay = |id: i64, amount: i64, at: String| {
            p.execute(params![format!("R{id}"), id, amount, at])
                .unwrap();
        };
        for i in 0..households {
            let id = format!("{}-1-{}", i / 100, i % 100);
            h.execute(params![id, (i / 100).to_string(), (i % 100).to_string()])
                .unwrap();
            // 80% pay every month on time; the others stop paying in October, and every
            // tenth of those paid Q3 late, in November.
            let owes_from = if i % 5 == 0 { 10 } else { 13 };
            for m in 1..=12 {
                b.execute(params![
                    id,
                    "property",
                    format!("2026-{m:02}"),
                    32000,
                    format!("2026-{m:02}-15")
                ])
                .unwrap();
                let bill = tx.last_insert_rowid();
                if m < owes_from {
                    let late = i % 50 == 0 && (7..=9).contains(&m);
                    let at = if late {
                        "2026-11-02T02:00:00Z".to_string()
                    } else {
                        format!("2026-{m:02}-12T02:00:00Z")
                    };
                    pay(bill, 32000, at);
                }
            }
            if i % 5 == 1 {
                for q in 1..=4 {
                    let m = 3 * q - 2;
                    b.execute(params![
                        id,
                        "parking",
                        format!("2026Q{q}"),
                        45000,
                        format!("2026-{m:02}-05")
                    ])
                    .unwrap();
                    let bill = tx.last_insert_rowid();
                    pay(bill, 45000, format!("2026-{m:02}-03T02:00:00Z"));
                }
            }
        }
        // Tickets: one per 20 households over the year, 90% called back, every tenth late.
        let mut t = tx
            .prepare("INSERT INTO tickets (community, no, household, kind, first_receiver, assignee, opened_at, closed_at) VALUES ('bench', ?1, ?2, ?3, 'chen-jing', ?4, ?5, ?6)")
            .unwrap();
        let mut c = tx
            .prepare("INSERT INTO callbacks (community, ticket_id, done_at, done_by, satisfied, score) VALUES ('bench', ?1, ?2, 'chen-jing', ?3, ?4)")
            .unwrap();
        let start = Utc.with_ymd_and_hms(2026, 1, 1, 1, 0, 0).unwrap();
        let tickets = households / 20;
        for k in 0..tickets {
            let opened = start + Duration::minutes((k as i64 * 525_600) / tickets as i64);
            let closed = opened + Duration::hours(20);
            let kind = if k % 4 == 0 { "complaint" } else { "repair" };
            let who = ["weixiu-zhao", "weixiu-sun", "weixiu-li"][k % 3];
            t.execute(params![
                format!("T{k}"),
                format!("{}-1-{}", (k * 20) / 100, (k * 20) % 100),
                kind,
                who,
                wuye::domain::fmt_ts(opened),
                wuye::domain::fmt_ts(closed)
            ])
            .unwrap();
            let ticket = tx.last_insert_rowid();
            if k % 10 != 9 {
                let after = if k % 10 == 0 { 50 } else { 18 };
                let score = [5, 4, 4, 5, 3][k % 5];
                c.execute(params![
                    ticket,
                    wuye::domain::fmt_ts(closed + Duration::hours(after)),
                    score >= 4,
                    score
                ])
                .unwrap();
            }
        }
        // Survey: Q2 and Q3, every household invited, 60% answer.
        for (key, opens, closes) in [
            ("2026Q2", "2026-04-01T01:00:00Z", "2026-04-28T10:00:00Z"),
            ("2026Q3", "2026-07-01T01:00:00Z", "2026-07-28T10:00:00Z"),
        ] {
            tx.execute(
                "INSERT INTO survey_campaigns (community, key, opens_at, closes_at) VALUES ('bench', ?1, ?2, ?3)",
                params![key, opens, closes],
            )
            .unwrap();
            let campaign = tx.last_insert_rowid();
            let mut inv = tx
                .prepare("INSERT INTO survey_invitations (community, campaign_id, household, token, invited_at) VALUES ('bench', ?1, ?2, ?3, ?4)")
                .unwrap();
            let mut r = tx
                .prepare("INSERT INTO survey_responses (invitation_id, community, answered_at, reception, repairs, cleaning, security, greenery, comment) VALUES (?1, 'bench', ?2, ?3, ?4, ?5, ?6, ?7, ?8)")
                .unwrap();
            for i in 0..households {
                let id = format!("{}-1-{}", i / 100, i % 100);
                inv.execute(params![campaign, id, format!("{key}-{i}"), opens])
                    .unwrap();
                if i % 5 < 3 {
                    let s = |k: usize| ((i * 7 + k * 3) % 5 + 1) as i64;
                    let comment = if s(1) <= 2 { "报修太慢" } else { "" };
                    r.execute(params![
                        tx.last_insert_rowid(),
                        opens,
                        s(0),
                        s(1),
                        s(2),
                        s(3),
                        s(4),
                        comment
                    ])
                    .unwrap();
                }
            }
        }
    }
    tx.commit().unwrap();
}
