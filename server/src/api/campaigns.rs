//! Campaigns: create, list, show, pause, resume, cancel; hosts join when they check in, and
//! installs are dispatched as waves open (see `crate::campaign` for the rules).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::Json;
use ferry_manifests::wire::{
    CampaignMemberView, CampaignOffer, CampaignRequest, CampaignView, InstalledItem,
};

use crate::auth::{Device, Operator};
use crate::campaign::{self, Member, Target};
use crate::error::extract::{Json as ApiJson, Path, Query};
use crate::error::{ApiResult, AppError};
use crate::store::{CampaignRow, MemberRow};
use crate::Shared;

const DEFAULT_THRESHOLD: f64 = 0.5;

fn minute_of_day_utc() -> u32 {
    let now = time::OffsetDateTime::now_utc();
    u32::from(now.hour()) * 60 + u32::from(now.minute())
}

/// A member's state for the rollout rules: its update's status, or `installed` if it already
/// had the version.
fn member_state(c: &CampaignRow, m: &MemberRow) -> Member {
    let already = m.installed.as_deref() == Some(c.version.to_string().as_str());
    Member {
        wave: m.wave,
        status: m
            .update_status
            .clone()
            .or_else(|| already.then(|| "installed".to_string())),
    }
}

fn member_status(c: &CampaignRow, m: &MemberRow, open_wave: usize) -> String {
    if let Some(s) = &member_state(c, m).status {
        return s.clone();
    }
    if m.wave > open_wave {
        "waiting".into()
    } else if c.require_acceptance && !m.accepted {
        "awaiting_acceptance".into()
    } else if c
        .window
        .is_some_and(|w| !w.contains(minute_of_day_utc(), m.utc_offset_secs))
    {
        "outside_window".into()
    } else {
        "dispatchable".into()
    }
}

/// The rollout rules applied to a campaign's members as they stand.
fn decision(c: &CampaignRow, members: &[MemberRow]) -> campaign::Decision {
    let states: Vec<Member> = members.iter().map(|m| member_state(c, m)).collect();
    campaign::decide(
        &states,
        c.waves.len(),
        c.success_threshold,
        c.max_failure_rate,
    )
}

/// Dispatches one member's install if it may go now; true if dispatched.
async fn dispatch_member(
    state: &Shared,
    c: &CampaignRow,
    m: &MemberRow,
    open_wave: usize,
) -> ApiResult<bool> {
    if member_status(c, m, open_wave) != "dispatchable" {
        return Ok(false);
    }
    if state
        .store
        .active_update(&m.host_id, &c.item)
        .await?
        .is_some()
    {
        return Ok(false); // one at a time: it gets its turn when that one finishes
    }
    let id = state
        .store
        .create_update(&m.host_id, &c.item, &c.version, "campaign")
        .await?;
    state
        .store
        .set_member_update(&c.id, &m.host_id, &id)
        .await?;
    tracing::info!(campaign = %c.id, host = %m.hostname, update = %id, "campaign install dispatched");
    state.waker.wake(&m.host_id);
    Ok(true)
}

/// Applies the rules to one campaign over all its members: pause on too many failures,
/// dispatch what may go now, remember the open wave. Runs when something changed (created,
/// resumed, a host joined or accepted, a report arrived), not on every check-in.
pub async fn evaluate(state: &Shared, campaign_id: &str) -> ApiResult<()> {
    let Some(c) = state.store.campaign(campaign_id).await? else {
        return Ok(());
    };
    if c.status != "running" {
        state.cache.set_open_wave(&c.id, None);
        return Ok(());
    }
    let members = state.store.members(campaign_id).await?;
    let d = decision(&c, &members);
    if d.pause {
        let reason = format!(
            "paused itself: {:.0}% of finished installs failed, more than the {:.0}% allowed",
            d.failure_share * 100.0,
            c.max_failure_rate * 100.0
        );
        tracing::warn!(campaign = %c.id, "{reason}");
        state
            .store
            .set_campaign_status(&c.id, "paused", &reason)
            .await?;
        state.cache.set_campaigns_active(None);
        state.cache.set_open_wave(&c.id, None);
        return Ok(());
    }
    state.cache.set_open_wave(&c.id, Some(d.open_wave));
    for m in &members {
        dispatch_member(state, &c, m, d.open_wave).await?;
    }
    Ok(())
}

/// At check-in: the host joins running campaigns it matches (if it has the item), and its own
/// membership may be dispatched. The cost does not grow with the campaign's size: one
/// membership lookup per campaign, and the open wave from the last evaluation. Returns the
/// offers needing the host's acceptance.
pub async fn on_check_in(
    state: &Shared,
    host_id: &str,
    tags: &[String],
    installed: &[InstalledItem],
) -> ApiResult<Vec<CampaignOffer>> {
    let mut offers = Vec::new();
    for c in state.store.campaigns().await? {
        if c.status == "cancelled" {
            continue;
        }
        let mut member = state.store.member(&c.id, host_id).await?;
        if member.is_none()
            && c.status == "running"
            && installed.iter().any(|i| i.item == c.item)
            && campaign::matches(&c.target, host_id, tags)
        {
            let seq = state.store.member_count(&c.id).await? as u64;
            let wave = campaign::wave_for(&c.waves, seq, seq + 1);
            if state
                .store
                .add_member(&c.id, host_id, seq as i64, wave)
                .await?
            {
                tracing::info!(campaign = %c.id, %host_id, wave, "host joined campaign");
            }
            member = state.store.member(&c.id, host_id).await?;
        }
        let Some(mut member) = member else { continue };
        if c.status == "running" && member.update_id.is_none() {
            let open_wave = match state.cache.open_wave(&c.id) {
                Some(w) => w,
                None => {
                    evaluate(state, &c.id).await?;
                    state.cache.open_wave(&c.id).unwrap_or(0)
                }
            };
            if dispatch_member(state, &c, &member, open_wave).await? {
                member.update_id = Some(String::new());
            }
        }
        if c.require_acceptance && c.status == "running" && member.update_id.is_none() {
            offers.push(CampaignOffer {
                campaign_id: c.id.clone(),
                name: c.name.clone(),
                item: c.item.clone(),
                version: c.version.clone(),
                accepted: member.accepted,
            });
        }
    }
    Ok(offers)
}

/// After a report: the campaigns of that update may open a wave or pause.
pub async fn on_report(state: &Shared, update_id: &str) -> ApiResult<()> {
    for id in state.store.campaigns_of_update(update_id).await? {
        evaluate(state, &id).await?;
    }
    Ok(())
}

async fn view(state: &Shared, c: CampaignRow) -> ApiResult<CampaignView> {
    let members = state.store.members(&c.id).await?;
    let d = decision(&c, &members);
    let members: Vec<CampaignMemberView> = members
        .iter()
        .map(|m| CampaignMemberView {
            host_id: m.host_id.clone(),
            hostname: m.hostname.clone(),
            wave: m.wave,
            accepted: m.accepted,
            status: match member_status(&c, m, d.open_wave).as_str() {
                "dispatchable" => "waiting".to_string(),
                s => s.to_string(),
            },
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
        status: c.status,
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
    super::items::ensure_active(&state, &req.item).await?;
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
                ids.push(super::operator::resolve_host(&state, n).await?.0);
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
    let row = CampaignRow {
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
        status: "running".into(),
        status_reason: String::new(),
        created_at: crate::now(),
    };
    state.store.create_campaign(&row).await?;
    state.cache.set_campaigns_active(None);
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
            let (tags, _) = crate::fleet::effective_labels(
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
        .ok_or_else(|| AppError::Internal("campaign vanished".into()))?;
    Ok(Json(view(&state, c).await?))
}

#[utoipa::path(get, path = "/api/v1/campaigns", tag = "campaigns", params(super::StatusQuery), responses((status = 200, body = Vec<ferry_manifests::wire::CampaignView>), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn list(
    State(state): State<Shared>,
    _op: Operator,
    Query(q): Query<super::StatusQuery>,
) -> ApiResult<Json<Vec<CampaignView>>> {
    let mut out = Vec::new();
    for c in state.store.campaigns().await? {
        if q.status.as_deref().is_none_or(|s| s == c.status) {
            out.push(view(&state, c).await?);
        }
    }
    Ok(Json(out))
}

async fn load(state: &Shared, id: &str) -> ApiResult<CampaignRow> {
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
    let c = load(&state, &id).await?;
    Ok(Json(view(&state, c).await?))
}

#[utoipa::path(post, path = "/api/v1/campaigns/{id}/{action}", tag = "campaigns", params(("id" = String, Path), ("action" = String, Path, description = "pause, resume or cancel")), responses((status = 200, body = ferry_manifests::wire::CampaignView), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn action(
    State(state): State<Shared>,
    _op: Operator,
    Path((id, action)): Path<(String, String)>,
) -> ApiResult<Json<CampaignView>> {
    let c = load(&state, &id).await?;
    if c.status == "cancelled" {
        return Err(AppError::conflict(format!("campaign {id} is cancelled")));
    }
    match action.as_str() {
        "pause" => {
            state
                .store
                .set_campaign_status(&id, "paused", "paused by an operator")
                .await?
        }
        "resume" => {
            state.store.set_campaign_status(&id, "running", "").await?;
            evaluate(&state, &id).await?;
        }
        "cancel" => {
            state
                .store
                .set_campaign_status(&id, "cancelled", "cancelled by an operator")
                .await?;
            state.store.cancel_campaign_updates(&id).await?;
            // Devices waiting on a long-poll hear of it now.
            for m in state.store.members(&id).await? {
                state.waker.wake(&m.host_id);
            }
        }
        other => {
            return Err(AppError::not_found(format!(
                "no campaign action {other:?}: use pause, resume or cancel"
            )))
        }
    }
    state.cache.set_campaigns_active(None);
    tracing::info!(campaign = %id, %action, "campaign {action}");
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
