//! End-to-end tests: each drives the real `wuyed` binary in a fresh temporary directory, as an
//! administrator would from a shell. One module per area; shared helpers in `util`.

mod check;
mod plugins;
mod schedule;
mod util;
mod workflows;
