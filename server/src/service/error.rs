//! What the service layer refuses or fails with, in its own words. The API maps it to HTTP in
//! one place (`From<ServiceError> for AppError`, below); the MQTT bridge and the web UI show
//! its message.

use crate::error::AppError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The request asks for something that cannot be (400).
    #[error("{0}")]
    Invalid(String),
    /// What it names does not exist (404).
    #[error("{0}")]
    NotFound(String),
    /// It conflicts with the fleet as it is (409): an update pending, an item deactivated.
    #[error("{0}")]
    Conflict(String),
    /// The user may not do this (403): it reaches beyond the hosts they are limited to.
    #[error("{0}")]
    Forbidden(String),
    /// The credential it came with does not allow it (401).
    #[error("{0}")]
    Unauthorized(String),
    /// A budget ran out (429): retry after this long.
    #[error("{message}")]
    Busy {
        retry_after: std::time::Duration,
        message: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A row the service just wrote or looked up is gone (deleted by another request).
    #[error("{0} vanished while it was being used")]
    Vanished(&'static str),
    /// A file of the server's own (an artifact) could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot draw random bytes for a token: {0}")]
    Random(#[source] getrandom::Error),
    /// Sealing or opening a stored secret failed.
    #[error("{0}")]
    Secrets(String),
    /// Hashing a password failed (not for the password's sake: that is `Invalid`).
    #[error("{0}")]
    Password(String),
    #[error("stored version {text:?} is not a semantic version: {source}")]
    StoredVersion {
        text: String,
        #[source]
        source: semver::Error,
    },
    /// The object storage of `artifact_store` failed.
    #[error(transparent)]
    Objects(#[from] crate::artifact_store::StoreError),
}

pub type ServiceResult<T> = Result<T, ServiceError>;

impl ServiceError {
    pub fn invalid(message: impl std::fmt::Display) -> ServiceError {
        ServiceError::Invalid(message.to_string())
    }
    pub fn not_found(message: impl std::fmt::Display) -> ServiceError {
        ServiceError::NotFound(message.to_string())
    }
    pub fn conflict(message: impl std::fmt::Display) -> ServiceError {
        ServiceError::Conflict(message.to_string())
    }
}

impl From<ServiceError> for AppError {
    fn from(e: ServiceError) -> AppError {
        match e {
            ServiceError::Invalid(m) => AppError::bad_request(m),
            ServiceError::NotFound(m) => AppError::not_found(m),
            ServiceError::Conflict(m) => AppError::conflict(m),
            ServiceError::Unauthorized(m) => AppError::unauthorized(m),
            ServiceError::Forbidden(m) => AppError::Client {
                status: axum::http::StatusCode::FORBIDDEN,
                code: "forbidden",
                message: m,
            },
            ServiceError::Busy {
                retry_after,
                message,
            } => AppError::Busy {
                retry_after,
                message,
            },
            ServiceError::Store(e) => AppError::Store(e),
            ServiceError::Vanished(what) => AppError::Vanished(what),
            ServiceError::Io {
                action,
                path,
                source,
            } => AppError::Io {
                action,
                path,
                source,
            },
            ServiceError::Random(e) => AppError::Random(e),
            ServiceError::Secrets(e) | ServiceError::Password(e) => AppError::Secrets(e),
            ServiceError::StoredVersion { text, source } => {
                AppError::StoredVersion { text, source }
            }
            ServiceError::Objects(e) => AppError::Objects(e),
        }
    }
}
