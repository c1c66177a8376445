//! Operator and enrolment tokens: create (shown once), list, revoke (`service::tokens`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use ferry_manifests::wire::{TokenRequest, TokenView};

use crate::auth::Operator;
use crate::error::extract::{Json as ApiJson, Path};
use crate::error::ApiResult;
use crate::service::tokens;
use crate::state::Shared;

#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", request_body = ferry_manifests::wire::TokenRequest, responses((status = 200, body = ferry_manifests::wire::TokenView), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn create(
    State(state): State<Shared>,
    op: Operator,
    ApiJson(req): ApiJson<TokenRequest>,
) -> ApiResult<Json<TokenView>> {
    Ok(Json(tokens::create(&state, &req, op.user()).await?))
}

#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens", responses((status = 200, body = Vec<ferry_manifests::wire::TokenView>), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn list(State(state): State<Shared>, op: Operator) -> ApiResult<Json<Vec<TokenView>>> {
    Ok(Json(tokens::list(&state, &op.user().tenant_id).await?))
}

#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens", params(("id" = String, Path)), responses((status = 204, description = "revoked"), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn revoke(
    State(state): State<Shared>,
    op: Operator,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    tokens::revoke(&state, &op.user().tenant_id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
