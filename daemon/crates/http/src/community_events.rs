//! Community events (社区活动) as the desk records them: plan or move an event, register an RSVP
//! taken by phone, write the summary afterwards. Planning emits `community_event.planned`, so
//! the `semiannual_event` workflow times the announcement at once instead of at its next weekly
//! look.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::DateTime;
use serde::Deserialize;

use super::{ApiError, AppState, Body, non_empty};
use crate::domain::{DomainError, Event, event_kind, fmt_ts};
use wuye_store::domain::{DomainRead, with_tx};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PlanEvent {
    title: String,
    /// RFC 3339 with the community's offset: its date is the event's day.
    starts_at: String,
    #[serde(default)]
    location: String,
}

fn event_json(e: &Event) -> serde_json::Value {
    serde_json::json!({
        "key": e.key,
        "title": e.title,
        "planned_for": e.planned_for.to_string(),
        "starts_at": e.starts_at.map(fmt_ts),
        "location": e.location,
        "summary": e.summary,
    })
}

/// `PUT /events/{key}`: 201 when new, 200 when an existing event was changed (moved).
pub(super) async fn plan(
    State(state): State<AppState>,
    Path((community, key)): Path<(String, String)>,
    Body(b): Body<PlanEvent>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    state
        .db(move |conn, now| {
            let key = non_empty("key", &key)?;
            let title = non_empty("title", &b.title)?;
            // The offset the desk wrote is the community's: its calendar day is the event's.
            let local = DateTime::parse_from_rfc3339(b.starts_at.trim()).map_err(|_| {
                ApiError::invalid(
                    "starts_at",
                    "must be an RFC 3339 time like 2026-05-16T09:30:00+08:00",
                )
            })?;
            let starts_at = local.to_utc();
            let before = DomainRead::new(conn, &community).event(&key)?;
            let e = with_tx(conn, |tx| -> Result<Event, DomainError> {
                let d = tx.domain(&community);
                let e = d.upsert_event(
                    &key,
                    &title,
                    local.date_naive(),
                    Some(starts_at),
                    b.location.trim(),
                )?;
                let unchanged = before.as_ref().is_some_and(|old| {
                    (&old.title, old.starts_at, &old.location)
                        == (&e.title, e.starts_at, &e.location)
                });
                if !unchanged {
                    d.emit(
                        event_kind::COMMUNITY_EVENT_PLANNED,
                        serde_json::json!({ "key": e.key, "starts_at": fmt_ts(starts_at) }),
                        now,
                    )?;
                }
                Ok(e)
            })?;
            let status = if before.is_some() {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            };
            Ok((status, Json(event_json(&e))))
        })
        .await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RecordRsvp {
    household: String,
    /// People coming; 0 withdraws the household's RSVP.
    #[serde(default = "one")]
    attendees: u32,
}

fn one() -> u32 {
    1
}

/// Largest party one household may register: a typo (100 for 10) should not book the hall.
pub(super) const MAX_ATTENDEES: u32 = 20;

/// `POST /events/{key}/rsvps`: an RSVP the desk took by phone or at the counter.
pub(super) async fn rsvp(
    State(state): State<AppState>,
    Path((community, key)): Path<(String, String)>,
    Body(b): Body<RecordRsvp>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    state
        .db(move |conn, now| {
            let household = non_empty("household", &b.household)?;
            if b.attendees > MAX_ATTENDEES {
                return Err(ApiError::invalid(
                    "attendees",
                    format!("must be between 0 and {MAX_ATTENDEES}"),
                ));
            }
            let read = DomainRead::new(conn, &community);
            let event = read.event(&key)?.ok_or_else(|| DomainError::NotFound {
                what: "event",
                key: key.clone(),
            })?;
            if read.household(&household)?.is_none() {
                return Err(ApiError::invalid(
                    "household",
                    format!("household {household:?} not found"),
                ));
            }
            with_tx(conn, |tx| {
                tx.domain(&community)
                    .record_rsvp(event.id, &household, b.attendees, now)
            })?;
            Ok((
                StatusCode::CREATED,
                Json(serde_json::json!({
                    "event": key,
                    "household": household,
                    "attendees": b.attendees,
                })),
            ))
        })
        .await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RecordSummary {
    summary: String,
}

/// `POST /events/{key}/summary`: what happened; stops the workflow asking for it.
pub(super) async fn summary(
    State(state): State<AppState>,
    Path((community, key)): Path<(String, String)>,
    Body(b): Body<RecordSummary>,
) -> Result<Json<serde_json::Value>, ApiError> {
    state
        .db(move |conn, now| {
            let text = non_empty("summary", &b.summary)?;
            let event = DomainRead::new(conn, &community)
                .event(&key)?
                .ok_or_else(|| DomainError::NotFound {
                    what: "event",
                    key: key.clone(),
                })?;
            with_tx(conn, |tx| {
                tx.domain(&community)
                    .record_event_summary(event.id, &text, now)
            })?;
            let e = DomainRead::new(conn, &community)
                .event(&key)?
                .ok_or_else(|| ApiError::internal("event vanished"))?;
            Ok(Json(event_json(&e)))
        })
        .await
}
