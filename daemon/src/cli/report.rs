//! `wuyed report satisfaction|callbacks|fees --community ID --period 2026Q3 [--format text|html]`:
//! one community's figures for one period, as aligned text tables or a self-contained HTML page
//! with SVG charts. Reads the database read-only, so it is safe to run next to the daemon.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{Days, NaiveDate};

use crate::clock::{Clock, SystemClock};
use crate::config::Community;
use crate::exit::Coded;
use crate::report::callbacks::Sla;
use crate::report::{self, Period, local_midnight};
use crate::store::domain::DomainRead;
use crate::store::report as q;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Kind {
    /// Survey response rate and satisfaction per service area, vs the previous period.
    Satisfaction,
    /// Callback rate, callbacks on time against the SLA, satisfaction among callbacks.
    Callbacks,
    /// Billed vs collected per fee type, arrears by age, low prepaid balances.
    Fees,
}

#[derive(Debug, Clone, Copy, Default, clap::ValueEnum)]
pub enum Format {
    /// Aligned tables for a terminal or an email.
    #[default]
    Text,
    /// A self-contained HTML page with SVG charts.
    Html,
}

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
    let db_path = settings.data_dir.join("wuye.db");
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
    let out = build(&conn, community, args.kind, args.period, today, args.format)
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

/// The callback SLA from `[workflows.callback_escalation.params]`, defaults otherwise.
pub fn sla_of(community: &Community) -> anyhow::Result<Sla> {
    let mut sla = Sla::default();
    let Some(w) = community.raw.workflows.get("callback_escalation") else {
        return Ok(sla);
    };
    for (key, slot) in [
        ("sla_hours_repair", &mut sla.repair_hours),
        ("sla_hours_complaint", &mut sla.complaint_hours),
    ] {
        match w.params.get(key) {
            None => {}
            Some(toml::Value::Integer(h)) if (1..=24 * 365).contains(h) => *slot = *h,
            Some(v) => {
                return Err(Coded::config(anyhow::anyhow!(
                    "{}: workflows.callback_escalation.params.{key}: expected a whole number of \
                     hours from 1 to 8760, got {v}",
                    community.file.display()
                ))
                .into());
            }
        }
    }
    Ok(sla)
}

/// Computes and renders one report. `today` is the community's local date the report is run on.
pub fn build(
    conn: &rusqlite::Connection,
    community: &Community,
    kind: Kind,
    period: Period,
    today: NaiveDate,
    format: Format,
) -> anyhow::Result<String> {
    let id = community.id.as_str();
    let tz = community.tz;
    let (from, to) = period.instants(tz);
    // The day the report is judged at: the period's last day, or today if it is not over.
    let as_of_day = report::as_of_day(&period, today);
    let as_of = local_midnight(
        tz,
        as_of_day
            .checked_add_days(Days::new(1))
            .unwrap_or(as_of_day),
    );
    let html = matches!(format, Format::Html);
    Ok(match kind {
        Kind::Satisfaction => {
            let campaigns = q::campaigns_opened(conn, id, from, to)?;
            let responses = q::responses_opened(conn, id, from, to)?;
            let (pf, pt) = period.previous().instants(tz);
            let prev_campaigns = q::campaigns_opened(conn, id, pf, pt)?.len();
            let prev = q::responses_opened(conn, id, pf, pt)?;
            let r = report::satisfaction::compute(
                &community.name,
                period,
                campaigns,
                &responses,
                prev_campaigns,
                &prev,
            );
            if html { r.to_html() } else { r.to_text() }
        }
        Kind::Callbacks => {
            let closed = q::tickets_closed(conn, id, from, to)?;
            let done = q::callbacks_done(conn, id, from, to)?;
            let names: BTreeMap<String, String> = community
                .raw
                .staff
                .iter()
                .map(|s| (s.id.clone(), s.name.clone()))
                .collect();
            let r = report::callbacks::compute(
                &community.name,
                period,
                sla_of(community)?,
                as_of,
                &closed,
                &done,
                &names,
            );
            if html { r.to_html() } else { r.to_text() }
        }
        Kind::Fees => {
            let billed = q::billed_by_fee_type(conn, id, period.start(), period.end(), as_of)?;
            let received = q::received_by_fee_type(conn, id, from, to.min(as_of), as_of)?;
            let read = DomainRead::new(conn, id);
            let unpaid = match as_of_day.pred_opt() {
                Some(due_by) => read.unpaid_bills_as_of(as_of, due_by)?,
                None => Vec::new(),
            };
            let low = read.balances_below_threshold()?;
            let r = report::fees::compute(
                &community.name,
                period,
                as_of_day,
                billed,
                received,
                &unpaid,
                low,
            );
            if html { r.to_html() } else { r.to_text() }
        }
    })
}
