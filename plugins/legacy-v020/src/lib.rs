//! legacy-v020: built against the frozen `wuye:plugin@0.2.0` world, as the standard plugins were
//! before 0.3.0. The host must keep loading and running it unchanged (tests in
//! `daemon/crates/plugin-host/src/sandbox_tests.rs`). It asks the one call 0.2.0 added (`is-workday`) about
//! the run's day and counts unpaid bills through the wide read that 0.3.0 narrowed, recording
//! both in kv and a staff notice: reads, kv and intents all still work through the 0.2.0
//! binding.
//! It also reads tickets and takes events trusting its world's kinds, trapping on any other, so
//! the tests prove the host never hands it a value added after its world (a desk task, an import
//! event; daemon/crates/plugin-host/src/wit/compat.rs).

// Raw wit-bindgen output and its export macro use `unsafe` and `export_name`; the SDK hides this
// from ordinary plugins, this one deliberately does without the SDK.
#![allow(unsafe_code)]

#[allow(clippy::all)]
mod bindings {
    wit_bindgen::generate!({
        path: "../../plugin-sdk/wit/since_v0.2.0",
        world: "plugin",
    });
}

use bindings::exports::wuye::plugin::hooks::Guest;
use bindings::wuye::plugin::host;
use bindings::wuye::plugin::types::{EventIn, Field, PluginError, Role, Run, StaffNotice};

struct Legacy;

/// Repairs and complaints among the tickets: the two kinds this world's `record ticket`
/// documents. Anything else traps, as a `match` on them would in a plugin that trusts its world.
fn ticket_kinds(community: &host::Community) -> (usize, usize) {
    let (mut repairs, mut complaints) = (0, 0);
    for t in community.tickets(0) {
        match t.kind.as_str() {
            "repair" => repairs += 1,
            "complaint" => complaints += 1,
            other => unreachable!("ticket kind {other} is not in wuye:plugin@0.2.0"),
        }
        // `ticket` must agree with `tickets`.
        assert!(
            community.ticket(&t.id).is_some(),
            "ticket {} vanished",
            t.id
        );
    }
    (repairs, complaints)
}

impl Guest for Legacy {
    fn on_schedule(run: Run) -> Result<(), PluginError> {
        let community = host::current_community();
        let (repairs, complaints) = ticket_kinds(&community);
        host::kv_put(
            "tickets",
            &format!("repair={repairs} complaint={complaints}"),
        );
        let unpaid = community.unpaid_bills().len();
        let workday = match community.is_workday("2026-10-01") {
            Some(true) => "workday",
            Some(false) => "holiday",
            None => "no calendar",
        };
        host::kv_put("unpaid", &unpaid.to_string());
        host::notify_staff(&StaffNotice {
            role: Role::Supervisor,
            template: "unpaid-count".into(),
            vars: vec![
                Field {
                    key: "unpaid".into(),
                    value: unpaid.to_string(),
                },
                Field {
                    key: "2026-10-01".into(),
                    value: workday.into(),
                },
                Field {
                    key: "community".into(),
                    value: run.community,
                },
            ],
            step: "count".into(),
        });
        Ok(())
    }

    fn on_timer(_run: Run, _payload: String) -> Result<(), PluginError> {
        Ok(())
    }

    /// Records the event's kind, trusting its world as a plugin may: a kind the host did not
    /// send when this world was the newest traps (the host must not deliver one).
    fn on_event(_run: Run, event: EventIn) -> Result<(), PluginError> {
        match event.kind.as_str() {
            "ticket.opened"
            | "ticket.closed"
            | "ticket.reopened"
            | "callback.recorded"
            | "payment.posted"
            | "payment.reversed"
            | "survey.answered"
            | "community_event.planned"
            | "payment_plan.agreed"
            | "payment_plan.ended" => {}
            other => unreachable!("event kind {other} is not one wuye:plugin@0.2.0 knows"),
        }
        host::kv_put("last-event", &event.kind);
        Ok(())
    }
}

#[cfg(target_arch = "wasm32")]
bindings::export!(Legacy with_types_in bindings);
