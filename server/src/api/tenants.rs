//! Tenants: list and add (`service::tenants`); the install's admin's.

use axum::extract::State;
use axum::Json;
use ferry_manifests::wire::{TenantRequest, TenantView};

use crate::auth::Operator;
use crate::error::extract::Json as ApiJson;
use crate::error::ApiResult;
use crate::service::tenants;
use crate::state::Shared;

#[utoipa::path(get, path = "/api/v1/tenants", tag = "users", responses((status = 200, body = Vec<ferry_manifests::wire::TenantView>), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn list(State(state): State<Shared>, op: Operator) -> ApiResult<Json<Vec<TenantView>>> {
    let mut all = tenants::list(&state).await?;
    // Everyone but the install's admin sees their own tenant only.
    if !tenants::is_install_admin(&state, op.user()).await? {
        all.retain(|t| t.id == op.user().tenant_id);
    }
    Ok(Json(all))
}

#[utoipa::path(post, path = "/api/v1/tenants", tag = "users", request_body = ferry_manifests::wire::TenantRequest, responses((status = 200, body = ferry_manifests::wire::TenantView), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn add(
    State(state): State<Shared>,
    op: Operator,
    ApiJson(req): ApiJson<TenantRequest>,
) -> ApiResult<Json<TenantView>> {
    Ok(Json(tenants::add(&state, op.user(), &req).await?))
}
