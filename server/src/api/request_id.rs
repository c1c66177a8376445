//! A request id for every request: made here (or taken from a trusted `x-request-id` the
//! caller sent), carried by every log line of the request (a `request` span), answered in the
//! `x-request-id` header, written into error answers (`request_id` beside `code` and
//! `message`) and into the audit entry of a change (docs/operations.md, "Logs").

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

/// The request's id, in its extensions.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Error answers are small; one larger than this is passed on as it is.
const MAX_ERROR_BODY: usize = 64 * 1024;

pub async fn assign(mut req: Request, next: Next) -> Response {
    let id = uuid::Uuid::new_v4().simple().to_string();
    req.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!("request", id = %id);
    let mut resp = next.run(req).instrument(span).await;
    if resp.status().is_client_error() || resp.status().is_server_error() {
        resp = with_id_in_body(resp, &id).await;
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().entry("x-request-id").or_insert(v);
    }
    resp
}

/// A JSON error answer (`{"code", "message"}`) gains `"request_id"`.
async fn with_id_in_body(resp: Response, id: &str) -> Response {
    let json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_ERROR_BODY).await else {
        return Response::from_parts(parts, Body::empty());
    };
    let body = match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(serde_json::Value::Object(mut map)) if map.contains_key("code") => {
            map.insert("request_id".into(), id.into());
            let text = serde_json::Value::Object(map).to_string();
            parts.headers.remove(header::CONTENT_LENGTH);
            Body::from(text)
        }
        _ => Body::from(bytes),
    };
    Response::from_parts(parts, body)
}
