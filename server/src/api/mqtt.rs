//! The MQTT bridge's connections and how they are doing.

use axum::extract::State;
use axum::Json;
use ferry_manifests::wire::MqttConnectionView;

use crate::auth::Operator;
use crate::error::ApiResult;
use crate::Shared;

#[utoipa::path(get, path = "/api/v1/mqtt", tag = "mqtt", responses((status = 200, body = Vec<ferry_manifests::wire::MqttConnectionView>), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn list(
    State(state): State<Shared>,
    _op: Operator,
) -> ApiResult<Json<Vec<MqttConnectionView>>> {
    let all = state
        .mqtt_status
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .values()
        .cloned()
        .collect();
    Ok(Json(all))
}
