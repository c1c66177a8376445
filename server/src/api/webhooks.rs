//! Webhooks (docs/operations.md, "Webhooks"): a tenant's endpoints and their deliveries
//! (`service::webhooks` does each).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use ferry_manifests::wire::{WebhookDeliveryView, WebhookRequest, WebhookView};

use crate::auth::Operator;
use crate::error::extract::{Json as ApiJson, Path, Query};
use crate::error::ApiResult;
use crate::service::webhooks;
use crate::state::Shared;

#[utoipa::path(get, path = "/api/v1/webhooks", tag = "webhooks", responses((status = 200, body = Vec<ferry_manifests::wire::WebhookView>), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn list(State(state): State<Shared>, op: Operator) -> ApiResult<Json<Vec<WebhookView>>> {
    Ok(Json(webhooks::list(&state, op.user()).await?))
}

#[utoipa::path(post, path = "/api/v1/webhooks", operation_id = "webhooks_add", tag = "webhooks", request_body = ferry_manifests::wire::WebhookRequest, responses((status = 200, body = ferry_manifests::wire::WebhookView), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn add(
    State(state): State<Shared>,
    op: Operator,
    ApiJson(req): ApiJson<WebhookRequest>,
) -> ApiResult<Json<WebhookView>> {
    Ok(Json(webhooks::add(&state, op.user(), req).await?))
}

#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", operation_id = "webhooks_remove", tag = "webhooks", params(("id" = String, Path)), responses((status = 204, description = "removed, with what it had still to deliver"), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn remove(
    State(state): State<Shared>,
    op: Operator,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    webhooks::remove(&state, op.user(), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesQuery {
    /// Only deliveries not (yet) delivered: pending retries and those given up.
    pub failing: Option<bool>,
}

#[utoipa::path(get, path = "/api/v1/webhooks/deliveries", tag = "webhooks", params(DeliveriesQuery), responses((status = 200, body = Vec<ferry_manifests::wire::WebhookDeliveryView>), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn deliveries(
    State(state): State<Shared>,
    op: Operator,
    Query(q): Query<DeliveriesQuery>,
) -> ApiResult<Json<Vec<WebhookDeliveryView>>> {
    Ok(Json(
        webhooks::deliveries(&state, op.user(), q.failing.unwrap_or(false)).await?,
    ))
}
