//! Entry points for the cargo-fuzz targets in `fuzz/`, and their replay in the ordinary test
//! suite.
//!
//! Each function takes the fuzzer's bytes, drives one place where the daemon reads what people or
//! other systems wrote, and panics only when wuye is wrong: a crash, a broken promise (a file
//! that imported once must import again unchanged), a 5xx the API does not document. Bad input
//! itself is expected; it must be refused with a message, never crash or half-apply.
//!
//! They live in the library, not in `fuzz/`, for two reasons: they reach crate-private paths
//! (`wuyed check`'s own function, the importer inside a transaction with a fixed "now"), and the
//! unit tests below replay every committed input (`fuzz/seeds/<target>/`: seeds from `config/`
//! and the demo CSVs, and each input that once crashed) through the very same function, so a
//! fixed crash stays fixed without libFuzzer or a nightly toolchain. Built only for tests and
//! with the `fuzzing` feature (which `fuzz/Cargo.toml` turns on): the daemon does not carry them.
//!
//! Input formats (`fuzz/seeds.py` writes the seeds in them):
//! - [`config`]: `wuyed.toml`, a NUL byte, one community file.
//! - [`csv_import`]: one byte choosing the kind (owners, bills, payments, balances, tickets,
//!   surveys), then the CSV file.
//! - [`cron`]: one byte choosing a timezone, four bytes of start instant, then the expression.
//! - [`http_body`]: requests separated by NUL bytes, each one byte choosing the endpoint, one
//!   choosing content type and credentials, then the body.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use rusqlite::Connection;

use crate::domain::import::{self, ImportError, Kind};
use crate::store::domain::{BillInput, OwnerInput, apply_schema, with_tx};

/// The repository's `config/`, where the seeds and the fixtures come from.
fn repo_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../config")
}

/// A fixed "today" and "now", so an input behaves the same in every run and on every day.
fn fixed_now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 2, 1, 2, 0, 0).unwrap()
}

/// A fresh in-memory copy of `template` (SQLite's backup API: far cheaper than migrating a new
/// database for every input), with the foreign keys the daemon turns on.
fn copy_of(template: &Connection) -> Connection {
    let mut conn = Connection::open_in_memory().expect("in-memory database");
    rusqlite::backup::Backup::new(template, &mut conn)
        .and_then(|b| b.run_to_completion(i32::MAX, std::time::Duration::ZERO, None))
        .expect("copying the fixture database");
    conn.pragma_update(None, "foreign_keys", "ON")
        .expect("foreign keys");
    conn
}

fn migrated() -> Connection {
    let conn = Connection::open_in_memory().expect("in-memory database");
    conn.pragma_update(None, "foreign_keys", "ON")
        .expect("foreign keys");
    apply_schema(&conn).expect("schema");
    conn
}

// ---------------------------------------------------------------------------------------------
// Configuration

/// A config directory of this process's own, with the repository's calendars and templates and
/// the built plugins (when `./scripts/build-plugins.sh` has run), so a valid input gets as far as
/// the plugin and template checks. Each input overwrites its two files.
fn config_fixture() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("wuye-fuzz-config")
            .tempdir()
            .expect("temporary directory");
        let src = repo_config();
        copy_tree(&src.join("calendars"), &dir.path().join("calendars"));
        copy_tree(&src.join("templates"), &dir.path().join("templates"));
        let plugins = dir.path().join("plugins");
        std::fs::create_dir_all(&plugins).expect("plugins directory");
        let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/wasm32-wasip2/release");
        for entry in std::fs::read_dir(&built).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "wasm") {
                let _ = std::fs::copy(&path, plugins.join(entry.file_name()));
            }
        }
        std::fs::create_dir_all(dir.path().join("communities")).expect("communities directory");
        dir
    })
    .path()
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("fixture directory");
    for entry in std::fs::read_dir(from).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            copy_tree(&path, &to.join(entry.file_name()));
        } else {
            std::fs::copy(&path, to.join(entry.file_name())).expect("copying a fixture file");
        }
    }
}

/// `wuyed.toml` and one community file through `wuyed check`'s own function (the load, the
/// plugins' needs, `run`'s start-up checks). Plugins are not compiled (wasmtime's work, and
/// seconds per input): `plugin_check` is the loader's default, the file exists.
pub fn config(data: &[u8]) {
    let (daemon, community) = match data.iter().position(|b| *b == 0) {
        Some(at) => (&data[..at], Some(&data[at + 1..])),
        None => (data, None),
    };
    let dir = config_fixture();
    std::fs::write(dir.join(crate::config::DAEMON_FILE), daemon).expect("writing wuyed.toml");
    let community_file = dir.join("communities/fuzz.toml");
    match community {
        Some(text) => std::fs::write(&community_file, text).expect("writing the community file"),
        None => {
            let _ = std::fs::remove_file(&community_file);
        }
    }
    let options = crate::config::LoadOptions {
        // Not the process's environment: an input must mean the same everywhere.
        env: Default::default(),
        plugin_check: crate::config::plugin_exists,
        today: fixed_now().date_naive(),
        resolve_secrets: true,
    };
    let (report, notes) = crate::cli::check::check_dir(dir, &options);
    assert!(
        report.settings.is_some() || !report.errors.is_empty(),
        "the check produced neither settings nor errors"
    );
    for e in report.errors.iter().chain(&report.warnings) {
        let shown = e.to_string();
        assert!(!shown.is_empty());
        // A line must be one of the file's own, or an editor jumps nowhere.
        let text = if e.file.ends_with(crate::config::DAEMON_FILE) {
            Some(daemon)
        } else if e.file.ends_with("communities/fuzz.toml") {
            community
        } else {
            None
        };
        if let (Some(line), Some(text)) = (e.line, text) {
            let lines = text.iter().filter(|b| **b == b'\n').count() + 1;
            assert!(
                (1..=lines).contains(&line),
                "{shown}: line {line} is outside the file's {lines} lines"
            );
        }
    }
    for n in notes {
        assert!(!n.is_empty());
    }
}

// ---------------------------------------------------------------------------------------------
// CSV import

const KINDS: [Kind; 6] = [
    Kind::Owners,
    Kind::Bills,
    Kind::Payments,
    Kind::Balances,
    Kind::Tickets,
    Kind::Surveys,
];

/// A database holding the demo community's households and owners (`config/data/shuipan`), so
/// the bills, payments, tickets and surveys a fuzzer derives from the demo files refer to
/// households that exist and get past the reference checks.
fn import_template() -> Connection {
    let mut conn = migrated();
    let owners = std::fs::read(repo_config().join("data/shuipan/owners.csv"))
        .expect("config/data/shuipan/owners.csv");
    import::import(
        &mut conn,
        "shuipan",
        chrono_tz::Asia::Shanghai,
        Kind::Owners,
        "owners.csv",
        &owners,
        None,
    )
    .expect("the demo owners import");
    conn
}

/// One CSV file through the importer's parsing, validation and writing, into an in-memory copy of
/// the demo community. A file that imports must import a second time with nothing changed (the
/// promise `wuyed import` makes); one that is refused must say why, and not with the database's
/// own error, which means a check let through what the schema refuses.
pub fn csv_import(data: &[u8]) {
    thread_local! {
        static TEMPLATE: Connection = import_template();
    }
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    let kind = KINDS[usize::from(selector) % KINDS.len()];
    let mut conn = TEMPLATE.with(copy_of);
    let once = |conn: &mut Connection| {
        let tx = crate::store::Tx::begin(conn)?;
        let report = import::import_tx(
            &tx,
            "shuipan",
            chrono_tz::Asia::Shanghai,
            kind,
            "fuzz.csv",
            bytes,
            None,
            fixed_now(),
        )?;
        tx.commit()?;
        Ok::<_, ImportError>(report)
    };
    match once(&mut conn) {
        Ok(first) => {
            assert_eq!(
                first.rows,
                first.inserted + first.updated + first.unchanged,
                "{first}"
            );
            let again = once(&mut conn).unwrap_or_else(|e| {
                panic!("a {kind:?} file that imported once is refused the second time: {e}")
            });
            assert_eq!(
                (again.rows, again.unchanged),
                (first.rows, first.rows),
                "importing the same {kind:?} file again changed something: {again}"
            );
        }
        Err(ImportError::Rows(errors)) => {
            assert!(!errors.errors.is_empty(), "refused without a reason");
            for e in &errors.errors {
                assert!(e.line >= 1 && !e.message.is_empty(), "{e:?}");
            }
        }
        Err(ImportError::Sql(e)) => {
            panic!("the database refused a {kind:?} file the checks accepted: {e}")
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Crontab expressions

/// Zones with every kind of daylight-saving oddity (half-hour shifts, a skipped day) and two
/// without any, where the `cron` crate can serve as an oracle.
const ZONES: [Tz; 8] = [
    chrono_tz::Asia::Shanghai,
    chrono_tz::UTC,
    chrono_tz::America::New_York,
    chrono_tz::Europe::London,
    chrono_tz::Australia::Lord_Howe,
    chrono_tz::Pacific::Apia,
    chrono_tz::America::Santiago,
    chrono_tz::Asia::Kolkata,
];

/// One crontab expression: parsed, and if valid its next firing times from a start instant the
/// input chooses (2000 to 2136), each strictly after the last. Where our semantics and the `cron`
/// crate's agree by design (see `schedule::cron`: six fields, weekdays as names, not both days
/// restricted, no daylight saving) both must give the same times.
pub fn cron(data: &[u8]) {
    let Some((head, expr)) = data.split_at_checked(5) else {
        return;
    };
    let Ok(expr) = std::str::from_utf8(expr) else {
        return;
    };
    let tz = ZONES[usize::from(head[0]) % ZONES.len()];
    let offset = u32::from_le_bytes([head[1], head[2], head[3], head[4]]);
    let start = Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).unwrap()
        + chrono::Duration::seconds(i64::from(offset));
    let Ok(ours) = crate::schedule::CronExpr::parse(expr) else {
        return;
    };
    let mut mine = Vec::new();
    let mut after = start;
    for _ in 0..5 {
        let Some(next) = ours.next_after(after, tz) else {
            break;
        };
        assert!(
            next > after,
            "{expr:?} in {tz}: {next} is not after {after}"
        );
        mine.push(next);
        after = next;
    }
    // The parser refuses days no selected month has, so a valid expression fires within the
    // search's 400 years of any start in range.
    assert!(
        !mine.is_empty(),
        "{expr:?} in {tz} never fires after {start}"
    );
    // The crate knows years up to 2099 only (it finds nothing after): compare within them.
    let before_2100 = mine
        .last()
        .is_some_and(|t| *t < Utc.with_ymd_and_hms(2100, 1, 1, 0, 0, 0).unwrap());
    if before_2100 && agrees_with_cron_crate(expr, tz) {
        use std::str::FromStr as _;
        if let Ok(oracle) = ::cron::Schedule::from_str(expr.trim()) {
            let theirs: Vec<DateTime<Utc>> = oracle
                .after(&start.with_timezone(&tz))
                .take(mine.len())
                .map(|t| t.with_timezone(&Utc))
                .collect();
            assert_eq!(mine, theirs, "{expr:?} in {tz} after {start}");
        }
    }
}

/// Whether `expr` is in the part of crontab where `schedule::cron` and the `cron` crate mean the
/// same thing (its module doc lists where they differ).
fn agrees_with_cron_crate(expr: &str, tz: Tz) -> bool {
    let fields: Vec<&str> = expr.split_whitespace().collect();
    if fields.len() != 6 || !matches!(tz, chrono_tz::Asia::Shanghai | chrono_tz::UTC) {
        return false;
    }
    let (dom, dow) = (fields[3], fields[5]);
    // The crate numbers weekdays 1-7 from Sunday; names mean the same in both.
    let dow_by_name = !dow.bytes().any(|b| b.is_ascii_digit());
    // Both restricted: Vixie cron ORs them, the crate ANDs them.
    let one_day_rule = dom.starts_with('*') || dow.starts_with('*');
    dow_by_name && one_day_rule
}

// ---------------------------------------------------------------------------------------------
// HTTP bodies

const API_TOKEN: &str = "fuzz-billing-token-0123456789";
const OTHER_TOKEN: &str = "fuzz-neighbour-token-0123456789";

/// The endpoints that read a body, with paths naming records the fixture holds (`{survey}` and
/// `{rsvp}` are the fixture's invitation tokens).
const ENDPOINTS: [(&str, &str); 13] = [
    ("POST", "/api/v1/communities/shuipan/tickets"),
    ("POST", "/api/v1/communities/shuipan/tickets/T-1/close"),
    ("POST", "/api/v1/communities/shuipan/tickets/T-1/callback"),
    ("POST", "/api/v1/communities/shuipan/payments"),
    ("POST", "/api/v1/communities/shuipan/payments/P-1/reverse"),
    ("PUT", "/api/v1/communities/shuipan/events/2026H1-fete"),
    ("POST", "/api/v1/communities/shuipan/events/2026H1/rsvps"),
    ("POST", "/api/v1/communities/shuipan/events/2026H1/summary"),
    ("POST", "/api/v1/communities/shuipan/payment-plans"),
    (
        "POST",
        "/api/v1/communities/shuipan/payment-plans/1-1-101/end",
    ),
    ("POST", "/api/v1/surveys/{survey}/responses"),
    ("POST", "/survey/{survey}"),
    ("POST", "/rsvp/{rsvp}"),
];

const CONTENT_TYPES: [Option<&str>; 4] = [
    Some("application/json"),
    Some("application/json; charset=utf-8"),
    Some("application/x-www-form-urlencoded"),
    None,
];

struct HttpFixture {
    runtime: tokio::runtime::Runtime,
    template: Connection,
    survey: String,
    rsvp: String,
}

/// The database every input starts from: a household with an owner, an unpaid bill, a survey
/// invitation and an event with an RSVP invitation.
fn http_fixture() -> HttpFixture {
    let mut conn = migrated();
    let now = fixed_now();
    let (survey, rsvp) = with_tx(&mut conn, |tx| -> rusqlite::Result<(String, String)> {
        let d = tx.domain("shuipan");
        d.upsert_household("1", "1", "101")?;
        d.upsert_owner(&OwnerInput {
            household: "1-1-101".into(),
            name: "Emma Brown".into(),
            phone: None,
            email: Some("emma.brown@example.com".into()),
            language: crate::domain::Language::En,
            preferred_contact: crate::domain::ContactChannel::Email,
        })?;
        d.upsert_bill(&BillInput {
            household: "1-1-101".into(),
            fee_type: crate::domain::FeeType::Property,
            period: "2026-01".parse().expect("period"),
            amount_fen: 32_000,
            due_date: NaiveDate::from_ymd_opt(2026, 1, 31).expect("date"),
        })?;
        let campaign = d.upsert_campaign("2026Q1", now, now + chrono::Duration::days(60))?;
        let survey = d.invite(campaign.id, &["1-1-101".to_string()], now)?[0]
            .token
            .clone();
        let day = NaiveDate::from_ymd_opt(2026, 2, 14).expect("date");
        let starts = Utc.with_ymd_and_hms(2026, 2, 14, 1, 30, 0).unwrap();
        let event = d.upsert_event("2026H1", "Lantern party", day, Some(starts), "Club house")?;
        let rsvp = d.rsvp_invitation(event.id, "1-1-101", now)?.token;
        Ok((survey, rsvp))
    })
    .expect("the HTTP fixture");
    HttpFixture {
        runtime: tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime"),
        template: conn,
        survey,
        rsvp,
    }
}

/// Up to eight requests with arbitrary bodies, in order, through the daemon's whole router
/// in-process (authentication, body limit, JSON and form extraction, handlers, database) on a
/// fresh copy of the fixture. No request may panic or get a 5xx: none is documented for these
/// endpoints, so a 500 means a bad body reached the database or a handler unchecked.
pub fn http_body(data: &[u8]) {
    use tower::ServiceExt as _;
    thread_local! {
        static FIXTURE: HttpFixture = http_fixture();
    }
    FIXTURE.with(|f| {
        let state = crate::http::AppState::new(
            copy_of(&f.template),
            vec![
                crate::http::ResolvedToken::new("billing", API_TOKEN, vec!["shuipan".into()]),
                crate::http::ResolvedToken::new("neighbour", OTHER_TOKEN, vec!["other".into()]),
            ],
            ["shuipan".to_string(), "other".to_string()],
            std::sync::Arc::new(crate::clock::ManualClock::new(fixed_now())),
        );
        let app = crate::http::router(state);
        for request in data.split(|b| *b == 0).take(8) {
            let [endpoint, variant, body @ ..] = request else {
                continue;
            };
            let (method, path) = ENDPOINTS[usize::from(*endpoint) % ENDPOINTS.len()];
            let path = path
                .replace("{survey}", &f.survey)
                .replace("{rsvp}", &f.rsvp);
            let mut req = axum::http::Request::builder().method(method).uri(&path);
            if let Some(ct) = CONTENT_TYPES[usize::from(variant & 3)] {
                req = req.header("content-type", ct);
            }
            let token = if variant & 4 == 0 {
                API_TOKEN
            } else {
                OTHER_TOKEN
            };
            req = req.header("authorization", format!("Bearer {token}"));
            let req = req
                .body(axum::body::Body::from(body.to_vec()))
                .expect("request");
            let (status, answer) = f.runtime.block_on(async {
                let res = app.clone().oneshot(req).await.expect("infallible");
                let status = res.status();
                let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
                    .await
                    .unwrap_or_default();
                (status, bytes)
            });
            assert!(
                !status.is_server_error(),
                "{method} {path} with {:?} answered {status}: {}",
                String::from_utf8_lossy(body),
                String::from_utf8_lossy(&answer)
            );
        }
    });
}

#[cfg(test)]
mod tests {
    //! Every committed input of each target, replayed through its entry function: the seeds and
    //! every input that once crashed (named `crash-*`, committed with its fix).

    use super::*;

    fn replay(target: &str, entry: fn(&[u8])) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fuzz/seeds")
            .join(target);
        let mut inputs: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        inputs.sort();
        assert!(!inputs.is_empty(), "no inputs in {}", dir.display());
        for input in inputs {
            let data = std::fs::read(&input).unwrap();
            let outcome = std::panic::catch_unwind(|| entry(&data));
            assert!(outcome.is_ok(), "{} fails again", input.display());
        }
    }

    #[test]
    fn replays_the_committed_config_inputs() {
        replay("config", config);
    }

    #[test]
    fn replays_the_committed_csv_import_inputs() {
        replay("csv_import", csv_import);
    }

    #[test]
    fn replays_the_committed_cron_inputs() {
        replay("cron", cron);
    }

    #[test]
    fn replays_the_committed_http_body_inputs() {
        replay("http_body", http_body);
    }

    /// The harness itself can fail: a body the API must refuse does not pass for a crash, and a
    /// valid expression's times are checked against the oracle.
    #[test]
    fn the_entry_points_accept_refusals_and_check_the_oracle() {
        // A payment for a bill that does not exist: 404/422, not a failure of the harness.
        let mut input = vec![3, 0];
        input.extend_from_slice(br#"{"reference":"R","household":"9-9-9"}"#);
        http_body(&input);
        let mut input = vec![0, 0, 0, 0, 0];
        input.extend_from_slice(b"0 */15 9-17 * * MON-FRI");
        cron(&input);
        assert!(agrees_with_cron_crate(
            "0 */15 9-17 * * MON-FRI",
            chrono_tz::UTC
        ));
        assert!(!agrees_with_cron_crate("0 0 9 1 * MON", chrono_tz::UTC));
        assert!(!agrees_with_cron_crate("0 0 9 * * 1-5", chrono_tz::UTC));
    }
}
