//! Batch updates: plan, store, dispatch one install at a time per host, and report progress
//! (`service::batches` does each).

use axum::extract::State;
use axum::Json;
use ferry_manifests::wire::{BatchRequest, BatchView};

use crate::auth::Operator;
use crate::error::extract::{Json as ApiJson, Path, Query};
use crate::error::ApiResult;
use crate::service::batches;
use crate::state::Shared;

#[utoipa::path(post, path = "/api/v1/update-batches", tag = "batches", request_body = ferry_manifests::wire::BatchRequest, responses((status = 200, body = ferry_manifests::wire::BatchView), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn create(
    State(state): State<Shared>,
    op: Operator,
    ApiJson(req): ApiJson<BatchRequest>,
) -> ApiResult<Json<BatchView>> {
    let req = crate::service::scope::check_batch(&state, &op.scope(), op.user_name(), req).await?;
    Ok(Json(batches::create(&state, req, op.actor()).await?))
}

#[utoipa::path(get, path = "/api/v1/update-batches", tag = "batches", params(super::StatusQuery), responses((status = 200, body = Vec<ferry_manifests::wire::BatchView>), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn list(
    State(state): State<Shared>,
    op: Operator,
    Query(q): Query<super::StatusQuery>,
) -> ApiResult<Json<Vec<BatchView>>> {
    let mut list = batches::list(&state, q.status.as_deref()).await?;
    crate::service::scope::keep_batches(&state, &op.scope(), &mut list).await?;
    Ok(Json(list))
}

#[utoipa::path(get, path = "/api/v1/update-batches/{id}", tag = "batches", params(("id" = String, Path)), responses((status = 200, body = ferry_manifests::wire::BatchView), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn show(
    State(state): State<Shared>,
    _op: Operator,
    Path(id): Path<String>,
) -> ApiResult<Json<BatchView>> {
    Ok(Json(batches::show(&state, &id).await?))
}
