//! `wuyed`: a thin shell over the `wuye` library. It parses the command line, runs it, and maps
//! the outcome to an exit code (sysexits: 64 usage, 65 bad data, 75 try later, 78 bad config).

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match wuye::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let code = if err.use_stderr() {
                wuye::exit::USAGE
            } else {
                0
            };
            let _ = err.print();
            return ExitCode::from(code);
        }
    };
    match wuye::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // A closed pipe (`wuyed next ... | head -1`) is not a failure.
            if err.chain().any(|e| {
                e.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            let mut stderr = std::io::stderr().lock();
            let _ = writeln!(stderr, "error: {err:#}");
            ExitCode::from(wuye::exit::code_of(&err))
        }
    }
}
