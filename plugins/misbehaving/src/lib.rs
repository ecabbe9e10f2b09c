//! misbehaving: a plugin that does what no plugin should, to prove the sandbox contains it.
//!
//! One crate, one `.wasm`, the misdeed chosen by the `mode` param, so the tests build one file:
//! - `loop`: spins forever (stopped by the CPU deadline);
//! - `memory`: allocates without end (stopped by the memory cap);
//! - `flood`: asks for a million messages (refused past the intent cap);
//! - `panic`: panics with a message (the message is reported);
//! - `snoop`: asks for another community's household by id, and for another community's kv key
//!   (both answer nothing: the host only knows the run's community);
//! - `forge`: fabricates a `community` resource handle (traps: handles cannot be forged);
//! - `oversized`: sends one message with a 2 MiB variable (refused past the payload cap);
//! - `chatty`: logs 1 MiB (truncated with a visible marker; the run itself succeeds), then a
//!   line with a 1 MiB field (cut too: fields count against the same budget);
//! - `sleep`: sleeps for an hour (returns at once: time does not pass in the sandbox), then
//!   waits for the clock to move on (spins until the CPU deadline stops it);
//! - `timers`: sets timers at the epoch, in year 292 million and in an hour (the first two are
//!   moved into [now, now + 400 days]);
//! - `print`: prints a line to stdout and one to stderr, then 1 MiB more to stderr (kept as
//!   log lines up to the log limit; the run succeeds).
//! - `stderr-flood`: prints to stderr without end (the pipe keeps the log limit's worth and
//!   drops the rest; the CPU deadline stops it);
//! - `stack`: recurses without end (traps when the stack is exhausted);
//! - `intent-flood`: sends messages of 60 KiB each, under the payload cap one by one, until the
//!   run's total (`max_run_bytes`) refuses one;
//! - `kv-flood`: writes `count` keys (default: without end) of `size` bytes (default 1024), to
//!   reach the intent cap, the run's total or the community's kv quota, whichever comes first;
//! - `timer-flood`: sets timers without end (refused past the intent cap);
//! - `huge`: opens a ticket whose household and summary are 4 MiB each (refused past the
//!   payload cap; the host copies it once and keeps none of it);
//! - `foreign`: writes a kv key and queues a message to its own first household, then names
//!   `target`, a `household`, `owner`, `bill` or `ticket` id (`what`) of another community or of
//!   none: the run is refused whole, its own message and key included.

use wuye_plugin_sdk::prelude::*;

#[derive(serde::Deserialize)]
struct Params {
    mode: String,
    /// For `snoop`: the household id to look for; for `foreign`, the id to name.
    #[serde(default)]
    target: String,
    /// For `foreign`: what `target` is (`household`, `owner`, `bill`, `ticket`).
    #[serde(default)]
    what: String,
    /// For `kv-flood`: keys to write (default: without end) and bytes per value.
    #[serde(default)]
    count: Option<u64>,
    #[serde(default)]
    size: Option<usize>,
}

/// Recurses `depth` times with a frame the optimiser cannot fold away.
#[inline(never)]
fn deeper(depth: u64, pad: [u64; 16]) -> u64 {
    let mut next = std::hint::black_box(pad);
    next[(depth % 16) as usize] = depth;
    if depth == 0 {
        return next.iter().sum();
    }
    let sum = deeper(depth - 1, next);
    // `next` is still in use after the call: the frame cannot be turned into a loop.
    std::hint::black_box(&mut next);
    sum.wrapping_add(next[0])
}

#[derive(Default)]
pub struct Misbehaving;

impl Plugin for Misbehaving {
    fn on_schedule(&mut self, run: &Run, host: &mut dyn Host) -> Result<(), PluginError> {
        let p: Params = run.params()?;
        match p.mode.as_str() {
            "loop" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "memory" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1024 * 1024]);
                    std::hint::black_box(&hoard);
                }
            }
            "flood" => {
                for i in 0..1_000_000 {
                    host.send(Message::to_household(&format!("h{i}"), "spam", "flood"));
                }
                Ok(())
            }
            "panic" => panic!("rule table is empty for {}", run.community),
            "snoop" => {
                let found = host.household(&p.target);
                let kv = host.kv_get(&format!("../{}/beats", p.target));
                host.log(
                    Level::Warn,
                    "snoop",
                    &[
                        ("target", &p.target),
                        ("found", &format!("{found:?}")),
                        ("kv", &format!("{kv:?}")),
                        ("own_households", &host.households().len().to_string()),
                    ],
                );
                Ok(())
            }
            "forge" => {
                forge::read_through_a_forged_handle();
                Ok(())
            }
            "oversized" => {
                host.send(
                    Message::to_household("h1", "notice", "big").var("blob", "x".repeat(2 << 20)),
                );
                Ok(())
            }
            "chatty" => {
                host.log(Level::Info, &"y".repeat(1 << 20), &[]);
                host.log(Level::Info, "after the limit", &[]);
                Ok(())
            }
            "chatty-fields" => {
                host.log(Level::Info, "big field", &[("blob", &"z".repeat(1 << 20))]);
                Ok(())
            }
            "sleep" => {
                let start = std::time::Instant::now();
                std::thread::sleep(std::time::Duration::from_secs(3600));
                // Still on the same instant (virtual time does not pass in a hook): wait for it.
                while start.elapsed() < std::time::Duration::from_secs(60) {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Ok(())
            }
            "timers" => {
                host.set_timer(0, "past");
                host.set_timer(i64::MAX, "far");
                host.set_timer(host.now() + 3_600_000, "soon");
                Ok(())
            }
            "print" => {
                println!("rules loaded for {}", run.community);
                eprintln!("warning: no rule for building 9");
                for _ in 0..1024 {
                    eprintln!("{}", "e".repeat(1023));
                }
                Ok(())
            }
            "stderr-flood" => {
                let line = "f".repeat(1023);
                loop {
                    eprintln!("{line}");
                }
            }
            "stack" => {
                let depth = std::hint::black_box(u64::MAX);
                host.log(
                    Level::Info,
                    "reached",
                    &[("sum", &deeper(depth, [1; 16]).to_string())],
                );
                Ok(())
            }
            "intent-flood" => {
                let blob = "x".repeat(60 * 1024);
                for i in 0..100_000 {
                    host.send(
                        Message::to_household(&format!("h{i}"), "spam", "flood").var("blob", &blob),
                    );
                }
                Ok(())
            }
            "kv-flood" => {
                let value = "v".repeat(p.size.unwrap_or(1024));
                for i in 0..p.count.unwrap_or(u64::MAX) {
                    host.kv_put(&format!("flood:{i:012}"), &value);
                }
                Ok(())
            }
            "timer-flood" => {
                let at = host.now() + 3_600_000;
                for i in 0.. {
                    host.set_timer(at, &format!("t{i}"));
                }
                Ok(())
            }
            "huge" => {
                let big = "h".repeat(4 << 20);
                host.create_ticket(NewTicket {
                    household: Some(big.clone()),
                    kind: "visit".into(),
                    summary: big,
                });
                Ok(())
            }
            "foreign" => {
                host.kv_put("tried", &p.target);
                if let Some(own) = host.households().first() {
                    host.send(Message::to_household(&own.id, "spam", "before"));
                }
                let message = match p.what.as_str() {
                    "household" => Message::to_household(&p.target, "spam", "foreign"),
                    "owner" => Message::to_owner(&p.target, "spam", "foreign"),
                    "bill" => {
                        host.notify_staff(
                            StaffNotice::new(Role::Manager, "spam", "foreign")
                                .var("bill_ids", format!("[{}]", p.target)),
                        );
                        return Ok(());
                    }
                    "ticket" => {
                        host.notify_staff(
                            StaffNotice::new(Role::Manager, "spam", "foreign")
                                .var("ticket.id", &p.target),
                        );
                        return Ok(());
                    }
                    other => {
                        return Err(PluginError::InvalidParams(format!(
                            "what: unknown {other:?}"
                        )));
                    }
                };
                host.send(message);
                Ok(())
            }
            other => Err(PluginError::InvalidParams(format!(
                "mode: unknown {other:?}"
            ))),
        }
    }
}

mod forge {
    /// Calls a community method on handle 7, which the host never gave out.
    #[allow(unsafe_code)]
    pub fn read_through_a_forged_handle() {
        #[cfg(target_arch = "wasm32")]
        {
            use wuye_plugin_sdk::__private::bindings::wuye::plugin::host::Community;
            // SAFETY: deliberately unsound; this plugin exists to show the host traps on it.
            let forged = unsafe { Community::from_handle(7) };
            let _ = std::hint::black_box(forged.households());
        }
    }
}

export_plugin!(Misbehaving);
