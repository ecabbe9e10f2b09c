//! Domain events (a ticket closed, a payment posted or reversed, a survey answered) become runs
//! of the workflows that subscribe to them with `events = [...]`.
//!
//! The HTTP API writes each event into the domain's `events` table in the same transaction as the
//! change it reports. Here one transaction takes pending events and queues one run per
//! subscribing workflow (keyed by the event id, so a repeat is one run): an event is never lost
//! between the API and the scheduler, and never handled twice.

use chrono::{DateTime, Utc};

use wuye_config::Settings;
use wuye_store::Store;

/// How many events one transaction takes; the router loops until none is left.
const BATCH: usize = 500;

/// Does `pattern` (`ticket.closed`, `payment.*`, `*`) cover `kind`?
pub fn subscribes(pattern: &str, kind: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => kind.starts_with(prefix),
        None => pattern == kind,
    }
}

/// Turns every pending domain event into event runs. Returns how many runs were queued.
/// Events of a community nobody configured, or that no workflow subscribes to, are consumed and
/// written to the audit trail, so the table does not grow without end.
pub fn route_pending_events(
    store: &Store,
    settings: &Settings,
    now: DateTime<Utc>,
) -> anyhow::Result<usize> {
    let mut queued = 0;
    loop {
        let (taken, runs) = store.write(|tx| {
            let events = tx.take_pending_events(BATCH, now)?;
            let mut runs = 0;
            for event in &events {
                let payload = event.payload.to_string();
                let key = format!("event:{}", event.id);
                let subscribers: Vec<&str> = settings
                    .communities
                    .iter()
                    .filter(|c| c.id == event.community)
                    .flat_map(|c| c.workflows.iter())
                    .filter(|w| w.events.iter().any(|p| subscribes(p, &event.kind)))
                    .map(|w| w.name.as_str())
                    .collect();
                if subscribers.is_empty() {
                    tx.audit(
                        now,
                        None,
                        &event.community,
                        "",
                        "event.unrouted",
                        &format!("{} #{}: no workflow subscribes", event.kind, event.id),
                    )?;
                }
                for workflow in subscribers {
                    let queued = tx.enqueue_event(
                        &event.community,
                        workflow,
                        &event.kind,
                        &key,
                        &payload,
                        event.created_at,
                        now,
                    )?;
                    runs += usize::from(queued.is_some());
                }
            }
            Ok((events.len(), runs))
        })?;
        queued += runs;
        if taken < BATCH {
            return Ok(queued);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::Arc;

    use chrono::TimeZone;

    use super::*;
    use wuye_config::{Community, DaemonFile, Workflow};

    fn workflow(name: &str, events: &[&str]) -> Workflow {
        Workflow {
            events: events.iter().map(|e| e.to_string()).collect(),
            ..Workflow::for_test(name, &PathBuf::from("x.wasm"))
        }
    }

    fn settings(workflows: Vec<Workflow>) -> Settings {
        Settings {
            dir: PathBuf::from("."),
            daemon: DaemonFile::default(),
            tz: chrono_tz::Asia::Shanghai,
            data_dir: PathBuf::from("."),
            communities: vec![Arc::new(Community {
                workflows,
                ..Community::for_test("shuipan", "水畔花园")
            })],
        }
    }

    #[test]
    fn each_event_becomes_one_run_per_subscribing_workflow_and_is_taken_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_in(dir.path()).unwrap();
        let now = Utc.with_ymd_and_hms(2026, 11, 22, 2, 0, 0).unwrap();
        store
            .write(|tx| {
                let d = tx.domain("shuipan");
                d.emit("ticket.closed", serde_json::json!({"ticket": "T1"}), now)?;
                d.emit("payment.posted", serde_json::json!({"bill": 7}), now)?;
                d.emit("ticket.closed", serde_json::json!({"ticket": "T1"}), now)?;
                // A community nobody configured: consumed, audited, no run.
                tx.domain("elsewhere")
                    .emit("ticket.closed", serde_json::json!({}), now)?;
                Ok(())
            })
            .unwrap();
        let settings = settings(vec![
            workflow("callback_escalation", &["ticket.closed"]),
            workflow("fee_reminder", &["payment.*"]),
            workflow("quarterly_survey", &[]),
        ]);

        assert_eq!(route_pending_events(&store, &settings, now).unwrap(), 3);
        assert_eq!(
            route_pending_events(&store, &settings, now).unwrap(),
            0,
            "taken once"
        );

        let escalations = store.runs_of("shuipan", "callback_escalation").unwrap();
        // Two distinct events of the same kind are two runs; nothing for the survey workflow.
        assert_eq!(escalations.len(), 2);
        assert_eq!(store.runs_of("shuipan", "fee_reminder").unwrap().len(), 1);
        assert!(
            store
                .runs_of("shuipan", "quarterly_survey")
                .unwrap()
                .is_empty()
        );
        assert!(
            store
                .runs_of("elsewhere", "callback_escalation")
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn patterns_cover_exact_kinds_and_families() {
        assert!(subscribes("ticket.closed", "ticket.closed"));
        assert!(!subscribes("ticket.closed", "ticket.opened"));
        assert!(subscribes("payment.*", "payment.reversed"));
        assert!(!subscribes("payment.*", "survey.answered"));
        assert!(subscribes("*", "survey.answered"));
    }
}
