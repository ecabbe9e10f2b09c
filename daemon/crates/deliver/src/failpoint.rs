//! A test hook, not a feature: `WUYE_FAILPOINT=after-smtp-data:N` makes the process abort right
//! after the Nth email of this process was accepted by the SMTP server (its "." answered with
//! 250) and before that answer is recorded, the one instant where a crash can make a mail
//! server hold a message the outbox does not know went out. The proof suite
//! (`scripts/proof.sh`, tests/e2e/proof_kill.rs) restarts the daemon after it and checks nothing
//! is lost and no resend carries a second Message-ID.
//!
//! Why an environment variable read once, and an abort: a random SIGKILL lands in that window
//! only by luck (it is microseconds wide); an abort does what SIGKILL does to the process (no
//! destructor, no flush, no commit) exactly there. Unset, the hook costs one check per accepted
//! email.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The N of `after-smtp-data:N`, read once; `None` when the hook is off.
fn after_smtp_data() -> Option<u64> {
    static AT: OnceLock<Option<u64>> = OnceLock::new();
    *AT.get_or_init(|| {
        let spec = std::env::var("WUYE_FAILPOINT").ok()?;
        let n = spec.strip_prefix("after-smtp-data:")?.parse().ok();
        if n.is_none() {
            eprintln!("WUYE_FAILPOINT={spec:?} ignored: expected after-smtp-data:N (N >= 1)");
        }
        n
    })
}

/// Called with every email the server accepted, before its answer is recorded.
pub(super) fn email_accepted() {
    static ACCEPTED: AtomicU64 = AtomicU64::new(0);
    if let Some(n) = after_smtp_data()
        && ACCEPTED.fetch_add(1, Ordering::Relaxed) + 1 == n
    {
        eprintln!("WUYE_FAILPOINT: aborting after accepted email {n}, before recording it");
        std::process::abort();
    }
}
