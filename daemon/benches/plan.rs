//! Planning benchmark: the next due instant of every scheduled workflow of 10,000 communities
//! × 5 workflows, as the daemon computes it at start-up and after a reload.
//!
//! Run with `cargo bench -p wuye --bench plan`. Target: under 50 ms for the 50,000 schedules.
//! The mix is what a property company has: mostly Asia/Shanghai with the cn-mainland calendar
//! (run, skip and shift), some other zones with DST, daily, weekly, monthly and quarterly
//! expressions, a few with the day-of-month/day-of-week OR rule.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use wuye::config::NonWorkday;
use wuye::schedule::{Calendar, CronExpr, Schedule};

const COMMUNITIES: usize = 10_000;
const WORKFLOWS: usize = 5;
const ROUNDS: usize = 7;

const EXPRESSIONS: [&str; 10] = [
    "0 9 * * *",
    "30 8 1 * *",
    "0 10 * * MON-FRI",
    "*/15 8-18 * * *",
    "0 0 1,15 * MON",
    "0 9 15 3,6,9,12 *",
    "0 19 * * 5",
    "0 9 5 * *",
    "0 10 1 4,10 *",
    "0 8,12,17 * * 1-5",
];

const ZONES: [Tz; 6] = [
    Tz::Asia__Shanghai,
    Tz::Asia__Shanghai,
    Tz::Asia__Shanghai,
    Tz::Asia__Hong_Kong,
    Tz::America__New_York,
    Tz::Australia__Lord_Howe,
];

fn schedules(calendar: &Arc<Calendar>) -> Vec<Schedule> {
    let mut out = Vec::with_capacity(COMMUNITIES * WORKFLOWS);
    for c in 0..COMMUNITIES {
        let tz = ZONES[c % ZONES.len()];
        let cal = (c % 5 != 4).then(|| calendar.clone());
        for w in 0..WORKFLOWS {
            let expr = EXPRESSIONS[(c * 7 + w * 3) % EXPRESSIONS.len()];
            let on_non_workday = match (c + w) % 3 {
                0 => NonWorkday::Run,
                1 => NonWorkday::Skip,
                _ => NonWorkday::Shift,
            };
            out.push(Schedule {
                cron: CronExpr::parse(expr).expect("benchmark expressions parse"),
                tz,
                calendar: cal.clone(),
                on_non_workday,
            });
        }
    }
    out
}

/// Plans every schedule once; returns the elapsed time.
fn plan_all(schedules: &[Schedule], now: DateTime<Utc>) -> Duration {
    let start = Instant::now();
    let mut planned = 0usize;
    for s in schedules {
        if black_box(s).next_after(black_box(now)).is_some() {
            planned += 1;
        }
    }
    let elapsed = start.elapsed();
    assert_eq!(
        planned,
        schedules.len(),
        "every schedule has a next instant"
    );
    elapsed
}

fn report(label: &str, schedules: &[Schedule], now: DateTime<Utc>) -> Duration {
    let mut times: Vec<Duration> = (0..ROUNDS).map(|_| plan_all(schedules, now)).collect();
    times.sort();
    let median = times[ROUNDS / 2];
    println!(
        "{label:<46} {:>5} schedules  median {:>7.2} ms  min {:>7.2} ms  ({:.0} ns each)",
        schedules.len(),
        median.as_secs_f64() * 1e3,
        times[0].as_secs_f64() * 1e3,
        median.as_secs_f64() * 1e9 / schedules.len() as f64
    );
    median
}

fn main() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/calendars/cn-mainland.toml");
    let calendar = Arc::new(Calendar::load(&path).expect("shipped calendar loads"));
    let all = schedules(&calendar);
    let plain: Vec<Schedule> = all
        .iter()
        .map(|s| Schedule {
            calendar: None,
            on_non_workday: NonWorkday::Run,
            ..s.clone()
        })
        .collect();

    let ordinary: DateTime<Utc> = "2026-11-18T03:00:00Z".parse().unwrap();
    // The eve of the 8-day 国庆 holiday: skip and shift have to look past it.
    let holiday_eve: DateTime<Utc> = "2026-09-30T10:00:00Z".parse().unwrap();

    println!(
        "plan the next due instant, {COMMUNITIES} communities x {WORKFLOWS} workflows, {ROUNDS} rounds"
    );
    let a = report("mixed, ordinary Wednesday (2026-11-18)", &all, ordinary);
    let b = report("mixed, eve of National Day (2026-09-30)", &all, holiday_eve);
    let c = report("crontab + zone only, ordinary Wednesday", &plain, ordinary);
    println!(
        "ratios: holiday eve / ordinary = {:.2}, calendar mix / crontab only = {:.2}",
        b.as_secs_f64() / a.as_secs_f64(),
        a.as_secs_f64() / c.as_secs_f64()
    );
    let worst = a.max(b);
    println!(
        "target < 50 ms: {} ({:.2} ms)",
        if worst < Duration::from_millis(50) {
            "met"
        } else {
            "MISSED"
        },
        worst.as_secs_f64() * 1e3
    );
}
