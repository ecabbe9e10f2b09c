//! `wuyed report satisfaction|callbacks|fees --community ID --period 2026Q3 [--format text|html]`:
//! one community's figures for one period, as aligned text tables or a self-contained HTML page
//! with SVG charts. Reads the database read-only, so it is safe to run next to the daemon.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::NaiveDate;

use crate::clock::{Clock, SystemClock};
use crate::domain::Language;
use crate::exit::Coded;
use crate::report::{Format, Kind, Period, build, language_of};
use crate::store::report as q;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Which report.
    #[arg(value_enum)]
    pub kind: Kind,
    /// Community id; must be configured.
    #[arg(long)]
    pub community: String,
    /// Period: a month (2026-09), quarter (2026Q3), half year (2026H2) or year (2026).
    #[arg(long, value_parser = parse_period)]
    pub period: Period,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Language of the report's labels: zh-CN or en. Default: the community's `locale`.
    #[arg(long, value_parser = parse_language)]
    pub lang: Option<Language>,
    /// Write the report to this file instead of standard output.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Configuration directory.
    #[arg(long, default_value = "config")]
    pub config: PathBuf,
    /// Judge a period that is not over yet as of this local day (YYYY-MM-DD) instead of today.
    #[arg(long)]
    pub as_of: Option<NaiveDate>,
}

fn parse_period(s: &str) -> Result<Period, String> {
    s.parse()
}

fn parse_language(s: &str) -> Result<Language, String> {
    s.parse()
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let settings = crate::config::load(&args.config).map_err(|errs| {
        let mut stderr = std::io::stderr().lock();
        for e in &errs.0 {
            let line = e.line.map(|l| format!(":{l}")).unwrap_or_default();
            let _ = writeln!(
                stderr,
                "{}{line}: {}: {}",
                e.file.display(),
                e.key,
                e.message
            );
        }
        Coded::config(errs)
    })?;
    let Some(community) = settings.community(&args.community) else {
        let known: Vec<&str> = settings.communities.iter().map(|c| c.id.as_str()).collect();
        return Err(Coded::usage(anyhow::anyhow!(
            "community {:?} is not configured in {} (configured: {})",
            args.community,
            args.config.display(),
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        ))
        .into());
    };
    let db_path = settings.data_dir.join(crate::store::DB_FILE);
    if !db_path.exists() {
        return Err(Coded::new(
            crate::exit::IOERR,
            anyhow::anyhow!(
                "database {} does not exist: import data first (wuyed import ...) or check \
                 daemon.data_dir in {}",
                db_path.display(),
                args.config.join("wuyed.toml").display()
            ),
        )
        .into());
    }
    let conn = q::open_read_only(&db_path)
        .with_context(|| format!("cannot open {} read-only", db_path.display()))
        .map_err(Coded::temporary)?;
    let schema = q::has_domain_schema(&conn)
        .with_context(|| format!("cannot read {}", db_path.display()))
        .map_err(Coded::temporary)?;
    if !schema {
        return Err(Coded::data(anyhow::anyhow!(
            "database {} holds no owner, bill or ticket data yet: import it first (wuyed import ...)",
            db_path.display()
        ))
        .into());
    }
    let today = args.as_of.unwrap_or_else(|| {
        SystemClock::new()
            .now()
            .with_timezone(&community.tz)
            .date_naive()
    });
    if today < args.period.start() {
        return Err(Coded::usage(anyhow::anyhow!(
            "period {} starts on {}, after the day the report is judged at ({today}{})",
            args.period,
            args.period.start(),
            if args.as_of.is_some() {
                ", --as-of"
            } else {
                ", today"
            }
        ))
        .into());
    }
    let lang = args.lang.unwrap_or_else(|| language_of(community));
    let out = build(
        &conn,
        community,
        args.kind,
        args.period,
        today,
        args.format,
        lang,
    )
    .with_context(|| format!("cannot read the report's data from {}", db_path.display()))?;
    match &args.output {
        Some(path) => write_file(path, &out)?,
        None => std::io::stdout().lock().write_all(out.as_bytes())?,
    }
    Ok(())
}

fn write_file(path: &Path, s: &str) -> anyhow::Result<()> {
    std::fs::write(path, s)
        .with_context(|| format!("cannot write {}", path.display()))
        .map_err(|e| Coded::new(crate::exit::IOERR, e).into())
}
