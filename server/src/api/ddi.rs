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
    let device = ddi::authenticate(&state, &tenant, &controller, authorization(&headers)).await?;
    let base = base(&state, &headers, &tenant, &controller);
    Ok(Json(ddi::poll(&state, &device, &base).await?))
}

/// `PUT /{tenant}/controller/v1/{controllerId}/configData`: the device's attributes.
pub async fn config_data(
    State(state): State<Shared>,
    Path((tenant, controller)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<serde_json::Value>> {
    let host = ddi::authenticate(&state, &tenant, &controller, authorization(&headers))
        .await?
        .host_id;
    let value: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| AppError::bad_request(format!("configData is not JSON: {e}")))?;
    ddi::config_data(&state, &host, &value).await?;
    // Every DDI answer is 200 with a body: SWUpdate takes 204 for an error.
    Ok(Json(serde_json::json!({})))
}

/// A DDI request's path: tenant, controller id and action id.
type ActionPath = Path<(String, String, String)>;

/// An action id as the path gives it: a positive 32-bit number (SWUpdate reads no more).
fn action_id(text: &str) -> ApiResult<i64> {
    text.parse::<i32>()
        .ok()
        .filter(|n| *n > 0)
        .map(i64::from)
        .ok_or_else(|| AppError::not_found(format!("no action {text:?}")))
}

/// `GET …/deploymentBase/{actionId}`: what to install.
pub async fn deployment_base(
    State(state): State<Shared>,
    Path((tenant, controller, action)): ActionPath,
    headers: HeaderMap,
) -> ApiResult<Json<serde_json::Value>> {
    let host = ddi::authenticate(&state, &tenant, &controller, authorization(&headers))
        .await?
        .host_id;
    let base = base(&state, &headers, &tenant, &controller);
    Ok(Json(
        ddi::deployment_base(&state, &host, &base, action_id(&action)?).await?,
    ))
}

/// A feedback of the device (`cancel`: on a cancellation), answered `200 {}`.
async fn feedback(
    state: &Shared,
    (tenant, controller, action): (String, String, String),
    headers: &HeaderMap,
    body: &[u8],
    cancel: bool,
) -> ApiResult<Json<serde_json::Value>> {
    let host = ddi::authenticate(state, &tenant, &controller, authorization(headers))
        .await?
        .host_id;
    ddi::feedback(state, &host, action_id(&action)?, body, cancel).await?;
    Ok(Json(serde_json::json!({})))
}

/// `POST …/deploymentBase/{actionId}/feedback`: progress and the result.
pub async fn deployment_feedback(
    State(state): State<Shared>,
    Path(path): ActionPath,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<serde_json::Value>> {
    feedback(&state, path, &headers, &body, false).await
}

/// `GET …/cancelAction/{actionId}`: the action to stop.
pub async fn cancel_action(
    State(state): State<Shared>,
    Path((tenant, controller, action)): ActionPath,
    headers: HeaderMap,
) -> ApiResult<Json<serde_json::Value>> {
    let host = ddi::authenticate(&state, &tenant, &controller, authorization(&headers))
        .await?
        .host_id;
    Ok(Json(
        ddi::cancel_action(&state, &host, action_id(&action)?).await?,
    ))
}

/// `POST …/cancelAction/{actionId}/feedback`: the device's answer to a cancellation.
pub async fn cancel_feedback(
    State(state): State<Shared>,
    Path(path): ActionPath,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<serde_json::Value>> {
    feedback(&state, path, &headers, &body, true).await
}

/// `GET|HEAD …/softwaremodules/{actionId}/artifacts/{filename}`: the bundle, with Range (a
/// range past the end is answered 416, which rauc-hawkbit-updater takes as complete).
pub async fn download(
    State(state): State<Shared>,
    Path((tenant, controller, action, filename)): Path<(String, String, String, String)>,
    req: axum::extract::Request,
) -> ApiResult<axum::response::Response> {
    let headers = req.headers().clone();
    let host = ddi::authenticate(&state, &tenant, &controller, authorization(&headers))
        .await?
        .host_id;
    let path = ddi::download(&state, &host, action_id(&action)?, &filename).await?;
    super::artifacts::serve_file(&state, path, req).await
}
