//! `wuyed import owners|bills|payments|balances|tickets|surveys FILE --community ID`: loads a CSV file
//! into one community's data, all or nothing (see [`crate::domain::import`] for the rules and
//! the columns of each kind).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::Context;

use crate::domain::import::{self, COLUMNS_HELP, ImportError, Kind};
use crate::exit::Coded;

#[derive(Debug, clap::Args)]
#[command(after_long_help = COLUMNS_HELP)]
pub struct Args {
    /// What the file contains.
    #[arg(value_enum)]
    pub kind: Kind,
    /// The CSV file (UTF-8 or GBK, with a header row).
    pub file: PathBuf,
    /// Community id the rows belong to; must be configured.
    #[arg(long)]
    pub community: String,
    /// Configuration directory.
    #[arg(long, default_value = "config")]
    pub config: PathBuf,
    /// Show progress on stderr even when it is not a terminal.
    #[arg(long)]
    pub progress: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    // The whole configuration must be valid (as for `wuyed run`): importing into a daemon that
    // cannot start helps nobody. ConfigErrors lists every error when printed.
    let settings = crate::config::load(&args.config).map_err(Coded::config)?;
    let Some(community) = settings.communities.iter().find(|c| c.id == args.community) else {
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
    let bytes = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))
        .map_err(|e| Coded::new(crate::exit::IOERR, e))?;
    // Migrates the schema like `wuyed run` does; a locked or unopenable file exits 75.
    let store = crate::store::Store::open_in(&settings.data_dir)?;

    let label = args.file.display().to_string();
    let show = args.progress || std::io::stderr().is_terminal();
    let mut report_progress = |done: usize, total: usize| {
        if total >= import::PROGRESS_EVERY {
            let mut e = std::io::stderr().lock();
            let _ = write!(e, "\r{label}: {done}/{total} rows");
            if done == total {
                let _ = writeln!(e);
            }
        }
    };
    let progress: Option<import::Progress<'_>> = if show {
        Some(&mut report_progress)
    } else {
        None
    };
    let outcome = store.write(|tx| {
        import::import_tx(
            tx,
            &community.id,
            community.tz,
            args.kind,
            &label,
            &bytes,
            progress,
            chrono::Utc::now(),
        )
        .map_err(anyhow::Error::from)
    });
    match outcome {
        Ok(report) => {
            let enc = if report.gbk { " (read as GBK)" } else { "" };
            println!(
                "{}: {} {}: {report}{enc}",
                label,
                report.rows,
                args.kind.as_str()
            );
            Ok(())
        }
        Err(err) => match err.downcast::<ImportError>() {
            Ok(ImportError::Rows(errors)) => {
                let mut stderr = std::io::stderr().lock();
                for e in &errors.errors {
                    let _ = writeln!(
                        stderr,
                        "{}:{}: column {}: {}",
                        errors.file, e.line, e.column, e.message
                    );
                }
                Err(Coded::data(anyhow::anyhow!(errors.summary())).into())
            }
            Ok(ImportError::Sql(e)) => Err(anyhow::Error::new(e).context(format!(
                "database {} refused the import; nothing was written",
                store.path().display()
            ))),
            // Store errors (busy, disk full) already carry their exit code.
            Err(other) => Err(other),
        },
    }
}
