//! `wuyed check`: validate a configuration directory before anything runs, like
//! `vector validate`.
//!
//! Every error is printed as `FILE:LINE: KEY: MESSAGE` (the form editors and `grep` understand),
//! all of them, then a count; the exit status is 78 (EX_CONFIG) so a deploy script can stop on it.
//! Warnings are printed as `warning: ...` and do not fail the check unless `--deny-warnings`.
//! Secret values never appear: messages name the variable or file a secret comes from.
//!
//! Beyond loading the configuration (what `run` does first), a configuration that loads is held
//! against what its plugins declare they need (`plugin_needs`: params, and every template
//! a workflow can send, against the variables it is given; a warning for an `events` entry the
//! plugin's WIT world is never handed) and against the rest of `run`'s start ([`startup`]: data
//! directory, delivery channels, plugin limits, listen address).

mod plugin_needs;
mod startup;

use std::io::Write;

use crate::config::{self, LoadOptions};
use crate::exit::Coded;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Configuration directory (holds wuyed.toml, communities/, calendars/).
    #[arg(long, default_value = "config")]
    pub config: std::path::PathBuf,

    /// Fail (exit 78) on warnings too, such as a calendar that does not cover next year.
    #[arg(long)]
    pub deny_warnings: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    // `check` goes further than a load: every plugin is compiled and type-checked against the
    // supported WIT worlds, so a broken or too-new plugin is found now, not at its first run.
    let options = LoadOptions {
        plugin_check: crate::plugin::check_file,
        ..LoadOptions::from_env(&crate::clock::SystemClock::new())
    };
    let (report, notes) = check_dir(&args.config, &options);

    let mut out = std::io::stdout().lock();
    for n in &notes {
        writeln!(out, "note: {n}")?;
    }
    for w in &report.warnings {
        writeln!(out, "warning: {w}")?;
    }
    for e in &report.errors {
        writeln!(out, "{e}")?;
    }
    let shown = args.config.display();
    if !report.errors.is_empty() {
        let n = report.errors.len();
        writeln!(out, "{n} error{} in {shown}", plural(n))?;
        return Err(
            Coded::config(anyhow::anyhow!("configuration in {shown} is not usable")).into(),
        );
    }
    if args.deny_warnings && !report.warnings.is_empty() {
        let n = report.warnings.len();
        writeln!(out, "{n} warning{} in {shown} (--deny-warnings)", plural(n))?;
        return Err(Coded::config(anyhow::anyhow!(
            "configuration in {shown} has warnings and --deny-warnings was given"
        ))
        .into());
    }
    let Some(settings) = report.settings else {
        // compile() returns settings whenever there is no error.
        anyhow::bail!("configuration check produced neither settings nor errors");
    };
    let communities = settings.communities.len();
    let workflows: usize = settings.communities.iter().map(|c| c.workflows.len()).sum();
    let calendars = settings.calendar_count();
    writeln!(
        out,
        "ok: {communities} communit{}, {workflows} workflow{}, {calendars} calendar{} ({shown})",
        if communities == 1 { "y" } else { "ies" },
        plural(workflows),
        plural(calendars),
    )?;
    Ok(())
}

/// Everything `check` finds in `dir`: the configuration load, what the plugins need of it and
/// the rest of `run`'s start; with the notes about plugins that declare nothing. The fuzz target
/// for the configuration (`crate::fuzzing::config`) goes through here too, so it tests what
/// administrators run.
pub fn check_dir(dir: &std::path::Path, options: &LoadOptions) -> (config::Report, Vec<String>) {
    let mut report = config::check(dir, options);
    let mut notes = Vec::new();
    if let Some(settings) = &report.settings {
        let needs = plugin_needs::check(settings);
        report.errors.extend(needs.errors);
        report.warnings.extend(needs.warnings);
        notes = needs.notes;
        report.errors.extend(startup::check(settings));
    }
    (report, notes)
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
