//! `wuyed backup`: a consistent copy of the live database, safe while the daemon runs and sends
//! (store::backup explains how). Restoring is a file copy while the daemon is stopped; see
//! docs/OPERATION.md.

use std::path::PathBuf;

use crate::exit::Coded;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Configuration directory: the database is `daemon.data_dir`/wuye.db.
    #[arg(long, value_name = "DIR", default_value = "config")]
    pub config: PathBuf,
    /// Where to write the copy (a single SQLite file, mode 0600).
    #[arg(long, value_name = "FILE")]
    pub to: PathBuf,
    /// Replace FILE if it exists (otherwise an existing file is never touched).
    #[arg(long)]
    pub force: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let settings = crate::config::load(&args.config).map_err(Coded::config)?;
    let source = settings.data_dir.join(crate::store::DB_FILE);
    let started = std::time::Instant::now();
    let r = crate::store::backup::backup(&source, &args.to, args.force)?;
    println!(
        "wrote {} ({} bytes, schema version {}, integrity ok, {} owners, {} bills, {} outbox \
         messages) from {} in {:.1}s",
        r.path.display(),
        r.bytes,
        r.schema_version,
        r.owners,
        r.bills,
        r.messages,
        source.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
