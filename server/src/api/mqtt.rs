//! The MQTT bridge's broker connections: how they are doing, and those added, edited and
//! removed through the API (`mqtt::connections` does each).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use ferry_manifests::wire::{MqttConnectionRequest, MqttConnectionView};

use crate::auth::Operator;
use crate::error::extract::{Json as ApiJson, Path};
use crate::error::ApiResult;
use crate::mqtt::connections;
use crate::state::Shared;

#[utoipa::path(get, path = "/api/v1/mqtt", tag = "mqtt", responses((status = 200, body = Vec<ferry_manifests::wire::MqttConnectionView>), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn list(
    State(state): State<Shared>,
    op: Operator,
) -> ApiResult<Json<Vec<MqttConnectionView>>> {
    Ok(Json(connections::list(&state, op.user()).await?))
}

#[utoipa::path(post, path = "/api/v1/mqtt", operation_id = "mqtt_add", tag = "mqtt", request_body = ferry_manifests::wire::MqttConnectionRequest, responses((status = 200, body = ferry_manifests::wire::MqttConnectionView), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn add(
    State(state): State<Shared>,
    op: Operator,
    ApiJson(req): ApiJson<MqttConnectionRequest>,
) -> ApiResult<Json<MqttConnectionView>> {
    Ok(Json(connections::add(&state, op.user(), req).await?))
}

#[utoipa::path(patch, path = "/api/v1/mqtt/{name}", operation_id = "mqtt_edit", tag = "mqtt", params(("name" = String, Path)), request_body = ferry_manifests::wire::MqttConnectionRequest, responses((status = 200, body = ferry_manifests::wire::MqttConnectionView), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn edit(
    State(state): State<Shared>,
    op: Operator,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<MqttConnectionRequest>,
) -> ApiResult<Json<MqttConnectionView>> {
    Ok(Json(
        connections::edit(&state, op.user(), &name, req).await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/mqtt/{name}", tag = "mqtt", params(("name" = String, Path)), responses((status = 204, description = "removed"), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn remove(
    State(state): State<Shared>,
    op: Operator,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    connections::remove(&state, op.user(), &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Waits up to 5 s for the connection to be up, and says how it is.
#[utoipa::path(post, path = "/api/v1/mqtt/{name}/test", tag = "mqtt", params(("name" = String, Path)), responses((status = 200, body = ferry_manifests::wire::MqttConnectionView), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn test(
    State(state): State<Shared>,
    op: Operator,
    Path(name): Path<String>,
) -> ApiResult<Json<MqttConnectionView>> {
    Ok(Json(connections::test(&state, op.user(), &name).await?))
}
