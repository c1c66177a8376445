//! Tokens. Operators and enrolling devices present bearer tokens; each device gets its own
//! credential at enrolment. Only sha256 hashes of tokens are stored: tokens are 256 random
//! bits, so a fast hash is enough to make a leaked database useless for logging in.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use anyhow::Context as _;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};

use crate::error::AppError;
use crate::store::Store;
use crate::Shared;

pub fn hash_token(token: &str) -> String {
    hex::encode(token_digest(token))
}

/// The digest [`hash_token`] writes in hex (the in-memory credential cache keys by it).
pub fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.trim().as_bytes()).into()
}

/// A new random token with a readable prefix (`fop_` operator, `fen_` enrolment, `fdv_`
/// device) so a leaked token is easy to recognise.
pub fn new_token(prefix: &str) -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(format!("{prefix}_{}", hex::encode(bytes)))
}

/// On first start, creates an operator token and a fleet enrolment token and writes them to
/// `DATA_DIR/operator.token` and `DATA_DIR/enrol.token` (mode 0600).
pub async fn bootstrap_tokens(store: &Store, data_dir: &Path) -> anyhow::Result<()> {
    for (kind, prefix, file) in [
        ("operator", "fop", "operator.token"),
        ("enrol", "fen", "enrol.token"),
    ] {
        if store.has_token(kind).await? {
            continue;
        }
        let token = new_token(prefix)?;
        let path = data_dir.join(file);
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        writeln!(f, "{token}").with_context(|| format!("cannot write {}", path.display()))?;
        f.sync_all()?;
        store
            .add_token(kind, "initial", &hash_token(&token))
            .await?;
        tracing::info!(path = %path.display(), "created the first {kind} token");
    }
    Ok(())
}

fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// An authenticated operator.
pub struct Operator;

/// An authenticated device, by host id.
pub struct Device(pub String);

/// Either an operator or a device (for reading manifests and artifacts).
pub struct Caller;

impl FromRequestParts<Shared> for Operator {
    type Rejection = AppError;
    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, AppError> {
        // The web UI's session may read (its live output follows the SSE stream, which a
        // browser cannot send a bearer token to); every change goes through the UI's forms
        // and their CSRF check, or a bearer token.
        if bearer(parts).is_none()
            && parts.method == axum::http::Method::GET
            && crate::ui::session::signed(parts, state).await.is_some()
        {
            return Ok(Operator);
        }
        let token = bearer(parts).ok_or_else(|| {
            AppError::unauthorized("missing operator token (Authorization: Bearer ...)")
        })?;
        if state
            .store
            .token_valid("operator", &hash_token(token))
            .await?
        {
            Ok(Operator)
        } else {
            Err(AppError::unauthorized(
                "operator token is unknown or revoked",
            ))
        }
    }
}

impl FromRequestParts<Shared> for Device {
    type Rejection = AppError;
    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, AppError> {
        let token = bearer(parts).ok_or_else(|| {
            AppError::unauthorized("missing device credential (Authorization: Bearer ...)")
        })?;
        let digest = token_digest(token);
        if let Some(id) = state.cache.device(&digest) {
            return Ok(Device(id));
        }
        match state.store.host_by_token(&hex::encode(digest)).await? {
            Some(id) => {
                state.cache.remember_device(digest, &id);
                Ok(Device(id))
            }
            None => Err(AppError::unauthorized(
                "device credential is unknown (host removed?); delete the agent's device.json to enrol again",
            )),
        }
    }
}

impl FromRequestParts<Shared> for Caller {
    type Rejection = AppError;
    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, AppError> {
        let token = bearer(parts)
            .ok_or_else(|| AppError::unauthorized("missing token (Authorization: Bearer ...)"))?;
        let hash = hash_token(token);
        if state.store.host_by_token(&hash).await?.is_some()
            || state.store.token_valid("operator", &hash).await?
        {
            Ok(Caller)
        } else {
            Err(AppError::unauthorized("token is unknown or revoked"))
        }
    }
}
