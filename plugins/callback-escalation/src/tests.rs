//! Tickets closing, callbacks made or not, timers firing: the chain as the desk lives it.

use super::*;

fn ms(s: &str) -> Timestamp {
    chrono::DateTime::parse_from_rfc3339(s)
        .unwrap()
        .timestamp_millis()
}

fn community() -> MockHost {
    let mut host = MockHost::new("shuipan");
    host.tickets.push(Ticket {
        id: "R-0001".into(),
        household: "1-101".into(),
        kind: "repair".into(),
        opened_at: ms("2026-09-17T09:00:00+08:00"),
        closed_at: Some(ms("2026-09-18T16:00:00+08:00")),
        assignee: Some("cs-li".into()),
        callback: None,
    });
    host
}

fn close(host: &mut MockHost, params: &str) {
    host.clear_output();
    let run = host.run("callback_escalation", params);
    let ev = EventIn {
        kind: "ticket.closed".into(),
        payload: r#"{"ticket_id": 17, "no": "R-0001", "kind": "repair", "assignee": "cs-li"}"#
            .into(),
    };
    CallbackEscalation.on_event(&run, &ev, host).unwrap();
}

/// Fires the earliest pending timer (as the scheduler would), returning the notices it produced.
fn fire(host: &mut MockHost, params: &str) -> Vec<(Role, String)> {
    host.timers.sort();
    let (at, payload) = host.timers.remove(0);
    let pending = std::mem::take(&mut host.timers);
    host.clear_output();
    host.now = at;
    let run = host.run("callback_escalation", params);
    CallbackEscalation.on_timer(&run, &payload, host).unwrap();
    host.timers.extend(pending);
    host.staff_notices
        .iter()
        .map(|n| (n.role, n.step.clone()))
        .collect()
}

fn var<'a>(n: &'a StaffNotice, key: &str) -> &'a str {
    n.vars
        .iter()
        .find(|f| f.key == key)
        .map(|f| f.value.as_str())
        .unwrap_or("")
}

#[test]
fn no_callback_escalates_to_the_supervisor_at_the_sla_then_to_the_manager() {
    let mut host = community();
    let mut desk = community();
    close(&mut desk, r#"{"remind_desk": true}"#);
    assert_eq!(desk.staff_notices[0].role, Role::CustomerService);
    assert_eq!(var(&desk.staff_notices[0], "due_at"), "2026-09-19 16:00");

    close(&mut host, "{}");
    assert!(
        host.staff_notices.is_empty(),
        "no desk reminder unless asked for"
    );
    let timers = host.timers.clone();
    close(&mut host, "{}");
    assert!(
        host.timers.is_empty(),
        "the same close replayed starts no second chain"
    );
    host.timers = timers;
    assert_eq!(
        host.timers[0].0,
        ms("2026-09-19T16:00:00+08:00"),
        "24 h for a repair"
    );

    assert_eq!(
        fire(&mut host, "{}"),
        [(Role::Supervisor, "overdue-supervisor:R-0001".to_string())]
    );
    let n = &host.staff_notices[0];
    assert_eq!(
        (
            var(n, "ticket.assignee"),
            var(n, "ticket.kind"),
            var(n, "overdue_hours")
        ),
        ("cs-li", "报修", "0")
    );
    assert_eq!(var(n, "ticket.closed_at"), "2026-09-18 16:00");
    assert_eq!(host.timers[0].0, ms("2026-09-20T16:00:00+08:00"));

    assert_eq!(
        fire(&mut host, "{}"),
        [(Role::Manager, "overdue-manager:R-0001".to_string())]
    );
    assert_eq!(
        var(&host.staff_notices[0], "ticket.assignee"),
        "cs-li",
        "首问负责制: the first receiver still owns it"
    );
    assert_eq!(var(&host.staff_notices[0], "overdue_hours"), "24");
    assert!(host.timers.is_empty(), "the manager is the last step");
    let history = host.kv["ticket:R-0001"].clone();
    let steps: Vec<&str> = history
        .split(',')
        .map(|s| s.split('@').next().unwrap())
        .collect();
    assert_eq!(steps, ["due", "supervisor", "manager"]);
}

#[test]
fn a_callback_in_time_stops_the_chain() {
    let mut host = community();
    close(&mut host, "{}");
    host.tickets[0].callback = Some(Callback {
        done_at: ms("2026-09-19T10:00:00+08:00"),
        by: "cs-li".into(),
        satisfied: true,
        score: 5,
    });
    assert!(fire(&mut host, "{}").is_empty());
    assert!(host.timers.is_empty());
    assert!(host.kv["ticket:R-0001"].ends_with(",callback-done"));
}

#[test]
fn a_reopened_or_reclosed_ticket_leaves_the_old_chain_silent() {
    let mut host = community();
    close(&mut host, "{}");
    host.tickets[0].closed_at = None;
    assert!(fire(&mut host, "{}").is_empty());
    host.tickets[0].closed_at = Some(ms("2026-09-21T11:00:00+08:00"));
    close(&mut host, "{}");
    assert_eq!(
        host.timers[0].0,
        ms("2026-09-22T11:00:00+08:00"),
        "the new close has its own deadline"
    );
}

#[test]
fn complaints_get_48_hours_and_the_sla_can_count_reception_hours_only() {
    let mut host = community();
    host.tickets[0].kind = "complaint".into();
    close(&mut host, "{}");
    assert_eq!(host.timers[0].0, ms("2026-09-20T16:00:00+08:00"));

    let mut host = community();
    // Closed Friday 16:00; 24 desk hours of 9 a day, Monday 21 Sep a holiday in the calendar.
    host.workdays.insert("2026-09-21".into(), false);
    for d in ["2026-09-22", "2026-09-23", "2026-09-24", "2026-09-25"] {
        host.workdays.insert(d.into(), true);
    }
    let params = r#"{"reception_hours": "08:30-17:30", "escalate_after_hours": 9}"#;
    close(&mut host, params);
    assert_eq!(host.timers[0].0, ms("2026-09-24T13:00:00+08:00"));
    fire(&mut host, params);
    assert_eq!(
        host.timers[0].0,
        ms("2026-09-25T13:00:00+08:00"),
        "one desk day later, not 9 wall hours"
    );
}

#[test]
fn the_daily_sweep_starts_chains_for_tickets_closed_while_nobody_listened_once() {
    let mut host = community();
    host.now = ms("2026-09-20T09:00:00+08:00");
    let run = host.run("callback_escalation", "{}");
    CallbackEscalation.on_schedule(&run, &mut host).unwrap();
    assert_eq!(host.timers.len(), 1);
    CallbackEscalation.on_schedule(&run, &mut host).unwrap();
    assert_eq!(
        host.timers.len(),
        1,
        "a chain already started is not started again"
    );
}

#[test]
fn bad_input_is_named() {
    let mut host = community();
    let run = host.run("callback_escalation", r#"{"reception_hours": "9-5"}"#);
    let ev = EventIn {
        kind: "ticket.closed".into(),
        payload: r#"{"no": "R-0001"}"#.into(),
    };
    assert_eq!(
        CallbackEscalation
            .on_event(&run, &ev, &mut host)
            .unwrap_err(),
        PluginError::InvalidParams("reception_hours: \"9-5\" is not HH:MM-HH:MM".into())
    );
    let run = host.run("callback_escalation", "{}");
    let ev = EventIn {
        kind: "ticket.closed".into(),
        payload: r#"{"no": "R-9999"}"#.into(),
    };
    assert_eq!(
        CallbackEscalation
            .on_event(&run, &ev, &mut host)
            .unwrap_err(),
        PluginError::BadData(
            "ticket.closed names a ticket this community does not have (R-9999)".into()
        )
    );
}

#[test]
fn a_closed_desk_task_owes_no_callback_and_starts_no_chain() {
    let mut host = community();
    // The fee ladder's visit to a household in arrears, done and closed by the manager.
    host.tickets[0].kind = "task".into();
    close(&mut host, "{}");
    assert!(host.timers.is_empty(), "no chain from the event");
    assert!(host.staff_notices.is_empty());
    host.now = ms("2026-09-20T09:00:00+08:00");
    let run = host.run("callback_escalation", "{}");
    CallbackEscalation.on_schedule(&run, &mut host).unwrap();
    assert!(host.timers.is_empty(), "none from the sweep either");
}
