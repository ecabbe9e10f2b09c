//! `wuyed next`: when does this fire? The administrator's check before trusting a schedule, and
//! the quickest way to see what DST or a holiday does to it.
//!
//! Two forms: a bare expression (`--cron EXPR --tz ZONE`), or a configured workflow
//! (`--config DIR --community ID --workflow NAME`) with its zone and calendar applied. Instants
//! are printed in RFC 3339 with the local offset, one a line, so scripts can read them.

use std::io::Write;

use anyhow::anyhow;
use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;

use crate::clock::{Clock, SystemClock};
use crate::config::NonWorkday;
use crate::exit::Coded;
use crate::schedule::{CronExpr, Schedule};

#[derive(Debug, clap::Args)]
#[command(
    group(clap::ArgGroup::new("what").required(true).args(["cron", "workflow"])),
    after_help = "Examples:\n  \
        wuyed next --cron '0 9 * * MON-FRI' --tz Asia/Shanghai -n 3\n  \
        wuyed next --cron '30 2 * * *' --tz America/New_York --from 2026-03-07T00:00:00-05:00\n  \
        wuyed next --config config --community shuipan --workflow fee_reminder"
)]
pub struct Args {
    /// Crontab expression: `minute hour day-of-month month day-of-week` (or 6 fields with seconds
    /// first, or @daily and friends). Quote it.
    #[arg(long, value_name = "EXPR", requires = "tz", conflicts_with_all = ["community", "workflow"])]
    pub cron: Option<String>,

    /// IANA timezone the expression is read in (Asia/Shanghai, America/New_York).
    #[arg(long, value_name = "ZONE", conflicts_with = "workflow")]
    pub tz: Option<String>,

    /// Configuration directory (with --community and --workflow).
    #[arg(long, value_name = "DIR", default_value = "config")]
    pub config: std::path::PathBuf,

    /// Community id, as in its file's `id`.
    #[arg(long, value_name = "ID", requires = "workflow")]
    pub community: Option<String>,

    /// Workflow name within the community. Its zone, calendar and on_non_workday apply; the
    /// instants printed are due instants, before the workflow's jitter.
    #[arg(long, value_name = "NAME", requires = "community")]
    pub workflow: Option<String>,

    /// Start after this instant (RFC 3339, e.g. 2026-03-08T00:00:00+08:00); default: now.
    #[arg(long, value_name = "RFC3339")]
    pub from: Option<String>,

    /// How many instants to print.
    #[arg(short = 'n', long = "count", value_name = "N", default_value_t = 5)]
    pub n: usize,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    run_with_clock(args, &SystemClock::new())
}

/// [`run`] with the clock that `--from` defaults to.
pub fn run_with_clock(args: Args, clock: &dyn Clock) -> anyhow::Result<()> {
    let from = match &args.from {
        Some(text) => DateTime::parse_from_rfc3339(text)
            .map_err(|e| {
                Coded::usage(anyhow!(
                    "--from {text:?} is not an RFC 3339 instant like 2026-03-08T09:00:00+08:00: {e}"
                ))
            })?
            .with_timezone(&Utc),
        None => clock.now(),
    };
    let schedule = match (&args.cron, &args.community, &args.workflow) {
        (Some(expr), _, _) => cron_schedule(expr, args.tz.as_deref().unwrap_or_default())?,
        (None, Some(community), Some(workflow)) => {
            configured_schedule(&args.config, community, workflow)?
        }
        _ => {
            return Err(Coded::usage(anyhow!(
                "give either --cron EXPR --tz ZONE or --community ID --workflow NAME"
            ))
            .into());
        }
    };

    let mut out = std::io::stdout().lock();
    let mut at = from;
    let mut last = None;
    for _ in 0..args.n {
        match schedule.next_after(at) {
            Some(next) => {
                writeln!(
                    out,
                    "{}",
                    next.with_timezone(&schedule.tz)
                        .to_rfc3339_opts(SecondsFormat::Secs, false)
                )?;
                at = next;
                last = Some(next);
            }
            None => {
                eprintln!("wuyed next: no further instant within 400 years");
                break;
            }
        }
    }
    out.flush()?;
    if let (Some(cal), Some(last)) = (&schedule.calendar, last) {
        let tz = schedule.tz;
        let first = from.with_timezone(&tz).date_naive();
        if schedule.on_non_workday != NonWorkday::Run
            && let Some(warning) = cal.coverage_warning(first, last.with_timezone(&tz).date_naive())
        {
            eprintln!("warning: {warning}");
        }
    }
    Ok(())
}

fn cron_schedule(expr: &str, zone: &str) -> anyhow::Result<Schedule> {
    let cron = CronExpr::parse(expr).map_err(|e| Coded::usage(anyhow!("--cron {expr:?}: {e}")))?;
    let tz: Tz = zone.parse().map_err(|_| {
        Coded::usage(anyhow!(
            "--tz {zone:?}: unknown IANA timezone (for example Asia/Shanghai, Europe/London)"
        ))
    })?;
    Ok(Schedule {
        cron,
        tz,
        calendar: None,
        on_non_workday: NonWorkday::Run,
    })
}

fn configured_schedule(
    dir: &std::path::Path,
    community: &str,
    workflow: &str,
) -> anyhow::Result<Schedule> {
    let settings = crate::config::load(dir).map_err(|errors| {
        let mut text = format!("{} is not a usable configuration:", dir.display());
        for e in &errors.0 {
            text.push_str(&format!("\n  {}", e.file.display()));
            if !e.key.is_empty() {
                text.push_str(&format!(": {}", e.key));
            }
            if let Some(line) = e.line {
                text.push_str(&format!(" (line {line})"));
            }
            text.push_str(&format!(": {}", e.message));
        }
        Coded::config(anyhow!(text))
    })?;
    let Some(c) = settings.communities.iter().find(|c| c.id == community) else {
        let known: Vec<&str> = settings.communities.iter().map(|c| c.id.as_str()).collect();
        return Err(Coded::usage(anyhow!(
            "no community {community:?} in {} (known: {})",
            dir.display(),
            known.join(", ")
        ))
        .into());
    };
    let Some(w) = c.workflows.iter().find(|w| w.name == workflow) else {
        let known: Vec<&str> = c.workflows.iter().map(|w| w.name.as_str()).collect();
        return Err(Coded::usage(anyhow!(
            "community {community:?} has no workflow {workflow:?} (known: {})",
            known.join(", ")
        ))
        .into());
    };
    w.schedule.clone().ok_or_else(|| {
        Coded::usage(anyhow!(
            "workflow {workflow:?} of community {community:?} has no schedule; it only reacts \
             to events and timers"
        ))
        .into()
    })
}

#[cfg(test)]
mod tests {
    /// Every `--community ID` that a command's help shows as an example names a community of
    /// the shipped config, so an administrator who copies the example gets an answer.
    #[test]
    fn help_examples_name_communities_of_the_shipped_config() {
        // The ids as the shipped files declare them (a full load would need the plugins built).
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/communities");
        let ids: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
                let file: toml::Table = toml::from_str(&text).unwrap();
                file["id"].as_str().unwrap().to_string()
            })
            .collect();
        let mut pending = vec![<crate::cli::Cli as clap::CommandFactory>::command()];
        let mut examples = 0;
        while let Some(mut cmd) = pending.pop() {
            let help = cmd.render_long_help().to_string();
            // The examples: command lines in the help text.
            let words: Vec<&str> = help
                .lines()
                .filter(|l| l.trim_start().starts_with("wuyed "))
                .flat_map(str::split_whitespace)
                .collect();
            for pair in words.windows(2) {
                if pair[0] == "--community" && !pair[1].starts_with(['<', '-']) {
                    examples += 1;
                    assert!(
                        ids.iter().any(|id| id == pair[1]),
                        "`{} --help` names community {:?}; config/ has {ids:?}",
                        cmd.get_name(),
                        pair[1]
                    );
                }
            }
            pending.extend(cmd.get_subcommands().cloned());
        }
        assert!(examples > 0, "no help example names a community");
    }
}
