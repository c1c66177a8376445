//! Trust roots: operators publish each new version; devices fetch the versions after theirs.
//! The server holds no root key, but it does check each version against the previous one
//! before relaying it, so a broken rotation fails here rather than on devices.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use ferry_manifests::root::TrustRoot;
use serde::Serialize;

use crate::auth::{Operator, OperatorOrDevice};
use crate::error::extract::Path;
use crate::error::{ApiResult, AppError};
use crate::state::Shared;

#[derive(Serialize, utoipa::ToSchema)]
pub struct Published {
    pub version: u64,
}

#[utoipa::path(post, path = "/api/v1/trust-roots", tag = "trust roots", request_body = ferry_manifests::Envelope, responses((status = 200, body = Published), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn publish(
    State(state): State<Shared>,
    op: Operator,
    crate::error::extract::Bytes(body): crate::error::extract::Bytes,
) -> ApiResult<Json<Published>> {
    // The publisher's tenant's chain (the install's for the default tenant).
    let guest = state.guest(Some(&op.user().tenant_id)).await?;
    let verified = match state.store.latest_root(guest.as_deref()).await? {
        None => TrustRoot::verify_initial(&body),
        Some((_, previous)) => TrustRoot::verify_initial(previous.as_bytes())
            .map_err(AppError::StoredRoot)?
            .verify_next(&body),
    }
    .map_err(|e| AppError::bad_request(e.to_string()))?;
    let text = String::from_utf8_lossy(&body).into_owned();
    if !state
        .store
        .add_root(guest.as_deref(), verified.version, &text)
        .await?
    {
        return Err(AppError::conflict(format!(
            "trust root version {} already exists",
            verified.version
        )));
    }
    state.root_changed();
    tracing::info!(version = verified.version, "trust root published");
    Ok(Json(Published {
        version: verified.version,
    }))
}

#[utoipa::path(get, path = "/api/v1/trust-roots/{version}", tag = "trust roots", params(("version" = u64, Path)), responses((status = 200, body = ferry_manifests::Envelope), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn get(
    State(state): State<Shared>,
    caller: OperatorOrDevice,
    Path(version): Path<u64>,
) -> ApiResult<impl IntoResponse> {
    let guest = state.guest(caller.tenant.as_deref()).await?;
    match state.store.root(guest.as_deref(), version).await? {
        Some(text) => Ok(([(header::CONTENT_TYPE, "application/json")], text)),
        None => Err(AppError::not_found(format!(
            "no trust root version {version}"
        ))),
    }
}
