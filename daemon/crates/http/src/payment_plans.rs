//! Payment plans (分期还款) the desk agrees with owners in arrears. wuye keeps no plan table of
//! its own: the plan is a rule of the community's fee workflow, so the API hands it to the
//! workflows as `payment_plan.agreed` / `payment_plan.ended` events, and a plugin that honours
//! plans (世纪新筑's `payment_plan_reminder`) keeps them in its key-value store.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::NaiveDate;
use serde::Deserialize;

use super::{ApiError, AppState, Body, non_empty};
use crate::domain::event_kind;
use wuye_store::domain::{DomainRead, with_tx};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AgreePlan {
    household: String,
    /// Last day of the plan, inclusive (`YYYY-MM-DD`).
    until: String,
}

fn known_household(
    conn: &rusqlite::Connection,
    community: &str,
    household: &str,
) -> Result<(), ApiError> {
    if DomainRead::new(conn, community)
        .household(household)?
        .is_none()
    {
        return Err(ApiError::invalid(
            "household",
            format!("household {household:?} not found"),
        ));
    }
    Ok(())
}

/// `POST /payment-plans`: 202, the workflow applies it at its next event run.
pub(super) async fn agree(
    State(state): State<AppState>,
    Path(community): Path<String>,
    Body(b): Body<AgreePlan>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    state
        .db(move |conn, now| {
            let household = non_empty("household", &b.household)?;
            let until = NaiveDate::parse_from_str(b.until.trim(), "%Y-%m-%d")
                .map_err(|_| ApiError::invalid("until", "must be a date like 2026-12-31"))?;
            // A day of slack: `now` is UTC, the desk thinks in local dates.
            if until < (now - chrono::Duration::days(1)).date_naive() {
                return Err(ApiError::invalid("until", "the plan has already ended"));
            }
            known_household(conn, &community, &household)?;
            let payload = serde_json::json!({ "household": household, "until": until.to_string() });
            with_tx(conn, |tx| {
                tx.domain(&community)
                    .emit(event_kind::PAYMENT_PLAN_AGREED, payload.clone(), now)
            })?;
            Ok((StatusCode::ACCEPTED, Json(payload)))
        })
        .await
}

/// `POST /payment-plans/{household}/end`: the plan stops protecting the household now.
pub(super) async fn end(
    State(state): State<AppState>,
    Path((community, household)): Path<(String, String)>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    state
        .db(move |conn, now| {
            known_household(conn, &community, &household)?;
            let payload = serde_json::json!({ "household": household });
            with_tx(conn, |tx| {
                tx.domain(&community)
                    .emit(event_kind::PAYMENT_PLAN_ENDED, payload.clone(), now)
            })?;
            Ok((StatusCode::ACCEPTED, Json(payload)))
        })
        .await
}
