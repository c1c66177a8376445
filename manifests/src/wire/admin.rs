//! The operator API: operator and enrolment tokens, and the MQTT bridge's broker connections.

use serde::{Deserialize, Serialize};

/// `POST /api/v1/tokens`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenRequest {
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 128,
            pattern = "[^ \\t\\n\\u000b\\f\\r\\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]"
        )
    )]
    pub name: String,
    /// `operator` (default) or `enrol`.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, pattern = "^(operator|enrol)$"))]
    pub kind: Option<String>,
    /// Refused after this many days; absent: until revoked.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 3650))]
    pub expires_in_days: Option<u32>,
    /// Enrolment tokens only: how many enrolments it allows; absent: no limit.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1000000))]
    pub uses: Option<u32>,
    /// Enrolment tokens only: hosts enrolled with it are given nothing until an operator
    /// accepts them (`ferryctl hosts accept`).
    #[serde(default)]
    pub needs_acceptance: bool,
    /// Operator tokens only: the user it belongs to, by name; absent: the caller.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 64))]
    pub user: Option<String>,
}

/// `GET /api/v1/users`: a user (docs/users.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserView {
    pub id: String,
    pub name: String,
    /// `viewer`, `operator`, `publisher`, `approver` or `admin`.
    pub role: String,
    /// Limited to hosts with this tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    pub created_at: String,
    /// Live tokens it holds.
    pub tokens: u64,
    /// Whether they may sign in to the web UI with a password.
    #[serde(default)]
    pub password: bool,
    /// Whether they signed in through the OpenID Connect provider (their role follows its
    /// groups at each sign-in).
    #[serde(default)]
    pub single_sign_on: bool,
    /// Their tenant (`default` in a single-tenant install).
    #[serde(default)]
    pub tenant: String,
}

/// `GET /api/v1/tenants`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TenantView {
    pub id: String,
    pub name: String,
}

/// `POST /api/v1/tenants`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TenantRequest {
    #[cfg_attr(feature = "openapi", schema(pattern = "^[a-z0-9][a-z0-9._-]{0,63}$"))]
    pub name: String,
}

/// `POST /api/v1/users`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UserRequest {
    #[cfg_attr(feature = "openapi", schema(pattern = "^[a-z0-9][a-z0-9._-]{0,63}$"))]
    pub name: String,
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = "^(viewer|operator|publisher|approver|admin)$")
    )]
    pub role: String,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 64))]
    pub tag: Option<String>,
    /// A password for the web UI (12 characters or more), kept only as an argon2id hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(min_length = 12, max_length = 256))]
    pub password: Option<String>,
    /// Another tenant than the caller's (an admin of the default tenant only: how a tenant
    /// gets its first admin).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = "^[a-z0-9][a-z0-9._-]{0,63}$"))]
    pub tenant: Option<String>,
}

/// `PATCH /api/v1/users/{name}`: what is given changes (an empty tag clears it).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UserEdit {
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = "^(viewer|operator|publisher|approver|admin)$")
    )]
    pub role: Option<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_length = 64))]
    pub tag: Option<String>,
    /// A new password for the web UI (12 characters or more); the user's sessions end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(min_length = 12, max_length = 256))]
    pub password: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenView {
    pub id: String,
    pub kind: String,
    pub name: String,
    pub created_at: String,
    pub revoked_at: Option<String>,
    /// After this it is refused (enrolment tokens given `expires_in_days`).
    #[serde(default)]
    pub expires_at: Option<String>,
    /// Enrolments it still allows (`uses`); absent: no limit.
    #[serde(default)]
    pub uses_left: Option<u64>,
    /// Hosts enrolled with it wait for an operator's acceptance (`ferryctl hosts accept`).
    #[serde(default)]
    pub needs_acceptance: bool,
    /// An operator token's user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Only in the answer to its creation: the token itself, never stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// `GET /api/v1/mqtt`: one broker connection of the MQTT bridge and how it is doing.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MqttConnectionView {
    pub name: String,
    /// `mqtt://HOST:PORT` (no credentials).
    pub url: String,
    pub connected: bool,
    /// Another server instance on the shared database serves this connection; this one
    /// takes over if that one stops.
    #[serde(default)]
    pub standby: bool,
    /// The last connection or publishing error, if any since the last connect.
    pub last_error: Option<String>,
    /// Messages published since the server started.
    pub published: u64,
    pub topic_prefix: String,
    pub discovery: bool,
    pub discovery_prefix: String,
    /// `server.toml` (read at start; change it there) or `api` (stored, secrets sealed).
    #[serde(default)]
    pub source: String,
    /// The tenant whose hosts it publishes (its id); absent: every host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
}

/// `POST /api/v1/mqtt`: a broker connection to add; `PATCH /api/v1/mqtt/{name}` takes the
/// same fields, each optional (an empty `password`, `username` or `ca_pem` removes it).
/// Secrets are write-only: no answer ever carries them.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MqttConnectionRequest {
    #[serde(default)]
    pub name: Option<String>,
    /// `mqtt://HOST[:PORT]` or `mqtts://HOST[:PORT]`.
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// PEM of the CA to trust for mqtts (instead of the system's roots).
    #[serde(default)]
    pub ca_pem: Option<String>,
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub topic_prefix: Option<String>,
    #[serde(default)]
    pub discovery: Option<bool>,
    #[serde(default)]
    pub discovery_prefix: Option<String>,
}

/// `GET /api/v1/audit`: one change an operator asked for, refused or not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    /// Its place in the log (increasing).
    pub seq: i64,
    pub at: String,
    /// The user's id (absent for entries of a token that belonged to nobody).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The user's name.
    pub user: String,
    pub method: String,
    pub path: String,
    /// The answer's HTTP status: 2xx done, 403 refused, …
    pub status: u16,
    /// The address the request came from (the proxy's, behind one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Also sent back as the answer's `x-request-id`.
    pub request_id: String,
    /// Where it fits (an edit, a removal): the fields of the record that differed before
    /// the change (a removal: the whole record)…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub before: Option<serde_json::Value>,
    /// …and after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub after: Option<serde_json::Value>,
}

/// `POST /api/v1/webhooks`: an endpoint that receives events of the caller's tenant, signed
/// with `secret` (Standard Webhooks: `whsec_` and base64). The secret is write-only.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookRequest {
    /// `http(s)://HOST[:PORT]/PATH`.
    #[serde(default)]
    pub url: Option<String>,
    /// Event types (`install.finished`, `campaign.paused`, …) or `all`.
    #[serde(default)]
    pub events: Vec<String>,
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

/// `GET /api/v1/webhooks`: one endpoint (never its secret).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookView {
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    #[serde(default)]
    pub description: String,
    pub created_by: String,
    pub created_at: String,
}

/// `GET /api/v1/webhooks/deliveries`: one endpoint's delivery of one event.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookDeliveryView {
    /// The event's id, sent as `webhook-id`: the same on every attempt.
    pub event_id: String,
    /// Its type (`install.finished`, …).
    pub event: String,
    pub webhook_id: String,
    pub url: String,
    /// `pending` (tried again at `next_attempt_at`), `delivered` or `failed` (given up).
    pub state: String,
    pub attempts: u32,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt_at: Option<String>,
    /// The receiver's HTTP status at the last attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_status: Option<u16>,
    /// Why the last attempt failed (connection refused, timed out, HTTP 500).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<String>,
}

/// `POST /api/v1/ddi/tokens/{name}` and `POST /api/v1/ddi/gateway-token`: a DDI token, shown
/// to the operator to configure the device (`Authorization: TargetToken …` or
/// `GatewayToken …`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DdiTokenView {
    pub token: String,
    /// The host it belongs to (a target token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_id: Option<String>,
    /// Made now (the host too, for a target token), rather than shown again.
    #[serde(default)]
    pub created: bool,
}

/// `POST /api/v1/ddi/gateway-token`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DdiGatewayRequest {
    /// Replace the token: devices configured with the old one are refused from then on.
    #[serde(default)]
    pub rotate: bool,
}
