//! Operator endpoints: releases, hosts, updates and history. Manifests are readable by devices
//! too.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use ferry_manifests::wire::{HistoryView, HostView, PublishResponse, ReleaseView, TriggerRequest};
use ferry_manifests::{Envelope, Manifest};
use serde::Deserialize;

use crate::api::artifacts::hash_file;
use crate::auth::{Operator, OperatorOrDevice};
use crate::error::extract::{Json as ApiJson, Path, Query};
use crate::error::{ApiResult, AppError};
use crate::policy::fleet;
use crate::policy::status::UpdateStatus;
use crate::service::{updates, Actor};
use crate::state::Shared;
use crate::store::NewRelease;
use ferry_manifests::wire::now;

#[utoipa::path(get, path = "/api/v1/hosts", tag = "hosts", responses((status = 200, body = Vec<ferry_manifests::wire::HostView>), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn list_hosts(
    State(state): State<Shared>,
    _op: Operator,
) -> ApiResult<Json<Vec<HostView>>> {
    let at = time::OffsetDateTime::now_utc();
    let hosts = state.store.hosts().await?;
    let releases = state.releases().await?;
    Ok(Json(
        hosts
            .into_iter()
            .map(|(h, installed)| host_view(&state, h, installed, &releases, at))
            .collect(),
    ))
}

/// (online, long-polling now) of a host whose last check-in the store has as `last_seen`.
pub fn connectivity(
    state: &Shared,
    host_id: &str,
    stored_seen: &str,
    at: time::OffsetDateTime,
) -> (bool, bool) {
    let last_seen = state.cache.seen(host_id);
    let contact = state.presence.get(host_id);
    (
        fleet::is_present(
            contact,
            last_seen.as_deref().unwrap_or(stored_seen),
            at,
            state.config.offline_after_secs,
        ),
        contact.is_some_and(|(c, _)| c == fleet::Contact::Holding),
    )
}

/// A host as operators see it (the API's host list and the web UI).
pub fn host_view(
    state: &Shared,
    h: crate::store::HostRow,
    installed: Vec<ferry_manifests::wire::InstalledItem>,
    releases: &[ferry_manifests::wire::ReleaseView],
    at: time::OffsetDateTime,
) -> HostView {
    let (tags, friendly_name) = fleet::effective_labels(
        &h.device_tags,
        h.device_friendly_name.as_deref(),
        h.operator_tags.as_deref(),
        h.operator_friendly_name.as_deref(),
    );
    let last_seen = state.cache.seen(&h.id).unwrap_or(h.last_seen);
    let (online, long_polling) = connectivity(state, &h.id, &last_seen, at);
    HostView {
        long_polling,
        online,
        id: h.id,
        facts: h.facts,
        enrolled_at: h.enrolled_at,
        last_seen,
        tags,
        friendly_name,
        available: fleet::available_for(&installed, releases),
        installed,
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct ReleaseQuery {
    item: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/releases", tag = "releases", params(ReleaseQuery), responses((status = 200, body = Vec<ferry_manifests::wire::ReleaseView>), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn list_releases(
    State(state): State<Shared>,
    _op: Operator,
    Query(q): Query<ReleaseQuery>,
) -> ApiResult<Json<Vec<ReleaseView>>> {
    Ok(Json(state.store.releases(q.item.as_deref()).await?))
}

/// Stores a signed release. The server indexes the manifest without trusting it (it holds no
/// keys to decide trust; devices verify), but refuses an envelope whose artifact it does not
/// hold with the exact size and hash, so a broken publish fails here rather than on devices.
#[utoipa::path(post, path = "/api/v1/releases", tag = "releases", request_body = ferry_manifests::Envelope, responses((status = 200, body = ferry_manifests::wire::PublishResponse), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn publish(
    State(state): State<Shared>,
    _op: Operator,
    crate::error::extract::Bytes(body): crate::error::extract::Bytes,
) -> ApiResult<Json<PublishResponse>> {
    let envelope = Envelope::parse(&body).map_err(|e| AppError::bad_request(e.to_string()))?;
    let manifest =
        Manifest::parse_unverified(&envelope).map_err(|e| AppError::bad_request(e.to_string()))?;
    if envelope.signatures.is_empty() {
        return Err(AppError::bad_request("the manifest is not signed"));
    }
    let path = state.artifacts_dir().join(&manifest.artifact.name);
    if !tokio::fs::try_exists(&path).await.unwrap_or(false) {
        return Err(AppError::bad_request(format!(
            "artifact {} has not been uploaded; PUT /api/v1/artifacts/{} first",
            manifest.artifact.name, manifest.artifact.name
        )));
    }
    let (size, sha) = hash_file(&path).await?;
    if size != manifest.artifact.size || sha != manifest.artifact.sha256 {
        return Err(AppError::bad_request(format!(
            "stored artifact {} is {size} bytes with sha256 {sha}, the manifest says {} bytes with sha256 {}",
            manifest.artifact.name, manifest.artifact.size, manifest.artifact.sha256
        )));
    }
    let fmt = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    };
    let view = ReleaseView {
        item: manifest.item.clone(),
        version: manifest.version.clone(),
        category: manifest.category.to_string(),
        released_at: fmt(manifest.released_at),
        expires_at: fmt(manifest.expires_at),
        notes: manifest.notes.clone(),
        release_url: manifest.release_url.clone(),
        layout: manifest.install.layout.to_string(),
        artifact_name: manifest.artifact.name.clone(),
        artifact_size: manifest.artifact.size,
        artifact_sha256: manifest.artifact.sha256.clone(),
        signed_by: envelope
            .signatures
            .iter()
            .map(|s| s.keyid.0.clone())
            .collect(),
        published_at: now(),
        mirrors: Vec::new(),
    };
    let text = String::from_utf8_lossy(&body).into_owned();
    if !state
        .store
        .add_release(&NewRelease {
            view,
            envelope: text,
        })
        .await?
    {
        return Err(AppError::conflict(format!(
            "{} {} is already published; releases are immutable, publish a new version",
            manifest.item, manifest.version
        )));
    }
    state.releases_changed();
    tracing::info!(item = %manifest.item, version = %manifest.version, "release published");
    // Deltas from the item's previous releases, built in the background.
    crate::service::deltas::after_publish(&state, &manifest.item, &manifest.version).await;
    Ok(Json(PublishResponse {
        item: manifest.item,
        version: manifest.version,
    }))
}

/// Records where else the release's artifact is served (mirrors, a CDN, an object store's
/// public URL): devices try `BASE/ARTIFACT_NAME` for each, in order, before the server's own
/// copy. They are hints, not trust: the signed manifest's hash decides what is installed.
#[utoipa::path(put, path = "/api/v1/releases/{item}/{version}/mirrors", tag = "releases", params(("item" = String, Path), ("version" = String, Path)), request_body = ferry_manifests::wire::MirrorsRequest, responses((status = 200, body = ferry_manifests::wire::ReleaseView), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn set_mirrors(
    State(state): State<Shared>,
    _op: Operator,
    Path((item, version)): Path<(String, String)>,
    ApiJson(req): ApiJson<ferry_manifests::wire::MirrorsRequest>,
) -> ApiResult<Json<ReleaseView>> {
    let mirrors = fleet::mirror_bases(&req.mirrors).map_err(AppError::bad_request)?;
    if !state.store.set_mirrors(&item, &version, &mirrors).await? {
        return Err(AppError::not_found(format!("no release {item} {version}")));
    }
    state.releases_changed();
    tracing::info!(%item, %version, mirrors = mirrors.len(), "release mirrors recorded");
    let view = state
        .store
        .releases(Some(&item))
        .await?
        .into_iter()
        .find(|r| r.version.to_string() == version)
        .ok_or_else(|| AppError::not_found(format!("no release {item} {version}")))?;
    Ok(Json(view))
}

#[utoipa::path(get, path = "/api/v1/releases/{item}/{version}/manifest", tag = "releases", params(("item" = String, Path), ("version" = String, Path)), responses((status = 200, body = ferry_manifests::Envelope), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn manifest(
    State(state): State<Shared>,
    _caller: OperatorOrDevice,
    Path((item, version)): Path<(String, String)>,
) -> ApiResult<impl IntoResponse> {
    match state.store.envelope(&item, &version).await? {
        Some(text) => Ok(([(header::CONTENT_TYPE, "application/json")], text)),
        None => Err(AppError::not_found(format!("no release {item} {version}"))),
    }
}

/// Resolves a host id, a unique prefix of one, or a hostname to exactly one host id.
pub(crate) async fn resolve_host(state: &Shared, host: &str) -> ApiResult<(String, String)> {
    let mut found = state.store.find_hosts(host).await?;
    if found.is_empty() {
        let id = super::full_id(state, crate::store::IdKind::Host, host).await?;
        found = state.store.find_hosts(&id).await?;
    }
    match found.len() {
        0 => Err(AppError::not_found(format!(
            "no host with id or hostname {host:?}"
        ))),
        1 => Ok(found.remove(0)),
        n => Err(AppError::conflict(format!(
            "{n} hosts are named {host:?}; use the host id (ferryctl hosts list)"
        ))),
    }
}

#[utoipa::path(patch, path = "/api/v1/hosts/{host}", tag = "hosts", params(("host" = String, Path, description = "host id or hostname")), request_body = ferry_manifests::wire::HostEdit, responses((status = 200, body = ferry_manifests::wire::HostView), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn edit_host(
    State(state): State<Shared>,
    op: Operator,
    Path(host): Path<String>,
    ApiJson(edit): ApiJson<ferry_manifests::wire::HostEdit>,
) -> ApiResult<Json<HostView>> {
    let (host_id, _) = resolve_host(&state, &host).await?;
    ferry_manifests::wire::validate_labels(
        edit.tags.as_deref().unwrap_or_default(),
        edit.friendly_name.as_deref(),
    )
    .map_err(AppError::bad_request)?;
    state
        .store
        .edit_host(
            &host_id,
            edit.tags.as_deref(),
            edit.friendly_name.as_deref(),
        )
        .await?;
    let Json(hosts) = list_hosts(State(state), op).await?;
    hosts
        .into_iter()
        .find(|h| h.id == host_id)
        .map(Json)
        .ok_or_else(|| AppError::not_found(format!("host {host} was removed")))
}

#[utoipa::path(delete, path = "/api/v1/hosts/{host}", tag = "hosts", params(("host" = String, Path, description = "host id or hostname")), responses((status = 204, description = "removed"), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn remove_host(
    State(state): State<Shared>,
    _op: Operator,
    Path(host): Path<String>,
) -> ApiResult<axum::http::StatusCode> {
    let (host_id, hostname) = resolve_host(&state, &host).await?;
    state.store.remove_host(&host_id).await?;
    state.host_removed(&host_id);
    state.changed();
    tracing::info!(%host_id, %hostname, "host removed");
    Ok(axum::http::StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/check", tag = "hosts", request_body = ferry_manifests::wire::CheckRequest, responses((status = 200, body = ferry_manifests::wire::CheckAnswer), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn check_now(
    State(state): State<Shared>,
    _op: Operator,
    ApiJson(req): ApiJson<ferry_manifests::wire::CheckRequest>,
) -> ApiResult<Json<ferry_manifests::wire::CheckAnswer>> {
    if req.host.as_deref() == Some("") || req.item.as_deref() == Some("") {
        return Err(AppError::bad_request("host and item may not be empty"));
    }
    let hosts = match (&req.host, &req.item) {
        (Some(host), None) => vec![resolve_host(&state, host).await?.0],
        (None, Some(item)) => state.store.hosts_with_item(item).await?,
        _ => return Err(AppError::bad_request("give exactly one of host or item")),
    };
    for h in &hosts {
        state.wake(h);
    }
    Ok(Json(ferry_manifests::wire::CheckAnswer {
        hosts: hosts.len(),
    }))
}

#[utoipa::path(post, path = "/api/v1/updates", tag = "updates", request_body = ferry_manifests::wire::TriggerRequest, responses((status = 200, body = ferry_manifests::wire::HistoryView), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn trigger(
    State(state): State<Shared>,
    _op: Operator,
    ApiJson(req): ApiJson<TriggerRequest>,
) -> ApiResult<Json<HistoryView>> {
    let (host_id, _) = resolve_host(&state, &req.host).await?;
    let install = updates::Install {
        host_id: &host_id,
        item: &req.item,
        version: req.version.as_ref(),
        force: req.force,
        interactive: req.interactive.then_some(updates::Interactive {
            record_input: !req.hide_input,
        }),
        actor: Actor::Operator,
    };
    let id = updates::trigger(&state, install).await?;
    let mut entry = state.store.history(None, None, Some(&id)).await?;
    entry
        .pop()
        .map(Json)
        .ok_or_else(|| AppError::Vanished("update"))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct HistoryQuery {
    pub host: Option<String>,
    pub item: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/update-history", tag = "updates", params(HistoryQuery), responses((status = 200, body = Vec<ferry_manifests::wire::HistoryView>), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn history(
    State(state): State<Shared>,
    _op: Operator,
    Query(q): Query<HistoryQuery>,
) -> ApiResult<Json<Vec<HistoryView>>> {
    let host_id = match &q.host {
        Some(h) => Some(resolve_host(&state, h).await?.0),
        None => None,
    };
    Ok(Json(
        state
            .store
            .history(host_id.as_deref(), q.item.as_deref(), None)
            .await?,
    ))
}

/// One piece of output as a Server-Sent Event. Its data is a JSON string: an event's data
/// cannot carry a carriage return (SSE ends a line at one), and terminal output is full of
/// them (`\r\n` from a pseudo-terminal, `\r` from progress bars).
fn output_event(text: &str) -> axum::response::sse::Event {
    axum::response::sse::Event::default()
        .event("output")
        .data(serde_json::Value::String(text.to_string()).to_string())
}

/// Server-Sent Events: the output so far (`event: output`), then each new piece as the device
/// sends it, then `event: end` with the update's status (`data: installed`, …). Each output
/// event's data is the text as a JSON string, passed through untouched otherwise: ANSI colours
/// and carriage returns included.
#[utoipa::path(get, path = "/api/v1/update-history/{id}/output/stream", tag = "updates", params(("id" = String, Path)), responses((status = 200, description = "Server-Sent Events: output (data: the text as a JSON string), then end (data: the status)", content_type = "text/event-stream", body = String), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn output_stream(
    State(state): State<Shared>,
    _op: Operator,
    Path(id): Path<String>,
) -> ApiResult<
    axum::response::sse::Sse<
        impl futures_util::Stream<Item = Result<axum::response::sse::Event, std::convert::Infallible>>,
    >,
> {
    let id = super::full_id(&state, crate::store::IdKind::Update, &id).await?;
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
    }
    let head = futures_util::stream::iter(first.into_iter().map(Ok));
    let tail = futures_util::stream::unfold(S { rx, seen, done }, |mut s| async move {
        loop {
            if s.done {
                return None;
            }
            match s.rx.recv().await {
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
    let id = super::full_id(&state, crate::store::IdKind::Update, &id).await?;
    state
        .store
        .history(None, None, Some(&id))
        .await?
        .pop()
        .map(Json)
        .ok_or_else(|| AppError::not_found(format!("no update {id}")))
}

/// An interactive install's terminal: without a `lease`, attach (the answer's lease holds the
/// input, unless another operator's live lease does: then `holder` is false and the output
/// stream is yours to watch only); with one, send keystrokes (`text`), a window size (`cols`
/// and `rows`) or nothing (a keep-alive). The output comes from
/// `/api/v1/update-history/{id}/output/stream`.
#[utoipa::path(post, path = "/api/v1/update-history/{id}/terminal", tag = "updates", params(("id" = String, Path)), request_body = ferry_manifests::wire::TerminalInput, responses((status = 200, body = ferry_manifests::wire::TerminalLease), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn terminal(
    State(state): State<Shared>,
    _op: Operator,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ferry_manifests::wire::TerminalInput>,
) -> ApiResult<Json<ferry_manifests::wire::TerminalLease>> {
    let id = super::full_id(&state, crate::store::IdKind::Update, &id).await?;
    if state.store.interactive_host(&id).await?.is_none() {
        return Err(AppError::conflict(format!(
            "update {id} is not an interactive install under way (ferryctl update trigger --interactive starts one)"
        )));
    }
    let size = match (req.cols, req.rows) {
        (Some(c), Some(r)) if (1..=1000).contains(&c) && (1..=1000).contains(&r) => Some((c, r)),
        (None, None) => None,
        _ => {
            return Err(AppError::bad_request(
                "cols and rows go together, each 1 to 1000",
            ))
        }
    };
    if req.text.as_ref().is_some_and(|t| t.len() > 65536) {
        return Err(AppError::bad_request("at most 64 KiB of input per request"));
    }
    match req.lease {
        None => {
            let (lease, holder) = state.terminals.attach(&id);
            Ok(Json(ferry_manifests::wire::TerminalLease { lease, holder }))
        }
        Some(lease) => {
            let typed = req.text.as_deref().map(crate::terminal::transcript_line);
            state
                .terminals
                .input(&id, &lease, req.text, size)
                .map_err(|_| {
                    AppError::conflict(
                        "this lease does not hold the terminal's input (another operator holds it, or it lapsed after 15 s unused): attach again",
                    )
                })?;
            if let Some(line) = typed.filter(|l| !l.is_empty()) {
                state.store.append_typed(&id, &line).await?;
            }
            Ok(Json(ferry_manifests::wire::TerminalLease {
                lease,
                holder: true,
            }))
        }
    }
}
