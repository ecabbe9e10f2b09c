//! Deterministic jitter: a thousand communities all scheduled at 09:00 should not all call the
//! SMS gateway at 09:00:00.
//!
//! The delay is a hash of (community, workflow, slot), not a random draw, so a daemon restarted
//! between planning and running a slot computes the same delay and the run row, keyed by the
//! slot, still means the same thing. SHA-256 rather than `std`'s hasher, whose output may change
//! between Rust releases.

use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};

/// A delay in `[0, max)` with millisecond resolution, the same for the same inputs on every
/// machine and after every restart. `max` of zero (or less) gives zero.
pub fn jitter_for(
    community_id: &str,
    workflow: &str,
    slot: DateTime<Utc>,
    max: Duration,
) -> Duration {
    let max_ms = max.num_milliseconds();
    if max_ms <= 0 {
        return Duration::zero();
    }
    let mut h = Sha256::new();
    // Length-prefixed, so ("ab", "c") and ("a", "bc") differ.
    for part in [community_id.as_bytes(), workflow.as_bytes()] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part);
    }
    h.update(slot.timestamp().to_le_bytes());
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    // Modulo bias is below 1e-13 for any max under a year: irrelevant here.
    Duration::milliseconds((u64::from_le_bytes(first) % max_ms as u64) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-01T09:00:00+08:00")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn same_inputs_same_delay_and_within_bounds() {
        let max = Duration::minutes(10);
        let a = jitter_for("shuipan-garden", "fee_reminder", slot(), max);
        assert_eq!(a, jitter_for("shuipan-garden", "fee_reminder", slot(), max));
        assert!(a >= Duration::zero() && a < max);
        assert_eq!(
            jitter_for("x", "y", slot(), Duration::zero()),
            Duration::zero()
        );
        // Pinned: a change of hash would move every planned run after an upgrade.
        assert_eq!(a, Duration::milliseconds(436_947));
    }

    #[test]
    fn a_thousand_communities_spread_over_the_window() {
        let max = Duration::minutes(10);
        let mut per_minute = [0u32; 10];
        for i in 0..1000 {
            let j = jitter_for(&format!("community-{i}"), "fee_reminder", slot(), max);
            per_minute[j.num_minutes() as usize] += 1;
        }
        // About 100 a minute; a hash that clumps would leave some minutes nearly empty.
        for (minute, n) in per_minute.iter().enumerate() {
            assert!(
                (60..=140).contains(n),
                "minute {minute} got {n} runs: {per_minute:?}"
            );
        }
        // Different slots of the same community differ too.
        let next = slot() + Duration::days(1);
        assert_ne!(
            jitter_for("community-1", "fee_reminder", slot(), max),
            jitter_for("community-1", "fee_reminder", next, max)
        );
    }
}
