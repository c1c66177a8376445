//! The HTTP API. docs/protocol.md documents every route.

pub mod artifacts;
pub mod batches;
pub mod campaigns;
pub mod device;
pub mod items;
pub mod operator;
pub mod roots;
pub mod tokens;

use axum::routing::{get, post};
use axum::Router;
use tower_http::trace::TraceLayer;

use crate::Shared;

/// `?status=` of the list endpoints.
#[derive(serde::Deserialize)]
pub struct StatusQuery {
    pub status: Option<String>,
}

pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/api/v1/enrol", post(device::enrol))
        .route("/api/v1/device/checkin", post(device::check_in))
        .route("/api/v1/device/reports", post(device::reports))
        .route("/api/v1/device/output", post(device::output))
        .route(
            "/api/v1/artifacts/{name}",
            get(artifacts::download).put(artifacts::upload),
        )
        .route(
            "/api/v1/releases",
            get(operator::list_releases).post(operator::publish),
        )
        .route(
            "/api/v1/releases/{item}/{version}/manifest",
            get(operator::manifest),
        )
        .route("/api/v1/tokens", get(tokens::list).post(tokens::create))
        .route("/api/v1/tokens/{id}", axum::routing::delete(tokens::revoke))
        .route("/api/v1/trust-roots", post(roots::publish))
        .route("/api/v1/trust-roots/{version}", get(roots::get))
        .route("/api/v1/items", get(items::list))
        .route("/api/v1/items/{name}", axum::routing::patch(items::edit))
        .route("/api/v1/hosts", get(operator::list_hosts))
        .route(
            "/api/v1/hosts/{host}",
            axum::routing::patch(operator::edit_host).delete(operator::remove_host),
        )
        .route("/api/v1/updates", post(operator::trigger))
        .route("/api/v1/check", post(operator::check_now))
        .route(
            "/api/v1/update-batches",
            get(batches::list).post(batches::create),
        )
        .route("/api/v1/update-batches/{id}", get(batches::show))
        .route(
            "/api/v1/campaigns",
            get(campaigns::list).post(campaigns::create),
        )
        .route("/api/v1/campaigns/{id}", get(campaigns::show))
        .route("/api/v1/campaigns/{id}/{action}", post(campaigns::action))
        .route(
            "/api/v1/device/campaigns/{id}/accept",
            post(campaigns::accept),
        )
        .route("/api/v1/update-history", get(operator::history))
        .route("/api/v1/update-history/{id}", get(operator::history_entry))
        .route(
            "/api/v1/update-history/{id}/output/stream",
            get(operator::output_stream),
        )
        .fallback(|| async {
            crate::error::AppError::not_found("no such endpoint; see docs/protocol.md")
        })
        .method_not_allowed_fallback(|| async {
            crate::error::AppError::Client {
                status: axum::http::StatusCode::METHOD_NOT_ALLOWED,
                code: "method_not_allowed",
                message: "this endpoint does not take that method".into(),
            }
        })
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
