//! hawkBit's DDI API at the server's root, `/{tenant}/controller/v1/{controllerId}…`, for
//! devices that run SWUpdate's suricatta, rauc-hawkbit-updater or another DDI client
//! (docs/ddi.md; not in the OpenAPI document, which is Ferry's own API), and the operator
//! routes that give out their tokens. `service::ddi` does each.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::Json;
use ferry_manifests::wire::{DdiGatewayRequest, DdiTokenView};

use crate::auth::Operator;
use crate::error::extract::{Json as ApiJson, Path};
use crate::error::{ApiResult, AppError};
use crate::service::ddi;
use crate::state::Shared;

#[utoipa::path(post, path = "/api/v1/ddi/tokens/{name}", operation_id = "ddi_target_token", tag = "ddi", params(("name" = String, Path, description = "the device's controller id")), responses((status = 200, body = ferry_manifests::wire::DdiTokenView), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn target_token(
    State(state): State<Shared>,
    op: Operator,
    Path(name): Path<String>,
) -> ApiResult<Json<DdiTokenView>> {
    Ok(Json(ddi::target_token(&state, op.user(), &name).await?))
}

#[utoipa::path(post, path = "/api/v1/ddi/gateway-token", operation_id = "ddi_gateway_token", tag = "ddi", request_body = ferry_manifests::wire::DdiGatewayRequest, responses((status = 200, body = ferry_manifests::wire::DdiTokenView), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn gateway_token(
    State(state): State<Shared>,
    op: Operator,
    ApiJson(req): ApiJson<DdiGatewayRequest>,
) -> ApiResult<Json<DdiTokenView>> {
    Ok(Json(
        ddi::gateway_token(&state, op.user(), req.rotate).await?,
    ))
}

/// The absolute URL of a controller's resources, as the device reached the server.
fn base(state: &Shared, headers: &HeaderMap, tenant: &str, controller: &str) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let scheme = if state.config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{host}/{tenant}/controller/v1/{controller}")
}

fn authorization(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
}

/// `GET /{tenant}/controller/v1/{controllerId}`: the poll.
pub async fn poll(
    State(state): State<Shared>,
    Path((tenant, controller)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Json<serde_json::Value>> {
    let host = ddi::authenticate(&state, &tenant, &controller, authorization(&headers)).await?;
    let base = base(&state, &headers, &tenant, &controller);
    Ok(Json(ddi::poll(&state, &host, &base).await?))
}

/// `PUT /{tenant}/controller/v1/{controllerId}/configData`: the device's attributes.
pub async fn config_data(
    State(state): State<Shared>,
    Path((tenant, controller)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<serde_json::Value>> {
    let host = ddi::authenticate(&state, &tenant, &controller, authorization(&headers)).await?;
    let value: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| AppError::bad_request(format!("configData is not JSON: {e}")))?;
    ddi::config_data(&state, &host, &value).await?;
    // Every DDI answer is 200 with a body: SWUpdate takes 204 for an error.
    Ok(Json(serde_json::json!({})))
}
