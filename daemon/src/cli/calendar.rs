//! `wuyed calendar`.

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Not implemented yet.
    Todo,
}

pub fn run(cmd: Command) -> anyhow::Result<()> {
    let _ = cmd;
    anyhow::bail!("`wuyed calendar` is not implemented yet")
}
