//! What the host adds to, or records about, a plugin's messages from the domain store, where the
//! plugin cannot (or must not) see it: an event's place and each household's RSVP link, and the
//! record of staff notices about a ticket.
//!
//! Plugins address events and tickets by their natural keys (`event.id`, `ticket.id`); the
//! tokens and row ids behind them stay on this side of the sandbox.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::config::Community;
use crate::store::Tx;
use crate::store::domain::DomainRead;

/// For a message about a community event (`event.id`): adds `event.place` and, for a message to
/// a household, `event.rsvp_link`, the household's personal page to say it comes (报名).
pub(super) fn event_details(
    tx: &Tx<'_>,
    public_url: &str,
    community: &Community,
    household: Option<&str>,
    vars: &mut Value,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let Some(key) = vars.pointer("/event/id").and_then(Value::as_str) else {
        return Ok(());
    };
    let Some(event) = DomainRead::new(tx.conn(), &community.id).event(key)? else {
        return Ok(());
    };
    let link = match household {
        Some(h) => {
            let invitation = tx.domain(&community.id).rsvp_invitation(event.id, h, now)?;
            Some(format!("{public_url}/rsvp/{}", invitation.token))
        }
        None => None,
    };
    if let Some(Value::Object(e)) = vars.get_mut("event") {
        e.insert("place".into(), Value::String(event.location));
        if let Some(link) = link {
            e.insert("rsvp_link".into(), Value::String(link));
        }
    }
    Ok(())
}

/// For a staff notice that names a ticket (`ticket.id`): adds `ticket.first_receiver`, the
/// name of the staff member who took the call and owns the callback (首问负责人, which plugins
/// do not see: their ticket carries the assignee), and records the notice against the ticket,
/// so the callbacks report can show who was told when (首问负责制 wants every step on record).
pub(super) fn ticket_notice(
    tx: &Tx<'_>,
    community: &Community,
    vars: &mut Value,
    role: &str,
    template: &str,
    step: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let Some(no) = vars.pointer("/ticket/id").and_then(Value::as_str) else {
        return Ok(());
    };
    let Some(ticket) = DomainRead::new(tx.conn(), &community.id).ticket_by_no(no)? else {
        return Ok(());
    };
    tx.domain(&community.id)
        .record_ticket_notice(ticket.id, role, template, step, now)?;
    let name = community
        .raw
        .staff
        .iter()
        .find(|s| s.id == ticket.first_receiver)
        .map_or_else(|| ticket.first_receiver.clone(), |s| s.name.clone());
    if let Some(Value::Object(t)) = vars.get_mut("ticket") {
        t.insert("first_receiver".into(), Value::String(name));
    }
    Ok(())
}
