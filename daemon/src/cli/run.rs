//! `wuyed run`.

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Configuration directory.
    #[arg(long, default_value = "config")]
    pub config: std::path::PathBuf,
}

pub fn run(args: Args, _log_format: crate::logging::LogFormat) -> anyhow::Result<()> {
    let _ = args;
    anyhow::bail!("`wuyed run` is not implemented yet")
}
