//! Installs asked for, their history, live output and an interactive install's terminal.

use axum::extract::State;
use axum::Json;
use ferry_manifests::wire::{HistoryView, TriggerRequest};
use serde::Deserialize;

use crate::auth::Operator;
use crate::error::extract::{Json as ApiJson, Path, Query};
use crate::error::{ApiResult, AppError};
use crate::policy::status::UpdateStatus;
use crate::service::updates;
use crate::state::Shared;

#[utoipa::path(post, path = "/api/v1/updates", tag = "updates", request_body = ferry_manifests::wire::TriggerRequest, responses((status = 200, body = ferry_manifests::wire::HistoryView), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn trigger(
    State(state): State<Shared>,
    op: Operator,
    ApiJson(req): ApiJson<TriggerRequest>,
) -> ApiResult<Json<HistoryView>> {
    crate::service::scope::require_host(&state, &op.scope(), &req.host).await?;
    Ok(Json(updates::ask(&state, &req, op.actor()).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct HistoryQuery {
    pub host: Option<String>,
    pub item: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/update-history", tag = "updates", params(HistoryQuery), responses((status = 200, body = Vec<ferry_manifests::wire::HistoryView>), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn history(
    State(state): State<Shared>,
    op: Operator,
    Query(q): Query<HistoryQuery>,
) -> ApiResult<Json<Vec<HistoryView>>> {
    let mut list = updates::history(&state, q.host.as_deref(), q.item.as_deref()).await?;
    crate::service::scope::keep_visible(&state, &op.scope(), &mut list, |e| &e.host_id).await?;
    Ok(Json(list))
}

/// One piece of output as a Server-Sent Event. Its data is a JSON string: an event's data
/// cannot carry a carriage return (SSE ends a line at one), and terminal output is full of
/// them (`\r\n` from a pseudo-terminal, `\r` from progress bars).
fn output_event(text: &str) -> axum::response::sse::Event {
    axum::response::sse::Event::default()
        .event("output")
        .data(serde_json::Value::String(text.to_string()).to_string())
}

/// How often a live output stream asks whether its operator's token is still live.
const STILL_VALID_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Server-Sent Events: the output so far (`event: output`), then each new piece as the device
/// sends it, then `event: end` with the update's status (`data: installed`, …). Each output
/// event's data is the text as a JSON string, passed through untouched otherwise: ANSI colours
/// and carriage returns included.
#[utoipa::path(get, path = "/api/v1/update-history/{id}/output/stream", tag = "updates", params(("id" = String, Path)), responses((status = 200, description = "Server-Sent Events: output (data: the text as a JSON string), then end (data: the status)", content_type = "text/event-stream", body = String), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn output_stream(
    State(state): State<Shared>,
    op: Operator,
    Path(id): Path<String>,
) -> ApiResult<
    axum::response::sse::Sse<
        impl futures_util::Stream<Item = Result<axum::response::sse::Event, std::convert::Infallible>>,
    >,
> {
    let id = crate::service::full_id(&state, crate::store::IdKind::Update, &id).await?;
    use crate::live::LiveEvent;
    use axum::response::sse::{Event, KeepAlive, Sse};

    // Subscribe before reading the store, so nothing falls between the two.
    let rx = state.live.subscribe(&id);
    let entry = state
        .store
        .history(None, None, Some(&id))
        .await?
        .pop()
        .ok_or_else(|| AppError::not_found(format!("no update {id}")))?;
    let seen = entry.output.chars().count() as i64;
    let mut first = Vec::new();
    if !entry.output.is_empty() {
        first.push(output_event(&entry.output));
    }
    let done = entry.status != UpdateStatus::Pending.as_str();
    if done {
        first.push(Event::default().event("end").data(entry.status.clone()));
    }
    struct S {
        rx: tokio::sync::broadcast::Receiver<LiveEvent>,
        seen: i64,
        done: bool,
        op: Operator,
        state: Shared,
    }
    let head = futures_util::stream::iter(first.into_iter().map(Ok));
    let start = S {
        rx,
        seen,
        done,
        op,
        state: state.clone(),
    };
    let tail = futures_util::stream::unfold(start, |mut s| async move {
        loop {
            if s.done {
                return None;
            }
            // A revoked token ends the stream within a second.
            let event = tokio::select! {
                event = s.rx.recv() => event,
                _ = tokio::time::sleep(STILL_VALID_EVERY) => {
                    if s.op.still_valid(s.state.as_ref()).await {
                        continue;
                    }
                    return None;
                }
            };
            match event {
                Ok(LiveEvent::Chunk { offset, text }) => {
                    let end = offset + text.chars().count() as i64;
                    if let Some(rest) = crate::live::unseen(offset, &text, s.seen) {
                        s.seen = s.seen.max(end);
                        return Some((Ok(output_event(&rest)), s));
                    }
                }
                Ok(LiveEvent::End { status }) => {
                    s.done = true;
                    return Some((Ok(Event::default().event("end").data(status)), s));
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    // Too slow a watcher: skip ahead; the full output is in the history.
                    continue;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    use futures_util::StreamExt as _;
    Ok(Sse::new(head.chain(tail)).keep_alive(KeepAlive::default()))
}

#[utoipa::path(get, path = "/api/v1/update-history/{id}", tag = "updates", params(("id" = String, Path)), responses((status = 200, body = ferry_manifests::wire::HistoryView), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn history_entry(
    State(state): State<Shared>,
    _op: Operator,
    Path(id): Path<String>,
) -> ApiResult<Json<HistoryView>> {
    Ok(Json(updates::entry(&state, &id).await?))
}

/// Cancels one pending update.
#[utoipa::path(post, path = "/api/v1/update-history/{id}/cancel", tag = "updates", params(("id" = String, Path)), responses((status = 200, body = ferry_manifests::wire::HistoryView), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn cancel(
    State(state): State<Shared>,
    _op: Operator,
    Path(id): Path<String>,
) -> ApiResult<Json<HistoryView>> {
    Ok(Json(updates::cancel(&state, &id).await?))
}

/// An interactive install's terminal: without a `lease`, attach (the answer's lease holds the
/// input, unless another operator's live lease does: then `holder` is false and the output
/// stream is yours to watch only); with one, send keystrokes (`text`), a window size (`cols`
/// and `rows`) or nothing (a keep-alive). The output comes from
/// `/api/v1/update-history/{id}/output/stream`.
#[utoipa::path(post, path = "/api/v1/update-history/{id}/terminal", tag = "updates", params(("id" = String, Path)), request_body = ferry_manifests::wire::TerminalInput, responses((status = 200, body = ferry_manifests::wire::TerminalLease), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn terminal(
    State(state): State<Shared>,
    op: Operator,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ferry_manifests::wire::TerminalInput>,
) -> ApiResult<Json<ferry_manifests::wire::TerminalLease>> {
    Ok(Json(
        updates::terminal(&state, &id, req, &op.owner()).await?,
    ))
}
