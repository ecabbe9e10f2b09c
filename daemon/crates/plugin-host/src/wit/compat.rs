//! What an older world may be handed: the values of its open strings that existed when it was
//! the newest.
//!
//! The released worlds have the same records (0.2.0 and 0.3.0 only added `community` methods),
//! so no field ever has to be dropped. What changed is the data behind two strings their WIT
//! leaves open, whose documented values a plugin may trust:
//!
//! - ticket kind `task` (a desk task: owes no callback), added after 0.3.0: omitted from the
//!   reads of 0.1.0 and 0.2.0 (`tickets`, `ticket`), and so are the events about such a ticket;
//! - events `community_event.planned`, `payment_plan.agreed`, `payment_plan.ended`, added after
//!   0.2.0 was released (with 0.1.0): withheld from 0.1.0;
//! - events `import.owners`, `import.bills`, `import.payments`, `import.balances`,
//!   `import.tickets`, `import.surveys`, added after 0.3.0: withheld from 0.1.0 and 0.2.0.
//!
//! The rule: a world knows the values the host had on the day the next world was released (0.1.0
//! and 0.2.0 were released together; 0.3.0 is the newest and gets every value as it is added, which
//! is how `task` and `import.*` reached the standard plugins). Older worlds get a frozen list and
//! anything outside it is filtered out, never mapped to a neighbour: there is no faithful
//! neighbour for any of them (a task is neither a repair nor a complaint: both owe the owner a
//! callback), and a value a plugin's world does not have would make it trap on a `match` it had
//! every right to write, or worse, treat a desk task as an owner's repair and chase a callback
//! nobody owes. Period forms (`2026H2`), fee types, utilities, survey areas and languages predate
//! 0.1.0 and reach every world unchanged.
//!
//! What an old plugin hands back (messages, notices, tickets, timers) has the current shapes in
//! every world and is converted up unchanged; a `new-ticket.kind` of the plugin's own becomes a
//! task in the sink, as for any plugin.

use super::super::data::{CommunityData, Ticket};

/// The values of open strings a world may be handed (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Vocabulary {
    /// The newest world: every value, including those added since its release. Frozen into a
    /// [`Vocabulary::Frozen`] list, as of that day, when the next world is released.
    Newest,
    /// An older world: only these.
    Frozen {
        /// `ticket.kind` values.
        ticket_kinds: &'static [&'static str],
        /// `event-in.kind` values.
        event_kinds: &'static [&'static str],
    },
}

/// Event kinds whose payload names a ticket (`no`, and `kind` where the event carries it): one
/// about a ticket the world cannot read is withheld with it.
const TICKET_EVENTS: &[&str] = &[
    "ticket.opened",
    "ticket.closed",
    "ticket.reopened",
    "callback.recorded",
];

impl Vocabulary {
    /// Whether reads may return this ticket. An unknown kind is omitted: `tickets` leaves it
    /// out and `ticket` answers none, as for a ticket that does not exist.
    pub fn knows_ticket(self, t: &Ticket) -> bool {
        match self {
            Vocabulary::Newest => true,
            Vocabulary::Frozen { ticket_kinds, .. } => ticket_kinds.contains(&t.kind.as_str()),
        }
    }

    /// Why this event is not delivered (the run's log says so), or `None` to deliver it. Withheld:
    /// a kind the world does not know, and an event about a ticket its reads omit (a closed desk
    /// task), whose payload would name a ticket the plugin then cannot find, or a kind it lacks.
    /// Errors are failed reads of that ticket.
    pub fn withholds_event(
        self,
        version: super::WitVersion,
        kind: &str,
        payload: &str,
        data: &dyn CommunityData,
    ) -> anyhow::Result<Option<String>> {
        let Vocabulary::Frozen {
            ticket_kinds,
            event_kinds,
        } = self
        else {
            return Ok(None);
        };
        if !event_kinds.contains(&kind) {
            return Ok(Some(format!(
                "event {kind} not delivered: the plugin is built for wuye:plugin@{version}, \
                 which predates it (rebuild it against a newer SDK to receive it)"
            )));
        }
        if !TICKET_EVENTS.contains(&kind) {
            return Ok(None);
        }
        // Payloads are the host's own JSON; one without a ticket number is delivered as is.
        let Ok(serde_json::Value::Object(p)) = serde_json::from_str(payload) else {
            return Ok(None);
        };
        let ticket_kind = match (p.get("kind"), p.get("no")) {
            (Some(serde_json::Value::String(k)), _) => Some(k.clone()),
            (_, Some(serde_json::Value::String(no))) => data.ticket(no)?.map(|t| t.kind),
            _ => None,
        };
        Ok(match ticket_kind {
            Some(k) if !ticket_kinds.contains(&k.as_str()) => Some(format!(
                "event {kind} not delivered: it is about a ticket of kind {k}, which \
                 wuye:plugin@{version} does not have (rebuild the plugin against a newer SDK to \
                 receive it)"
            )),
            _ => None,
        })
    }
}

/// The event kinds an `events = [...]` entry (a kind, a family such as `payment.*`, or `*`)
/// covers that a plugin of `version` is never handed, in [`wuye_core::domain::event_kind::ALL`]'s
/// order; none for the newest world. Matched as the scheduler matches
/// ([`wuye_scheduler::events::subscribes`]), against this module's lists.
pub fn withheld_kinds(version: super::WitVersion, pattern: &str) -> Vec<&'static str> {
    let Vocabulary::Frozen { event_kinds, .. } = version.vocabulary() else {
        return Vec::new();
    };
    wuye_core::domain::event_kind::ALL
        .into_iter()
        .filter(|k| wuye_scheduler::events::subscribes(pattern, k) && !event_kinds.contains(k))
        .collect()
}

/// The kinds of an `events` entry when a plugin of `version` gets none of them, so the
/// subscription can never start a run (what `wuyed check` warns about); `None` when at least one
/// kind it covers is delivered, or it covers none.
///
/// A family or `*` that still delivers some kinds is not reported, though later members of it
/// are withheld: the plugin was written when its world was the newest and meant the kinds there
/// were then, which it still gets, so `*` or `ticket.*` on every old plugin would be a warning
/// with nothing to fix (and a failure under `--deny-warnings`). A deaf subscription is a real
/// mistake: the workflow waits for something that never comes.
pub fn never_delivered(version: super::WitVersion, pattern: &str) -> Option<Vec<&'static str>> {
    let withheld = withheld_kinds(version, pattern);
    let covered = wuye_core::domain::event_kind::ALL
        .iter()
        .filter(|k| wuye_scheduler::events::subscribes(pattern, k))
        .count();
    (!withheld.is_empty() && withheld.len() == covered).then_some(withheld)
}

#[cfg(test)]
mod tests {
    use super::super::{SUPPORTED_VERSIONS, WitVersion};
    use super::*;
    use wuye_core::domain::{TicketKind, event_kind};

    #[test]
    fn only_the_newest_world_gets_values_added_after_its_release() {
        let (newest, older) = SUPPORTED_VERSIONS.split_last().unwrap();
        assert_eq!(
            newest.vocabulary(),
            Vocabulary::Newest,
            "the newest world receives new values as they are added"
        );
        for v in older {
            assert!(
                matches!(v.vocabulary(), Vocabulary::Frozen { .. }),
                "{v} is no longer the newest: freeze its values as of the next release \
                 (wit/compat.rs)"
            );
        }
    }

    #[test]
    fn frozen_lists_name_values_the_host_has_and_leave_out_the_later_ones() {
        let tasks = TicketKind::Task.as_str();
        for v in SUPPORTED_VERSIONS {
            let Vocabulary::Frozen {
                ticket_kinds,
                event_kinds,
            } = v.vocabulary()
            else {
                continue;
            };
            for k in ticket_kinds {
                assert!(k.parse::<TicketKind>().is_ok(), "{v}: no ticket kind {k}");
            }
            for k in event_kinds {
                assert!(event_kind::ALL.contains(k), "{v}: no event kind {k}");
            }
            assert!(!ticket_kinds.contains(&tasks), "{v} predates desk tasks");
            assert!(
                !event_kinds.contains(&event_kind::BILLS_IMPORTED),
                "{v} predates import events"
            );
        }
        let Vocabulary::Frozen { event_kinds, .. } = WitVersion::V0_1_0.vocabulary() else {
            panic!("0.1.0 is frozen");
        };
        assert!(!event_kinds.contains(&event_kind::PAYMENT_PLAN_AGREED));
    }

    #[test]
    fn an_exact_kind_is_withheld_when_the_world_predates_it() {
        assert_eq!(
            withheld_kinds(WitVersion::V0_2_0, event_kind::BILLS_IMPORTED),
            [event_kind::BILLS_IMPORTED]
        );
        assert_eq!(
            never_delivered(WitVersion::V0_2_0, event_kind::BILLS_IMPORTED),
            Some(vec![event_kind::BILLS_IMPORTED])
        );
        assert_eq!(
            never_delivered(WitVersion::V0_1_0, event_kind::PAYMENT_PLAN_AGREED),
            Some(vec![event_kind::PAYMENT_PLAN_AGREED])
        );
        // Known to the world: delivered.
        assert_eq!(
            withheld_kinds(WitVersion::V0_2_0, event_kind::PAYMENT_PLAN_AGREED),
            Vec::<&str>::new()
        );
        assert_eq!(
            never_delivered(WitVersion::V0_1_0, event_kind::TICKET_CLOSED),
            None
        );
    }

    #[test]
    fn a_family_is_reported_only_when_the_world_gets_none_of_it() {
        let imports = vec![
            event_kind::OWNERS_IMPORTED,
            event_kind::BILLS_IMPORTED,
            event_kind::PAYMENTS_IMPORTED,
            event_kind::BALANCES_IMPORTED,
            event_kind::TICKETS_IMPORTED,
            event_kind::SURVEYS_IMPORTED,
        ];
        assert_eq!(withheld_kinds(WitVersion::V0_2_0, "import.*"), imports);
        assert_eq!(
            never_delivered(WitVersion::V0_2_0, "import.*"),
            Some(imports)
        );
        assert_eq!(
            never_delivered(WitVersion::V0_1_0, "payment_plan.*"),
            Some(vec![
                event_kind::PAYMENT_PLAN_AGREED,
                event_kind::PAYMENT_PLAN_ENDED
            ])
        );
        // `payment.*` is not `payment_plan.*`: 0.1.0 gets all of it.
        assert_eq!(
            withheld_kinds(WitVersion::V0_1_0, "payment.*"),
            Vec::<&str>::new()
        );
        assert_eq!(never_delivered(WitVersion::V0_2_0, "ticket.*"), None);
    }

    #[test]
    fn everything_still_delivers_most_kinds_to_an_old_world() {
        let withheld = withheld_kinds(WitVersion::V0_1_0, "*");
        assert!(
            withheld.contains(&event_kind::BILLS_IMPORTED),
            "{withheld:?}"
        );
        assert!(
            withheld.contains(&event_kind::PAYMENT_PLAN_ENDED),
            "{withheld:?}"
        );
        assert!(
            !withheld.contains(&event_kind::TICKET_OPENED),
            "{withheld:?}"
        );
        assert_eq!(never_delivered(WitVersion::V0_1_0, "*"), None);
        assert_eq!(never_delivered(WitVersion::V0_2_0, "*"), None);
    }

    #[test]
    fn the_newest_world_is_handed_every_kind() {
        let newest = *SUPPORTED_VERSIONS.last().unwrap();
        for pattern in event_kind::ALL.into_iter().chain(["*", "import.*"]) {
            assert_eq!(
                withheld_kinds(newest, pattern),
                Vec::<&str>::new(),
                "{pattern}"
            );
            assert_eq!(never_delivered(newest, pattern), None, "{pattern}");
        }
    }
}
