//! What the host adds to, or records about, a plugin's messages from the domain store, where the
//! plugin cannot (or must not) see it: an event's place and each household's RSVP link, and the
//! record of staff notices about a ticket.
//!
//! Plugins address events and tickets by their natural keys (`event.id`, `ticket.id`); the
//! tokens and row ids behind them stay on this side of the sandbox.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::config::{Community, Role};
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
/// Returns the one staff member to address when the first receiver's line reaches `role`.
pub(super) fn ticket_notice(
    tx: &Tx<'_>,
    community: &Community,
    vars: &mut Value,
    role: Role,
    template: &str,
    step: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<Option<String>> {
    let Some(no) = vars.pointer("/ticket/id").and_then(Value::as_str) else {
        return Ok(None);
    };
    let Some(ticket) = DomainRead::new(tx.conn(), &community.id).ticket_by_no(no)? else {
        return Ok(None);
    };
    tx.domain(&community.id)
        .record_ticket_notice(ticket.id, role.as_str(), template, step, now)?;
    let name = community
        .staff
        .iter()
        .find(|s| s.id == ticket.first_receiver)
        .map_or_else(|| ticket.first_receiver.clone(), |s| s.name.clone());
    if let Some(Value::Object(t)) = vars.get_mut("ticket") {
        t.insert("first_receiver".into(), Value::String(name));
    }
    Ok(line_manager(community, &ticket.first_receiver, role))
}

/// Who in the first receiver's line (`reports_to`, upwards) holds `role`: the supervisor told
/// about an overdue callback is the first receiver's own, not every supervisor of the
/// community. `None` when the line does not reach the role (the notice then goes to everyone
/// with it, as config documents for a missing `reports_to`).
fn line_manager(community: &Community, first_receiver: &str, role: Role) -> Option<String> {
    let staff = &community.staff;
    let mut current = staff.iter().find(|s| s.id == first_receiver)?;
    // A chain longer than the staff list has a loop in it.
    for _ in 0..staff.len() {
        let next = staff
            .iter()
            .find(|s| Some(&s.id) == current.reports_to.as_ref())?;
        if next.role == role {
            return Some(next.id.clone());
        }
        current = next;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn community(staff: &str) -> Community {
        let file: crate::config::CommunityFile =
            toml::from_str(&format!("id = \"c\"\nname = \"c\"\n{staff}")).unwrap();
        Community {
            staff: file.staff,
            ..Community::for_test("c", "c")
        }
    }

    const TWO_TEAMS: &str = r#"
[[staff]]
id = "kefu-a"
name = "A"
role = "customer_service"
phone = "13800000001"
reports_to = "zhuguan-a"
[[staff]]
id = "kefu-b"
name = "B"
role = "customer_service"
phone = "13800000002"
[[staff]]
id = "zhuguan-a"
name = "SA"
role = "supervisor"
phone = "13800000003"
reports_to = "jingli"
[[staff]]
id = "zhuguan-b"
name = "SB"
role = "supervisor"
phone = "13800000004"
[[staff]]
id = "jingli"
name = "M"
role = "manager"
phone = "13800000005"
"#;

    #[test]
    fn an_overdue_callback_goes_up_the_first_receivers_own_line() {
        let c = community(TWO_TEAMS);
        assert_eq!(
            line_manager(&c, "kefu-a", Role::Supervisor).as_deref(),
            Some("zhuguan-a"),
            "team A's supervisor, not team B's"
        );
        assert_eq!(
            line_manager(&c, "kefu-a", Role::Manager).as_deref(),
            Some("jingli"),
            "two steps up"
        );
        // No line configured: every supervisor is told, as the config documents.
        assert_eq!(line_manager(&c, "kefu-b", Role::Supervisor), None);
        assert_eq!(line_manager(&c, "nobody", Role::Supervisor), None);
    }

    #[test]
    fn a_reports_to_loop_ends() {
        let c = community(
            r#"
[[staff]]
id = "a"
name = "A"
role = "customer_service"
phone = "13800000001"
reports_to = "b"
[[staff]]
id = "b"
name = "B"
role = "customer_service"
phone = "13800000002"
reports_to = "a"
"#,
        );
        assert_eq!(line_manager(&c, "a", Role::Manager), None);
    }
}
