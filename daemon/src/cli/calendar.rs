//! `wuyed calendar`: what a business calendar file says, day by day, so an administrator can
//! check a new year's 调休 against the State Council notice before the daemon relies on it.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::anyhow;
use chrono::NaiveDate;

use crate::exit::Coded;
use crate::schedule::Calendar;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Print the workdays from --from to --to (inclusive), one ISO date a line.
    Workdays(RangeArgs),
    /// Print the listed public holidays and make-up workdays (调休) from --from to --to:
    /// `DATE<TAB>holiday|workday<TAB>NAME`.
    Holidays(RangeArgs),
}

#[derive(Debug, clap::Args)]
pub struct RangeArgs {
    /// Configuration directory; the calendar is read from DIR/calendars/NAME.toml.
    #[arg(long, value_name = "DIR", default_value = "config")]
    pub config: PathBuf,
    /// Calendar name (the file stem, e.g. cn-mainland).
    #[arg(long, value_name = "NAME")]
    pub calendar: String,
    /// First date, YYYY-MM-DD.
    #[arg(long, value_name = "DATE")]
    pub from: String,
    /// Last date (inclusive), YYYY-MM-DD.
    #[arg(long, value_name = "DATE")]
    pub to: String,
}

pub fn run(cmd: Command) -> anyhow::Result<()> {
    let (args, workdays) = match cmd {
        Command::Workdays(a) => (a, true),
        Command::Holidays(a) => (a, false),
    };
    let from = parse_date("--from", &args.from)?;
    let to = parse_date("--to", &args.to)?;
    if to < from {
        return Err(Coded::usage(anyhow!("--to {to} is before --from {from}")).into());
    }
    let cal = load(&args.config, &args.calendar)?;
    if let Some(warning) = cal.coverage_warning(from, to) {
        eprintln!("warning: {warning}");
    }
    let mut out = std::io::stdout().lock();
    if workdays {
        for day in from.iter_days().take_while(|d| *d <= to) {
            if cal.is_workday(day) {
                writeln!(out, "{day}")?;
            }
        }
    } else {
        for listed in cal.listed_days(from, to) {
            let kind = if listed.workday { "workday" } else { "holiday" };
            writeln!(out, "{}\t{kind}\t{}", listed.date, listed.name)?;
        }
    }
    out.flush()?;
    Ok(())
}

fn parse_date(flag: &str, text: &str) -> anyhow::Result<NaiveDate> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|e| {
        Coded::usage(anyhow!(
            "{flag} {text:?} is not a date like 2026-10-01: {e}"
        ))
        .into()
    })
}

fn load(dir: &Path, name: &str) -> anyhow::Result<Calendar> {
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        return Err(Coded::usage(anyhow!(
            "--calendar {name:?}: give the calendar's name (the file stem, e.g. cn-mainland), not a path"
        ))
        .into());
    }
    let path = dir.join("calendars").join(format!("{name}.toml"));
    Calendar::load(&path).map_err(|e| Coded::config(e).into())
}
