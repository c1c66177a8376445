//! Artifact storage: uploaded by operators (streamed to disk, hashed on the way), served to
//! devices with HTTP Range support so interrupted downloads resume.

use std::path::PathBuf;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use ferry_manifests::manifest::validate_artifact_name;
use futures_util::TryStreamExt as _;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt as _;
use tower::ServiceExt as _;
use tower_http::services::ServeFile;

use crate::auth::{Operator, OperatorOrDevice};
use crate::error::extract::Path;
use crate::error::{ApiResult, AppError};
use crate::state::Shared;

#[derive(Serialize, utoipa::ToSchema)]
pub struct Uploaded {
    pub name: String,
    pub size: u64,
    pub sha256: String,
}

fn artifact_path(state: &Shared, name: &str) -> ApiResult<PathBuf> {
    validate_artifact_name(name).map_err(AppError::bad_request)?;
    Ok(state.artifacts_dir().join(name))
}

#[utoipa::path(get, path = "/api/v1/artifacts/{name}", tag = "artifacts", params(("name" = String, Path, description = "artifact file name", pattern = "^[A-Za-z0-9_+-][A-Za-z0-9._+-]{0,199}$")), responses((status = 200, description = "the artifact; Range supported", content_type = "application/octet-stream", body = Vec<u8>), (status = 206, description = "a range of it", content_type = "application/octet-stream", body = Vec<u8>), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn download(
    State(state): State<Shared>,
    caller: OperatorOrDevice,
    Path(name): Path<String>,
    req: Request,
) -> ApiResult<Response> {
    let path = artifact_path(&state, &name)?;
    if !crate::service::releases::artifact_is_of(&state, &name, caller.tenant.as_deref()).await? {
        return Err(AppError::not_found(format!("no artifact named {name}")));
    }
    let key = format!("artifacts/{name}");
    // A device may fetch it from the store itself, on a URL signed for a short while.
    if caller.is_device() {
        if let Some(url) = state.artifact_store.presigned(&key).await? {
            return Ok((
                axum::http::StatusCode::TEMPORARY_REDIRECT,
                [(axum::http::header::LOCATION, url)],
            )
                .into_response());
        }
    }
    if !state.artifact_store.fetch(&key, &path).await? {
        return Err(AppError::not_found(format!("no artifact named {name}")));
    }
    serve_file(&state, path, req).await
}

#[utoipa::path(put, path = "/api/v1/artifacts/{name}", tag = "artifacts", params(("name" = String, Path, description = "artifact file name", pattern = "^[A-Za-z0-9_+-][A-Za-z0-9._+-]{0,199}$")), request_body(content = Vec<u8>, content_type = "application/octet-stream"), responses((status = 200, body = Uploaded), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn upload(
    State(state): State<Shared>,
    op: Operator,
    Path(name): Path<String>,
    headers: axum::http::HeaderMap,
    body: Body,
) -> ApiResult<Json<Uploaded>> {
    let path = artifact_path(&state, &name)?;
    // In an install of several tenants, a name is its first uploader's tenant's.
    let exists = tokio::fs::try_exists(&path).await.unwrap_or(false);
    if let Err(e) =
        crate::service::releases::claim_artifact(&state, &name, &op.user().tenant_id, exists).await
    {
        drain(body).await;
        return Err(e.into());
    }
    // Refused on its declared length before a byte is stored: too large, or no room.
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(len) = declared {
        let refusal = if len > state.config.max_artifact_bytes {
            Some(too_large(&state))
        } else {
            let free = fs2::available_space(state.artifacts_dir()).unwrap_or(u64::MAX);
            (free < len.saturating_add(state.config.min_free_disk_bytes)).then(|| AppError::Client {
                status: axum::http::StatusCode::INSUFFICIENT_STORAGE,
                code: "disk_full",
                message: format!(
                    "no room for a {len}-byte artifact: {} has {} MiB free and keeps min_free_disk_mb = {} MiB; free space on the server",
                    state.artifacts_dir().display(),
                    free >> 20,
                    state.config.min_free_disk_bytes >> 20
                ),
            })
        };
        if let Some(e) = refusal {
            drain(body).await;
            return Err(e);
        }
    }
    let tmp = state
        .artifacts_dir()
        .join(format!(".upload-{}", uuid::Uuid::new_v4()));
    let result = write_upload(&state, &tmp, body).await;
    let (size, sha256) = match result {
        Ok((0, _)) => {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(AppError::bad_request(
                "an artifact cannot be empty: send the tarball as the body",
            ));
        }
        Ok(r) => r,
        Err(e) => {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e);
        }
    };
    let key = format!("artifacts/{name}");
    if state.artifact_store.fetch(&key, &path).await? {
        // Same name, same bytes: idempotent. Different bytes for a published release: refuse.
        let existing = crate::service::releases::hash_file(&path).await?;
        if existing.1 != sha256 && state.store.artifact_in_use(&name).await? {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(AppError::conflict(format!(
                "artifact {name} already exists with other content and belongs to a published release"
            )));
        }
    }
    tokio::fs::rename(&tmp, &path)
        .await
        .map_err(AppError::io("storing", &path))?;
    // In object storage too, for every other instance (this one keeps its copy as a cache).
    state.artifact_store.put(&key, &path).await?;
    tracing::info!(%name, size, %sha256, "artifact stored");
    Ok(Json(Uploaded { name, size, sha256 }))
}

fn too_large(state: &Shared) -> AppError {
    AppError::Client {
        status: axum::http::StatusCode::PAYLOAD_TOO_LARGE,
        code: "too_large",
        message: format!(
            "artifact larger than max_artifact_bytes ({}); raise it in server.toml or ship a smaller release",
            state.config.max_artifact_bytes
        ),
    }
}

/// The most of a refused upload read (and thrown away) so the client, still sending, reads
/// the refusal instead of a reset connection; beyond it the connection is closed.
const DRAIN_MAX_BYTES: u64 = 256 * 1024 * 1024;
const DRAIN_MAX_TIME: std::time::Duration = std::time::Duration::from_secs(30);

/// Reads the rest of a refused body and throws it away, bounded in bytes and time.
async fn drain(body: Body) {
    let mut stream = body.into_data_stream();
    let mut read = 0u64;
    let _ = tokio::time::timeout(DRAIN_MAX_TIME, async {
        while let Ok(Some(chunk)) = stream.try_next().await {
            read += chunk.len() as u64;
            if read > DRAIN_MAX_BYTES {
                break;
            }
        }
    })
    .await;
}

async fn write_upload(
    state: &Shared,
    tmp: &std::path::Path,
    body: Body,
) -> ApiResult<(u64, String)> {
    let mut file = tokio::fs::File::create(tmp)
        .await
        .map_err(AppError::io("creating", tmp))?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream
        .try_next()
        .await
        .map_err(|e| AppError::bad_request(format!("upload interrupted: {e}")))?
    {
        size += chunk.len() as u64;
        if size > state.config.max_artifact_bytes {
            drain(Body::from_stream(stream)).await;
            return Err(too_large(state));
        }
        hasher.update(&chunk);
        if let Err(e) = file.write_all(&chunk).await {
            // A full disk: the client hears it (507) rather than a reset connection.
            drain(Body::from_stream(stream)).await;
            return Err(AppError::io("writing", tmp)(e));
        }
    }
    file.sync_all()
        .await
        .map_err(AppError::io("syncing", tmp))?;
    Ok((size, hex::encode(hasher.finalize())))
}

/// A file-level delta between two releases (`ferry_manifests::delta`), as the check-in
/// offers it; Range is supported, so a device resumes it as it resumes an artifact.
#[utoipa::path(get, path = "/api/v1/deltas/{item}/{from}/{to}", tag = "artifacts", params(("item" = String, Path), ("from" = String, Path), ("to" = String, Path)), responses((status = 200, description = "the delta; Range supported", content_type = "application/octet-stream", body = Vec<u8>), (status = 206, description = "a range of it", content_type = "application/octet-stream", body = Vec<u8>), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn delta(
    State(state): State<Shared>,
    caller: OperatorOrDevice,
    Path((item, from, to)): Path<(String, String, String)>,
    req: Request,
) -> ApiResult<Response> {
    if !state
        .catalog()
        .await?
        .is_of(&item, caller.tenant.as_deref())
    {
        return Err(AppError::not_found(format!(
            "no delta of {item} from {from} to {to}"
        )));
    }
    let path = crate::deltas::file(&state.config.data_dir, &item, &from, &to)
        .filter(|p| p.exists())
        .ok_or_else(|| AppError::not_found(format!("no delta of {item} from {from} to {to}")))?;
    serve_file(&state, path, req).await
}

/// A file as a download: Range, If-Range and conditional requests (ServeFile), its body
/// paced under the egress caps.
pub async fn serve_file(state: &Shared, path: PathBuf, req: Request) -> ApiResult<Response> {
    match ServeFile::new(path).oneshot(req).await {
        Ok(resp) => Ok(resp
            .map(|body| state.egress.shape(Body::new(body)))
            .into_response()),
        Err(never) => match never {},
    }
}
