//! Campaigns: create, list, show, pause, resume, cancel; hosts join when they check in, and
//! installs are dispatched as waves open (see `crate::policy::campaign` for the rules).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::Json;
use ferry_manifests::wire::{
    CampaignEdit, CampaignMemberView, CampaignOffer, CampaignRequest, CampaignView,
};

use crate::auth::{Device, Operator};
use crate::error::extract::{Json as ApiJson, Path, Query};
use crate::error::{ApiResult, AppError};
use crate::policy::campaign::{self, Target};
use crate::policy::status::CampaignStatus;
use crate::service::campaigns::evaluate;
use crate::state::Shared;
use crate::store::Campaign;

const DEFAULT_THRESHOLD: f64 = 0.5;

async fn view(state: &Shared, c: Campaign) -> ApiResult<CampaignView> {
    let members = state.store.members(&c.id).await?;
    let d = campaign::decide(&c, &members);
    let now = time::OffsetDateTime::now_utc();
    let members: Vec<CampaignMemberView> = members
        .iter()
        .map(|m| CampaignMemberView {
            host_id: m.host_id.clone(),
            hostname: m.hostname.clone(),
            wave: m.wave,
            accepted: m.accepted,
            status: campaign::gate(&c, m, d.open_wave, now).as_str().to_string(),
            update_id: m.update_id.clone(),
        })
        .collect();
    let mut counts = BTreeMap::new();
    for m in &members {
        *counts.entry(m.status.clone()).or_insert(0) += 1;
    }
    Ok(CampaignView {
        id: c.id,
        name: c.name,
        item: c.item,
        version: c.version,
        target: c.target,
        require_acceptance: c.require_acceptance,
        waves: c.waves.len(),
        success_threshold: c.success_threshold,
        max_failure_rate: c.max_failure_rate,
        window: c.window.map(|w| {
            format!(
                "{:02}:{:02}-{:02}:{:02}",
                w.start_min / 60,
                w.start_min % 60,
                w.end_min / 60,
                w.end_min % 60
            )
        }),
        succeeded: (c.status == CampaignStatus::Completed)
            .then_some(d.complete)
            .flatten(),
        status: c.status.as_str().to_string(),
        status_reason: c.status_reason,
        open_wave: d.open_wave,
        failure_share: d.failure_share,
        counts,
        members,
        created_at: c.created_at,
    })
}

fn share(name: &str, v: Option<f64>) -> ApiResult<f64> {
    let v = v.unwrap_or(DEFAULT_THRESHOLD);
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(AppError::bad_request(format!(
            "{name} {v} must be between 0 and 1"
        )))
    }
}

#[utoipa::path(post, path = "/api/v1/campaigns", tag = "campaigns", request_body = ferry_manifests::wire::CampaignRequest, responses((status = 200, body = ferry_manifests::wire::CampaignView), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn create(
    State(state): State<Shared>,
    _op: Operator,
    ApiJson(req): ApiJson<CampaignRequest>,
) -> ApiResult<Json<CampaignView>> {
    crate::service::items::ensure_active(&state, &req.item).await?;
    let releases = state.store.releases(Some(&req.item)).await?;
    if !releases.iter().any(|r| r.version == req.version) {
        return Err(AppError::not_found(format!(
            "no release {} {}; see ferryctl releases list",
            req.item, req.version
        )));
    }
    let target = match req.target {
        Target::Hosts(names) => {
            let mut ids = Vec::new();
            for n in &names {
                ids.push(crate::service::hosts::resolve(&state, n).await?.0);
            }
            Target::Hosts(ids)
        }
        Target::Tags(tags) => {
            ferry_manifests::wire::validate_labels(&tags, None).map_err(AppError::bad_request)?;
            if tags.is_empty() {
                return Err(AppError::bad_request("give at least one tag"));
            }
            Target::Tags(tags)
        }
        Target::All => Target::All,
    };
    let waves = campaign::parse_waves(req.waves.as_deref().unwrap_or("100%"))
        .map_err(AppError::bad_request)?;
    let window = req
        .window
        .as_deref()
        .map(campaign::parse_window)
        .transpose()
        .map_err(AppError::bad_request)?;
    let id = uuid::Uuid::new_v4().to_string();
    let row = Campaign {
        name: req
            .name
            .clone()
            .unwrap_or_else(|| format!("{} {}", req.item, req.version)),
        id: id.clone(),
        item: req.item.clone(),
        version: req.version.clone(),
        target,
        require_acceptance: req.require_acceptance,
        waves,
        success_threshold: share("success_threshold", req.success_threshold)?,
        max_failure_rate: share("max_failure_rate", req.max_failure_rate)?,
        window,
        status: CampaignStatus::Running,
        status_reason: String::new(),
        created_at: ferry_manifests::wire::now(),
        baseline: Default::default(),
    };
    state.store.create_campaign(&row).await?;
    state.campaigns_changed();
    tracing::info!(campaign = %id, item = %req.item, version = %req.version, "campaign created");
    // Hosts known now join at once (in one pass, then one evaluation); later ones join when
    // they check in.
    let mut seq = 0u64;
    let matching: Vec<String> = state
        .store
        .hosts()
        .await?
        .into_iter()
        .filter(|(h, installed)| {
            let (tags, _) = crate::policy::fleet::effective_labels(
                &h.device_tags,
                None,
                h.operator_tags.as_deref(),
                None,
            );
            installed.iter().any(|i| i.item == row.item)
                && campaign::matches(&row.target, &h.id, &tags)
        })
        .map(|(h, _)| h.id)
        .collect();
    let total = matching.len() as u64;
    for host_id in &matching {
        let wave = campaign::wave_for(&row.waves, seq, total);
        state
            .store
            .add_member(&id, host_id, seq as i64, wave)
            .await?;
        seq += 1;
    }
    evaluate(&state, &id).await?;
    let c = state
        .store
        .campaign(&id)
        .await?
        .ok_or_else(|| AppError::Vanished("campaign"))?;
    Ok(Json(view(&state, c).await?))
}

#[utoipa::path(get, path = "/api/v1/campaigns", tag = "campaigns", params(super::StatusQuery), responses((status = 200, body = Vec<ferry_manifests::wire::CampaignView>), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn list(
    State(state): State<Shared>,
    _op: Operator,
    Query(q): Query<super::StatusQuery>,
) -> ApiResult<Json<Vec<CampaignView>>> {
    let wanted = q
        .status
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(str::parse::<CampaignStatus>)
        .transpose()
        .map_err(|e| AppError::bad_request(format!("status {e}")))?;
    let mut out = Vec::new();
    for c in state.store.campaigns().await? {
        if wanted.is_none_or(|s| s == c.status) {
            out.push(view(&state, c).await?);
        }
    }
    Ok(Json(out))
}

/// A campaign that can still change: 409 for a cancelled or completed one.
async fn load_open(state: &Shared, id: &str) -> ApiResult<Campaign> {
    let c = load(state, id).await?;
    if matches!(
        c.status,
        CampaignStatus::Cancelled | CampaignStatus::Completed
    ) {
        return Err(AppError::conflict(format!("campaign {id} is {}", c.status)));
    }
    Ok(c)
}

async fn load(state: &Shared, id: &str) -> ApiResult<Campaign> {
    state
        .store
        .campaign(id)
        .await?
        .ok_or_else(|| AppError::not_found(format!("no campaign {id}")))
}

#[utoipa::path(get, path = "/api/v1/campaigns/{id}", tag = "campaigns", params(("id" = String, Path)), responses((status = 200, body = ferry_manifests::wire::CampaignView), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn show(
    State(state): State<Shared>,
    _op: Operator,
    Path(id): Path<String>,
) -> ApiResult<Json<CampaignView>> {
    let id = crate::service::full_id(&state, crate::store::IdKind::Campaign, &id).await?;
    let c = load(&state, &id).await?;
    Ok(Json(view(&state, c).await?))
}

#[utoipa::path(post, path = "/api/v1/campaigns/{id}/{action}", tag = "campaigns", params(("id" = String, Path), ("action" = String, Path, description = "pause, resume or cancel")), responses((status = 200, body = ferry_manifests::wire::CampaignView), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn action(
    State(state): State<Shared>,
    _op: Operator,
    Path((id, action)): Path<(String, String)>,
) -> ApiResult<Json<CampaignView>> {
    let id = crate::service::full_id(&state, crate::store::IdKind::Campaign, &id).await?;
    let c = load_open(&state, &id).await?;
    match action.as_str() {
        "pause" => {
            state
                .store
                .set_campaign_status(&id, CampaignStatus::Paused, "paused by an operator")
                .await?
        }
        "resume" => crate::service::campaigns::resume(&state, &c).await?,
        "cancel" => {
            state
                .store
                .set_campaign_status(&id, CampaignStatus::Cancelled, "cancelled by an operator")
                .await?;
            state.store.cancel_campaign_updates(&id).await?;
            // Devices waiting on a long-poll hear of it now.
            for m in state.store.members(&id).await? {
                state.wake(&m.host_id);
            }
        }
        other => {
            return Err(AppError::not_found(format!(
                "no campaign action {other:?}: use pause, resume or cancel"
            )))
        }
    }
    state.campaigns_changed();
    tracing::info!(campaign = %id, %action, "campaign {action}");
    let c = load(&state, &id).await?;
    Ok(Json(view(&state, c).await?))
}

#[utoipa::path(patch, path = "/api/v1/campaigns/{id}", tag = "campaigns", params(("id" = String, Path)), request_body = ferry_manifests::wire::CampaignEdit, responses((status = 200, body = ferry_manifests::wire::CampaignView), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn edit(
    State(state): State<Shared>,
    _op: Operator,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<CampaignEdit>,
) -> ApiResult<Json<CampaignView>> {
    let id = crate::service::full_id(&state, crate::store::IdKind::Campaign, &id).await?;
    let c = load_open(&state, &id).await?;
    let window = match req.window.as_deref().map(str::trim) {
        None => None,
        Some("") => Some(None),
        Some(w) => Some(Some(
            campaign::parse_window(w).map_err(AppError::bad_request)?,
        )),
    };
    let waves = req
        .waves
        .as_deref()
        .map(campaign::parse_waves)
        .transpose()
        .map_err(AppError::bad_request)?;
    let e = campaign::Edit {
        success_threshold: req.success_threshold,
        max_failure_rate: req.max_failure_rate,
        window,
        waves,
    };
    crate::service::campaigns::edit(&state, &c, &e).await?;
    tracing::info!(campaign = %id, "campaign edited");
    let c = load(&state, &id).await?;
    Ok(Json(view(&state, c).await?))
}

/// `POST /api/v1/device/campaigns/{id}/accept`
#[utoipa::path(post, path = "/api/v1/device/campaigns/{id}/accept", tag = "device", params(("id" = String, Path)), responses((status = 200, body = ferry_manifests::wire::CampaignOffer), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn accept(
    State(state): State<Shared>,
    Device(host_id): Device,
    Path(id): Path<String>,
) -> ApiResult<Json<CampaignOffer>> {
    let id = crate::service::full_id(&state, crate::store::IdKind::Campaign, &id).await?;
    let c = load(&state, &id).await?;
    if !state.store.accept(&id, &host_id).await? {
        return Err(AppError::not_found(format!(
            "campaign {id} does not target this device"
        )));
    }
    evaluate(&state, &id).await?;
    Ok(Json(CampaignOffer {
        campaign_id: c.id,
        name: c.name,
        item: c.item,
        version: c.version,
        accepted: true,
    }))
}
