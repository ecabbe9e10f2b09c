//! A half year of one community, timer by timer, with the desk recording the event late.

use super::*;

fn ms(s: &str) -> Timestamp {
    chrono::DateTime::parse_from_rfc3339(s)
        .unwrap()
        .timestamp_millis()
}

fn community() -> MockHost {
    let mut host = MockHost::new("shijixinzhu");
    for h in ["1-101", "1-102", "2-201"] {
        host.households.push(Household {
            id: h.into(),
            building: h[..1].into(),
            unit: h[2..].into(),
            owners: vec![],
        });
    }
    host
}

fn fete(starts: &str) -> Event {
    Event {
        id: "2026H1-fete".into(),
        title: "邻里节 Neighbours' day".into(),
        starts_at: ms(starts),
        rsvps: vec!["1-101".into(), "2-201".into()],
        summary_done: false,
    }
}

/// Runs the planning slot at `plan_at`, then fires timers in order until `until`, calling
/// `world` before each to let the desk change data. Returns a timeline of what went out.
fn live(
    host: &mut MockHost,
    plan_at: &str,
    until: &str,
    world: &mut dyn FnMut(&mut MockHost, Timestamp),
) -> Vec<String> {
    let tz = zone("Asia/Shanghai").unwrap();
    let mut out = Vec::new();
    host.now = ms(plan_at);
    let run = host.run("semiannual_event", "{}");
    SemiannualEvent.on_schedule(&run, host).unwrap();
    let mut pending = Vec::new();
    loop {
        for m in host.messages.drain(..) {
            let to = match m.to {
                Recipient::Household(h) | Recipient::Owner(h) => h,
            };
            out.push(format!(
                "{} {to} {} {}",
                local_date(host.now, tz),
                m.template,
                m.step
            ));
        }
        for n in host.staff_notices.drain(..) {
            out.push(format!(
                "{} {:?} {} {}",
                local_date(host.now, tz),
                n.role as u8,
                n.template,
                n.step
            ));
        }
        pending.append(&mut host.timers);
        pending.sort();
        if pending.is_empty() || pending[0].0 > ms(until) {
            return out;
        }
        let (at, payload) = pending.remove(0);
        host.now = at;
        world(host, at);
        let run = host.run("semiannual_event", "{}");
        SemiannualEvent.on_timer(&run, &payload, host).unwrap();
    }
}

#[test]
fn a_half_year_from_planning_reminder_to_summary_request() {
    let mut host = community();
    let out = live(
        &mut host,
        "2026-03-02T09:00:00+08:00",
        "2026-06-30T23:59:00+08:00",
        &mut |h, at| {
            // The supervisor records the event on 10 April, after the manager was told.
            if at >= ms("2026-04-10T00:00:00+08:00") && h.events.is_empty() {
                h.events.push(fete("2026-05-16T09:30:00+08:00"));
            }
        },
    );
    // Role as u8: 0 customer service, 1 supervisor, 2 manager.
    assert_eq!(
        out,
        [
            "2026-03-02 1 planning_reminder plan:2026H1",
            "2026-04-01 2 no_event missing:2026H1",
            "2026-05-02 1-101 announcement announce:2026H1-fete",
            "2026-05-02 1-102 announcement announce:2026H1-fete",
            "2026-05-02 2-201 announcement announce:2026H1-fete",
            "2026-05-15 1-101 rsvp_reminder eve:2026H1-fete",
            "2026-05-15 2-201 rsvp_reminder eve:2026H1-fete",
            "2026-05-17 1 summary_request summary:2026H1-fete",
        ]
    );
}

#[test]
fn an_event_recorded_in_time_spares_the_manager_and_a_written_summary_stops_the_request() {
    let mut host = community();
    host.events.push(fete("2026-05-16T09:30:00+08:00"));
    let out = live(
        &mut host,
        "2026-03-02T09:00:00+08:00",
        "2026-06-30T23:59:00+08:00",
        &mut |h, at| {
            if at >= ms("2026-05-16T18:00:00+08:00") {
                h.events[0].summary_done = true;
            }
        },
    );
    assert!(!out.iter().any(|l| l.contains("no_event")), "{out:#?}");
    assert!(
        !out.iter().any(|l| l.contains("summary_request")),
        "{out:#?}"
    );
    assert_eq!(out.iter().filter(|l| l.contains("announcement")).count(), 3);
}

#[test]
fn a_moved_event_is_announced_for_its_new_date_only() {
    let mut host = community();
    host.events.push(fete("2026-05-16T09:30:00+08:00"));
    let out = live(
        &mut host,
        "2026-03-02T09:00:00+08:00",
        "2026-06-30T23:59:00+08:00",
        &mut |h, at| {
            if at >= ms("2026-04-20T00:00:00+08:00") {
                h.events[0].starts_at = ms("2026-06-06T09:30:00+08:00");
            }
        },
    );
    let announced: Vec<&String> = out.iter().filter(|l| l.contains("announcement")).collect();
    assert_eq!(announced.len(), 3);
    assert!(
        announced.iter().all(|l| l.starts_with("2026-05-23")),
        "{announced:#?}"
    );
}

#[test]
fn a_repeated_planning_slot_does_not_remind_twice() {
    let mut host = community();
    host.now = ms("2026-09-01T09:00:00+08:00");
    let run = host.run("semiannual_event", "{}");
    SemiannualEvent.on_schedule(&run, &mut host).unwrap();
    SemiannualEvent.on_schedule(&run, &mut host).unwrap();
    assert_eq!(host.staff_notices.len(), 1);
    assert_eq!(host.staff_notices[0].step, "plan:2026H2");
}

#[test]
fn params_are_checked() {
    let mut host = community();
    let run = host.run("semiannual_event", r#"{"plan_role": "owner"}"#);
    assert!(
        matches!(SemiannualEvent.on_schedule(&run, &mut host).unwrap_err(), PluginError::InvalidParams(m) if m.starts_with("plan_role: unknown role \"owner\""))
    );
    let run = host.run("semiannual_event", r#"{"recheck_days": 0}"#);
    assert_eq!(
        SemiannualEvent.on_schedule(&run, &mut host).unwrap_err(),
        PluginError::InvalidParams("recheck_days: must be at least 1".into())
    );
}

#[test]
fn an_event_recorded_by_the_desk_is_timed_at_once_not_at_the_next_weekly_look() {
    let mut host = community();
    // Recorded on 4 May for 16 May: the announcement is due 2 May, so it goes at once, and
    // the eve and summary timers follow; the weekly check chain is not started a second time.
    host.now = ms("2026-05-04T15:00:00+08:00");
    host.events.push(fete("2026-05-16T09:30:00+08:00"));
    let run = host.run("semiannual_event", "{}");
    let planned = EventIn {
        kind: "community_event.planned".into(),
        payload: r#"{"key":"2026H1-fete"}"#.into(),
    };
    SemiannualEvent.on_event(&run, &planned, &mut host).unwrap();
    let mut wakes: Vec<(Timestamp, Wake)> = host
        .timers
        .iter()
        .map(|(at, p)| (*at, serde_json::from_str(p).unwrap()))
        .collect();
    wakes.sort_by_key(|(at, _)| *at);
    let kinds: Vec<(Timestamp, &str)> = wakes
        .iter()
        .map(|(at, w)| {
            let k = match w {
                Wake::Announce { .. } => "announce",
                Wake::Eve { .. } => "eve",
                Wake::Summary { .. } => "summary",
                Wake::Check { .. } => "check",
            };
            (*at, k)
        })
        .collect();
    assert_eq!(
        kinds,
        [
            (ms("2026-05-04T15:00:00+08:00"), "announce"),
            (ms("2026-05-15T10:00:00+08:00"), "eve"),
            (ms("2026-05-17T10:00:00+08:00"), "summary"),
        ]
    );
    // The same event again (a repeated delivery of the domain event) sets nothing new.
    host.timers.clear();
    SemiannualEvent.on_event(&run, &planned, &mut host).unwrap();
    assert!(host.timers.is_empty());
    // Other kinds are not this workflow's business.
    let other = EventIn {
        kind: "ticket.closed".into(),
        payload: "{}".into(),
    };
    host.events[0].starts_at = ms("2026-06-06T09:30:00+08:00");
    SemiannualEvent.on_event(&run, &other, &mut host).unwrap();
    assert!(host.timers.is_empty());
}

#[test]
fn a_deadline_on_a_public_holiday_tells_the_manager_on_the_next_workday() {
    let mut host = community();
    // National Day: 1-7 October off; the deadline (30 days after 1 September) is the 1st.
    for day in 1..=7 {
        host.workdays.insert(format!("2026-10-{day:02}"), false);
    }
    let out = live(
        &mut host,
        "2026-09-01T09:00:00+08:00",
        "2026-12-31T23:59:00+08:00",
        &mut |_, _| {},
    );
    assert_eq!(
        out,
        [
            "2026-09-01 1 planning_reminder plan:2026H2",
            "2026-10-08 2 no_event missing:2026H2",
        ]
    );
}
