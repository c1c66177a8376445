//! Releases: publish a signed release, list them, read a manifest (devices too), record
//! mirrors.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use ferry_manifests::wire::{PublishResponse, ReleaseView};
use ferry_manifests::{Envelope, Manifest};
use serde::Deserialize;

use crate::api::artifacts::hash_file;
use crate::auth::{Operator, OperatorOrDevice};
use crate::error::extract::{Json as ApiJson, Path, Query};
use crate::error::{ApiResult, AppError};
use crate::policy::fleet;
use crate::state::Shared;
use crate::store::NewRelease;
use ferry_manifests::wire::now;

#[derive(Deserialize, utoipa::IntoParams)]
pub struct ReleaseQuery {
    item: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/releases", tag = "releases", params(ReleaseQuery), responses((status = 200, body = Vec<ferry_manifests::wire::ReleaseView>), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn list_releases(
    State(state): State<Shared>,
    _op: Operator,
    Query(q): Query<ReleaseQuery>,
) -> ApiResult<Json<Vec<ReleaseView>>> {
    Ok(Json(state.store.releases(q.item.as_deref()).await?))
}

/// Stores a signed release. The server indexes the manifest without trusting it (it holds no
/// keys to decide trust; devices verify), but refuses an envelope whose artifact it does not
/// hold with the exact size and hash, so a broken publish fails here rather than on devices.
#[utoipa::path(post, path = "/api/v1/releases", tag = "releases", request_body = ferry_manifests::Envelope, responses((status = 200, body = ferry_manifests::wire::PublishResponse), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn publish(
    State(state): State<Shared>,
    _op: Operator,
    crate::error::extract::Bytes(body): crate::error::extract::Bytes,
) -> ApiResult<Json<PublishResponse>> {
    let envelope = Envelope::parse(&body).map_err(|e| AppError::bad_request(e.to_string()))?;
    let manifest =
        Manifest::parse_unverified(&envelope).map_err(|e| AppError::bad_request(e.to_string()))?;
    if envelope.signatures.is_empty() {
        return Err(AppError::bad_request("the manifest is not signed"));
    }
    let path = state.artifacts_dir().join(&manifest.artifact.name);
    if !tokio::fs::try_exists(&path).await.unwrap_or(false) {
        return Err(AppError::bad_request(format!(
            "artifact {} has not been uploaded; PUT /api/v1/artifacts/{} first",
            manifest.artifact.name, manifest.artifact.name
        )));
    }
    let (size, sha) = hash_file(&path).await?;
    if size != manifest.artifact.size || sha != manifest.artifact.sha256 {
        return Err(AppError::bad_request(format!(
            "stored artifact {} is {size} bytes with sha256 {sha}, the manifest says {} bytes with sha256 {}",
            manifest.artifact.name, manifest.artifact.size, manifest.artifact.sha256
        )));
    }
    let fmt = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    };
    let view = ReleaseView {
        item: manifest.item.clone(),
        version: manifest.version.clone(),
        category: manifest.category.to_string(),
        released_at: fmt(manifest.released_at),
        expires_at: fmt(manifest.expires_at),
        notes: manifest.notes.clone(),
        release_url: manifest.release_url.clone(),
        layout: manifest.install.layout.to_string(),
        artifact_name: manifest.artifact.name.clone(),
        artifact_size: manifest.artifact.size,
        artifact_sha256: manifest.artifact.sha256.clone(),
        signed_by: envelope
            .signatures
            .iter()
            .map(|s| s.keyid.0.clone())
            .collect(),
        published_at: now(),
        mirrors: Vec::new(),
    };
    let text = String::from_utf8_lossy(&body).into_owned();
    if !state
        .store
        .add_release(&NewRelease {
            view,
            envelope: text,
        })
        .await?
    {
        return Err(AppError::conflict(format!(
            "{} {} is already published; releases are immutable, publish a new version",
            manifest.item, manifest.version
        )));
    }
    state.releases_changed();
    tracing::info!(item = %manifest.item, version = %manifest.version, "release published");
    // Deltas from the item's previous releases, built in the background.
    crate::service::deltas::after_publish(&state, &manifest.item, &manifest.version).await;
    Ok(Json(PublishResponse {
        item: manifest.item,
        version: manifest.version,
    }))
}

/// Records where else the release's artifact is served (mirrors, a CDN, an object store's
/// public URL): devices try `BASE/ARTIFACT_NAME` for each, in order, before the server's own
/// copy. They are hints, not trust: the signed manifest's hash decides what is installed.
#[utoipa::path(put, path = "/api/v1/releases/{item}/{version}/mirrors", tag = "releases", params(("item" = String, Path), ("version" = String, Path)), request_body = ferry_manifests::wire::MirrorsRequest, responses((status = 200, body = ferry_manifests::wire::ReleaseView), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn set_mirrors(
    State(state): State<Shared>,
    _op: Operator,
    Path((item, version)): Path<(String, String)>,
    ApiJson(req): ApiJson<ferry_manifests::wire::MirrorsRequest>,
) -> ApiResult<Json<ReleaseView>> {
    let mirrors = fleet::mirror_bases(&req.mirrors).map_err(AppError::bad_request)?;
    if !state.store.set_mirrors(&item, &version, &mirrors).await? {
        return Err(AppError::not_found(format!("no release {item} {version}")));
    }
    state.releases_changed();
    tracing::info!(%item, %version, mirrors = mirrors.len(), "release mirrors recorded");
    let view = state
        .store
        .releases(Some(&item))
        .await?
        .into_iter()
        .find(|r| r.version.to_string() == version)
        .ok_or_else(|| AppError::not_found(format!("no release {item} {version}")))?;
    Ok(Json(view))
}

#[utoipa::path(get, path = "/api/v1/releases/{item}/{version}/manifest", tag = "releases", params(("item" = String, Path), ("version" = String, Path)), responses((status = 200, body = ferry_manifests::Envelope), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn manifest(
    State(state): State<Shared>,
    _caller: OperatorOrDevice,
    Path((item, version)): Path<(String, String)>,
) -> ApiResult<impl IntoResponse> {
    match state.store.envelope(&item, &version).await? {
        Some(text) => Ok(([(header::CONTENT_TYPE, "application/json")], text)),
        None => Err(AppError::not_found(format!("no release {item} {version}"))),
    }
}
