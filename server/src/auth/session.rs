//! Web UI sessions: signing in (with an operator token, a user's password or single sign-on)
//! gives a random session id in a cookie (HttpOnly, SameSite=Strict, Secure over TLS). A
//! session signed in with a token remembers the token's hash, so revoking the token ends its
//! sessions at the next request; one signed in as a user remembers the user and the role and
//! tag they had, so removing the user or changing either ends it at the next request. Every form carries the session's
//! CSRF token, checked by [`CsrfForm`] before the form is read. Sessions live in memory: a
//! server restart signs everyone out.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use serde::de::DeserializeOwned;

use super::tokens::{self, hash_token, TokenKind};
use super::AuthContext;

/// The session cookie's name.
pub const COOKIE: &str = "ferry_session";
/// How long a session lasts without use.
pub const IDLE: Duration = Duration::from_secs(12 * 3600);

/// Who a session was signed in as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// An operator token, by hash: the session lives while the token does.
    Token(String),
    /// A user, by password or single sign-on: the session lives while the user does, with
    /// the role and tag they had at sign-in.
    User {
        id: String,
        role: String,
        tag: Option<String>,
    },
}

impl Principal {
    /// A user's session as they are now.
    pub fn user(user: &crate::store::LiveOperator) -> Principal {
        Principal::User {
            id: user.user_id.clone(),
            role: user.role.clone(),
            tag: user.tag.clone(),
        }
    }
}

struct Session {
    principal: Principal,
    csrf: String,
    last_used: Instant,
    flash: Option<Flash>,
}

/// The message the next page shows once: what a form did, or why it was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flash {
    pub text: String,
    /// A refusal or failure: shown as an error.
    pub error: bool,
}

impl Flash {
    pub fn done(text: impl Into<String>) -> Flash {
        Flash {
            text: text.into(),
            error: false,
        }
    }

    pub fn refused(text: impl Into<String>) -> Flash {
        Flash {
            text: text.into(),
            error: true,
        }
    }
}

#[derive(Default)]
pub struct Sessions {
    all: Mutex<HashMap<String, Session>>,
}

fn random_hex() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(hex::encode(bytes))
}

impl Sessions {
    /// A new session for a checked principal; returns its id.
    pub fn start(&self, principal: Principal) -> Result<String, getrandom::Error> {
        let id = random_hex()?;
        let csrf = random_hex()?;
        let mut all = self.all.lock().unwrap_or_else(|e| e.into_inner());
        all.retain(|_, s| s.last_used.elapsed() < IDLE);
        all.insert(
            id.clone(),
            Session {
                principal,
                csrf,
                last_used: Instant::now(),
                flash: None,
            },
        );
        Ok(id)
    }

    pub fn end(&self, id: &str) {
        self.all
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    /// Ends every session signed in as the user `user_id`.
    pub fn end_user(&self, user_id: &str) {
        self.all
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, s| !matches!(&s.principal, Principal::User { id, .. } if id == user_id));
    }

    /// Ends the sessions of the user `user_id` that were signed in as another principal
    /// than `now` (another role or tag).
    pub fn end_user_unless(&self, user_id: &str, now: &Principal) {
        self.all
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, s| {
                !matches!(&s.principal, Principal::User { id, .. } if id == user_id)
                    || &s.principal == now
            });
    }

    /// (principal, CSRF token) of a live session, marking it used.
    pub(super) fn touch(&self, id: &str) -> Option<(Principal, String)> {
        let mut all = self.all.lock().unwrap_or_else(|e| e.into_inner());
        let s = all.get_mut(id)?;
        if s.last_used.elapsed() >= IDLE {
            all.remove(id);
            return None;
        }
        s.last_used = Instant::now();
        Some((s.principal.clone(), s.csrf.clone()))
    }

    /// A message for the next page the session sees ("update queued", an error).
    pub fn flash(&self, id: &str, message: Flash) {
        if let Some(s) = self
            .all
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(id)
        {
            s.flash = Some(message);
        }
    }

    fn take_flash(&self, id: &str) -> Option<Flash> {
        self.all
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(id)
            .and_then(|s| s.flash.take())
    }
}

/// Percent-encodes a value for a query string or path segment (`/` kept).
pub fn encode(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The session id from the request's cookies.
pub fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

/// The `Set-Cookie` value for a session id (`None`: clear it).
pub fn cookie(id: Option<&str>, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    match id {
        Some(id) => format!(
            "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
            IDLE.as_secs()
        ),
        None => format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}"),
    }
}

/// An operator signed in to the web UI. Pages that need one redirect to `/login` without.
pub struct SignedIn {
    pub session: String,
    csrf: String,
    /// Who the session was signed in as.
    pub(super) principal: Principal,
    /// The session's user.
    pub(super) user: crate::store::LiveOperator,
    /// The hosts the user reaches (set once the route is known).
    scope: crate::policy::scope::Scope,
    /// A message left for this page by the action before it.
    pub flash: Option<Flash>,
}

/// Signs in with an operator token: the new session's id, or `None` when the token is not a
/// live operator token.
pub async fn sign_in<S: AuthContext>(
    ctx: &S,
    token: &str,
) -> Result<Option<String>, crate::error::AppError> {
    let hash = hash_token(token);
    if !tokens::valid(ctx.store(), TokenKind::Operator, &hash).await? {
        return Ok(None);
    }
    let id = ctx
        .sessions()
        .start(Principal::Token(hash))
        .map_err(crate::error::AppError::Random)?;
    Ok(Some(id))
}

/// A hash no password matches, checked when the name is unknown or has no password, so a
/// refusal takes as long whether the user exists or not.
static DECOY: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();

/// Signs in as the user `name` with their password: the new session's id, or `None` when
/// there is no such user, they have no password, or it is not theirs.
pub async fn sign_in_password<S: AuthContext>(
    ctx: &S,
    name: &str,
    password: &str,
) -> Result<Option<String>, crate::error::AppError> {
    let found = ctx.store().password_user(name).await?;
    let (user, phc) = match found {
        Some((user, Some(phc))) => (Some(user), phc),
        _ => (
            None,
            DECOY
                .get_or_init(|| super::passwords::hash("no password is this one").ok())
                .clone()
                .unwrap_or_default(),
        ),
    };
    let password = password.to_string();
    let matches = tokio::task::spawn_blocking(move || super::passwords::verify(&password, &phc))
        .await
        .unwrap_or(false);
    let Some(user) = user.filter(|_| matches) else {
        return Ok(None);
    };
    let id = ctx
        .sessions()
        .start(Principal::user(&user))
        .map_err(crate::error::AppError::Random)?;
    tracing::info!(user = %user.user_name, "signed in to the web UI with a password");
    Ok(Some(id))
}

/// A live session's principal, CSRF token and user; `None` (and the session ended) when
/// its token was revoked, or its user removed or given another role or tag.
pub(super) async fn live<S: AuthContext>(
    ctx: &S,
    id: &str,
) -> Option<(Principal, String, crate::store::LiveOperator)> {
    let (principal, csrf) = ctx.sessions().touch(id)?;
    let user = match &principal {
        Principal::Token(hash) => ctx.store().live_operator(hash).await,
        Principal::User { id, .. } => ctx.store().live_user(id).await,
    };
    match user {
        Ok(Some(user))
            if matches!(principal, Principal::Token(_)) || Principal::user(&user) == principal =>
        {
            Some((principal, csrf, user))
        }
        _ => {
            ctx.sessions().end(id);
            None
        }
    }
}

/// The request's session, if it is live and its token or user still as signed in.
pub async fn signed_in<S: AuthContext>(parts: &Parts, ctx: &S) -> Option<SignedIn> {
    let id = session_id(&parts.headers)?;
    let (principal, csrf, user) = live(ctx, &id).await?;
    let flash = ctx.sessions().take_flash(&id);
    Some(SignedIn {
        session: id,
        csrf,
        principal,
        user,
        flash,
        scope: crate::policy::scope::Scope::all(),
    })
}

impl<S: AuthContext> FromRequestParts<Arc<S>> for SignedIn {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, state: &Arc<S>) -> Result<Self, Response> {
        match signed_in(parts, state.as_ref()).await {
            // Each page and form asks what its route needs of the session's user.
            Some(s) => {
                let allowed =
                    match super::permit(parts.method.as_str(), &super::route_of(parts), &s.user) {
                        Ok(()) => super::check_scope(parts, state, &s.user).await,
                        Err(refused) => Err(refused),
                    };
                match allowed {
                    Ok(scope) => Ok(SignedIn { scope, ..s }),
                    Err(refused) => Err(refused.into_response()),
                }
            }
            None => {
                let next = parts
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str())
                    .unwrap_or("/");
                Err(Redirect::to(&format!("/login?next={}", encode(next))).into_response())
            }
        }
    }
}

impl SignedIn {
    /// The session's CSRF token, for the hidden field of a form.
    pub fn csrf(&self) -> &str {
        &self.csrf
    }

    /// The hash of the operator token this session signed in with (`None`: it signed in
    /// as a user, by password or single sign-on).
    pub fn token_hash(&self) -> Option<&str> {
        match &self.principal {
            Principal::Token(hash) => Some(hash),
            Principal::User { .. } => None,
        }
    }

    /// Who holds what this session takes (a terminal's input): its token, else its user.
    pub fn owner(&self) -> String {
        owner(&self.principal)
    }

    /// Whether the session's user may `method` `route` (as routed, `/hosts/{id}/check`): a
    /// page shows only the buttons its user may press.
    pub fn may(&self, method: &str, route: &str) -> bool {
        use crate::policy::scope::{addressed, Addressed};
        let reach = match addressed(method, route, &[]) {
            Addressed::FleetWide => self.scope.tag().is_none(),
            _ => true,
        };
        reach && super::permit(method, route, &self.user).is_ok()
    }

    /// The hosts the session's user may see and act on.
    pub fn scope(&self) -> crate::policy::scope::Scope {
        self.scope.clone()
    }

    /// The session's user as authenticated (role, tag, tenant).
    pub fn user(&self) -> &crate::store::LiveOperator {
        &self.user
    }

    /// The session's user's role.
    pub fn role(&self) -> &str {
        &self.user.role
    }

    /// The session's user's id.
    pub fn user_id(&self) -> &str {
        &self.user.user_id
    }

    /// The session's user's name.
    pub fn user_name(&self) -> &str {
        &self.user.user_name
    }

    /// Who this session is in the history: its user.
    pub fn actor(&self) -> super::Actor {
        super::Actor::User(self.user.user_name.clone())
    }

    /// The refusal of a request whose CSRF token is not this session's (`None`: it is). Forms
    /// are checked by [`CsrfForm`]; a JSON body (the terminal's keystrokes) calls this.
    pub fn check_csrf(&self, given: &str) -> Option<Response> {
        if subtle_eq(given.as_bytes(), self.csrf.as_bytes()) {
            None
        } else {
            Some(
                (
                    axum::http::StatusCode::FORBIDDEN,
                    "this form is out of date or came from another site; reload the page and try again",
                )
                    .into_response(),
            )
        }
    }
}

/// A form posted from a signed-in page: the session (else a redirect to `/login`), then the
/// form's `csrf` field checked against the session's (else 403), then the form itself.
pub struct CsrfForm<T>(pub SignedIn, pub T);

#[derive(serde::Deserialize)]
struct CsrfField {
    #[serde(default)]
    csrf: String,
}

fn form_request(body: &axum::body::Bytes) -> Request {
    // A POST, so that axum's `Form` reads the body (for a GET it reads the query string).
    let mut req = Request::new(axum::body::Body::from(body.clone()));
    *req.method_mut() = axum::http::Method::POST;
    req.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    req
}

impl<S: AuthContext, T: DeserializeOwned + Send> FromRequest<Arc<S>> for CsrfForm<T> {
    type Rejection = Response;
    async fn from_request(req: Request, state: &Arc<S>) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let who = SignedIn::from_request_parts(&mut parts, state).await?;
        let body = axum::body::Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        let axum::Form(given) = axum::Form::<CsrfField>::from_request(form_request(&body), &())
            .await
            .map_err(IntoResponse::into_response)?;
        if let Some(refused) = who.check_csrf(&given.csrf) {
            return Err(refused);
        }
        let axum::Form(form) = axum::Form::<T>::from_request(form_request(&body), &())
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(CsrfForm(who, form))
    }
}

/// Who holds what a principal takes: a token by its hash, a user by `user:ID`.
pub(super) fn owner(principal: &Principal) -> String {
    match principal {
        Principal::Token(hash) => hash.clone(),
        Principal::User { id, .. } => format!("user:{id}"),
    }
}

/// Compares without stopping at the first difference.
fn subtle_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_read_among_others_and_set_safely() {
        let mut h = HeaderMap::new();
        h.insert(
            axum::http::header::COOKIE,
            "a=1; ferry_session=abc123; b=2".parse().unwrap(),
        );
        assert_eq!(session_id(&h).as_deref(), Some("abc123"));
        let c = cookie(Some("abc123"), true);
        for part in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/"] {
            assert!(c.contains(part), "{c}");
        }
        assert!(!cookie(Some("x"), false).contains("Secure"));
        assert!(cookie(None, false).contains("Max-Age=0"));
    }

    #[test]
    fn sessions_keep_their_csrf_token_and_end() {
        let s = Sessions::default();
        let id = s.start(Principal::Token("hash".into())).unwrap();
        let (principal, csrf) = s.touch(&id).unwrap();
        assert_eq!(principal, Principal::Token("hash".into()));
        assert_eq!(csrf.len(), 64);
        s.flash(&id, Flash::done("done"));
        assert_eq!(s.take_flash(&id), Some(Flash::done("done")));
        assert_eq!(s.take_flash(&id), None);
        s.end(&id);
        assert!(s.touch(&id).is_none());
        assert!(subtle_eq(b"abc", b"abc") && !subtle_eq(b"abc", b"abd") && !subtle_eq(b"a", b"ab"));
    }
}
