//! Campaigns: create, list, show, pause, resume, cancel, edit; devices accept. Hosts join
//! when they check in, and installs are dispatched as waves open (`service::campaigns`;
//! `crate::policy::campaign` has the rules).

use axum::extract::State;
use axum::Json;
use ferry_manifests::wire::{CampaignEdit, CampaignOffer, CampaignRequest, CampaignView};

use crate::auth::{Device, Operator};
use crate::error::extract::{Json as ApiJson, Path, Query};
use crate::error::ApiResult;
use crate::policy::audit::Change;
use crate::service::campaigns::requests;
use crate::state::Shared;

#[utoipa::path(post, path = "/api/v1/campaigns", tag = "campaigns", request_body = ferry_manifests::wire::CampaignRequest, responses((status = 200, body = ferry_manifests::wire::CampaignView), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn create(
    State(state): State<Shared>,
    op: Operator,
    ApiJson(req): ApiJson<CampaignRequest>,
) -> ApiResult<Json<CampaignView>> {
    crate::service::scope::check_target(&state, &op.scope(), op.user_name(), &req.target).await?;
    Ok(Json(requests::create(&state, req, op.user()).await?))
}

#[utoipa::path(get, path = "/api/v1/campaigns", tag = "campaigns", params(super::StatusQuery), responses((status = 200, body = Vec<ferry_manifests::wire::CampaignView>), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn list(
    State(state): State<Shared>,
    op: Operator,
    Query(q): Query<super::StatusQuery>,
) -> ApiResult<Json<Vec<CampaignView>>> {
    let mut list = requests::list(&state, q.status.as_deref()).await?;
    crate::service::scope::keep_campaigns(&state, &op.scope(), &mut list).await?;
    Ok(Json(list))
}

#[utoipa::path(get, path = "/api/v1/campaigns/{id}", tag = "campaigns", params(("id" = String, Path)), responses((status = 200, body = ferry_manifests::wire::CampaignView), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn show(
    State(state): State<Shared>,
    _op: Operator,
    Path(id): Path<String>,
) -> ApiResult<Json<CampaignView>> {
    Ok(Json(requests::show(&state, &id).await?))
}

#[utoipa::path(post, path = "/api/v1/campaigns/{id}/{action}", tag = "campaigns", params(("id" = String, Path), ("action" = String, Path, description = "pause, resume or cancel")), responses((status = 200, body = ferry_manifests::wire::CampaignView), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn action(
    State(state): State<Shared>,
    _op: Operator,
    Path((id, action)): Path<(String, String)>,
) -> ApiResult<(axum::Extension<Change>, Json<CampaignView>)> {
    audited(&state, &id, requests::action(&state, &id, &action)).await
}

#[utoipa::path(patch, path = "/api/v1/campaigns/{id}", tag = "campaigns", params(("id" = String, Path)), request_body = ferry_manifests::wire::CampaignEdit, responses((status = 200, body = ferry_manifests::wire::CampaignView), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn edit(
    State(state): State<Shared>,
    _op: Operator,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<CampaignEdit>,
) -> ApiResult<(axum::Extension<Change>, Json<CampaignView>)> {
    audited(&state, &id, requests::edit(&state, &id, req)).await
}

/// `POST /api/v1/device/campaigns/{id}/accept`
#[utoipa::path(post, path = "/api/v1/device/campaigns/{id}/accept", tag = "device", params(("id" = String, Path)), responses((status = 200, body = ferry_manifests::wire::CampaignOffer), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn accept(
    State(state): State<Shared>,
    Device(host_id): Device,
    Path(id): Path<String>,
) -> ApiResult<Json<CampaignOffer>> {
    Ok(Json(requests::accept(&state, &host_id, &id).await?))
}

#[utoipa::path(post, path = "/api/v1/campaigns/{id}/approval", tag = "campaigns", params(("id" = String, Path)), responses((status = 200, body = ferry_manifests::wire::CampaignView), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn approve(
    State(state): State<Shared>,
    op: Operator,
    Path(id): Path<String>,
) -> ApiResult<Json<CampaignView>> {
    Ok(Json(requests::approve(&state, &id, op.user_name()).await?))
}

/// A change of campaign `id` made by `change`, with what it changed for the audit log.
async fn audited(
    state: &Shared,
    id: &str,
    change: impl std::future::Future<Output = crate::service::ServiceResult<CampaignView>>,
) -> ApiResult<(axum::Extension<Change>, Json<CampaignView>)> {
    let before = requests::show(state, id)
        .await
        .ok()
        .map(|c| settings_of(&c));
    let after = change.await?;
    Ok((
        Change::of(before.as_ref(), Some(&settings_of(&after))),
        Json(after),
    ))
}

/// What an operator changes of a campaign, as the audit log keeps it (not its members'
/// progress, which moves on its own).
fn settings_of(c: &CampaignView) -> serde_json::Value {
    serde_json::json!({
        "status": c.status,
        "success_threshold": c.success_threshold,
        "max_failure_rate": c.max_failure_rate,
        "window": c.window,
        "waves": c.waves,
    })
}
