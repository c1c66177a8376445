//! Operator and enrolment tokens: create (shown once), list, revoke. Only hashes are stored.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use ferry_manifests::wire::{TokenRequest, TokenView};

use crate::auth::{hash_token, new_token, Operator, TokenKind};
use crate::error::extract::{Json as ApiJson, Path};
use crate::error::{ApiResult, AppError};
use crate::state::Shared;

#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", request_body = ferry_manifests::wire::TokenRequest, responses((status = 200, body = ferry_manifests::wire::TokenView), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn create(
    State(state): State<Shared>,
    _op: Operator,
    ApiJson(req): ApiJson<TokenRequest>,
) -> ApiResult<Json<TokenView>> {
    let kind = req.kind.as_deref().unwrap_or("operator");
    let Some(token_kind) = TokenKind::creatable(kind) else {
        return Err(AppError::bad_request(format!(
            "token kind {kind:?}: use operator or enrol"
        )));
    };
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > 128 {
        return Err(AppError::bad_request("name must be 1-128 characters"));
    }
    let token = new_token(token_kind).map_err(AppError::Random)?;
    let id = state
        .store
        .add_token(token_kind.as_str(), name, &hash_token(&token))
        .await?;
    tracing::info!(%id, %kind, %name, "token created");
    let mut view = state
        .store
        .tokens()
        .await?
        .into_iter()
        .find(|t| t.id == id)
        .ok_or_else(|| AppError::Vanished("token"))?;
    view.token = Some(token);
    Ok(Json(view))
}

#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens", responses((status = 200, body = Vec<ferry_manifests::wire::TokenView>), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn list(State(state): State<Shared>, _op: Operator) -> ApiResult<Json<Vec<TokenView>>> {
    Ok(Json(state.store.tokens().await?))
}

#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens", params(("id" = String, Path)), responses((status = 204, description = "revoked"), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn revoke(
    State(state): State<Shared>,
    _op: Operator,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = crate::service::full_id(&state, crate::store::IdKind::Token, &id).await?;
    let tokens = state.store.tokens().await?;
    let Some(t) = tokens.iter().find(|t| t.id == id && t.revoked_at.is_none()) else {
        return Err(AppError::not_found(format!("no active token {id}")));
    };
    let operators = tokens
        .iter()
        .filter(|t| t.kind == TokenKind::Operator.as_str() && t.revoked_at.is_none())
        .count();
    if t.kind == TokenKind::Operator.as_str() && operators == 1 {
        return Err(AppError::conflict(
            "this is the last operator token; create another before revoking it",
        ));
    }
    state.store.revoke_token(&id).await?;
    tracing::info!(%id, kind = %t.kind, name = %t.name, "token revoked");
    Ok(StatusCode::NO_CONTENT)
}
