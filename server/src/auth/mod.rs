//! Who is asking: the one owner of authentication. Operators present bearer tokens (or, in the
//! web UI, a session cookie); a device presents the credential it got at enrolment. Token
//! kinds, hashing and the first tokens are in [`tokens`]; web sessions, their cookie and the
//! CSRF check of every form in [`session`].
//!
//! The extractors here are the only way to get an [`Operator`] or a [`Device`]: a handler that
//! takes one is reached only by a caller who proved it. They read what they need through
//! [`AuthContext`], which the server's state implements, so this module does not depend on it.

pub mod oidc;
pub mod passwords;
pub mod session;
pub mod tokens;

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::budget::Budgets;
use crate::cache::Cache;
use crate::error::AppError;
use crate::policy::scope::{Addressed, Scope};
use crate::store::{LiveOperator, Store};

pub use session::{CsrfForm, Sessions, SignedIn};
pub use tokens::{bootstrap_tokens, hash_token, new_token, token_digest, TokenKind};

/// What authentication reads: the store (tokens, hosts' credentials), the web sessions and
/// the cache of device credentials.
pub trait AuthContext: Send + Sync + 'static {
    fn store(&self) -> &Store;
    fn sessions(&self) -> &Sessions;
    fn cache(&self) -> &Cache;
    fn budgets(&self) -> &Budgets;
    /// Device identity: how devices may prove themselves, the CAs.
    fn identity(&self) -> &crate::identity::Identity;
    /// Whether what a request addresses is within the reach of a user limited to hosts
    /// with a tag (`policy::scope`).
    fn within_scope(
        self: &Arc<Self>,
        scope: &Scope,
        what: &Addressed,
    ) -> impl std::future::Future<Output = Result<bool, AppError>> + Send;
}

/// Refuses a request that reaches beyond the hosts its user is limited to: what its route
/// addresses out of reach is answered as not found (nothing of other hosts shows), and
/// something of the whole fleet as forbidden, in words. Lists and request bodies are the
/// service layer's to filter and check.
async fn check_scope<S: AuthContext>(
    parts: &mut Parts,
    state: &Arc<S>,
    user: &LiveOperator,
) -> Result<Scope, AppError> {
    let scope = scope_of(state.as_ref(), user).await?;
    if scope.is_all() {
        return Ok(scope);
    }
    let params: Vec<(String, String)> =
        match axum::extract::RawPathParams::from_request_parts(parts, &()).await {
            Ok(p) => p
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            Err(_) => Vec::new(),
        };
    let what = crate::policy::scope::addressed(parts.method.as_str(), &route_of(parts), &params);
    let forbidden = |message: String| AppError::Client {
        status: axum::http::StatusCode::FORBIDDEN,
        code: "forbidden",
        message,
    };
    match what {
        Addressed::Nothing => Ok(scope),
        // A tenant's own items and hosts are its own to change: what reaches every host of
        // it is refused only to a user limited to a tag.
        Addressed::FleetWide if scope.tag().is_some() => {
            Err(forbidden(scope.refusal(&user.user_name, "this")))
        }
        Addressed::FleetWide => Ok(scope),
        other => {
            if state.within_scope(&scope, &other).await? {
                Ok(scope)
            } else {
                Err(AppError::not_found(match other {
                    Addressed::Host(h) => format!("no host with id or hostname {h:?}"),
                    Addressed::Update(u) => format!("no update {u}"),
                    Addressed::Campaign(c) => format!("no campaign {c}"),
                    Addressed::Batch(b) => format!("no batch {b}"),
                    _ => "not found".to_string(),
                }))
            }
        }
    }
}

/// A user's reach: their tenant's hosts when the install has several tenants, and of those
/// the ones with their tag.
pub async fn scope_of<S: AuthContext>(state: &S, user: &LiveOperator) -> Result<Scope, AppError> {
    let tenants = state.store().tenants().await?;
    if tenants.len() <= 1 {
        return Ok(Scope::of(None, user.tag.as_deref()));
    }
    Ok(Scope::of(Some(&user.tenant_id), user.tag.as_deref()))
}

/// Spends one request of the device's budget.
fn within_budget<S: AuthContext>(state: &S, host_id: String) -> Result<Device, AppError> {
    match state.budgets().device_request(&host_id) {
        Ok(()) => Ok(Device(host_id)),
        Err(refused) => {
            if refused.first {
                tracing::warn!(host = %host_id, "device over its request budget; refusing with 429 until it slows down (logged at most once a minute)");
            }
            Err(AppError::Busy {
                retry_after: refused.retry_after,
                message: format!(
                    "this device made more requests than its budget allows; retry in {} ms",
                    refused.retry_after.as_millis()
                ),
            })
        }
    }
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

/// An authenticated operator: a user, by a live token of theirs, whose role allows the
/// route asked for. Only authentication makes one: a valid operator token, or (for `GET`) a
/// signed-in web session.
pub struct Operator {
    /// How it proved itself.
    proof: Proof,
    /// The user, and the token's name.
    user: LiveOperator,
    /// The hosts the user reaches.
    scope: Scope,
}

/// What an operator proved itself with.
enum Proof {
    /// A bearer token, by hash.
    Token(String),
    /// A web session (a `GET`: the UI's live output), by id, and who it signed in as.
    Session(String, session::Principal),
}

impl Operator {
    fn proven(proof: Proof, user: LiveOperator, scope: Scope) -> Operator {
        Operator { proof, user, scope }
    }

    /// Who this is in the history: the user.
    pub fn actor(&self) -> Actor {
        Actor::User(self.user.user_name.clone())
    }

    /// Who it is, for what it holds (a terminal's input): its token's hash, or its web
    /// session's token or user.
    pub fn owner(&self) -> String {
        match &self.proof {
            Proof::Token(hash) => hash.clone(),
            Proof::Session(_, principal) => session::owner(principal),
        }
    }

    /// The user's id.
    pub fn user_id(&self) -> &str {
        &self.user.user_id
    }

    /// The user's name.
    pub fn user_name(&self) -> &str {
        &self.user.user_name
    }

    /// The user as authenticated (role, tag, tenant).
    pub fn user(&self) -> &LiveOperator {
        &self.user
    }

    /// The hosts the user may see and act on.
    pub fn scope(&self) -> Scope {
        self.scope.clone()
    }

    /// Whether the token or session this operator proved itself with is still live (and
    /// its user still there, with the same role for a user's session). What lasts (a live
    /// output stream) asks again every second, so a revoked token or a removed user ends it
    /// at once.
    pub async fn still_valid<S: AuthContext>(&self, ctx: &S) -> bool {
        match &self.proof {
            Proof::Token(hash) => matches!(ctx.store().live_operator(hash).await, Ok(Some(_))),
            Proof::Session(id, _) => session::live(ctx, id).await.is_some(),
        }
    }
}

/// Whether `user` may call `method` on `route` (as routed): the role table
/// ([`crate::policy::roles::need`]); a route missing from it is refused to everyone.
pub fn permit(method: &str, route: &str, user: &LiveOperator) -> Result<(), AppError> {
    use crate::policy::roles::{need, Role};
    let role: Role = user.role.parse().map_err(|e: String| AppError::Client {
        status: axum::http::StatusCode::FORBIDDEN,
        code: "forbidden",
        message: format!(
            "user {} has a role this server does not know ({e})",
            user.user_name
        ),
    })?;
    match need(method, route) {
        Some(n) if role.allows(n) => Ok(()),
        Some(n) => Err(AppError::Client {
            status: axum::http::StatusCode::FORBIDDEN,
            code: "forbidden",
            message: format!(
                "{method} {route} needs {}; user {} is a {role}",
                n.roles(),
                user.user_name
            ),
        }),
        None => Err(AppError::Client {
            status: axum::http::StatusCode::FORBIDDEN,
            code: "forbidden",
            message: format!("{method} {route} is not an operator's"),
        }),
    }
}

/// The user behind a request's operator token or web session, if any (no role check): who
/// the audit log names.
pub async fn operator_of<S: AuthContext>(
    headers: &axum::http::HeaderMap,
    ctx: &S,
) -> Option<LiveOperator> {
    let hash = match headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
    {
        Some(token) => hash_token(token),
        None => {
            let id = session::session_id(headers)?;
            return session::live(ctx, &id).await.map(|(_, _, user)| user);
        }
    };
    ctx.store().live_operator(&hash).await.ok().flatten()
}

/// The route a request was routed to (`/api/v1/hosts/{host}`), else its path.
fn route_of(parts: &Parts) -> String {
    parts
        .extensions
        .get::<axum::extract::MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| parts.uri.path().to_string())
}

/// An authenticated device, by host id.
pub struct Device(pub String);

/// An operator or a device (reading manifests, artifacts and trust roots), with the tenant it
/// belongs to (`None`: none recorded, the default tenant's).
pub struct OperatorOrDevice {
    pub tenant: Option<String>,
    /// The host, when a device asked.
    pub host: Option<String>,
}

impl OperatorOrDevice {
    pub fn is_device(&self) -> bool {
        self.host.is_some()
    }
}

impl<S: AuthContext> FromRequestParts<Arc<S>> for Operator {
    type Rejection = AppError;
    async fn from_request_parts(parts: &mut Parts, state: &Arc<S>) -> Result<Self, AppError> {
        // The web UI's session may read (its live output follows the SSE stream, which a
        // browser cannot send a bearer token to); every change goes through the UI's forms
        // and their CSRF check, or a bearer token.
        if bearer(parts).is_none() && parts.method == axum::http::Method::GET {
            if let Some(who) = session::signed_in(parts, state.as_ref()).await {
                permit(parts.method.as_str(), &route_of(parts), &who.user)?;
                let scope = check_scope(parts, state, &who.user).await?;
                return Ok(Operator::proven(
                    Proof::Session(who.session, who.principal),
                    who.user,
                    scope,
                ));
            }
        }
        let token = bearer(parts).ok_or_else(|| {
            AppError::unauthorized("missing operator token (Authorization: Bearer ...)")
        })?;
        let hash = hash_token(token);
        match state.store().live_operator(&hash).await? {
            Some(user) => {
                permit(parts.method.as_str(), &route_of(parts), &user)?;
                let scope = check_scope(parts, state, &user).await?;
                Ok(Operator::proven(Proof::Token(hash), user, scope))
            }
            None => Err(AppError::unauthorized(
                "operator token is unknown or revoked (or its user was removed)",
            )),
        }
    }
}

/// The client certificate a request presented (from the TLS handshake or a trusted
/// proxy), or the refusal of a proxy header from anyone else.
fn presented<S: AuthContext>(
    parts: &Parts,
    state: &S,
) -> Result<Option<crate::identity::Presented>, AppError> {
    state.identity().presented(parts).map_err(|message| {
        tracing::warn!("{message}");
        AppError::Client {
            status: axum::http::StatusCode::FORBIDDEN,
            code: "untrusted_proxy",
            message,
        }
    })
}

/// The host a device certificate belongs to, and whether it is accepted: one the device CA
/// issued or a factory certificate taken at enrolment, not revoked, not expired.
async fn host_by_certificate<S: AuthContext>(
    state: &S,
    p: &crate::identity::Presented,
) -> Result<(String, bool), AppError> {
    use sha2::Digest as _;
    let digest: [u8; 32] = sha2::Sha256::digest(&p.der).into();
    if let Some(id) = state.cache().device(&digest) {
        return Ok((id, true));
    }
    let Some(holder) = state.store().certificate(&hex::encode(digest)).await? else {
        return Err(AppError::unauthorized(
            "the client certificate is not one this server issued or accepted; a device with a factory certificate enrols first (ferry-agent does so when it has no device.json)",
        ));
    };
    let Some(accepted) = holder
        .accepted
        .filter(|_| holder.certificate.revoked_at.is_none())
    else {
        return Err(AppError::unauthorized(
            "this device's certificate was revoked (its host was removed); it is never accepted again: give the device a new key and enrol it",
        ));
    };
    // The handshake checked validity; a proxy's word is checked against what was recorded.
    if p.via == crate::identity::Via::Proxy {
        let expired = time::OffsetDateTime::parse(
            &holder.certificate.not_after,
            &time::format_description::well_known::Rfc3339,
        )
        .map(|t| t <= time::OffsetDateTime::now_utc())
        .unwrap_or(true);
        if expired {
            return Err(AppError::unauthorized(format!(
                "this device's certificate expired at {}; enrol the device again",
                holder.certificate.not_after
            )));
        }
    }
    if accepted {
        state
            .cache()
            .remember_device(digest, &holder.certificate.host_id);
    }
    Ok((holder.certificate.host_id, accepted))
}

/// The host a device bearer token belongs to, and whether it is accepted.
async fn host_by_bearer<S: AuthContext>(
    state: &S,
    token: &str,
) -> Result<(String, bool), AppError> {
    let digest = token_digest(token);
    if let Some(id) = state.cache().device(&digest) {
        return Ok((id, true));
    }
    match state.store().host_by_token(&hex::encode(digest)).await? {
        Some((id, accepted)) => {
            if accepted {
                state.cache().remember_device(digest, &id);
            }
            Ok((id, accepted))
        }
        None => Err(AppError::unauthorized(
            "device credential is unknown (host removed?); delete the agent's device.json to enrol again",
        )),
    }
}

/// The device whose credential this is (a client certificate or a bearer token, as
/// `device_auth` allows), accepted or not (only accepted ones are cached: a host waiting for
/// acceptance is read each time, so its acceptance counts at once on every instance), its
/// budget spent.
async fn device_of<S: AuthContext>(parts: &Parts, state: &S) -> Result<CheckingIn, AppError> {
    use crate::policy::identity::{proof, Proof};
    let mode = state.identity().config.device_auth;
    let certificate = if mode == crate::identity::DeviceAuth::Token {
        None
    } else {
        presented(parts, state)?
    };
    let token = bearer(parts);
    let how =
        proof(mode, certificate.is_some(), token.is_some()).map_err(AppError::unauthorized)?;
    let (host_id, accepted) = match (how, &certificate, token) {
        (Proof::Certificate, Some(p), _) => host_by_certificate(state, p).await?,
        (Proof::Token, _, Some(t)) => host_by_bearer(state, t).await?,
        _ => return Err(AppError::unauthorized("missing device credential")),
    };
    let Device(host_id) = within_budget(state, host_id)?;
    let peer = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    Ok(CheckingIn {
        host_id,
        accepted,
        by_certificate: how == Proof::Certificate,
        peer,
    })
}

/// The client certificate of a request, when device identity looks at certificates.
pub struct ClientCertificate(pub Option<crate::identity::Presented>);

impl<S: AuthContext> FromRequestParts<Arc<S>> for ClientCertificate {
    type Rejection = AppError;
    async fn from_request_parts(parts: &mut Parts, state: &Arc<S>) -> Result<Self, AppError> {
        if state.identity().config.device_auth == crate::identity::DeviceAuth::Token {
            return Ok(ClientCertificate(None));
        }
        Ok(ClientCertificate(presented(parts, state.as_ref())?))
    }
}

/// A device checking in: one waiting for acceptance may, and is told so.
pub struct CheckingIn {
    pub host_id: String,
    pub accepted: bool,
    /// Whether it proved itself with a client certificate.
    pub by_certificate: bool,
    /// The address it came from (a proxy's, behind one).
    pub peer: Option<std::net::IpAddr>,
}

impl<S: AuthContext> FromRequestParts<Arc<S>> for CheckingIn {
    type Rejection = AppError;
    async fn from_request_parts(parts: &mut Parts, state: &Arc<S>) -> Result<Self, AppError> {
        device_of(parts, state.as_ref()).await
    }
}

impl<S: AuthContext> FromRequestParts<Arc<S>> for Device {
    type Rejection = AppError;
    async fn from_request_parts(parts: &mut Parts, state: &Arc<S>) -> Result<Self, AppError> {
        let device = device_of(parts, state.as_ref()).await?;
        if !device.accepted {
            return Err(awaiting_acceptance());
        }
        Ok(Device(device.host_id))
    }
}

fn awaiting_acceptance() -> AppError {
    AppError::Client {
        status: axum::http::StatusCode::FORBIDDEN,
        code: "awaiting_acceptance",
        message: "this host waits for an operator's acceptance (ferryctl hosts accept HOST)".into(),
    }
}

impl<S: AuthContext> FromRequestParts<Arc<S>> for OperatorOrDevice {
    type Rejection = AppError;
    async fn from_request_parts(parts: &mut Parts, state: &Arc<S>) -> Result<Self, AppError> {
        let mode = state.identity().config.device_auth;
        let certificate = if mode == crate::identity::DeviceAuth::Token {
            None
        } else {
            presented(parts, state.as_ref())?
        };
        // A device by certificate; an operator (or a device) by bearer token.
        let device = match (&certificate, bearer(parts)) {
            (Some(p), _) => Some(host_by_certificate(state.as_ref(), p).await?),
            (None, Some(token)) => {
                let hash = hash_token(token);
                if let Some(user) = state.store().live_operator(&hash).await? {
                    // Every role may read.
                    return Ok(OperatorOrDevice {
                        tenant: Some(user.tenant_id),
                        host: None,
                    });
                }
                match state.store().host_by_token(&hash).await? {
                    Some(found) => {
                        if mode == crate::identity::DeviceAuth::Certificate {
                            return Err(AppError::unauthorized(
                                crate::policy::identity::proof(mode, false, true)
                                    .err()
                                    .unwrap_or_default(),
                            ));
                        }
                        Some(found)
                    }
                    None => None,
                }
            }
            (None, None) => {
                return Err(AppError::unauthorized(
                    "missing token (Authorization: Bearer ...) or client certificate",
                ))
            }
        };
        let Some((host_id, accepted)) = device else {
            return Err(AppError::unauthorized("token is unknown or revoked"));
        };
        let Device(host_id) = within_budget(state.as_ref(), host_id)?;
        if !accepted {
            return Err(awaiting_acceptance());
        }
        let tenant = state.store().host_tags(&host_id).await?.2;
        Ok(OperatorOrDevice {
            tenant,
            host: Some(host_id),
        })
    }
}

/// Who asked for something, recorded with what it caused (an update's history entry, a
/// batch). A type, never a string, so a new kind of actor is added in one place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A user, through the API, ferryctl or the web UI, by name (`ferryctl users`; the first
    /// one is `admin`).
    User(String),
    /// Home Assistant (or another MQTT client) through the MQTT bridge, by the broker
    /// connection's name.
    Mqtt(String),
    /// A campaign dispatching its members.
    Campaign,
}

impl Actor {
    /// How history stores and shows it: `user:NAME`, `mqtt:CONNECTION` or `campaign`.
    pub fn to_text(&self) -> String {
        match self {
            Actor::User(name) => format!("user:{name}"),
            Actor::Mqtt(connection) => format!("mqtt:{connection}"),
            Actor::Campaign => "campaign".into(),
        }
    }
}
