//! One error type for every handler: client errors carry their status, a code and a message;
//! internal errors are logged once here and answered with a generic 500.

use std::path::{Path, PathBuf};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ferry_manifests::wire::ApiError;

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{message}")]
    Client {
        status: StatusCode,
        code: &'static str,
        message: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A file of the server's own (an artifact) could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A row the server just wrote or looked up is gone (deleted by another request).
    #[error("{0} vanished while it was being used")]
    Vanished(&'static str),
    #[error("cannot draw random bytes for a token: {0}")]
    Random(#[source] getrandom::Error),
    #[error("the stored trust root is invalid: {0}")]
    StoredRoot(#[source] ferry_manifests::root::RootError),
    #[error("stored version {text:?} is not a semantic version: {source}")]
    StoredVersion {
        text: String,
        #[source]
        source: semver::Error,
    },
    #[error("a blocking task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("{0}")]
    Secrets(String),
    /// The object storage of `artifact_store` failed (503).
    #[error(transparent)]
    Objects(#[from] crate::artifact_store::StoreError),
    /// A budget ran out (429, with `Retry-After`).
    #[error("{message}")]
    Busy {
        retry_after: std::time::Duration,
        message: String,
    },
}

impl AppError {
    /// Maps an I/O error on one of the server's files, naming what it was doing and where.
    pub fn io<'a>(
        action: &'static str,
        path: &'a Path,
    ) -> impl FnOnce(std::io::Error) -> AppError + 'a {
        move |source| AppError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
    pub fn bad_request(message: impl std::fmt::Display) -> AppError {
        AppError::Client {
            status: StatusCode::BAD_REQUEST,
            code: "bad_request",
            message: message.to_string(),
        }
    }
    pub fn not_found(message: impl std::fmt::Display) -> AppError {
        AppError::Client {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            message: message.to_string(),
        }
    }
    pub fn conflict(message: impl std::fmt::Display) -> AppError {
        AppError::Client {
            status: StatusCode::CONFLICT,
            code: "conflict",
            message: message.to_string(),
        }
    }
    pub fn unauthorized(message: impl std::fmt::Display) -> AppError {
        AppError::Client {
            status: StatusCode::UNAUTHORIZED,
            code: "unauthorized",
            message: message.to_string(),
        }
    }
}

impl AppError {
    /// The HTTP status it answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::Client { status, .. } => *status,
            AppError::Busy { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::Objects(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Store(e) if e.unavailable() => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Store(e) if e.disk_full() => StatusCode::INSUFFICIENT_STORAGE,
            AppError::Io { source, .. } if source.kind() == std::io::ErrorKind::StorageFull => {
                StatusCode::INSUFFICIENT_STORAGE
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// What a person is told: the refusal, or (for a server fault, logged here) where to look.
    pub fn message(&self) -> String {
        match self {
            AppError::Client { message, .. } | AppError::Busy { message, .. } => message.clone(),
            AppError::Objects(e) => {
                tracing::warn!("{e}");
                format!("the artifact store is unavailable ({e}); try again shortly")
            }
            AppError::Store(e) if e.unavailable() => {
                tracing::warn!("database unavailable: {e}");
                format!("the server's database is unavailable ({e}); try again shortly")
            }
            AppError::Store(e) if e.disk_full() => {
                tracing::error!("database disk full: {e}");
                "the server's disk is full (its database cannot write): free space where the database lives (the data directory for SQLite)".to_string()
            }
            AppError::Io {
                source,
                action,
                path,
            } if source.kind() == std::io::ErrorKind::StorageFull => {
                tracing::error!("disk full: {action} {}: {source}", path.display());
                format!(
                    "the server's disk is full: cannot {action} {}; free space there",
                    path.display()
                )
            }
            other => {
                tracing::error!("internal error: {other}");
                "internal server error; see the server log".to_string()
            }
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = self.message();
        let code = match &self {
            AppError::Client { code, .. } => code,
            AppError::Busy { .. } => "too_many_requests",
            _ if status == StatusCode::SERVICE_UNAVAILABLE => "unavailable",
            _ if status == StatusCode::INSUFFICIENT_STORAGE => "disk_full",
            _ => "internal",
        };
        let mut response = (
            status,
            Json(ApiError {
                code: code.to_string(),
                message,
                // Added on the way out, with the request's id (`api::request_id`).
                request_id: None,
            }),
        )
            .into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, 5u64.into());
        }
        if let AppError::Busy { retry_after, .. } = &self {
            let secs = retry_after.as_secs_f64().ceil().max(1.0) as u64;
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}

pub type ApiResult<T> = Result<T, AppError>;

/// Whether a request asks for a page (a browser) rather than the API: unknown paths outside
/// `/api/` get an HTML answer.
pub fn wants_html(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"))
}

/// The answer to a path that names nothing: a page for a browser outside `/api/`, else the
/// API's JSON error.
pub async fn not_found(req: axum::extract::Request) -> axum::response::Response {
    if !req.uri().path().starts_with("/api/") && wants_html(req.headers()) {
        return (
            StatusCode::NOT_FOUND,
            axum::response::Html(
                "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Not found · Ferry</title>\
                 <link rel=\"stylesheet\" href=\"/ui/ui.css\"></head><body><main><h1>Not found</h1>\
                 <p>There is no such page. <a href=\"/\">Back to the dashboard</a></p></main></body></html>",
            ),
        )
            .into_response();
    }
    AppError::not_found("no such endpoint; see docs/protocol.md").into_response()
}

/// The client errors every endpoint may answer, for the OpenAPI document (one definition
/// instead of a copy per handler).
#[allow(dead_code)] // only its derived OpenAPI description is used
#[derive(utoipa::IntoResponses)]
pub enum ClientErrors {
    #[response(status = 400, description = "bad request")]
    BadRequest(ApiError),
    #[response(status = 401, description = "missing or unknown token")]
    Unauthorized(ApiError),
    #[response(
        status = 403,
        description = "the caller's role, tag or tenant does not allow it (the message says what it needs)"
    )]
    Forbidden(ApiError),
    #[response(status = 404, description = "not found")]
    NotFound(ApiError),
    #[response(status = 409, description = "conflict")]
    Conflict(ApiError),
    #[response(
        status = 429,
        description = "the caller's request budget ran out; retry after `Retry-After` seconds"
    )]
    TooManyRequests(ApiError),
    #[response(
        status = 413,
        description = "the body is larger than this endpoint accepts"
    )]
    TooLarge(ApiError),
    #[response(
        status = 415,
        description = "the body is not JSON (Content-Type: application/json)"
    )]
    UnsupportedMediaType(ApiError),
    #[response(
        status = 422,
        description = "the JSON does not fit the request's schema"
    )]
    Unprocessable(ApiError),
}

/// `axum::Json`, `Path` and `Query`, with their rejections answered like every other client
/// error: a JSON body with a code and a message, and the rejection's own status.
pub mod extract {
    use axum::extract::rejection::{PathRejection, QueryRejection};
    // (Bytes' rejection is `BytesRejection`, handled inline.)
    use axum::extract::{FromRequest, FromRequestParts, Request};
    use axum::http::request::Parts;

    use super::AppError;

    fn rejected(status: axum::http::StatusCode, message: String) -> AppError {
        AppError::Client {
            status,
            code: if status == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                "too_large"
            } else {
                "bad_request"
            },
            message,
        }
    }

    pub struct Json<T>(pub T);

    /// Rewrites every number written with a fraction of zero (`15.0`) as that integer; says
    /// whether it changed any.
    pub(crate) fn whole_numbers_as_integers(v: &mut serde_json::Value) -> bool {
        use serde_json::Value;
        match v {
            Value::Number(n) if !n.is_i64() && !n.is_u64() => {
                let whole = n.as_f64().filter(|f| f.fract() == 0.0);
                let as_int = whole.and_then(|f| {
                    if f >= 0.0 && f < u64::MAX as f64 {
                        Some(serde_json::Number::from(f as u64))
                    } else if f < 0.0 && f >= i64::MIN as f64 {
                        Some(serde_json::Number::from(f as i64))
                    } else {
                        None
                    }
                });
                match as_int {
                    Some(i) => {
                        *n = i;
                        true
                    }
                    None => false,
                }
            }
            Value::Array(items) => items
                .iter_mut()
                .fold(false, |changed, x| whole_numbers_as_integers(x) | changed),
            Value::Object(fields) => fields
                .values_mut()
                .fold(false, |changed, x| whole_numbers_as_integers(x) | changed),
            _ => false,
        }
    }

    impl<S, T> FromRequest<S> for Json<T>
    where
        T: serde::de::DeserializeOwned,
        S: Send + Sync,
    {
        type Rejection = AppError;
        async fn from_request(req: Request, state: &S) -> Result<Self, AppError> {
            if !is_json(req.headers()) {
                return Err(rejected(
                    axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "Expected request with `Content-Type: application/json`".into(),
                ));
            }
            let body = match axum::body::Bytes::from_request(req, state).await {
                Ok(b) => b,
                Err(r) => return Err(rejected(r.status(), r.body_text())),
            };
            // Every request body is a JSON object; serde would also read a struct from an
            // array, which the API document does not allow. Read straight into the type (no
            // intermediate JSON tree: this is every check-in's path).
            let first = body.iter().find(|b| !b.is_ascii_whitespace());
            if first != Some(&b'{')
                && serde_json::from_slice::<serde::de::IgnoredAny>(&body).is_ok()
            {
                return Err(rejected(
                    axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                    "the body must be a JSON object".into(),
                ));
            }
            // Plain serde_json first: axum's reader tracks the path of every field it reads,
            // which only an error needs (a check-in paid for it every time). On an error it
            // reads again, for the message that names the field.
            match serde_json::from_slice::<T>(&body) {
                Ok(v) => Ok(Json(v)),
                Err(_) => {
                    // JSON Schema's `integer` allows `15.0`; serde's integers do not.
                    if let Ok(mut tree) = serde_json::from_slice::<serde_json::Value>(&body) {
                        if whole_numbers_as_integers(&mut tree) {
                            if let Ok(v) = serde_json::from_value::<T>(tree) {
                                return Ok(Json(v));
                            }
                        }
                    }
                    axum::Json::<T>::from_bytes(&body)
                        .map(|axum::Json(v)| Json(v))
                        .map_err(|r| rejected(r.status(), r.body_text()))
                }
            }
        }
    }

    /// Whether the request says its body is JSON (`application/json` or `…+json`).
    fn is_json(headers: &axum::http::HeaderMap) -> bool {
        let Some(value) = headers
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
        else {
            return false;
        };
        let essence = value.split(';').next().unwrap_or("").trim();
        let Some((kind, sub)) = essence.split_once('/') else {
            return false;
        };
        kind.eq_ignore_ascii_case("application")
            && (sub.eq_ignore_ascii_case("json")
                || sub.len() > 5 && sub[sub.len() - 5..].eq_ignore_ascii_case("+json"))
    }

    /// The raw body, with a too-large or broken body answered like every other client error.
    pub struct Bytes(pub axum::body::Bytes);

    impl<S> FromRequest<S> for Bytes
    where
        S: Send + Sync,
    {
        type Rejection = AppError;
        async fn from_request(req: Request, state: &S) -> Result<Self, AppError> {
            match axum::body::Bytes::from_request(req, state).await {
                Ok(b) => Ok(Bytes(b)),
                Err(r) => Err(rejected(
                    r.status(),
                    if r.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                        "the body is larger than this endpoint accepts (docs/protocol.md lists the limits)".into()
                    } else {
                        r.body_text()
                    },
                )),
            }
        }
    }

    pub struct Path<T>(pub T);

    impl<S, T> FromRequestParts<S> for Path<T>
    where
        axum::extract::Path<T>: FromRequestParts<S, Rejection = PathRejection>,
        S: Send + Sync,
    {
        type Rejection = AppError;
        async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
            match axum::extract::Path::<T>::from_request_parts(parts, state).await {
                Ok(axum::extract::Path(v)) => Ok(Path(v)),
                Err(r) => Err(rejected(r.status(), r.body_text())),
            }
        }
    }

    pub struct Query<T>(pub T);

    impl<S, T> FromRequestParts<S> for Query<T>
    where
        axum::extract::Query<T>: FromRequestParts<S, Rejection = QueryRejection>,
        S: Send + Sync,
    {
        type Rejection = AppError;
        async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
            match axum::extract::Query::<T>::from_request_parts(parts, state).await {
                Ok(axum::extract::Query(v)) => Ok(Query(v)),
                Err(r) => Err(rejected(r.status(), r.body_text())),
            }
        }
    }
}
