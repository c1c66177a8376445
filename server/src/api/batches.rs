//! Batch updates: plan, store, dispatch one install at a time per host, and report progress.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::Json;
use ferry_manifests::wire::{BatchEntryView, BatchRequest, BatchView};

use crate::auth::Operator;
use crate::error::extract::{Json as ApiJson, Path, Query};
use crate::error::{ApiResult, AppError};
use crate::policy::batch::{self, Planned};
use crate::state::Shared;
use crate::store::{BatchRow, EntryRow};

fn view(b: &BatchRow, entries: Vec<EntryRow>) -> BatchView {
    let states: Vec<batch::EntryState> = entries.iter().map(|e| e.state.clone()).collect();
    let mut counts = BTreeMap::new();
    for s in &states {
        *counts.entry(s.status().as_str().to_string()).or_insert(0) += 1;
    }
    BatchView {
        id: b.id.clone(),
        kind: b.kind.clone(),
        description: b.description.clone(),
        actor: b.actor.clone(),
        status: batch::batch_status(&states).to_string(),
        created_at: b.created_at.clone(),
        counts,
        entries: entries
            .into_iter()
            .map(|e| BatchEntryView {
                status: e.state.status().as_str().to_string(),
                host_id: e.state.host_id,
                hostname: e.hostname,
                item: e.item,
                version: e.version,
                update_id: e.update_id,
                message: e.message,
            })
            .collect(),
    }
}

async fn load(state: &Shared, id: &str) -> ApiResult<BatchView> {
    // `follow` polls this: one row, not every batch.
    let b = state
        .store
        .batch(id)
        .await?
        .ok_or_else(|| AppError::not_found(format!("no update batch {id}")))?;
    let entries = state
        .store
        .batch_entries(Some(id), None)
        .await?
        .into_iter()
        .map(|(_, e)| e)
        .collect();
    Ok(view(&b, entries))
}

#[utoipa::path(post, path = "/api/v1/update-batches", tag = "batches", request_body = ferry_manifests::wire::BatchRequest, responses((status = 200, body = ferry_manifests::wire::BatchView), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn create(
    State(state): State<Shared>,
    _op: Operator,
    ApiJson(req): ApiJson<BatchRequest>,
) -> ApiResult<Json<BatchView>> {
    let hosts = state.store.hosts().await?;
    let interactive = matches!(
        req,
        BatchRequest::Host {
            interactive: true,
            ..
        }
    );
    let active = |host_id: &str| {
        let state = state.clone();
        let host_id = host_id.to_string();
        async move { state.store.pending_jobs(&host_id).await }
    };
    let (kind, description, planned): (&str, String, Vec<Planned>) = match &req {
        BatchRequest::Host {
            host,
            category,
            exclude,
            ..
        } => {
            let (host_id, hostname) = crate::service::hosts::resolve(&state, host).await?;
            let planned = crate::service::batches::plan_host(
                &state,
                &host_id,
                category.as_deref(),
                exclude,
                false,
            )
            .await?;
            let mut d = format!("all updates of {hostname}");
            if let Some(c) = category {
                d.push_str(&format!(", category {c}"));
            }
            if !exclude.is_empty() {
                d.push_str(&format!(", except {}", exclude.join(",")));
            }
            ("host", d, planned)
        }
        BatchRequest::Item {
            item,
            to_version,
            hosts: only,
        } => {
            crate::service::items::ensure_active(&state, item).await?;
            let releases = state.store.releases(Some(item)).await?;
            if !releases.iter().any(|r| &r.version == to_version) {
                return Err(AppError::not_found(format!(
                    "no release {item} {to_version}; see ferryctl releases list"
                )));
            }
            let mut wanted = Vec::new();
            for h in only {
                wanted.push(crate::service::hosts::resolve(&state, h).await?.0);
            }
            let mut candidates = Vec::new();
            for (h, installed) in &hosts {
                if !wanted.is_empty() && !wanted.contains(&h.id) {
                    continue;
                }
                let busy = active(&h.id).await?.iter().any(|j| &j.item == item);
                candidates.push((h.id.clone(), installed.clone(), busy));
            }
            let planned = batch::plan_item(item, to_version, &candidates);
            ("item", format!("{item} to {to_version}"), planned)
        }
    };
    let id = crate::service::batches::start(
        &state,
        kind,
        &description,
        crate::service::Actor::Operator,
        interactive,
        &planned,
    )
    .await?;
    Ok(Json(load(&state, &id).await?))
}

#[utoipa::path(get, path = "/api/v1/update-batches", tag = "batches", params(super::StatusQuery), responses((status = 200, body = Vec<ferry_manifests::wire::BatchView>), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn list(
    State(state): State<Shared>,
    _op: Operator,
    Query(q): Query<super::StatusQuery>,
) -> ApiResult<Json<Vec<BatchView>>> {
    let wanted = q.status.as_deref().filter(|s| !s.is_empty());
    if let Some(s) = wanted {
        s.parse::<crate::policy::status::BatchStatus>()
            .map_err(|e| AppError::bad_request(format!("status {e}")))?;
    }
    let mut by_batch: BTreeMap<String, Vec<EntryRow>> = BTreeMap::new();
    for (id, e) in state.store.batch_entries(None, None).await? {
        by_batch.entry(id).or_default().push(e);
    }
    let mut out = Vec::new();
    for b in state.store.batches().await? {
        let entries = by_batch.remove(&b.id).unwrap_or_default();
        let v = view(&b, entries);
        if wanted.is_none_or(|s| s == v.status) {
            out.push(v);
        }
    }
    Ok(Json(out))
}

#[utoipa::path(get, path = "/api/v1/update-batches/{id}", tag = "batches", params(("id" = String, Path)), responses((status = 200, body = ferry_manifests::wire::BatchView), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn show(
    State(state): State<Shared>,
    _op: Operator,
    Path(id): Path<String>,
) -> ApiResult<Json<BatchView>> {
    let id = crate::service::full_id(&state, crate::store::IdKind::Batch, &id).await?;
    Ok(Json(load(&state, &id).await?))
}
