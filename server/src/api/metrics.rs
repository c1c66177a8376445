//! `GET /metrics` (docs/operations.md, Metrics): on the listener for a viewer's token that
//! sees the whole server, or on `metrics_listen` without one; and the middleware that counts
//! check-ins, times reports and counts the artifact bytes sent.

use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt as _;

use crate::auth::Operator;
use crate::error::AppError;
use crate::metrics::{known, Scraped, BATCH_STATES};
use crate::state::Shared;

/// `GET /metrics` on the listener: counts cover every tenant, so only a user who sees the
/// whole server reads them.
pub async fn scrape(State(state): State<Shared>, op: Operator) -> Result<Response, AppError> {
    if !op.scope().is_all() {
        return Err(AppError::Client {
            status: StatusCode::FORBIDDEN,
            code: "forbidden",
            message: "metrics count every tenant's hosts: read them with a token of a user who sees the whole server, or on metrics_listen".into(),
        });
    }
    answer(&state).await
}

/// `GET /metrics` on `metrics_listen`: no token (that address is the operator's to guard).
pub async fn scrape_open(State(state): State<Shared>) -> Result<Response, AppError> {
    answer(&state).await
}

async fn answer(state: &Shared) -> Result<Response, AppError> {
    let now = read(state).await?;
    state.metrics.set(&now);
    Ok((
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        state.metrics.encode(),
    )
        .into_response())
}

/// What is counted when scraped: from memory and a few grouped queries.
async fn read(state: &Shared) -> Result<Scraped, AppError> {
    let mut campaigns = Vec::new();
    for c in state.store.campaigns().await? {
        let watching = c.observe.watching.is_some();
        campaigns.push(crate::mqtt::topics::campaign_state(
            c.status.as_str(),
            &c.status_reason,
            watching,
        ));
    }
    let batches = state
        .store
        .batch_entry_kinds()
        .await?
        .iter()
        .filter_map(|(_, entries)| {
            known(
                &BATCH_STATES,
                crate::policy::batch::batch_status(entries).as_str(),
            )
        })
        .collect();
    let (mqtt, mqtt_published) = {
        let status = state.mqtt_status.lock().unwrap_or_else(|e| e.into_inner());
        let states = status
            .values()
            .map(|c| match (c.standby, c.connected) {
                (true, _) => "standby",
                (false, true) => "connected",
                (false, false) => "disconnected",
            })
            .collect();
        (states, status.values().map(|c| c.published).sum())
    };
    Ok(Scraped {
        long_polls: state.budgets.held(),
        hosts: u64::try_from(state.store.host_total().await?).unwrap_or(0),
        campaigns,
        batches,
        mqtt,
        mqtt_published,
    })
}

/// Counts check-ins by result, times report batches, and counts the bytes of artifacts and
/// deltas as their bodies stream out.
pub async fn observe(State(state): State<Shared>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let watched = if path == "/api/v1/device/checkin" {
        Watched::Checkin
    } else if path == "/api/v1/device/reports" {
        Watched::Reports(Instant::now())
    } else if *req.method() == Method::GET && path.starts_with("/api/v1/artifacts/") {
        Watched::Bytes("artifact")
    } else if *req.method() == Method::GET && path.starts_with("/api/v1/deltas/") {
        Watched::Bytes("delta")
    } else {
        return next.run(req).await;
    };
    let resp = next.run(req).await;
    match watched {
        Watched::Checkin => {
            state.metrics.checkin(resp.status().as_u16());
            resp
        }
        Watched::Reports(started) => {
            state.metrics.report(started.elapsed().as_secs_f64());
            resp
        }
        Watched::Bytes(kind) if resp.status().is_success() => {
            let counter = state.metrics.served(kind);
            resp.map(|body| {
                Body::from_stream(body.into_data_stream().inspect_ok(move |chunk| {
                    counter.inc_by(chunk.len() as u64);
                }))
            })
        }
        Watched::Bytes(_) => resp,
    }
}

enum Watched {
    Checkin,
    Reports(Instant),
    Bytes(&'static str),
}
