//! `wuyed outbox`.

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Configuration directory.
    #[arg(long, default_value = "config")]
    pub config: std::path::PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let _ = args;
    anyhow::bail!("`wuyed outbox` is not implemented yet")
}
