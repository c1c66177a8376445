//! Hosts: the fleet list, an operator's labels, acceptance, removal, and asking hosts to check in now
//! (`service::hosts` does each).

use axum::extract::State;
use axum::Json;
use ferry_manifests::wire::{CheckAnswer, CheckRequest, HostEdit, HostView};

use crate::auth::Operator;
use crate::error::extract::{Json as ApiJson, Path};
use crate::error::ApiResult;
use crate::service::hosts;
use crate::state::Shared;

#[utoipa::path(get, path = "/api/v1/hosts", tag = "hosts", responses((status = 200, body = Vec<ferry_manifests::wire::HostView>), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn list_hosts(
    State(state): State<Shared>,
    op: Operator,
) -> ApiResult<Json<Vec<HostView>>> {
    let mut list = hosts::list(&state).await?;
    list.retain(|h| op.scope().sees(&h.tags));
    Ok(Json(list))
}

#[utoipa::path(patch, path = "/api/v1/hosts/{host}", tag = "hosts", params(("host" = String, Path, description = "host id or hostname")), request_body = ferry_manifests::wire::HostEdit, responses((status = 200, body = ferry_manifests::wire::HostView), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn edit_host(
    State(state): State<Shared>,
    _op: Operator,
    Path(host): Path<String>,
    ApiJson(edit): ApiJson<HostEdit>,
) -> ApiResult<Json<HostView>> {
    Ok(Json(hosts::edit(&state, &host, &edit).await?))
}

#[utoipa::path(delete, path = "/api/v1/hosts/{host}", tag = "hosts", params(("host" = String, Path, description = "host id or hostname")), responses((status = 204, description = "removed"), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn remove_host(
    State(state): State<Shared>,
    _op: Operator,
    Path(host): Path<String>,
) -> ApiResult<axum::http::StatusCode> {
    hosts::remove(&state, &host).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/hosts/{host}/accept", tag = "hosts", params(("host" = String, Path, description = "host id or hostname")), responses((status = 200, body = ferry_manifests::wire::HostView), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn accept_host(
    State(state): State<Shared>,
    _op: Operator,
    Path(host): Path<String>,
) -> ApiResult<Json<HostView>> {
    Ok(Json(hosts::accept(&state, &host).await?))
}

#[utoipa::path(post, path = "/api/v1/check", tag = "hosts", request_body = ferry_manifests::wire::CheckRequest, responses((status = 200, body = ferry_manifests::wire::CheckAnswer), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn check_now(
    State(state): State<Shared>,
    op: Operator,
    ApiJson(req): ApiJson<CheckRequest>,
) -> ApiResult<Json<CheckAnswer>> {
    Ok(Json(hosts::check_now(&state, &req, &op.scope()).await?))
}
