//! `wuyed generate`: the man pages and shell completions, made from the very clap definition
//! the binary parses, so they cannot drift from it. Hidden from `--help`: packagers call it
//! (scripts/package.sh), administrators read its output through `man wuyed` and the Tab key.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::CommandFactory as _;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Write wuyed.1 and one page per subcommand (wuyed-run.1, wuyed-backup.1, ...) into DIR.
    Man {
        /// Folder to write the pages into (created if missing).
        dir: PathBuf,
    },
    /// Write the completion script for SHELL to stdout, or into --dir under the name the shell
    /// looks for (wuyed.bash, _wuyed, wuyed.fish, ...).
    Completions {
        shell: clap_complete::Shell,
        /// Folder to write the script into instead of stdout.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

pub fn run(command: Command) -> anyhow::Result<()> {
    let mut cli = super::Cli::command();
    match command {
        Command::Man { dir } => {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(cli, &dir)
                .with_context(|| format!("cannot write man pages into {}", dir.display()))?;
            println!("man pages written to {}", dir.display());
        }
        Command::Completions { shell, dir: None } => {
            clap_complete::generate(shell, &mut cli, "wuyed", &mut std::io::stdout());
        }
        Command::Completions {
            shell,
            dir: Some(dir),
        } => {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            let path =
                clap_complete::generate_to(shell, &mut cli, "wuyed", &dir).with_context(|| {
                    format!("cannot write {shell} completions into {}", dir.display())
                })?;
            println!("{}", path.display());
        }
    }
    Ok(())
}
