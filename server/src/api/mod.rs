//! The HTTP API. docs/protocol.md documents every route.

pub mod artifacts;
pub mod audit;
pub mod batches;
pub mod campaigns;
pub mod ddi;
pub mod device;
pub mod hosts;
pub mod items;
pub mod metrics;
pub mod mqtt;
pub mod packages;
pub mod releases;
pub mod request_id;
pub mod roots;
pub mod tenants;
pub mod tokens;
pub mod updates;
pub mod users;
pub mod webhooks;

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::Router;
use tower_http::trace::TraceLayer;

use crate::state::Shared;

/// `?status=` of the list endpoints.
#[derive(serde::Deserialize, utoipa::IntoParams)]
pub struct StatusQuery {
    pub status: Option<String>,
}

/// The OpenAPI document's frame; the paths come from the handlers' annotations as they are
/// routed (utoipa-axum), so the document cannot drift from the routes.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Ferry",
        description = "Ferry's HTTP API: devices enrol, check in and report; operators publish releases and run the fleet. See docs/protocol.md."
    ),
    components(schemas(ferry_manifests::wire::ApiError)),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Largest body of `POST /api/v1/releases` and `/api/v1/trust-roots`: the largest envelope
/// devices and ferryctl accept, so anything ferryctl builds can be published.
pub const ENVELOPE_BODY_LIMIT: usize = ferry_manifests::envelope::MAX_ENVELOPE_BYTES;
/// Largest body of `POST /api/v1/device/reports`.
pub const REPORTS_BODY_LIMIT: usize = 64 * 1024 * 1024;
/// An inventory upload: 50,000 packages of up to 2 × 256 characters each, with room.
pub const INVENTORY_BODY_LIMIT: usize = 32 * 1024 * 1024;

/// The API routes and their OpenAPI document.
pub fn routes() -> (Router<Shared>, utoipa::openapi::OpenApi) {
    use utoipa::OpenApi as _;
    use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
    use utoipa_axum::routes;
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(device::enrol))
        .routes(routes!(device::check_in))
        .routes(routes!(device::certificate))
        // A batch of reports carries hook output (up to 1 MiB kept per report).
        .routes(routes!(device::reports).layer(DefaultBodyLimit::max(REPORTS_BODY_LIMIT)))
        .routes(routes!(device::inventory).layer(DefaultBodyLimit::max(INVENTORY_BODY_LIMIT)))
        .routes(routes!(packages::search))
        .routes(routes!(packages::hosts))
        .routes(routes!(device::output))
        .routes(routes!(device::waiting))
        .routes(routes!(device::terminal))
        .routes(routes!(artifacts::download, artifacts::upload))
        .routes(routes!(artifacts::delta))
        .routes(
            routes!(releases::list_releases, releases::publish)
                .layer(DefaultBodyLimit::max(ENVELOPE_BODY_LIMIT)),
        )
        .routes(routes!(releases::manifest))
        .routes(routes!(releases::set_mirrors))
        .routes(routes!(releases::set_metered_allowed))
        .routes(routes!(releases::withdraw))
        .routes(routes!(tokens::list, tokens::create))
        .routes(routes!(tokens::revoke))
        .routes(routes!(users::list, users::add))
        .routes(routes!(tenants::list, tenants::add))
        .routes(routes!(users::edit, users::remove))
        .routes(routes!(audit::list))
        .routes(routes!(roots::publish).layer(DefaultBodyLimit::max(ENVELOPE_BODY_LIMIT)))
        .routes(routes!(roots::get))
        .routes(routes!(mqtt::list, mqtt::add))
        .routes(routes!(mqtt::edit, mqtt::remove))
        .routes(routes!(mqtt::test))
        .routes(routes!(webhooks::list, webhooks::add))
        .routes(routes!(webhooks::remove))
        .routes(routes!(webhooks::deliveries))
        .routes(routes!(ddi::target_token))
        .routes(routes!(ddi::gateway_token))
        .routes(routes!(items::list))
        .routes(routes!(items::edit))
        .routes(routes!(hosts::list_hosts))
        .routes(routes!(
            hosts::show_host,
            hosts::edit_host,
            hosts::remove_host
        ))
        .routes(routes!(hosts::accept_host))
        .routes(routes!(updates::trigger))
        .routes(routes!(hosts::check_now))
        .routes(routes!(batches::list, batches::create))
        .routes(routes!(batches::show))
        .routes(routes!(campaigns::list, campaigns::create))
        .routes(routes!(campaigns::show, campaigns::edit))
        .routes(routes!(campaigns::action))
        .routes(routes!(campaigns::approve))
        .routes(routes!(campaigns::accept))
        .routes(routes!(updates::history))
        .routes(routes!(updates::history_entry))
        .routes(routes!(updates::cancel))
        .routes(routes!(updates::output_stream))
        .routes(routes!(updates::terminal))
        .split_for_parts()
}

/// The API under `/api/v1`, with `pages` (the web UI) beside it on the same server.
pub fn router(state: Shared, pages: Router<Shared>) -> Router {
    let (api, doc) = routes();
    let doc = std::sync::Arc::new(doc);
    api.merge(pages)
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics::scrape))
        // hawkBit's DDI API, at the root as its clients expect (docs/ddi.md).
        .route("/{tenant}/controller/v1/{controller}", get(ddi::poll))
        .route(
            "/{tenant}/controller/v1/{controller}/configData",
            axum::routing::put(ddi::config_data),
        )
        .route(
            "/{tenant}/controller/v1/{controller}/deploymentBase/{action}",
            get(ddi::deployment_base),
        )
        .route(
            "/{tenant}/controller/v1/{controller}/deploymentBase/{action}/feedback",
            axum::routing::post(ddi::deployment_feedback),
        )
        .route(
            "/{tenant}/controller/v1/{controller}/cancelAction/{action}",
            get(ddi::cancel_action),
        )
        .route(
            "/{tenant}/controller/v1/{controller}/cancelAction/{action}/feedback",
            axum::routing::post(ddi::cancel_feedback),
        )
        // GET answers HEAD too (without the body).
        .route(
            "/{tenant}/controller/v1/{controller}/softwaremodules/{action}/artifacts/{filename}",
            get(ddi::download),
        )
        .route(
            "/api/v1/openapi.json",
            get(move || {
                let doc = std::sync::Arc::clone(&doc);
                async move { axum::Json((*doc).clone()) }
            }),
        )
        .fallback(crate::error::not_found)
        .method_not_allowed_fallback(|| async {
            crate::error::AppError::Client {
                status: axum::http::StatusCode::METHOD_NOT_ALLOWED,
                code: "method_not_allowed",
                message: "this endpoint does not take that method".into(),
            }
        })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            audit::record,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::observe,
        ))
        .layer(axum::middleware::from_fn(request_id::assign))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

#[cfg(test)]
mod tests;

/// Readiness, for a load balancer: 200 when the database answers within 2 s, else 503 with
/// why. `/healthz` (liveness) only says the process serves requests.
async fn readyz(
    axum::extract::State(state): axum::extract::State<Shared>,
) -> (axum::http::StatusCode, axum::Json<serde_json::Value>) {
    use axum::http::StatusCode;
    let database =
        match tokio::time::timeout(std::time::Duration::from_secs(2), state.store.ping()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("no answer within 2 s".to_string()),
        };
    let free = fs2::available_space(&state.config.data_dir).ok();
    let body = serde_json::json!({
        "ready": database.is_ok(),
        "database": database.as_ref().map_or_else(|e| format!("unavailable: {e}"), |()| "ok".into()),
        "data_dir_free_bytes": free,
    });
    let status = if database.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body))
}
