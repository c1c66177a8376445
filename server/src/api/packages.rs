//! Software on the fleet's hosts besides Ferry's items (`service::packages`).

use axum::extract::State;
use axum::Json;
use ferry_manifests::manifest::Category;
use ferry_manifests::wire::PackageHit;

use crate::auth::Operator;
use crate::error::extract::Query;
use crate::error::{ApiResult, AppError};
use crate::service::packages;
use crate::state::Shared;

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PackageQuery {
    /// The package's name, exactly (`openssl`, `libc6:i386`). Without it, every package with
    /// an upgrade offered.
    #[serde(default)]
    #[param(min_length = 1, max_length = 256)]
    pub name: Option<String>,
    /// Only hosts whose version sorts before this one (as dpkg compares versions).
    #[serde(default)]
    pub older_than: Option<String>,
    /// Only packages with an upgrade offered.
    #[serde(default)]
    pub pending: Option<bool>,
    /// Only upgrades of this category: `security`, `bugfix`, `feature`, `unknown`.
    #[serde(default)]
    #[param(value_type = Option<String>, pattern = "^(security|bugfix|feature|unknown)$")]
    pub category: Option<String>,
}

/// The hosts that have a package, with its version and any upgrade offered: "which hosts
/// have openssl older than 3.0.15", "which hosts have security updates pending"
/// (`?category=security`, at most 100,000 rows).
#[utoipa::path(get, path = "/api/v1/packages", tag = "packages", params(PackageQuery), responses((status = 200, body = Vec<ferry_manifests::wire::PackageHit>), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn search(
    State(state): State<Shared>,
    op: Operator,
    Query(q): Query<PackageQuery>,
) -> ApiResult<Json<Vec<PackageHit>>> {
    if q.name
        .as_ref()
        .is_some_and(|n| n.is_empty() || n.len() > 256)
    {
        return Err(AppError::bad_request("name must be 1-256 characters"));
    }
    let category = category(q.category.as_deref())?;
    let search = packages::Search {
        name: q.name.as_deref(),
        older_than: q.older_than.as_deref(),
        pending: q.pending.unwrap_or(false),
        category,
    };
    let mut hits = packages::search(&state, &search).await?;
    crate::service::scope::keep_visible(&state, &op.scope(), &mut hits, |h| &h.host_id).await?;
    Ok(Json(hits))
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HostsPendingQuery {
    /// Only upgrades of this category: `security`, `bugfix`, `feature`, `unknown`.
    #[serde(default)]
    #[param(value_type = Option<String>, pattern = "^(security|bugfix|feature|unknown)$")]
    pub category: Option<String>,
}

/// "Which hosts have security updates pending": every host with upgrades pending (of a
/// category when given), in numbers, from the counts kept with each host's list.
#[utoipa::path(get, path = "/api/v1/packages/hosts", tag = "packages", params(HostsPendingQuery), responses((status = 200, body = Vec<ferry_manifests::wire::HostPending>), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn hosts(
    State(state): State<Shared>,
    op: Operator,
    Query(q): Query<HostsPendingQuery>,
) -> ApiResult<Json<Vec<ferry_manifests::wire::HostPending>>> {
    let category = category(q.category.as_deref())?;
    let mut list = state.store.hosts_pending(category).await?;
    crate::service::scope::keep_visible(&state, &op.scope(), &mut list, |h| &h.host_id).await?;
    Ok(Json(list))
}

fn category(c: Option<&str>) -> Result<Option<Category>, AppError> {
    c.map(|c| {
        c.parse::<Category>().map_err(|_| {
            AppError::bad_request(format!(
                "category {c:?}: one of security, bugfix, feature, unknown"
            ))
        })
    })
    .transpose()
}
