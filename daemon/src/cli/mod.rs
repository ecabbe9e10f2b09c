//! The `wuyed` command line. One module per subcommand; each owns its arguments and its `run`.

use clap::{Parser, Subcommand};

use crate::logging::LogFormat;

mod backup;
mod calendar;
pub(crate) mod check;
mod desk_script;
mod generate;
mod import;
mod next;
mod outbox;
mod plugin;
mod plugin_preview;
mod report;
mod run;
mod simulate;

/// The executor `wuyed run` schedules runs on, for benchmarks that time the production path.
pub use run::{Reloadable, executor_with};

/// What `wuyed --version` prints after the name: the package version and the commit it was built
/// from (daemon/build.rs), e.g. `0.1.0 (commit 1a2b3c4)`, `-dirty` if built with local changes.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("WUYED_SOURCE"), ")");

#[derive(Debug, Parser)]
#[command(
    name = "wuyed",
    version = VERSION,
    about = "wuye (物业): the property-management service desk's routine, on schedule, exactly once",
    long_about = "wuye sends fee reminders, quarterly surveys, callback escalations and community \
                  event notices for each configured community, on schedule and exactly once.\n\n\
                  Start with `wuyed check --config DIR`, then `wuyed run --config DIR`."
)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon.
    Run(run::Args),
    /// Check the configuration and exit: 0 if usable, 78 with every error listed otherwise.
    Check(check::Args),
    /// Print when a crontab expression or a configured workflow fires next.
    Next(next::Args),
    /// Business-calendar queries (workdays, holidays, 调休).
    #[command(subcommand)]
    Calendar(calendar::Command),
    /// Load owners, bills, payments, balances or tickets from a CSV file (all or nothing).
    Import(import::Args),
    /// Inspect and act on the outbox.
    Outbox(outbox::Args),
    /// Run the workflows over a span of days on a virtual clock, on a copy of the data, and show
    /// who would get what, day by day. Nothing is sent and the real database is not touched.
    Simulate(simulate::Args),
    /// Tools for plugin authors.
    #[command(subcommand)]
    Plugin(plugin::Command),
    /// Satisfaction, callback or fee report for one community and period (text or HTML).
    Report(report::Args),
    /// Write a consistent copy of the database to a file, safe while the daemon runs.
    Backup(backup::Args),
    /// Man pages and shell completions, for packagers.
    #[command(subcommand, hide = true)]
    Generate(generate::Command),
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run(args) => run::run(args, cli.log_format),
        Command::Check(args) => check::run(args),
        Command::Next(args) => next::run(args),
        Command::Calendar(cmd) => calendar::run(cmd),
        Command::Import(args) => import::run(args),
        Command::Outbox(args) => outbox::run(args),
        Command::Plugin(cmd) => plugin::run(cmd),
        Command::Simulate(args) => simulate::run(args),
        Command::Report(args) => report::run(args),
        Command::Backup(args) => backup::run(args),
        Command::Generate(cmd) => generate::run(cmd),
    }
}
