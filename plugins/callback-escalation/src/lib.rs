//! callback-escalation: every closed repair (报修) or complaint (投诉) gets its callback (回访)
//! on time, or the people who can make it happen hear about it.
//!
//! When a ticket closes (`ticket.closed`), the desk (客服) is reminded that a callback is due
//! within the community's SLA (default 24 h for repairs, 48 h for complaints), and a durable timer
//! is set for the deadline. If the timer finds no callback, the supervisor (主管) is told; still
//! none after `escalate_after_hours`, the manager (经理). The SLA can be counted in reception
//! hours (`reception_hours = "08:30-17:30"`), skipping nights, weekends and the calendar's
//! holidays, for communities whose desk works office hours (`reception_workdays_only = false`
//! for a desk open every day).
//!
//! The first receiver (首问负责人) stays the owner of the ticket all along: escalation tells the
//! supervisor and manager *who* owes the callback; it never hands the ticket to someone else.
//! Each step is recorded in the plugin's key-value store (`ticket:<id>`) so the audit, the reports
//! and a re-run all agree on what happened. A callback recorded in time, a reopened ticket or a
//! ticket closed again (a new `ticket.closed` starts a new chain) stops the chain.

use serde::{Deserialize, Serialize};
use workflow_kit::{HOUR_MS, ReceptionHours, add_reception_hours, zone};
use wuye_plugin_sdk::DAY_MS;
use wuye_plugin_sdk::prelude::*;

/// The workflow's `params` table. The SLA names are shared with `wuyed report callbacks`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    #[serde(default = "h24")]
    pub sla_hours_repair: u32,
    #[serde(default = "h48")]
    pub sla_hours_complaint: u32,
    /// After the supervisor is told, how long until the manager is.
    #[serde(default = "h24")]
    pub escalate_after_hours: u32,
    /// Count the SLA only inside these hours (`08:30-17:30`); wall-clock hours when absent.
    #[serde(default)]
    pub reception_hours: Option<String>,
    /// Whether the desk keeps those hours on workdays only (default) or every day, as a desk
    /// open at weekends does (the community's `reception_hours.workdays_only`).
    #[serde(default = "yes")]
    pub reception_workdays_only: bool,
    /// Remind the desk when the ticket closes, with template `callback_due` (which the
    /// community then provides; default false: the shipped templates have none).
    #[serde(default)]
    pub remind_desk: bool,
}

fn h24() -> u32 {
    24
}
fn yes() -> bool {
    true
}
fn h48() -> u32 {
    48
}

/// What the deadline timer carries: enough to know whether the chain still applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chase {
    pub ticket: String,
    /// The close this chain belongs to; a later close starts its own chain.
    pub closed_at: Timestamp,
    /// `supervisor` or `manager`.
    pub step: String,
    /// When the callback was due (the SLA deadline), for "overdue by N hours".
    #[serde(default)]
    pub due_at: Option<Timestamp>,
}

/// 报修 / 投诉 for the notices.
/// Repairs and complaints owe the owner a callback; a desk task (`task`: a fee visit the ladder
/// opened) is the desk's own work and owes none.
fn owes_callback(kind: &str) -> bool {
    kind == "repair" || kind == "complaint"
}

fn kind_zh(kind: &str) -> &str {
    match kind {
        "repair" => "报修",
        "complaint" => "投诉",
        other => other,
    }
}

/// `2026-09-18 16:00` in the community's zone.
fn local_time(ts: Timestamp, tz: chrono_tz::Tz) -> String {
    workflow_kit::instant(ts)
        .with_timezone(&tz)
        .format("%Y-%m-%d %H:%M")
        .to_string()
}

/// `ticket.closed` as the domain emits it (ids may be numbers or strings).
#[derive(Debug, Deserialize)]
struct Closed {
    #[serde(default)]
    ticket_id: Option<serde_json::Value>,
    #[serde(default)]
    no: Option<String>,
}

fn id_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[derive(Debug, Default)]
pub struct CallbackEscalation;

impl CallbackEscalation {
    fn params(run: &Run) -> Result<(Params, Option<ReceptionHours>), PluginError> {
        let p: Params = run.params()?;
        let desk = p
            .reception_hours
            .as_deref()
            .map(|s| ReceptionHours::parse("reception_hours", s))
            .transpose()?;
        Ok((p, desk))
    }

    /// `start` + `hours`, in reception hours when the community counts that way.
    fn deadline(
        host: &dyn Host,
        desk: Option<ReceptionHours>,
        workdays_only: bool,
        start: Timestamp,
        hours: u32,
    ) -> Result<Timestamp, PluginError> {
        let Some(desk) = desk else {
            return Ok(start + i64::from(hours) * HOUR_MS);
        };
        let tz = zone(&host.timezone())?;
        Ok(add_reception_hours(start, hours, tz, desk, &|d| {
            if workdays_only {
                host.is_workday(&d.format("%Y-%m-%d").to_string())
            } else {
                Some(true)
            }
        }))
    }

    fn closed(&self, run: &Run, event: &EventIn, host: &mut dyn Host) -> Result<(), PluginError> {
        let (params, desk) = Self::params(run)?;
        let c: Closed = serde_json::from_str(&event.payload)
            .map_err(|e| PluginError::BadData(format!("ticket.closed payload: {e}")))?;
        let candidates: Vec<String> =
            c.no.iter()
                .cloned()
                .chain(c.ticket_id.as_ref().map(id_text))
                .collect();
        let Some(ticket) = candidates.iter().find_map(|id| host.ticket(id)) else {
            return Err(PluginError::BadData(format!(
                "ticket.closed names a ticket this community does not have ({})",
                candidates.join(" / ")
            )));
        };
        if !owes_callback(&ticket.kind) {
            host.log(
                Level::Info,
                "no callback for a desk task",
                &[("ticket", &ticket.id), ("kind", &ticket.kind)],
            );
            return Ok(());
        }
        let Some(closed_at) = ticket.closed_at else {
            host.log(
                Level::Info,
                "ticket reopened before its close was handled",
                &[("ticket", &ticket.id)],
            );
            return Ok(());
        };
        if ticket.callback.is_some() {
            return Ok(());
        }
        // The same close seen twice (a replayed event, the sweep after the event) starts one chain.
        let chain = format!("chain:{}", ticket.id);
        if host.kv_get(&chain).as_deref() == Some(closed_at.to_string().as_str()) {
            return Ok(());
        }
        host.kv_put(&chain, &closed_at.to_string());
        let sla = match ticket.kind.as_str() {
            "complaint" => params.sla_hours_complaint,
            _ => params.sla_hours_repair,
        };
        let due = Self::deadline(host, desk, params.reception_workdays_only, closed_at, sla)?;
        let owner = ticket.assignee.clone().unwrap_or_default();
        if params.remind_desk {
            host.notify_staff(
                StaffNotice::new(
                    Role::CustomerService,
                    "callback_due",
                    &format!("callback-due:{}", ticket.id),
                )
                .var("ticket.id", &ticket.id)
                .var("ticket.kind", kind_zh(&ticket.kind))
                .var("ticket.assignee", &owner)
                .var("household", &ticket.household)
                .var("due_at", local_time(due, zone(&host.timezone())?)),
            );
        }
        let chase = Chase {
            ticket: ticket.id.clone(),
            closed_at,
            step: "supervisor".into(),
            due_at: Some(due),
        };
        host.set_timer(due, &serde_json::to_string(&chase).unwrap_or_default());
        self.record(host, &ticket.id, &format!("due@{due}"));
        Ok(())
    }

    fn chase(&self, run: &Run, payload: &str, host: &mut dyn Host) -> Result<(), PluginError> {
        let (params, desk) = Self::params(run)?;
        let chase: Chase = serde_json::from_str(payload)
            .map_err(|e| PluginError::BadData(format!("timer payload {payload:?}: {e}")))?;
        let Some(ticket) = host.ticket(&chase.ticket) else {
            host.log(
                Level::Warn,
                "ticket gone; escalation dropped",
                &[("ticket", &chase.ticket)],
            );
            return Ok(());
        };
        if !owes_callback(&ticket.kind) {
            // A chain started before the ticket became a desk task (wuyed's migration 7).
            return Ok(());
        }
        if let Some(cb) = &ticket.callback {
            let by = cb.by.clone();
            self.record(host, &ticket.id, "callback-done");
            host.log(
                Level::Info,
                "callback done; no escalation",
                &[("ticket", &ticket.id), ("by", &by)],
            );
            return Ok(());
        }
        if ticket.closed_at != Some(chase.closed_at) {
            // Reopened (a bad callback, or the owner came back) or closed again: that close has
            // its own chain.
            return Ok(());
        }
        let (role, next) = match chase.step.as_str() {
            "supervisor" => (Role::Supervisor, Some("manager")),
            "manager" => (Role::Manager, None),
            other => {
                return Err(PluginError::BadData(format!(
                    "timer payload: unknown step {other:?}"
                )));
            }
        };
        let now = run.due_at;
        let tz = zone(&host.timezone())?;
        let owner = ticket.assignee.clone().unwrap_or_default();
        host.notify_staff(
            StaffNotice::new(
                role,
                "callback_overdue",
                &format!("overdue-{}:{}", chase.step, ticket.id),
            )
            .var("ticket.id", &ticket.id)
            .var("ticket.kind", kind_zh(&ticket.kind))
            .var(
                "ticket.summary",
                format!("{} {}", ticket.household, kind_zh(&ticket.kind)),
            )
            .var("ticket.closed_at", local_time(chase.closed_at, tz))
            // 首问负责制: the first receiver still owns the callback; the notice says who.
            .var("ticket.assignee", &owner)
            .var("household", &ticket.household)
            .var(
                "overdue_hours",
                (now - chase.due_at.unwrap_or(chase.closed_at)) / HOUR_MS,
            ),
        );
        self.record(host, &ticket.id, &format!("{}@{now}", chase.step));
        if let Some(next) = next {
            let at = Self::deadline(
                host,
                desk,
                params.reception_workdays_only,
                now,
                params.escalate_after_hours,
            )?;
            let again = Chase {
                step: next.into(),
                ..chase
            };
            host.set_timer(at, &serde_json::to_string(&again).unwrap_or_default());
        }
        Ok(())
    }

    /// Appends a step to the ticket's history (`due@…,supervisor@…,manager@…`).
    fn record(&self, host: &mut dyn Host, ticket: &str, step: &str) {
        let key = format!("ticket:{ticket}");
        let history = match host.kv_get(&key) {
            Some(h) if !h.is_empty() => format!("{h},{step}"),
            _ => step.to_string(),
        };
        host.kv_put(&key, &history);
    }

    /// The daily sweep (if the workflow has a schedule): tickets closed in the last 30 days
    /// that no callback answered and with no chain yet (closed while the daemon was down, or
    /// imported) get one. Only those are read: open tickets (fee visits and other desk tasks
    /// pile up) are not the sweep's business.
    fn sweep(&self, run: &Run, host: &mut dyn Host) -> Result<(), PluginError> {
        let since = run.due_at - 30 * DAY_MS;
        let mut started = 0;
        for t in host.tickets_awaiting_callback(since) {
            if host.kv_get(&format!("ticket:{}", t.id)).is_some() {
                continue;
            }
            let payload = serde_json::json!({ "no": t.id }).to_string();
            self.closed(
                run,
                &EventIn {
                    kind: "ticket.closed".into(),
                    payload,
                },
                host,
            )?;
            started += 1;
        }
        host.log(
            Level::Info,
            "callback sweep",
            &[("chains_started", &started.to_string())],
        );
        Ok(())
    }
}

impl Plugin for CallbackEscalation {
    fn on_schedule(&mut self, run: &Run, host: &mut dyn Host) -> Result<(), PluginError> {
        self.sweep(run, host)
    }

    fn on_timer(
        &mut self,
        run: &Run,
        payload: &str,
        host: &mut dyn Host,
    ) -> Result<(), PluginError> {
        self.chase(run, payload, host)
    }

    fn on_event(
        &mut self,
        run: &Run,
        event: &EventIn,
        host: &mut dyn Host,
    ) -> Result<(), PluginError> {
        match event.kind.as_str() {
            "ticket.closed" => self.closed(run, event, host),
            _ => Ok(()),
        }
    }
}

export_plugin!(CallbackEscalation);
wuye_plugin_sdk::manifest!(include_str!("../manifest.toml"));

#[cfg(test)]
mod tests;
