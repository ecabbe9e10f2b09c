//! semiannual-event: a community event (社区活动) every half year, from planning to summary.
//!
//! The schedule (`0 9 1 3,9 *`, first workday of March and September) reminds the staff who
//! plan events (`plan_role`, default supervisor) to plan this half year's event, and starts a
//! durable check every `recheck_days`. Each check looks for an event recorded in the half year
//! (by the desk, through the API): when one appears, its announcement to every household is
//! timed `announce_days_before` the day, a reminder goes the day before to the households that
//! RSVPed, and the day after the planners are asked for the summary (unless it is already in).
//! If no event is recorded `record_by_days` after the planning reminder, the manager is told,
//! once, on a workday (a deadline on a holiday waits for the next workday's 09:00). A moved event gets new timers; the old ones notice the date changed and stay quiet.
//! Subscribed to `community_event.planned` (the desk's `PUT .../events/{key}`), the workflow
//! times a new or moved event at once instead of at its next weekly look.
//!
//! The host adds what the plugin does not see to the messages: the event's place
//! (`event.place`) and each household's own RSVP link (`event.rsvp_link`).
//!
//! What was done is kept in the key-value store (`planned:2026H2`, `missing:2026H2`,
//! `scheduled:<event>@<start>`), so a repeated slot or timer never repeats a message.

use chrono::{Datelike, Duration, NaiveDate, NaiveTime};
use serde::{Deserialize, Serialize};
use workflow_kit::{at_local, half_bounds, half_key, local_date, role, zone};
use wuye_plugin_sdk::DAY_MS;
use wuye_plugin_sdk::prelude::*;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Who plans events and writes the summary (default `supervisor`).
    #[serde(default = "supervisor")]
    pub plan_role: String,
    /// Days after the planning reminder by which an event must be recorded (default 30).
    #[serde(default = "thirty")]
    pub record_by_days: u32,
    /// How often to look for a recorded (or moved) event (default 7 days).
    #[serde(default = "seven")]
    pub recheck_days: u32,
    /// Days before the event its announcement goes out (default 14).
    #[serde(default = "fourteen")]
    pub announce_days_before: u32,
}

fn supervisor() -> String {
    "supervisor".into()
}
fn thirty() -> u32 {
    30
}
fn seven() -> u32 {
    7
}
fn fourteen() -> u32 {
    14
}

/// What a timer carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Wake {
    /// Look for this half year's event; `deadline` is when its absence is reported.
    Check {
        half: String,
        deadline: Timestamp,
    },
    Announce {
        event: String,
        starts_at: Timestamp,
    },
    Eve {
        event: String,
        starts_at: Timestamp,
    },
    Summary {
        event: String,
        starts_at: Timestamp,
    },
}

#[derive(Debug, Default)]
pub struct SemiannualEvent;

/// `2026-05-16 09:30` in the community's zone.
fn local_time(ts: Timestamp, tz: chrono_tz::Tz) -> String {
    workflow_kit::instant(ts)
        .with_timezone(&tz)
        .format("%Y-%m-%d %H:%M")
        .to_string()
}

fn ten() -> NaiveTime {
    NaiveTime::from_hms_opt(10, 0, 0).unwrap_or_default()
}

impl SemiannualEvent {
    fn params(run: &Run) -> Result<(Params, Role), PluginError> {
        let p: Params = run.params()?;
        if p.recheck_days == 0 {
            return Err(PluginError::InvalidParams(
                "recheck_days: must be at least 1".into(),
            ));
        }
        let r = role("plan_role", &p.plan_role)?;
        Ok((p, r))
    }

    fn wake(host: &mut dyn Host, at: Timestamp, wake: &Wake) {
        host.set_timer(at, &serde_json::to_string(wake).unwrap_or_default());
    }

    fn plan(&self, run: &Run, host: &mut dyn Host) -> Result<(), PluginError> {
        let (params, planner) = Self::params(run)?;
        let tz = zone(&host.timezone())?;
        let today = local_date(run.due_at, tz);
        let half = half_key(today);
        let key = format!("planned:{half}");
        if host.kv_get(&key).is_some() {
            return Ok(());
        }
        let (_, last) = half_bounds(today);
        host.notify_staff(
            StaffNotice::new(planner, "planning_reminder", &format!("plan:{half}"))
                .var("half", &half)
                .var(
                    "plan_by",
                    today + Duration::days(i64::from(params.record_by_days)),
                )
                // No date yet: the planners choose it; the half year's last day bounds it.
                .var("event_date", format!("{last} 前"))
                .var("half_ends", last),
        );
        host.kv_put(&key, &run.due_at.to_string());
        let deadline = run.due_at + i64::from(params.record_by_days) * DAY_MS;
        Self::wake(host, run.due_at + DAY_MS, &Wake::Check { half, deadline });
        Ok(())
    }

    fn events_in(host: &dyn Host, half: &str, tz: chrono_tz::Tz) -> Vec<Event> {
        host.events()
            .into_iter()
            .filter(|e| half_key(local_date(e.starts_at, tz)) == half)
            .collect()
    }

    fn check(
        &self,
        run: &Run,
        half: &str,
        deadline: Timestamp,
        host: &mut dyn Host,
    ) -> Result<(), PluginError> {
        let (params, _) = Self::params(run)?;
        let tz = zone(&host.timezone())?;
        let now = run.due_at;
        let events = Self::events_in(host, half, tz);
        Self::time_messages(&params, &events, now, tz, host);
        let missing_key = format!("missing:{half}");
        let overdue = events.is_empty() && now >= deadline && host.kv_get(&missing_key).is_none();
        let today = local_date(now, tz);
        if overdue && !Self::workday(host, today) {
            // The manager hears of it on the next workday at 09:00, not on a public holiday.
            let mut day = today + Duration::days(1);
            while !Self::workday(host, day) && day - today < Duration::days(30) {
                day += Duration::days(1);
            }
            let at = at_local(
                day,
                NaiveTime::from_hms_opt(9, 0, 0).unwrap_or_default(),
                tz,
            );
            Self::wake(
                host,
                at,
                &Wake::Check {
                    half: half.to_string(),
                    deadline,
                },
            );
            return Ok(());
        }
        if overdue {
            host.notify_staff(
                StaffNotice::new(Role::Manager, "no_event", &format!("missing:{half}"))
                    .var("half", half)
                    .var("deadline", local_date(deadline, tz)),
            );
            host.kv_put(&missing_key, &now.to_string());
        }
        // Keep looking until the half year is over: an event may be recorded late or moved.
        let (_, last) = half_bounds(local_date(now, tz));
        let next = now + i64::from(params.recheck_days) * DAY_MS;
        if local_date(next, tz) <= last {
            // Land on the deadline itself if it falls before the next regular check.
            let at = if now < deadline && deadline < next {
                deadline
            } else {
                next
            };
            Self::wake(
                host,
                at,
                &Wake::Check {
                    half: half.to_string(),
                    deadline,
                },
            );
        }
        Ok(())
    }

    /// The community's calendar when it has one, else Monday to Friday.
    fn workday(host: &dyn Host, day: NaiveDate) -> bool {
        host.is_workday(&day.format("%Y-%m-%d").to_string())
            .unwrap_or(day.weekday().number_from_monday() <= 5)
    }

    /// Sets the announcement, eve and summary timers of each event not yet timed at its
    /// current start; `scheduled:<event>@<start>` keeps a repeated look from timing it twice.
    fn time_messages(
        params: &Params,
        events: &[Event],
        now: Timestamp,
        tz: chrono_tz::Tz,
        host: &mut dyn Host,
    ) {
        for e in events {
            let key = format!("scheduled:{}@{}", e.id, e.starts_at);
            if host.kv_get(&key).is_some() || e.starts_at <= now {
                continue;
            }
            host.kv_put(&key, &now.to_string());
            let day: NaiveDate = local_date(e.starts_at, tz);
            let announce = at_local(
                day - Duration::days(i64::from(params.announce_days_before)),
                ten(),
                tz,
            )
            .max(now);
            let eve = at_local(day - Duration::days(1), ten(), tz).max(now);
            let after = at_local(day + Duration::days(1), ten(), tz);
            let (event, starts_at) = (e.id.clone(), e.starts_at);
            Self::wake(
                host,
                announce,
                &Wake::Announce {
                    event: event.clone(),
                    starts_at,
                },
            );
            Self::wake(
                host,
                eve,
                &Wake::Eve {
                    event: event.clone(),
                    starts_at,
                },
            );
            Self::wake(host, after, &Wake::Summary { event, starts_at });
        }
    }

    /// The event a timer is about, if it still happens at the same time.
    fn current(host: &dyn Host, id: &str, starts_at: Timestamp) -> Option<Event> {
        host.events()
            .into_iter()
            .find(|e| e.id == id && e.starts_at == starts_at)
    }

    fn fire(&self, run: &Run, wake: Wake, host: &mut dyn Host) -> Result<(), PluginError> {
        let (_, planner) = Self::params(run)?;
        let tz = zone(&host.timezone())?;
        match wake {
            Wake::Check { half, deadline } => return self.check(run, &half, deadline, host),
            Wake::Announce { event, starts_at } => {
                let Some(e) = Self::current(host, &event, starts_at) else {
                    return Ok(());
                };
                for h in host.households() {
                    host.send(
                        Message::to_household(&h.id, "announcement", &format!("announce:{}", e.id))
                            .var("event.id", &e.id)
                            .var("event.title", &e.title)
                            .var("event.date", local_time(e.starts_at, tz))
                            .category(Category::Informational),
                    );
                }
            }
            Wake::Eve { event, starts_at } => {
                let Some(e) = Self::current(host, &event, starts_at) else {
                    return Ok(());
                };
                for h in &e.rsvps {
                    host.send(
                        Message::to_household(h, "rsvp_reminder", &format!("eve:{}", e.id))
                            .var("event.id", &e.id)
                            .var("event.title", &e.title)
                            .var("event.date", local_time(e.starts_at, tz))
                            .category(Category::Informational),
                    );
                }
            }
            Wake::Summary { event, starts_at } => {
                let Some(e) = Self::current(host, &event, starts_at) else {
                    return Ok(());
                };
                if !e.summary_done {
                    host.notify_staff(
                        StaffNotice::new(planner, "summary_request", &format!("summary:{}", e.id))
                            .var("event.id", &e.id)
                            .var("event.title", &e.title)
                            .var("event.date", local_time(e.starts_at, tz))
                            .var(
                                "summary_by",
                                local_date(e.starts_at, tz) + Duration::days(7),
                            )
                            .var("rsvps", e.rsvps.len()),
                    );
                }
            }
        }
        Ok(())
    }
}

impl Plugin for SemiannualEvent {
    fn on_schedule(&mut self, run: &Run, host: &mut dyn Host) -> Result<(), PluginError> {
        self.plan(run, host)
    }

    fn on_timer(
        &mut self,
        run: &Run,
        payload: &str,
        host: &mut dyn Host,
    ) -> Result<(), PluginError> {
        let wake: Wake = serde_json::from_str(payload)
            .map_err(|e| PluginError::BadData(format!("timer payload {payload:?}: {e}")))?;
        self.fire(run, wake, host)
    }

    /// An event recorded or moved by the desk is timed now rather than at the next weekly
    /// look, which could be too late for an announcement two weeks ahead.
    fn on_event(
        &mut self,
        run: &Run,
        event: &EventIn,
        host: &mut dyn Host,
    ) -> Result<(), PluginError> {
        if event.kind != "community_event.planned" {
            return Ok(());
        }
        let (params, _) = Self::params(run)?;
        let tz = zone(&host.timezone())?;
        let events = host.events();
        Self::time_messages(&params, &events, run.due_at, tz, host);
        Ok(())
    }
}

export_plugin!(SemiannualEvent);
wuye_plugin_sdk::manifest!(include_str!("../manifest.toml"));

#[cfg(test)]
mod tests;
