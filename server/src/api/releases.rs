//! Releases: publish a signed release, list them, read a manifest (devices too), record
//! mirrors.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use ferry_manifests::wire::{PublishResponse, ReleaseView};
use serde::Deserialize;

use crate::auth::{Operator, OperatorOrDevice};
use crate::error::extract::{Json as ApiJson, Path, Query};
use crate::error::{ApiResult, AppError};
use crate::service::releases;
use crate::state::Shared;

#[derive(Deserialize, utoipa::IntoParams)]
pub struct ReleaseQuery {
    item: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/releases", tag = "releases", params(ReleaseQuery), responses((status = 200, body = Vec<ferry_manifests::wire::ReleaseView>), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn list_releases(
    State(state): State<Shared>,
    op: Operator,
    Query(q): Query<ReleaseQuery>,
) -> ApiResult<Json<Vec<ReleaseView>>> {
    let mut list = state.store.releases(q.item.as_deref()).await?;
    // The caller's tenant's (every release with one tenant).
    let catalog = state.catalog().await?;
    list.retain(|r| catalog.is_of(&r.item, Some(&op.user().tenant_id)));
    Ok(Json(list))
}

/// Stores a signed release. The server indexes the manifest without trusting it (it holds no
/// keys to decide trust; devices verify), but refuses an envelope whose artifact it does not
/// hold with the exact size and hash, so a broken publish fails here rather than on devices.
#[utoipa::path(post, path = "/api/v1/releases", tag = "releases", request_body = ferry_manifests::Envelope, responses((status = 200, body = ferry_manifests::wire::PublishResponse), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn publish(
    State(state): State<Shared>,
    op: Operator,
    crate::error::extract::Bytes(body): crate::error::extract::Bytes,
) -> ApiResult<Json<PublishResponse>> {
    Ok(Json(
        releases::publish(&state, &body, &op.user().tenant_id).await?,
    ))
}

/// Records where else the release's artifact is served (mirrors, a CDN, an object store's
/// public URL): devices try `BASE/ARTIFACT_NAME` for each, in order, before the server's own
/// copy. They are hints, not trust: the signed manifest's hash decides what is installed.
#[utoipa::path(put, path = "/api/v1/releases/{item}/{version}/mirrors", tag = "releases", params(("item" = String, Path), ("version" = String, Path)), request_body = ferry_manifests::wire::MirrorsRequest, responses((status = 200, body = ferry_manifests::wire::ReleaseView), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn set_mirrors(
    State(state): State<Shared>,
    op: Operator,
    Path((item, version)): Path<(String, String)>,
    ApiJson(req): ApiJson<ferry_manifests::wire::MirrorsRequest>,
) -> ApiResult<Json<ReleaseView>> {
    releases::require_item_of(&state, &item, Some(&op.user().tenant_id)).await?;
    Ok(Json(
        releases::set_mirrors(&state, &item, &version, &req.mirrors).await?,
    ))
}

/// Lets installs of the release download over a metered link (an urgent fix), or not again;
/// other jobs wait on such a link (docs/delivery.md).
#[utoipa::path(put, path = "/api/v1/releases/{item}/{version}/metered-allowed", tag = "releases", params(("item" = String, Path), ("version" = String, Path)), request_body = ferry_manifests::wire::MeteredAllowedRequest, responses((status = 200, body = ferry_manifests::wire::ReleaseView), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn set_metered_allowed(
    State(state): State<Shared>,
    op: Operator,
    Path((item, version)): Path<(String, String)>,
    ApiJson(req): ApiJson<ferry_manifests::wire::MeteredAllowedRequest>,
) -> ApiResult<Json<ReleaseView>> {
    releases::require_item_of(&state, &item, Some(&op.user().tenant_id)).await?;
    Ok(Json(
        releases::set_metered_allowed(&state, &item, &version, req.metered_allowed).await?,
    ))
}

/// Withdraws a release: no longer offered, counted or advertised; installs of it not yet
/// started and its campaigns are cancelled.
#[utoipa::path(post, path = "/api/v1/releases/{item}/{version}/withdraw", tag = "releases", params(("item" = String, Path), ("version" = String, Path)), request_body = ferry_manifests::wire::WithdrawRequest, responses((status = 200, body = ferry_manifests::wire::ReleaseView), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn withdraw(
    State(state): State<Shared>,
    op: Operator,
    Path((item, version)): Path<(String, String)>,
    ApiJson(req): ApiJson<ferry_manifests::wire::WithdrawRequest>,
) -> ApiResult<Json<ReleaseView>> {
    releases::require_item_of(&state, &item, Some(&op.user().tenant_id)).await?;
    // As for the manifest: a version that does not parse names no release.
    let version: semver::Version = version
        .parse()
        .map_err(|_| crate::error::AppError::not_found(format!("no release {item} {version}")))?;
    Ok(Json(
        releases::withdraw(&state, &item, &version, req.reason.as_deref().unwrap_or("")).await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/releases/{item}/{version}/manifest", tag = "releases", params(("item" = String, Path), ("version" = String, Path)), responses((status = 200, body = ferry_manifests::Envelope), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn manifest(
    State(state): State<Shared>,
    caller: OperatorOrDevice,
    Path((item, version)): Path<(String, String)>,
) -> ApiResult<impl IntoResponse> {
    // Another tenant's release does not exist for the caller.
    if !state
        .catalog()
        .await?
        .is_of(&item, caller.tenant.as_deref())
    {
        return Err(AppError::not_found(format!("no release {item} {version}")));
    }
    match state.store.envelope(&item, &version).await? {
        Some(text) => Ok(([(header::CONTENT_TYPE, "application/json")], text)),
        None => Err(AppError::not_found(format!("no release {item} {version}"))),
    }
}
