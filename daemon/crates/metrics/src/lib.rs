//! Prometheus metrics, served at `GET /metrics` on `http.listen` (never on `http.public_listen`).
//!
//! Choices worth knowing:
//! - **One registry per process**, made on first use. The parts of the daemon call the small
//!   functions below at the moment something is on record (a run's outcome committed, a send's
//!   answer stored, a plugin stopped, a request answered), so a counter moves when the database
//!   does. Counters start at zero with each process, as Prometheus expects (`rate()` and
//!   `increase()` see the restart).
//! - **What the database already knows is read, not counted**: the outbox's unsettled messages
//!   and the age of the oldest waiting one are queried at each scrape ([`encode`]), so they stay
//!   true across restarts and when `wuyed outbox retry` or `cancel` changed rows from another
//!   process.
//! - **Labels are bounded by the configuration**: community, workflow, channel, outcome, route
//!   templates. Never an owner, a household, an address or a token: a request is labelled with
//!   its route template (`/survey/{token}`), not its path.
//! - The Prometheus text format (0.0.4), encoded by `prometheus-client`, the Prometheus project's
//!   own Rust client. docs/OPERATION.md lists every metric with its labels.

use std::sync::{LazyLock, Mutex};

use chrono::{DateTime, Utc};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use wuye_store::message::{Channel, Status};
use wuye_store::outbox::Unsettled;

/// The `Content-Type` of what [`encode`] writes.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// How a run ended, as recorded in the `runs` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    /// Its effects were committed (`done`).
    Done,
    /// It failed; nothing of it was applied (`failed`).
    Failed,
    /// It was never run: a catch-up policy, the calendar or a removed workflow (`missed`).
    Missed,
}

impl RunOutcome {
    fn as_str(self) -> &'static str {
        match self {
            RunOutcome::Done => "done",
            RunOutcome::Failed => "failed",
            RunOutcome::Missed => "missed",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    community: String,
    workflow: String,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SendLabels {
    channel: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabels {
    community: String,
    workflow: String,
    kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: &'static str,
    route: String,
    status: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutboxLabels {
    channel: &'static str,
    status: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChannelLabels {
    channel: &'static str,
}

struct Metrics {
    registry: Registry,
    runs: Family<RunLabels, Counter>,
    sends: Family<SendLabels, Counter>,
    plugin_failures: Family<PluginLabels, Counter>,
    http_requests: Family<HttpLabels, Counter>,
    outbox_messages: Family<OutboxLabels, Gauge>,
    outbox_oldest: Family<ChannelLabels, Gauge>,
    /// A scrape sets the outbox gauges and encodes under this lock, so two scrapes at once
    /// cannot mix their readings.
    scrape: Mutex<()>,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let mut registry = Registry::with_prefix("wuyed");
    let runs = Family::default();
    registry.register(
        "runs",
        "Workflow runs recorded, by community, workflow and outcome (done, failed, missed)",
        runs.clone(),
    );
    let sends = Family::default();
    registry.register(
        "sends",
        "Send attempts answered, by channel and outcome (sent; failed: retried later; dead: given up; unknown: held for a human)",
        sends.clone(),
    );
    let plugin_failures = Family::default();
    registry.register(
        "plugin_failures",
        "Plugin runs stopped, by community, workflow and kind (deadline, memory, intent_cap, oversized, trap, plugin_error, host)",
        plugin_failures.clone(),
    );
    let http_requests = Family::default();
    registry.register(
        "http_requests",
        "HTTP requests answered, by method, route template and status class",
        http_requests.clone(),
    );
    let outbox_messages = Family::default();
    registry.register(
        "outbox_messages",
        "Outbox messages not settled yet, by channel and status (pending, deferred, failed, sending, unknown), read from the database at each scrape",
        outbox_messages.clone(),
    );
    let outbox_oldest = Family::default();
    registry.register_with_unit(
        "outbox_oldest_waiting_age",
        "Age of the oldest message waiting to go (pending, deferred or failed) by channel; 0 when none waits",
        Unit::Seconds,
        outbox_oldest.clone(),
    );
    Metrics {
        registry,
        runs,
        sends,
        plugin_failures,
        http_requests,
        outbox_messages,
        outbox_oldest,
        scrape: Mutex::new(()),
    }
});

/// `n` runs of `community`/`workflow` recorded with `outcome`.
pub fn runs_recorded(community: &str, workflow: &str, outcome: RunOutcome, n: u64) {
    if n == 0 {
        return;
    }
    METRICS
        .runs
        .get_or_create(&RunLabels {
            community: community.to_string(),
            workflow: workflow.to_string(),
            outcome: outcome.as_str(),
        })
        .inc_by(n);
}

/// A send attempt's answer was stored with `status` (sent, failed, dead or unknown).
pub fn send_answered(channel: Channel, status: Status) {
    METRICS
        .sends
        .get_or_create(&SendLabels {
            channel: channel.as_str(),
            outcome: status.as_str(),
        })
        .inc();
}

/// A plugin run of `community`/`workflow` was stopped; `kind` is the host's classification.
pub fn plugin_failed(community: &str, workflow: &str, kind: &'static str) {
    METRICS
        .plugin_failures
        .get_or_create(&PluginLabels {
            community: community.to_string(),
            workflow: workflow.to_string(),
            kind,
        })
        .inc();
}

/// A request was answered. `route` is the matched route template (`None`: no route matched).
pub fn http_answered(method: &http::Method, route: Option<&str>, status: u16) {
    use http::Method;
    // Methods and routes come from clients: anything unexpected shares one label value, so a
    // scanner cannot grow the series without bound.
    let method = match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    };
    let status = match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    METRICS
        .http_requests
        .get_or_create(&HttpLabels {
            method,
            route: route.unwrap_or("unmatched").to_string(),
            status,
        })
        .inc();
}

/// The exposition text: every counter, and the outbox gauges set from `unsettled` (what
/// [`wuye_store::Tx::outbox_unsettled`] read just now) as of `now`.
pub fn encode(unsettled: &[Unsettled], now: DateTime<Utc>) -> String {
    let m = &*METRICS;
    let _one_scrape = m.scrape.lock().unwrap_or_else(|e| e.into_inner());
    // Every channel and status is shown, zeros included: an alert on a series that is absent
    // when all is well never fires.
    const SHOWN: [Status; 5] = [
        Status::Pending,
        Status::Deferred,
        Status::Failed,
        Status::Sending,
        Status::Unknown,
    ];
    for channel in [Channel::Email, Channel::Sms] {
        for status in SHOWN {
            let messages = unsettled
                .iter()
                .filter(|u| u.channel == channel && u.status == status)
                .map(|u| u.messages)
                .sum();
            m.outbox_messages
                .get_or_create(&OutboxLabels {
                    channel: channel.as_str(),
                    status: status.as_str(),
                })
                .set(messages);
        }
        let oldest = unsettled
            .iter()
            .filter(|u| {
                u.channel == channel
                    && matches!(
                        u.status,
                        Status::Pending | Status::Deferred | Status::Failed
                    )
            })
            .map(|u| u.oldest)
            .min();
        let age = oldest.map_or(0, |t| (now - t).num_seconds().max(0));
        m.outbox_oldest
            .get_or_create(&ChannelLabels {
                channel: channel.as_str(),
            })
            .set(age);
    }
    let mut text = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &m.registry);
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    /// The value of the series written exactly as `series` (name and labels), if present.
    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn counters_move_with_what_they_count_and_keep_labels_apart() {
        let now = Utc.with_ymd_and_hms(2026, 11, 23, 2, 0, 0).unwrap();
        let series = "wuyed_runs_total{community=\"metrics-test\",workflow=\"fee_reminder\",outcome=\"done\"}";
        let before = value(&encode(&[], now), series).unwrap_or(0.0);
        runs_recorded("metrics-test", "fee_reminder", RunOutcome::Done, 2);
        runs_recorded("metrics-test", "fee_reminder", RunOutcome::Failed, 1);
        runs_recorded("metrics-test", "fee_reminder", RunOutcome::Missed, 0);
        let text = encode(&[], now);
        assert_eq!(value(&text, series), Some(before + 2.0), "{text}");
        assert_eq!(
            value(
                &text,
                "wuyed_runs_total{community=\"metrics-test\",workflow=\"fee_reminder\",outcome=\"failed\"}"
            ),
            Some(1.0)
        );
        // Nothing recorded, no series.
        assert_eq!(
            value(
                &text,
                "wuyed_runs_total{community=\"metrics-test\",workflow=\"fee_reminder\",outcome=\"missed\"}"
            ),
            None
        );
        assert!(text.contains("# TYPE wuyed_runs_total counter"), "{text}");
    }

    #[test]
    fn requests_are_labelled_by_route_template_and_status_class() {
        let now = Utc.with_ymd_and_hms(2026, 11, 23, 2, 0, 0).unwrap();
        let route = "/metrics-test/{token}";
        let series = "wuyed_http_requests_total{method=\"GET\",route=\"/metrics-test/{token}\",status=\"4xx\"}";
        let before = value(&encode(&[], now), series).unwrap_or(0.0);
        http_answered(&http::Method::GET, Some(route), 404);
        http_answered(&http::Method::GET, Some(route), 410);
        let odd = http::Method::from_bytes(b"BREW").unwrap();
        http_answered(&odd, None, 405);
        let text = encode(&[], now);
        assert_eq!(value(&text, series), Some(before + 2.0), "{text}");
        assert!(
            text.contains(
                "wuyed_http_requests_total{method=\"other\",route=\"unmatched\",status=\"4xx\"}"
            ),
            "{text}"
        );
    }

    #[test]
    fn the_outbox_is_shown_as_read_with_zeros_and_the_oldest_waiting_age() {
        let now = Utc.with_ymd_and_hms(2026, 11, 23, 2, 0, 0).unwrap();
        let row = |channel, status, messages, minutes_ago| Unsettled {
            channel,
            status,
            messages,
            oldest: now - chrono::Duration::minutes(minutes_ago),
        };
        let text = encode(
            &[
                row(Channel::Email, Status::Pending, 3, 5),
                row(Channel::Email, Status::Deferred, 2, 90),
                // In flight or held for a human: counted, but not "waiting".
                row(Channel::Email, Status::Unknown, 1, 600),
                row(Channel::Sms, Status::Sending, 4, 1),
            ],
            now,
        );
        let get = |s: &str| value(&text, s).unwrap_or_else(|| panic!("{s} not in {text}"));
        assert_eq!(
            get("wuyed_outbox_messages{channel=\"email\",status=\"pending\"}"),
            3.0
        );
        assert_eq!(
            get("wuyed_outbox_messages{channel=\"email\",status=\"unknown\"}"),
            1.0
        );
        assert_eq!(
            get("wuyed_outbox_messages{channel=\"sms\",status=\"pending\"}"),
            0.0
        );
        assert_eq!(
            get("wuyed_outbox_oldest_waiting_age_seconds{channel=\"email\"}"),
            5400.0
        );
        assert_eq!(
            get("wuyed_outbox_oldest_waiting_age_seconds{channel=\"sms\"}"),
            0.0
        );
        // The next scrape reads afresh: nothing left over from this one.
        let text = encode(&[], now);
        assert_eq!(
            value(
                &text,
                "wuyed_outbox_messages{channel=\"email\",status=\"pending\"}"
            ),
            Some(0.0)
        );
    }
}
