//! The daemon as an operator runs it in production, on the shipped demo with the real binary:
//! the owner pages on a listener of their own behind a reverse proxy (`http.public_listen`,
//! links made from `http.public_url`), and Prometheus scraping `/metrics`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::daemon::{Demo, free_port, stop};

/// The status code of a whole HTTP answer.
fn status(answer: &str) -> u16 {
    answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"))
}

const EVENT: &str =
    r#"{"title":"便民服务日","starts_at":"2026-11-24T09:30:00+08:00","location":"中心花园"}"#;

#[test]
fn owner_pages_are_served_on_public_listen_alone_and_the_api_on_listen_alone() {
    let mut demo = Demo::new();
    let public = free_port();
    demo.env.push((
        "WUYE_HTTP__PUBLIC_LISTEN".into(),
        format!("127.0.0.1:{public}"),
    ));
    // Behind a proxy serving the pages under /wuye (a trailing slash as people write it).
    demo.env.push((
        "WUYE_HTTP__PUBLIC_URL".into(),
        "https://wuye.example.com/wuye/".into(),
    ));
    let daemon = demo.start("2026-11-23T09:59:30+08:00");
    demo.wait_listening();
    demo.wait_listening_at(public);

    // The desk's API, health, metrics and the API description: on listen only.
    let event = "/api/v1/communities/shuipan/events/2026H2-fair";
    let refused = demo.request_at(public, "PUT", event, "application/json", EVENT);
    assert_eq!(status(&refused), 404, "{refused}");
    let planned = demo.request("PUT", event, "application/json", EVENT);
    assert_eq!(status(&planned), 201, "{planned}");
    for path in ["/healthz", "/metrics", "/api/v1/openapi.json"] {
        let private = demo.request("GET", path, "text/plain", "");
        assert_eq!(status(&private), 200, "{path} on listen: {private}");
        let public = demo.request_at(public, "GET", path, "text/plain", "");
        assert_eq!(status(&public), 404, "{path} on public_listen: {public}");
    }

    // The announcement's link is public_url's.
    demo.wait_for(
        "the announcement",
        "SELECT count(*) FROM outbox WHERE template = 'semiannual_event/announcement'",
        1,
    );
    let body: String = demo
        .db()
        .query_row(
            "SELECT body_text FROM outbox WHERE template = 'semiannual_event/announcement' \
             ORDER BY id LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let prefix = "https://wuye.example.com/wuye/rsvp/";
    let at = body
        .find(prefix)
        .unwrap_or_else(|| panic!("no link under {prefix} in {body}"));
    let token: String = body[at + prefix.len()..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    assert!(token.len() >= 16, "{body}");

    // The proxy strips /wuye: the daemon serves /rsvp/{token} on public_listen, not on listen,
    // and the form posts to the page's own address, so it works under the prefix.
    let page = format!("/rsvp/{token}");
    let shown = demo.request_at(public, "GET", &page, "text/plain", "");
    assert_eq!(status(&shown), 200, "{shown}");
    assert!(shown.contains("便民服务日"), "{shown}");
    assert!(shown.contains(&format!("action=\"{token}\"")), "{shown}");
    let hidden = demo.request("GET", &page, "text/plain", "");
    assert_eq!(status(&hidden), 404, "{hidden}");
    let signed = demo.request_at(
        public,
        "POST",
        &page,
        "application/x-www-form-urlencoded",
        "attendees=2",
    );
    assert_eq!(status(&signed), 200, "{signed}");
    assert_eq!(
        demo.count("SELECT count(*) FROM rsvps WHERE attendees = 2"),
        1
    );

    // The owners' survey answer is theirs too: an unknown token is the survey's own 404 on
    // public_listen, and no endpoint at all on listen.
    let answer = "/api/v1/surveys/AAAAAAAAAAAAAAAAAAAAAA/responses";
    let owners = demo.request_at(
        public,
        "POST",
        answer,
        "application/json",
        r#"{"reception":5}"#,
    );
    assert!(
        owners.starts_with("HTTP/1.1 404") && owners.contains("no survey invitation"),
        "{owners}"
    );
    let api = demo.request("POST", answer, "application/json", r#"{"reception":5}"#);
    assert!(
        api.starts_with("HTTP/1.1 404") && api.contains("no such endpoint"),
        "{api}"
    );
    stop(daemon);
}

/// `GET /metrics` on `listen`: each sample by its series (`name{labels}`), once the text is
/// checked to be well-formed exposition: a `# TYPE` line before each family's samples, a
/// number for every value, the `wuyed_` prefix on every name.
fn scrape(demo: &Demo) -> BTreeMap<String, f64> {
    let answer = demo.request("GET", "/metrics", "text/plain", "");
    let (head, body) = answer.split_once("\r\n\r\n").expect("headers and a body");
    assert!(head.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    let mut typed = BTreeSet::new();
    let mut samples = BTreeMap::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
            assert!(["counter", "gauge"].contains(&kind), "{line}");
            typed.insert(name.to_string());
            continue;
        }
        if line.is_empty() || line.starts_with("# HELP ") {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("not a sample: {line:?}"));
        let name = series.split('{').next().unwrap();
        assert!(name.starts_with("wuyed_"), "{line}");
        assert!(typed.contains(name), "{name} has no # TYPE line: {body}");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("not a number: {line:?}"));
        assert!(
            samples.insert(series.to_string(), value).is_none(),
            "{series} twice"
        );
    }
    samples
}

/// The samples of one family (`wuyed_runs_total`), non-zero ones only.
fn family(samples: &BTreeMap<String, f64>, name: &str) -> BTreeMap<String, f64> {
    samples
        .iter()
        .filter(|(k, v)| k.starts_with(&format!("{name}{{")) && **v != 0.0)
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

/// Rows of `sql` (`label values..., count`) as the samples `series` makes of them.
fn expected(demo: &Demo, sql: &str, series: impl Fn(&[String]) -> String) -> BTreeMap<String, f64> {
    let db = demo.db();
    let mut stmt = db.prepare(sql).unwrap();
    let n = stmt.column_count();
    stmt.query_map([], |r| {
        let labels: Vec<String> = (0..n - 1)
            .map(|i| r.get::<_, String>(i))
            .collect::<rusqlite::Result<_>>()?;
        Ok((series(&labels), r.get::<_, i64>(n - 1)? as f64))
    })
    .unwrap()
    .collect::<rusqlite::Result<_>>()
    .unwrap()
}

#[test]
fn metrics_count_the_runs_sends_and_requests_the_daemon_made() {
    let mut demo = Demo::new();
    // Email goes to a relay that is down, so each email's first attempt fails and waits an
    // hour for its retry; SMS go to the demo's file sink and are sent.
    let relay = free_port();
    demo.env.push((
        "WUYE_DELIVERY__EMAIL__SMTP".into(),
        format!(r#"{{ host = "127.0.0.1", port = {relay}, tls = "none" }}"#),
    ));
    demo.env
        .push(("WUYE_DELIVERY__RETRY__BASE".into(), "1h".into()));
    let daemon = demo.start("2026-11-23T09:59:58+08:00");
    demo.wait_listening();
    for _ in 0..3 {
        let health = demo.request("GET", "/healthz", "text/plain", "");
        assert_eq!(status(&health), 200, "{health}");
    }
    // Well-formed from the first scrape on, before anything ran.
    scrape(&demo);
    demo.wait_for(
        "both fee reminder runs",
        "SELECT count(*) FROM runs WHERE workflow = 'fee_reminder' AND trigger_kind = 'schedule' \
         AND state = 'done'",
        2,
    );
    let queued = demo.count("SELECT count(*) FROM outbox");
    demo.wait_for(
        "every message answered",
        "SELECT count(*) FROM outbox WHERE status IN ('sent', 'failed')",
        queued,
    );
    let emails = demo.count("SELECT count(*) FROM outbox WHERE channel = 'email'");
    let texts = demo.count("SELECT count(*) FROM outbox WHERE channel = 'sms'");
    assert!(emails > 0 && texts > 0, "{emails} emails, {texts} SMS");

    // The counters equal what the database recorded: every run by its outcome, every answer
    // of a send attempt. (Polled: a run's counter moves just after its commit.)
    let runs = || {
        expected(
            &demo,
            "SELECT community, workflow, state, count(*) FROM runs \
             WHERE state IN ('done', 'failed', 'missed') GROUP BY 1, 2, 3",
            |l| {
                format!(
                    "wuyed_runs_total{{community=\"{}\",workflow=\"{}\",outcome=\"{}\"}}",
                    l[0], l[1], l[2]
                )
            },
        )
    };
    let sends = || {
        expected(
            &demo,
            "SELECT channel, status, count(*) FROM outbox GROUP BY 1, 2",
            |l| {
                format!(
                    "wuyed_sends_total{{channel=\"{}\",outcome=\"{}\"}}",
                    l[0], l[1]
                )
            },
        )
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let samples = loop {
        let samples = scrape(&demo);
        let agree = family(&samples, "wuyed_runs_total") == runs()
            && family(&samples, "wuyed_sends_total") == sends();
        if agree || Instant::now() > deadline {
            break samples;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(family(&samples, "wuyed_runs_total"), runs());
    assert_eq!(family(&samples, "wuyed_sends_total"), sends());
    let done = "wuyed_runs_total{community=\"shuipan\",workflow=\"fee_reminder\",outcome=\"done\"}";
    assert!(samples[done] >= 1.0, "{samples:#?}");
    assert_eq!(
        samples["wuyed_sends_total{channel=\"email\",outcome=\"failed\"}"],
        emails as f64
    );

    // The outbox as it stands: the failed emails wait for their retry, nothing else waits.
    let get = |name: &str| {
        *samples
            .get(name)
            .unwrap_or_else(|| panic!("{name} not in {samples:#?}"))
    };
    assert_eq!(
        get("wuyed_outbox_messages{channel=\"email\",status=\"failed\"}"),
        emails as f64
    );
    assert_eq!(
        get("wuyed_outbox_messages{channel=\"sms\",status=\"pending\"}"),
        0.0
    );
    assert_eq!(
        get("wuyed_outbox_oldest_waiting_age_seconds{channel=\"sms\"}"),
        0.0
    );
    let age = get("wuyed_outbox_oldest_waiting_age_seconds{channel=\"email\"}");
    assert!((0.0..600.0).contains(&age), "{age}");

    // Requests by route template: the three health checks, and each scrape once it is
    // answered (a scrape shows the ones before it).
    assert_eq!(
        get("wuyed_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"2xx\"}"),
        3.0
    );
    let scrapes =
        get("wuyed_http_requests_total{method=\"GET\",route=\"/metrics\",status=\"2xx\"}");
    let again = scrape(&demo);
    assert_eq!(
        again["wuyed_http_requests_total{method=\"GET\",route=\"/metrics\",status=\"2xx\"}"],
        scrapes + 1.0
    );
    stop(daemon);
}
