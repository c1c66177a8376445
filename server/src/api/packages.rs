//! Software on the fleet's hosts besides Ferry's items (`service::packages`).

use axum::extract::State;
use axum::Json;
use ferry_manifests::wire::PackageHit;

use crate::auth::Operator;
use crate::error::extract::Query;
use crate::error::{ApiResult, AppError};
use crate::service::packages;
use crate::state::Shared;

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PackageQuery {
    /// The package's name, exactly (`openssl`, `libc6:i386`).
    #[param(min_length = 1, max_length = 256)]
    pub name: String,
    /// Only hosts whose version sorts before this one (as dpkg compares versions).
    #[serde(default)]
    pub older_than: Option<String>,
}

/// The hosts that have a package, with its version: "which hosts have openssl older than
/// 3.0.15".
#[utoipa::path(get, path = "/api/v1/packages", tag = "packages", params(PackageQuery), responses((status = 200, body = Vec<ferry_manifests::wire::PackageHit>), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn search(
    State(state): State<Shared>,
    _op: Operator,
    Query(q): Query<PackageQuery>,
) -> ApiResult<Json<Vec<PackageHit>>> {
    if q.name.is_empty() || q.name.len() > 256 {
        return Err(AppError::bad_request("name must be 1-256 characters"));
    }
    Ok(Json(
        packages::search(&state, &q.name, q.older_than.as_deref()).await?,
    ))
}
