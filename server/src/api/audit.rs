//! The audit log (docs/users.md): every change an operator asks for (any method but `GET`,
//! through the API or a web UI form), refused or not, appended as the answer leaves: who,
//! what, the answer's status, from where, when, and a request id also sent back as
//! `x-request-id`. Each entry is also a log line (target `ferry_audit`) for journald or a
//! log system. Nothing edits or deletes an entry.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use axum::Json;
use ferry_manifests::wire::AuditEntry;

use crate::auth::Operator;
use crate::error::extract::Query;
use crate::error::ApiResult;
use crate::state::Shared;

/// Most entries one answer lists.
const MAX_LISTED: i64 = 10_000;

/// Records the request as the answer leaves, when an operator (a user's token or web
/// session) asked for a change; devices and reads pass untouched.
pub async fn record(State(state): State<Shared>, req: Request, next: Next) -> Response {
    // Reads, and devices (their routes, their `fdv_`/`fen_` tokens), pass without a lookup:
    // a check-in costs nothing more.
    let bearer = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "));
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS)
        || req.uri().path().starts_with("/api/v1/device/")
        || req.uri().path() == "/api/v1/enrol"
        || bearer.is_some_and(|t| !t.trim().starts_with("fop_"))
    {
        return next.run(req).await;
    }
    let Some(user) = crate::auth::operator_of(req.headers(), state.as_ref()).await else {
        return next.run(req).await;
    };
    let tenant_id = user.tenant_id.clone();
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let address = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip().to_string());
    // The request's id (`request_id::assign`), in its log lines and its answer.
    let request_id = req
        .extensions()
        .get::<super::request_id::RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let mut resp = next.run(req).await;
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    let change = resp
        .extensions()
        .get::<crate::policy::audit::Change>()
        .cloned();
    let (before, after) = change.map(|c| c.values()).unwrap_or_default();
    let entry = AuditEntry {
        before,
        after,
        seq: 0,
        at: ferry_manifests::wire::now(),
        user_id: Some(user.user_id),
        user: user.user_name,
        method,
        path,
        status: resp.status().as_u16(),
        address,
        request_id,
    };
    let started = std::time::Instant::now();
    match state.store.add_audit(&entry, &tenant_id).await {
        Ok(()) => tracing::info!(
            target: "ferry_audit",
            user = %entry.user,
            method = %entry.method,
            path = %entry.path,
            status = entry.status,
            address = entry.address.as_deref().unwrap_or("-"),
            request_id = %entry.request_id,
            write_us = started.elapsed().as_micros() as u64,
            "audit"
        ),
        // The change is done; the log line still says who did it.
        Err(e) => tracing::error!(
            target: "ferry_audit",
            user = %entry.user,
            method = %entry.method,
            path = %entry.path,
            status = entry.status,
            request_id = %entry.request_id,
            "audit entry not stored: {e}"
        ),
    }
    resp
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
pub struct AuditQuery {
    /// Only this user's entries.
    #[serde(default)]
    pub user: Option<String>,
    /// Only entries at or after this time (RFC 3339, as the entries show it).
    #[serde(default)]
    pub since: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/audit", tag = "users", params(AuditQuery), responses((status = 200, body = Vec<ferry_manifests::wire::AuditEntry>), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn list(
    State(state): State<Shared>,
    op: Operator,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Json<Vec<AuditEntry>>> {
    let user = q.user.as_deref().filter(|u| !u.is_empty());
    let since = q.since.as_deref().filter(|s| !s.is_empty());
    Ok(Json(
        state
            .store
            .audit(&op.user().tenant_id, user, since, MAX_LISTED)
            .await?,
    ))
}
