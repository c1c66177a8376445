//! Web UI sessions: signing in with an operator token gives a random session id in a cookie
//! (HttpOnly, SameSite=Strict, Secure over TLS). The session remembers the token's hash, so
//! revoking the token ends its sessions at the next request. Every form carries the session's
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

struct Session {
    token_hash: String,
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
    /// A new session for a checked operator token; returns its id.
    pub fn start(&self, token_hash: String) -> Result<String, getrandom::Error> {
        let id = random_hex()?;
        let csrf = random_hex()?;
        let mut all = self.all.lock().unwrap_or_else(|e| e.into_inner());
        all.retain(|_, s| s.last_used.elapsed() < IDLE);
        all.insert(
            id.clone(),
            Session {
                token_hash,
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

    /// (token hash, CSRF token) of a live session, marking it used.
    pub(super) fn touch(&self, id: &str) -> Option<(String, String)> {
        let mut all = self.all.lock().unwrap_or_else(|e| e.into_inner());
        let s = all.get_mut(id)?;
        if s.last_used.elapsed() >= IDLE {
            all.remove(id);
            return None;
        }
        s.last_used = Instant::now();
        Some((s.token_hash.clone(), s.csrf.clone()))
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
    /// The hash of the operator token the session was signed in with.
    pub(super) token_hash: String,
    /// That token's user.
    pub(super) user: crate::store::LiveOperator,
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
        .start(hash)
        .map_err(crate::error::AppError::Random)?;
    Ok(Some(id))
}

/// The request's session, if it is live and its token still valid.
pub async fn signed_in<S: AuthContext>(parts: &Parts, ctx: &S) -> Option<SignedIn> {
    let id = session_id(&parts.headers)?;
    let (hash, csrf) = ctx.sessions().touch(&id)?;
    let user = match ctx.store().live_operator(&hash).await {
        Ok(Some(user)) => user,
        _ => {
            ctx.sessions().end(&id);
            return None;
        }
    };
    let flash = ctx.sessions().take_flash(&id);
    Some(SignedIn {
        session: id,
        csrf,
        token_hash: hash,
        user,
        flash,
    })
}

impl<S: AuthContext> FromRequestParts<Arc<S>> for SignedIn {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, state: &Arc<S>) -> Result<Self, Response> {
        match signed_in(parts, state.as_ref()).await {
            // Each page and form asks what its route needs of the session's user.
            Some(s) => match super::permit(parts.method.as_str(), &super::route_of(parts), &s.user)
            {
                Ok(()) => Ok(s),
                Err(refused) => Err(refused.into_response()),
            },
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

    /// The hash of the operator token this session signed in with.
    pub fn token_hash(&self) -> &str {
        &self.token_hash
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
        let id = s.start("hash".into()).unwrap();
        let (hash, csrf) = s.touch(&id).unwrap();
        assert_eq!(hash, "hash");
        assert_eq!(csrf.len(), 64);
        s.flash(&id, Flash::done("done"));
        assert_eq!(s.take_flash(&id), Some(Flash::done("done")));
        assert_eq!(s.take_flash(&id), None);
        s.end(&id);
        assert!(s.touch(&id).is_none());
        assert!(subtle_eq(b"abc", b"abc") && !subtle_eq(b"abc", b"abd") && !subtle_eq(b"a", b"ab"));
    }
}
