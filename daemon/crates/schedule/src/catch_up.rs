//! Catch-up after downtime: of the slots that came due while the daemon was not running them,
//! which still run, and why each of the others does not.
//!
//! Nothing is dropped silently: every slot in comes out with a fate, and
//! a missed slot carries the reason that goes into the missed-slots record and the log.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use chrono_tz::Tz;

use super::format_duration;
use serde::{Deserialize, Serialize};

/// After downtime, which missed slots still run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CatchUp {
    /// The most recent missed slot runs once; older ones are recorded as missed.
    #[default]
    Latest,
    /// Every missed slot runs, oldest first.
    All,
    /// None runs; each is recorded as missed.
    Skip,
}

/// What happens to one due slot found when the daemon (re)starts or wakes late.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotFate {
    Run,
    Missed { reason: String },
}

/// Decides, for the slots that came due while nobody ran them (oldest first), which run and
/// which are recorded as missed, per policy and window. Instants in reasons are in UTC; use
/// [`catch_up_in`] to have them in the community's zone.
pub fn catch_up(
    due: &[DateTime<Utc>],
    now: DateTime<Utc>,
    policy: CatchUp,
    window: Duration,
) -> Vec<(DateTime<Utc>, SlotFate)> {
    catch_up_in(due, now, policy, window, Tz::UTC)
}

/// [`catch_up`], with instants in reasons written in `tz`
/// (`"missed: catch_up = latest, superseded by 2026-03-02T09:00:00+08:00"`).
///
/// A slot older than `window` (`now - slot > window`) is missed whatever the policy, except that
/// `skip` gives its own reason for all. `latest` runs the newest slot within the window; `all`
/// runs every slot within it, oldest first.
pub fn catch_up_in(
    due: &[DateTime<Utc>],
    now: DateTime<Utc>,
    policy: CatchUp,
    window: Duration,
    tz: Tz,
) -> Vec<(DateTime<Utc>, SlotFate)> {
    let missed = |reason: String| SlotFate::Missed { reason };
    let in_window = |slot: &DateTime<Utc>| now - *slot <= window;
    let latest = due.iter().rev().find(|s| in_window(s)).copied();
    due.iter()
        .map(|&slot| {
            let fate = if policy == CatchUp::Skip {
                missed("missed: catch_up = skip".to_string())
            } else if !in_window(&slot) {
                missed(format!(
                    "missed: older than catch_up_window {}",
                    format_duration(window)
                ))
            } else if policy == CatchUp::All || Some(slot) == latest {
                SlotFate::Run
            } else {
                let newest = latest.expect("a slot in the window exists");
                missed(format!(
                    "missed: catch_up = latest, superseded by {}",
                    newest
                        .with_timezone(&tz)
                        .to_rfc3339_opts(SecondsFormat::Secs, false)
                ))
            };
            (slot, fate)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn fates(policy: CatchUp, window: &str) -> Vec<SlotFate> {
        // Daily 09:00 Shanghai slots from Feb 27 to Mar 2; the daemon is back on Mar 2 at 10:00.
        let due = [
            t("2026-02-27T09:00:00+08:00"),
            t("2026-02-28T09:00:00+08:00"),
            t("2026-03-01T09:00:00+08:00"),
            t("2026-03-02T09:00:00+08:00"),
        ];
        let now = t("2026-03-02T10:00:00+08:00");
        // Ages at `now`: 3d1h, 2d1h, 1d1h, 1h.
        let window = super::super::parse_duration(window).unwrap();
        let out = catch_up_in(&due, now, policy, window, Tz::Asia__Shanghai);
        assert_eq!(
            out.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            due,
            "every slot comes out, in order"
        );
        out.into_iter().map(|(_, f)| f).collect()
    }

    fn missed(r: &str) -> SlotFate {
        SlotFate::Missed {
            reason: r.to_string(),
        }
    }

    #[test]
    fn latest_runs_the_newest_slot_within_the_window() {
        let superseded =
            missed("missed: catch_up = latest, superseded by 2026-03-02T09:00:00+08:00");
        let old = missed("missed: older than catch_up_window 2d");
        assert_eq!(
            fates(CatchUp::Latest, "2d"),
            [old.clone(), old, superseded, SlotFate::Run]
        );
    }

    #[test]
    fn all_runs_every_slot_within_the_window() {
        let old = missed("missed: older than catch_up_window 3d");
        assert_eq!(
            fates(CatchUp::All, "3d"),
            [old, SlotFate::Run, SlotFate::Run, SlotFate::Run]
        );
        assert_eq!(fates(CatchUp::All, "1w"), [const { SlotFate::Run }; 4]);
    }

    #[test]
    fn skip_runs_nothing() {
        let skip = missed("missed: catch_up = skip");
        assert_eq!(
            fates(CatchUp::Skip, "1w"),
            [skip.clone(), skip.clone(), skip.clone(), skip]
        );
    }

    #[test]
    fn nothing_within_the_window_runs_nothing() {
        let old = missed("missed: older than catch_up_window 30m");
        assert_eq!(
            fates(CatchUp::Latest, "30m"),
            [old.clone(), old.clone(), old.clone(), old]
        );
    }

    #[test]
    fn plain_catch_up_writes_utc() {
        let out = catch_up(
            &[
                t("2026-03-01T09:00:00+08:00"),
                t("2026-03-02T09:00:00+08:00"),
            ],
            t("2026-03-02T09:00:00+08:00"),
            CatchUp::Latest,
            Duration::days(2),
        );
        assert_eq!(
            out[0].1,
            missed("missed: catch_up = latest, superseded by 2026-03-02T01:00:00+00:00")
        );
        assert_eq!(out[1].1, SlotFate::Run);
    }
}
