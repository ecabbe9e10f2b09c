//! End-to-end tests: each drives the real `wuyed` binary in a fresh temporary directory, as an
//! administrator would from a shell. One module per area; shared helpers in `util`.

mod admin;
mod check;
mod clock;
mod daemon;
mod deliver;
mod deliver_kill;
mod deliver_reload;
mod deliver_sms;
mod deliver_support;
mod deliver_tls;
mod hostile;
mod http;
mod http_limits;
mod import;
mod observability;
mod outbox;
mod plugins;
mod proof;
mod proof_fault;
mod proof_kill;
mod report;
mod run;
mod schedule;
mod simulate_messages;
mod store_lock;
mod util;
mod workflows;
mod year;
