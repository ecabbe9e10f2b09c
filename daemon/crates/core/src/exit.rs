//! Exit codes, as sysexits(3) defines them, so scripts and systemd can tell a typo in the config
//! (78, fix it) from a mail server that is down (75, try again later).

use std::fmt;

pub const OK: u8 = 0;
/// EX_USAGE: the command line was wrong.
pub const USAGE: u8 = 64;
/// EX_DATAERR: input data (CSV, fixture) was wrong.
pub const DATAERR: u8 = 65;
/// EX_SOFTWARE: a bug in wuye.
pub const SOFTWARE: u8 = 70;
/// EX_CANTCREAT / EX_IOERR are folded into this: a file could not be written.
pub const IOERR: u8 = 74;
/// EX_TEMPFAIL: try again later.
pub const TEMPFAIL: u8 = 75;
/// EX_CONFIG: the configuration is wrong.
pub const CONFIG: u8 = 78;

/// An error that knows which exit code it deserves. Anything else exits with 1.
#[derive(Debug)]
pub struct Coded {
    pub code: u8,
    pub error: anyhow::Error,
}

impl Coded {
    pub fn new(code: u8, error: impl Into<anyhow::Error>) -> Self {
        Coded {
            code,
            error: error.into(),
        }
    }
    pub fn config(error: impl Into<anyhow::Error>) -> Self {
        Coded::new(CONFIG, error)
    }
    pub fn usage(error: impl Into<anyhow::Error>) -> Self {
        Coded::new(USAGE, error)
    }
    pub fn data(error: impl Into<anyhow::Error>) -> Self {
        Coded::new(DATAERR, error)
    }
    pub fn temporary(error: impl Into<anyhow::Error>) -> Self {
        Coded::new(TEMPFAIL, error)
    }
}

impl fmt::Display for Coded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The wrapped error's own chain is printed by main; say nothing twice.
        fmt::Display::fmt(&self.error, f)
    }
}

impl std::error::Error for Coded {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.error.source()
    }
}

/// The exit code an error chain asks for.
pub fn code_of(err: &anyhow::Error) -> u8 {
    err.chain()
        .find_map(|e| e.downcast_ref::<Coded>().map(|c| c.code))
        .unwrap_or(1)
}
