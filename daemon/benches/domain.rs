//! Domain queries at the scale of the benchmark: 100,000 households, a year of monthly
//! property bills (1.2 million), 80% of households paid up, 20% owing their last three months.
//! Prints how long the reads a fee-reminder run makes take, and import throughput.
//!
//! Run: `cargo bench -p wuye --bench domain --profile dev` (dependencies, SQLite included, are
//! optimised in the dev profile; our code is a thin layer over SQLite), or without
//! `--profile dev` for a release build. `DOMAIN_BENCH_HOUSEHOLDS=20000` for a smaller run.

use std::time::Instant;

use chrono::{NaiveDate, TimeZone, Utc};
use rusqlite::{Connection, params};
use wuye::domain::import::{Kind, import};
use wuye::store::domain::{DomainRead, apply_schema};

fn main() {
    let households: usize = std::env::var("DOMAIN_BENCH_HOUSEHOLDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wuye.db");
    let mut conn = Connection::open(&path).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "foreign_keys", "ON").unwrap();
    apply_schema(&conn).unwrap();

    let t = Instant::now();
    seed(&mut conn, households);
    println!(
        "seed: {households} households, {} bills, {} payments in {:.2?}",
        households * 12,
        (households * 8 / 10) * 12 + (households - households * 8 / 10) * 9,
        t.elapsed()
    );

    let d = DomainRead::new(&conn, "bench");
    let due = NaiveDate::from_ymd_opt(2026, 12, 31).unwrap();
    d.unpaid_bills().unwrap(); // warm the page cache, as a daemon's would be
    let t = Instant::now();
    let unpaid = d.unpaid_bills_due_by(due).unwrap();
    let scan = t.elapsed();
    let t = Instant::now();
    let grouped = d.unpaid_by_household().unwrap();
    let group = t.elapsed();
    let t = Instant::now();
    let mut recipients = 0;
    for (h, _) in &grouped {
        recipients += d.household_recipients(h).unwrap().len();
    }
    let contacts = t.elapsed();
    let t = Instant::now();
    let probe: Vec<i64> = unpaid
        .iter()
        .step_by(unpaid.len() / 1000 + 1)
        .map(|b| b.bill.id)
        .collect();
    for id in &probe {
        assert_eq!(d.is_bill_unpaid(*id).unwrap(), Some(true));
    }
    let recheck = t.elapsed();
    let at = Utc.with_ymd_and_hms(2026, 11, 21, 0, 0, 0).unwrap();
    let t = Instant::now();
    let as_of = d.unpaid_bills_as_of(at, due).unwrap();
    let replay = t.elapsed();
    // The same answer by summing payments per bill (the schema before `paid_fen`), in the
    // same run, for the ratio.
    let t = Instant::now();
    let summed: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM (SELECT b.id FROM bills b LEFT JOIN payments p ON p.bill_id = b.id
             WHERE b.community = 'bench' AND b.due_date <= '2026-12-31' GROUP BY b.id
             HAVING COALESCE(SUM(p.amount_fen) FILTER (WHERE p.reversed_at IS NULL), 0)
                    < b.amount_fen)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let summing = t.elapsed();
    assert_eq!(summed as usize, unpaid.len());
    println!("unpaid_bills_due_by: {} bills in {scan:.2?}", unpaid.len());
    println!(
        "  same answer by summing payments per bill: {summing:.2?} ({:.1}x slower)",
        summing.as_secs_f64() / scan.as_secs_f64()
    );
    println!(
        "unpaid_by_household: {} households in {group:.2?}",
        grouped.len()
    );
    println!("household_recipients for each: {recipients} owners in {contacts:.2?}");
    println!(
        "is_bill_unpaid (outbox re-check): {} lookups in {recheck:.2?} ({:.1} µs each)",
        probe.len(),
        recheck.as_secs_f64() * 1e6 / probe.len() as f64
    );
    println!("unpaid_bills_as_of: {} bills in {replay:.2?}", as_of.len());
    println!(
        "fee-reminder reads total (unpaid grouped + contacts): {:.2?}",
        group + contacts
    );

    // Import throughput: a 100,000-row bills file for a fresh community.
    let mut csv = String::from("building,unit,room,name,phone\n");
    for i in 0..households {
        csv.push_str(&format!(
            "{},{},{},业主{i},1380000{:04}\n",
            i / 1000,
            (i / 100) % 10,
            i % 100,
            i % 10000
        ));
    }
    let t = Instant::now();
    let r = import(
        &mut conn,
        "import",
        chrono_tz::Asia::Shanghai,
        Kind::Owners,
        "owners.csv",
        csv.as_bytes(),
        None,
    )
    .unwrap();
    let owners = t.elapsed();
    let mut csv = String::from("household,fee_type,period,amount_fen,due_date\n");
    for i in 0..households {
        csv.push_str(&format!(
            "{}-{}-{},property,2026-01,32000,2026-01-15\n",
            i / 1000,
            (i / 100) % 10,
            i % 100
        ));
    }
    let t = Instant::now();
    let b = import(
        &mut conn,
        "import",
        chrono_tz::Asia::Shanghai,
        Kind::Bills,
        "bills.csv",
        csv.as_bytes(),
        None,
    )
    .unwrap();
    let bills = t.elapsed();
    let t = Instant::now();
    let again = import(
        &mut conn,
        "import",
        chrono_tz::Asia::Shanghai,
        Kind::Bills,
        "bills.csv",
        csv.as_bytes(),
        None,
    )
    .unwrap();
    let reimport = t.elapsed();
    println!(
        "import owners: {} rows in {owners:.2?} ({:.0} rows/s)",
        r.rows,
        r.rows as f64 / owners.as_secs_f64()
    );
    println!(
        "import bills: {} rows in {bills:.2?} ({:.0} rows/s); re-import ({again}) in {reimport:.2?}",
        b.rows,
        b.rows as f64 / bills.as_secs_f64()
    );
}

fn seed(conn: &mut Connection, households: usize) {
    let tx = conn.transaction().unwrap();
    {
        let mut h = tx
            .prepare("INSERT INTO households (community, id, building, unit, room) VALUES ('bench', ?1, ?2, '1', ?3)")
            .unwrap();
        let mut o = tx
            .prepare("INSERT INTO owners (community, household, name, phone, language, preferred_contact) VALUES ('bench', ?1, ?2, ?3, 'zh-CN', 'sms')")
            .unwrap();
        let mut b = tx
            .prepare("INSERT INTO bills (community, household, fee_type, period, amount_fen, due_date) VALUES ('bench', ?1, 'property', ?2, 32000, ?3)")
            .unwrap();
        let mut p = tx
            .prepare("INSERT INTO payments (community, reference, bill_id, amount_fen, paid_at) VALUES ('bench', ?1, ?2, 32000, ?3)")
            .unwrap();
        for i in 0..households {
            let id = format!("{}-1-{}", i / 100, i % 100);
            h.execute(params![id, (i / 100).to_string(), (i % 100).to_string()])
                .unwrap();
            o.execute(params![
                id,
                format!("业主{i}"),
                format!("1380000{:04}", i % 10000)
            ])
            .unwrap();
            let owes_from = if i % 5 == 0 { 10 } else { 13 };
            for m in 1..=12 {
                b.execute(params![
                    id,
                    format!("2026-{m:02}"),
                    format!("2026-{m:02}-15")
                ])
                .unwrap();
                let bill = tx.last_insert_rowid();
                if m < owes_from {
                    p.execute(params![
                        format!("R{i}-{m}"),
                        bill,
                        format!("2026-{m:02}-10T02:00:00Z")
                    ])
                    .unwrap();
                }
            }
        }
    }
    tx.commit().unwrap();
}
