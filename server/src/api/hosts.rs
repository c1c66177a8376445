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
    crate::service::scope::keep_visible(&state, &op.scope(), &mut list, |h| &h.id).await?;
    Ok(Json(list))
}

#[utoipa::path(get, path = "/api/v1/hosts/{host}", tag = "hosts", params(("host" = String, Path, description = "host id or hostname")), responses((status = 200, body = ferry_manifests::wire::HostDetail), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn show_host(
    State(state): State<Shared>,
    _op: Operator,
    Path(host): Path<String>,
) -> ApiResult<Json<ferry_manifests::wire::HostDetail>> {
    Ok(Json(hosts::show(&state, &host).await?))
}

#[utoipa::path(patch, path = "/api/v1/hosts/{host}", tag = "hosts", params(("host" = String, Path, description = "host id or hostname")), request_body = ferry_manifests::wire::HostEdit, responses((status = 200, body = ferry_manifests::wire::HostView), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn edit_host(
    State(state): State<Shared>,
    _op: Operator,
    Path(host): Path<String>,
    ApiJson(edit): ApiJson<HostEdit>,
) -> ApiResult<(
    axum::Extension<crate::policy::audit::Change>,
    Json<HostView>,
)> {
    let before = hosts::labels(&state, &host).await;
    let after = hosts::edit(&state, &host, &edit).await?;
    let now = hosts::labels(&state, &after.id).await;
    Ok((
        crate::policy::audit::Change::of(before.as_ref(), now.as_ref()),
        Json(after),
    ))
}

#[utoipa::path(delete, path = "/api/v1/hosts/{host}", tag = "hosts", params(("host" = String, Path, description = "host id or hostname")), responses((status = 204, description = "removed"), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn remove_host(
    State(state): State<Shared>,
    _op: Operator,
    Path(host): Path<String>,
) -> ApiResult<(
    axum::Extension<crate::policy::audit::Change>,
    axum::http::StatusCode,
)> {
    let before = match hosts::resolve(&state, &host).await {
        Ok((id, hostname)) => Some(serde_json::json!({"id": id, "hostname": hostname})),
        Err(_) => None,
    };
    hosts::remove(&state, &host).await?;
    Ok((
        crate::policy::audit::Change::of(before.as_ref(), None::<&()>),
        axum::http::StatusCode::NO_CONTENT,
    ))
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
