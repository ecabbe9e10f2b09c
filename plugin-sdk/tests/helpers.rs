//! The SDK's helpers as a plugin author uses them: against MockHost, through the public API.

use wuye_plugin_sdk::prelude::*;

#[test]
fn today_is_the_communitys_date_even_before_eight_in_the_morning() {
    let mut host = MockHost::new("lakeside");
    // 07:30 in Shanghai: UTC still reads the 20th.
    host.at("2027-02-21T07:30:00+08:00");
    assert_eq!(host.today().unwrap().to_string(), "2027-02-21");
    let run = host.run("fee_reminder", "");
    assert_eq!(run.local_date(&host).unwrap().to_string(), "2027-02-21");

    host.timezone = "Europe/London".into();
    assert_eq!(host.today().unwrap().to_string(), "2027-02-20");
    host.timezone = "Nowhere/Special".into();
    assert!(matches!(host.today(), Err(PluginError::BadData(m)) if m.contains("Nowhere/Special")));
}

#[test]
fn a_local_time_becomes_the_timer_instant() {
    let mut host = MockHost::new("lakeside");
    host.at("2027-02-21T10:00:00+08:00");
    let due = wuye_plugin_sdk::calendar::add_days(host.today().unwrap(), 3);
    let at = host.at_local(due, "09:00").unwrap();
    let mut later = MockHost::new("lakeside");
    later.at("2027-02-24T09:00:00+08:00");
    assert_eq!(at, later.now);
    assert!(host.at_local(due, "9 o'clock").is_err());
}

#[test]
fn once_every_days_lets_a_reminder_through_at_most_weekly() {
    let mut host = MockHost::new("lakeside");
    host.at("2027-03-01T09:00:00+08:00");
    assert!(host.once_every_days("low-balance:1-101", 7).unwrap());
    assert!(!host.once_every_days("low-balance:1-101", 7).unwrap());
    // Another household has its own memory.
    assert!(host.once_every_days("low-balance:1-102", 7).unwrap());
    host.at("2027-03-07T09:00:00+08:00");
    assert!(!host.once_every_days("low-balance:1-101", 7).unwrap());
    host.at("2027-03-08T09:00:00+08:00");
    assert!(host.once_every_days("low-balance:1-101", 7).unwrap());
    assert_eq!(host.kv["low-balance:1-101"], "2027-03-08");
}

#[test]
fn typed_kv_values_round_trip_and_ignore_junk() {
    let mut host = MockHost::new("lakeside");
    let d = wuye_plugin_sdk::calendar::parse_date("t", "2027-01-31").unwrap();
    host.kv_put_date("last_scan", d);
    host.kv_put_number("sent", -12);
    assert_eq!(host.kv_date("last_scan"), Some(d));
    assert_eq!(host.kv_number("sent"), Some(-12));
    host.kv_put("sent", "many");
    assert_eq!(host.kv_number("sent"), None);
    assert_eq!(host.kv_date("missing"), None);
}

#[test]
fn builders_make_a_community_and_messages_carry_their_reason() {
    let mut host = MockHost::new("lakeside");
    host.with_household("1-101", "1", "101")
        .with_owner("o2", "1-101", "Ann", "en")
        .with_bill("b1", "1-101", "2027-01", Money::yuan(350), "2027-01-31")
        .with_household("x", "", "");
    assert_eq!(host.owners("1-101").len(), 2);
    let h = host.household("1-101").unwrap();
    assert_eq!(h.label(), "1栋101");
    assert_eq!(host.household("x").unwrap().label(), "x");
    let bill = &host.unpaid_bills()[0];
    assert_eq!(bill.outstanding().to_string(), "¥350.00");
    assert_eq!(bill.due().unwrap().to_string(), "2027-01-31");

    let msg = Message::to_household("1-101", "bill_notice", "due")
        .var("household.label", h.label())
        .json_var("periods", &["2027-01"])
        .about_bills(["b1"]);
    assert_eq!(msg.get("household.label"), Some("1栋101"));
    assert_eq!(msg.get("periods"), Some(r#"["2027-01"]"#));
    assert_eq!(msg.get("bill_ids"), Some(r#"["b1"]"#));
    assert_eq!(msg.get("nope"), None);
    let notice = StaffNotice::new(Role::Supervisor, "callback_overdue", "s").about_ticket("T-7");
    assert_eq!(notice.get("ticket.id"), Some("T-7"));
    host.send(msg);
    assert_eq!(host.messages_with("bill_notice").len(), 1);
}

#[test]
fn roles_read_from_params_and_name_the_bad_value() {
    #[derive(serde::Deserialize)]
    struct Params {
        notify: Role,
    }
    let run = MockHost::new("c").run("w", r#"{"notify": "supervisor"}"#);
    assert_eq!(run.params::<Params>().unwrap().notify, Role::Supervisor);
    assert_eq!(Role::Manager.as_str(), "manager");
    let run = MockHost::new("c").run("w", r#"{"notify": "boss"}"#);
    match run.params::<Params>() {
        Err(PluginError::InvalidParams(m)) => assert!(m.contains("\"boss\""), "{m}"),
        Err(other) => panic!("wrong error: {other:?}"),
        Ok(_) => panic!("an unknown role was accepted"),
    }
}

#[test]
#[should_panic(expected = "not an RFC 3339 instant")]
fn a_malformed_instant_in_a_test_says_how_to_write_it() {
    MockHost::new("c").at("21 Feb 2027 10:00");
}
