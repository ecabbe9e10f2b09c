//! Running the parts of a simulation side by side, one thread each, and stopping them all as
//! soon as one fails.
//!
//! A simulated year takes seconds per part. When one part fails (its copy of the store cannot
//! be written because the tmpfs is full, its scheduler cannot start), the user wants that error
//! now, not after the other parts have simulated the rest of their year for an answer nobody
//! will see. (A `--script` always runs as one part, so its failures have nobody to stop.) So
//! the first failure raises a shared flag, the other parts check it at each step of their clock
//! ([`Abandon::check`]) and give up, and the error reported is the failing part's own, never
//! the others' "abandoned".

use std::sync::atomic::{AtomicBool, Ordering};

/// Raised once a part has failed or panicked; every part checks it as its clock advances.
#[derive(Debug, Default)]
pub(super) struct Abandon(AtomicBool);

/// What a part returns when it gave up because another part failed.
#[derive(Debug)]
pub(super) struct Abandoned;

impl std::fmt::Display for Abandoned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("abandoned: another part of the simulation failed")
    }
}

impl std::error::Error for Abandoned {}

impl Abandon {
    /// `Err(Abandoned)` once another part has failed.
    pub(super) fn check(&self) -> anyhow::Result<()> {
        if self.0.load(Ordering::Relaxed) {
            Err(Abandoned.into())
        } else {
            Ok(())
        }
    }

    fn raise(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Raises the flag when the part's thread leaves without having succeeded, by an error or by
/// unwinding from a panic.
struct RaiseUnlessDone<'a> {
    abandon: &'a Abandon,
    done: bool,
}

impl Drop for RaiseUnlessDone<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.abandon.raise();
        }
    }
}

/// Runs `work` on each part, each on a thread named `simulate-<i>`, and returns their values in
/// part order, or the first real failure: a part's error or the message of its panic.
pub(super) fn run<P, T, F>(parts: Vec<P>, work: F) -> anyhow::Result<Vec<T>>
where
    P: Send,
    T: Send,
    F: Fn(P, &Abandon) -> anyhow::Result<T> + Sync,
{
    let abandon = Abandon::default();
    let results: Vec<anyhow::Result<T>> = std::thread::scope(|scope| {
        let handles: Vec<_> = parts
            .into_iter()
            .enumerate()
            .map(|(i, part)| {
                let (abandon, work) = (&abandon, &work);
                std::thread::Builder::new()
                    .name(format!("simulate-{i}"))
                    .spawn_scoped(scope, move || {
                        let mut guard = RaiseUnlessDone {
                            abandon,
                            done: false,
                        };
                        let result = work(part, abandon);
                        guard.done = result.is_ok();
                        result
                    })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| match h {
                Ok(h) => h.join().unwrap_or_else(|payload| {
                    Err(anyhow::anyhow!(
                        "a simulation part {}",
                        crate::blocking::panic_message(payload)
                    ))
                }),
                Err(e) => {
                    abandon.raise();
                    Err(anyhow::Error::new(e).context("cannot start a simulation part"))
                }
            })
            .collect()
    });
    let mut values = Vec::with_capacity(results.len());
    let mut abandoned = None;
    for result in results {
        match result {
            Ok(value) => values.push(value),
            Err(e) if e.is::<Abandoned>() => abandoned = Some(e),
            Err(e) => return Err(e),
        }
    }
    match abandoned {
        Some(e) => Err(e),
        None => Ok(values),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// A part that would go on for a minute unless told to stop.
    fn long_part(abandon: &Abandon) -> anyhow::Result<&'static str> {
        let until = Instant::now() + Duration::from_secs(60);
        while Instant::now() < until {
            abandon.check()?;
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok("finished the year")
    }

    #[test]
    fn all_parts_succeeding_give_their_values_in_part_order() {
        let values = run(vec![3, 1, 2], |n, abandon| {
            abandon.check()?;
            std::thread::sleep(Duration::from_millis(n * 5));
            Ok(n * 10)
        })
        .unwrap();
        assert_eq!(values, [30, 10, 20]);
    }

    #[test]
    fn a_failing_part_stops_the_others_and_its_own_error_is_reported() {
        let stopped = std::sync::Mutex::new(Vec::new());
        let err = run(vec!["long", "broken", "long"], |part, abandon| {
            if part == "broken" {
                anyhow::bail!("cannot write the copy: disk full");
            }
            let result = long_part(abandon);
            stopped.lock().unwrap().push(result.is_err());
            result
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "cannot write the copy: disk full");
        // Both long parts gave up instead of finishing their minute.
        assert_eq!(*stopped.lock().unwrap(), [true, true]);
    }

    #[test]
    fn a_panicking_part_stops_the_others_and_its_message_is_reported() {
        let err = run(vec![false, true], |panics, abandon| {
            if panics {
                panic!("outbox row without a channel");
            }
            long_part(abandon)
        })
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "a simulation part panicked: outbox row without a channel"
        );
    }
}
