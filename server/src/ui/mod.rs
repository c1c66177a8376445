//! The web UI (docs/web-ui.md): server-rendered pages (maud, checked at compile time) that
//! read and act through the same services as the API, so every action here is one there
//! too. Readable without JavaScript; `assets/ui.js` (a few KiB, no framework) adds only the
//! live parts: hook output following the SSE stream, and refreshing progress.

pub mod ansi;
mod fleet;
mod history;
mod rollout;
mod settings;

use axum::extract::{Form, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup, PreEscaped, DOCTYPE};
use serde::Deserialize;

use crate::auth::session::{self, sign_in, Flash};
use crate::auth::{CsrfForm, SignedIn};
use crate::error::AppError;
use crate::state::Shared;

const CSS: &str = include_str!("assets/ui.css");
const JS: &str = include_str!("assets/ui.js");
/// xterm.js for an interactive install's terminal (vendored: assets/vendor/xterm/README.md).
const XTERM_JS: &str = include_str!("assets/vendor/xterm/xterm.js");
const XTERM_CSS: &str = include_str!("assets/vendor/xterm/xterm.css");

/// The UI's routes; `tls`: served over HTTPS (browsers are then told to keep to it).
pub fn router(tls: bool) -> Router<Shared> {
    pages().layer(axum::middleware::map_response(protect(tls)))
}

fn pages() -> Router<Shared> {
    Router::new()
        .route("/", get(fleet::dashboard))
        .route("/login", get(login_form).post(login))
        .route("/login/sso", get(sso_begin))
        .route("/login/sso/callback", get(sso_callback))
        .route("/logout", post(logout))
        .route("/hosts", get(fleet::hosts))
        .route("/hosts/{id}", get(fleet::host))
        .route("/hosts/{id}/check", post(fleet::check))
        .route("/hosts/{id}/accept", post(fleet::accept))
        .route("/hosts/{id}/edit", post(fleet::edit))
        .route("/hosts/{id}/remove", post(fleet::remove))
        .route("/hosts/{id}/update", post(fleet::update))
        .route("/hosts/{id}/batch", post(fleet::batch))
        .route("/items", get(settings::items))
        .route("/packages", get(settings::packages))
        .route("/items/{name}", post(settings::edit_item))
        .route(
            "/items/{name}/{version}/withdraw",
            post(settings::withdraw_release),
        )
        .route("/items/{name}/{version}/batch", post(settings::batch_item))
        .route(
            "/campaigns",
            get(rollout::campaigns).post(rollout::create_campaign),
        )
        .route("/campaigns/{id}", get(rollout::campaign))
        .route("/campaigns/{id}/edit", post(rollout::edit_campaign))
        .route("/campaigns/{id}/approve", post(rollout::approve_campaign))
        .route("/campaigns/{id}/{action}", post(rollout::campaign_action))
        .route("/batches", get(rollout::batches))
        .route("/batches/{id}", get(rollout::batch))
        .route("/history", get(history::list))
        .route("/history/{id}", get(history::entry))
        .route("/history/{id}/terminal", post(history::terminal))
        .route("/history/{id}/cancel", post(history::cancel))
        .route("/settings", get(settings::settings))
        .route("/audit", get(settings::audit))
        .route("/settings/tokens", post(settings::create_token))
        .route("/settings/tokens/{id}/revoke", post(settings::revoke_token))
        .route("/settings/mqtt", post(settings::add_mqtt))
        .route(
            "/settings/mqtt/{name}/{action}",
            post(settings::mqtt_action),
        )
        .route("/ui/ui.css", get(|| asset(CSS, "text/css; charset=utf-8")))
        .route(
            "/ui/xterm.js",
            get(|| asset(XTERM_JS, "text/javascript; charset=utf-8")),
        )
        .route(
            "/ui/xterm.css",
            get(|| asset(XTERM_CSS, "text/css; charset=utf-8")),
        )
        .route(
            "/ui/ui.js",
            get(|| asset(JS, "text/javascript; charset=utf-8")),
        )
}

/// What every answer of the UI carries: scripts only from this server (no inline script, so
/// a string that slipped through escaping cannot run), no framing, no sniffing, no referrer
/// to other sites; pages (which show tokens and hook output) are never cached; under TLS,
/// browsers keep to HTTPS.
fn protect(tls: bool) -> impl Fn(Response) -> std::future::Ready<Response> + Clone {
    move |mut r: Response| {
        let h = r.headers_mut();
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            header::HeaderValue::from_static(
                "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                 img-src 'self' https: data:; connect-src 'self'; object-src 'none'; \
                 base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
            ),
        );
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            header::HeaderValue::from_static("nosniff"),
        );
        h.insert(
            header::REFERRER_POLICY,
            header::HeaderValue::from_static("same-origin"),
        );
        h.insert(
            header::X_FRAME_OPTIONS,
            header::HeaderValue::from_static("DENY"),
        );
        if !h.contains_key(header::CACHE_CONTROL) {
            h.insert(
                header::CACHE_CONTROL,
                header::HeaderValue::from_static("no-store"),
            );
        }
        if tls {
            h.insert(
                header::STRICT_TRANSPORT_SECURITY,
                header::HeaderValue::from_static("max-age=31536000"),
            );
        }
        std::future::ready(r)
    }
}

async fn asset(body: &'static str, kind: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

pub use session::encode;

/// The frame of every signed-in page.
pub fn page(title: &str, who: &SignedIn, body: Markup) -> Response {
    let nav = [
        ("/", "Dashboard"),
        ("/hosts", "Hosts"),
        ("/campaigns", "Campaigns"),
        ("/batches", "Batches"),
        ("/history", "History"),
        ("/items", "Items"),
        ("/packages", "Packages"),
        ("/audit", "Audit"),
        ("/settings", "Settings"),
    ];
    Html(
        html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { (title) " · Ferry" }
                    link rel="stylesheet" href="/ui/ui.css";
                    script src="/ui/ui.js" defer {}
                }
                body {
                    header {
                        a.brand href="/" { "Ferry" }
                        // Only the pages the user may open.
                        nav { @for (href, label) in nav { @if who.may("GET", href) { a href=(href) { (label) } } } }
                        span #who.muted { (who.user_name()) " (" (who.role()) ")" }
                        form.inline method="post" action="/logout" {
                            (csrf(who))
                            button.link type="submit" { "Sign out" }
                        }
                    }
                    main {
                        @if let Some(f) = &who.flash {
                            @if f.error { p.flash.bad role="alert" { (f.text) } }
                            @else { p.flash role="status" { (f.text) } }
                        }
                        h1 { (title) }
                        (body)
                    }
                }
            }
        }
        .into_string(),
    )
    .into_response()
}

/// The hidden CSRF field every form carries.
pub fn csrf(who: &SignedIn) -> Markup {
    html! { input type="hidden" name="csrf" value=(who.csrf()); }
}

/// The badge of a status, coloured by what it means.
pub fn badge(status: &str) -> Markup {
    let (class, text) = match status {
        "available" => ("avail", "Update available"),
        "pending" | "dispatched" | "queued" | "in_progress" => ("prog", "In progress"),
        "running" => ("prog", status),
        // Stopped, waiting for a person: not the colour of something under way.
        "paused" => ("avail", status),
        "failed" | "rolled_back" | "refused" => ("fail", status),
        "installed" | "up_to_date" | "completed" => ("ok", status),
        _ => ("", status),
    };
    let text = if text == "up_to_date" {
        "Up to date"
    } else {
        text
    };
    html! { span class={"badge " (class)} { (text.replace('_', " ")) } }
}

/// After a form: back to `to` with a message for the next page.
pub fn done(
    state: &Shared,
    who: &SignedIn,
    to: &str,
    result: Result<String, AppError>,
) -> Response {
    let message = match result {
        Ok(m) => Flash::done(m),
        Err(e) => Flash::refused(format!("Refused: {}", e.message())),
    };
    state.sessions.flash(&who.session, message);
    Redirect::to(to).into_response()
}

/// An instant the server recorded (RFC 3339, UTC): shown to the second in UTC without the
/// script, and by `ui.js` as a relative time with the exact local time on hover.
pub fn when(t: &str) -> maud::Markup {
    let plain = match t.split_once('T') {
        Some((day, rest)) => {
            let clock = rest.split(['.', 'Z', '+']).next().unwrap_or(rest);
            format!("{day} {clock} UTC")
        }
        None => return html! { (t) },
    };
    html! { time datetime=(t) title=(t) { (plain) } }
}

/// A page for a failed read (a missing host, a store error).
pub fn failed(who: &SignedIn, e: impl Into<AppError>) -> Response {
    let e: AppError = e.into();
    let status = e.status();
    let mut r = page(
        "Not available",
        who,
        html! { p { (e.message()) } p { a href="/" { "Back to the dashboard" } } },
    );
    *r.status_mut() = status;
    r
}

/// Renders hook output (ANSI colours) for a `<pre>`.
pub fn output(text: &str) -> Markup {
    PreEscaped(ansi::to_html(text))
}

#[derive(Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
    failed: Option<String>,
}

/// Where to go after signing in: only a path on this server.
/// Where sign-in returns to: a path on this server, else `/`. A browser drops tabs and line
/// breaks from a URL and reads a backslash as `/`, so `/<TAB>/host` would leave the server: a
/// `next` holding any of them, or starting with `//`, is refused.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.chars().any(|c| c.is_control() || c.is_whitespace()) =>
        {
            n.to_string()
        }
        _ => "/".to_string(),
    }
}

async fn login_form(State(state): State<Shared>, Query(q): Query<LoginQuery>) -> Response {
    let next = safe_next(q.next.as_deref());
    let sso = state.oidc.is_some();
    let refusal = match q.failed.as_deref() {
        None => None,
        Some("password") => {
            Some("That name and password do not match a user who may sign in with a password.")
        }
        Some("sso") => Some("Single sign-on did not complete; try again, or ask an admin."),
        Some(_) => Some("That token is not a valid operator token."),
    };
    Html(
        html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { "Sign in · Ferry" }
                    link rel="stylesheet" href="/ui/ui.css";
                }
                body.login {
                    main {
                        h1 { "Ferry" }
                        @if let Some(text) = refusal {
                            p.flash.bad role="alert" { (text) }
                        }
                        @if sso {
                            p { a #sso.button href={ "/login/sso?next=" (encode(&next)) } { "Sign in with single sign-on" } }
                        }
                        form #password-form method="post" action="/login" {
                            input type="hidden" name="next" value=(next);
                            label for="name" { "User" }
                            input #name type="text" name="name" autocomplete="username" required autofocus[!sso];
                            label for="password" { "Password" }
                            input #password type="password" name="password" autocomplete="current-password" required;
                            button type="submit" { "Sign in" }
                        }
                        details {
                            summary { "Sign in with an operator token" }
                            form #token-form method="post" action="/login" {
                                input type="hidden" name="next" value=(next);
                                label for="token" { "Operator token" }
                                input #token type="password" name="token" autocomplete="off" required;
                                p.hint { "From DATA_DIR/operator.token, or " code { "ferryctl tokens create --user NAME --name N" } "." }
                                button type="submit" { "Sign in with the token" }
                            }
                        }
                    }
                }
            }
        }
        .into_string(),
    )
    .into_response()
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    password: Option<String>,
    next: Option<String>,
}

/// A 429 for a spent sign-in budget.
fn too_many(over: crate::budget::Refused, what: &str) -> Response {
    crate::error::AppError::Busy {
        retry_after: over.retry_after,
        message: format!(
            "too many sign-in attempts{what}; try again in {} s",
            over.retry_after.as_secs().max(1)
        ),
    }
    .into_response()
}

/// The answer to a sign-in that made session `id`: its cookie, and back to `next`.
fn signed_in_to(state: &Shared, id: &str, next: String) -> Response {
    (
        StatusCode::SEE_OTHER,
        [
            (
                header::SET_COOKIE,
                session::cookie(Some(id), state.config.tls.is_some()),
            ),
            (header::LOCATION, next),
        ],
    )
        .into_response()
}

async fn login(State(state): State<Shared>, Form(f): Form<LoginForm>) -> Response {
    let next = safe_next(f.next.as_deref());
    // Sign-in attempts are budgeted for the whole server, as enrolment is.
    if let Err(over) = state.budgets.sign_in() {
        if over.first {
            tracing::warn!("more web UI sign-in attempts than the server allows; refusing with 429 for a while");
        }
        return too_many(over, "");
    }
    if let Some(token) = f.token.as_deref().filter(|t| !t.is_empty()) {
        return match sign_in(state.as_ref(), token).await {
            Ok(Some(id)) => signed_in_to(&state, &id, next),
            Ok(None) => {
                tracing::warn!("web UI sign-in refused: not a valid operator token");
                Redirect::to(&format!("/login?failed=token&next={}", encode(&next))).into_response()
            }
            Err(e) => e.into_response(),
        };
    }
    let (name, password) = (f.name.unwrap_or_default(), f.password.unwrap_or_default());
    // And each user name on its own: a guesser gets a few tries, then one a minute.
    // Keyed by at most a user name's length: what a guesser sends does not grow the budgets.
    let key: String = name.chars().take(64).collect();
    if let Err(over) = state.budgets.password(&key) {
        if over.first {
            tracing::warn!(user = %name.chars().take(64).collect::<String>(), "password sign-ins for this name over their budget; refusing with 429 for a while");
        }
        return too_many(over, " for this user");
    }
    match session::sign_in_password(state.as_ref(), &name, &password).await {
        Ok(Some(id)) => signed_in_to(&state, &id, next),
        Ok(None) => {
            tracing::warn!(user = %name.chars().take(64).collect::<String>(), "web UI password sign-in refused");
            Redirect::to(&format!("/login?failed=password&next={}", encode(&next))).into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// The cookie that binds a single sign-on under way to the browser that started it: sent
/// back on the provider's redirect (a top-level navigation, hence `SameSite=Lax`).
const SSO_COOKIE: &str = "ferry_sso";

fn sso_cookie(state: Option<&str>, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    match state {
        Some(s) => format!(
            "{SSO_COOKIE}={s}; Path=/login/sso; HttpOnly; SameSite=Lax; Max-Age=600{secure}"
        ),
        None => {
            format!("{SSO_COOKIE}=; Path=/login/sso; HttpOnly; SameSite=Lax; Max-Age=0{secure}")
        }
    }
}

/// Starts a single sign-on: to the provider, with this browser's `state` in a cookie.
async fn sso_begin(State(state): State<Shared>, Query(q): Query<LoginQuery>) -> Response {
    let next = safe_next(q.next.as_deref());
    let Some(oidc) = &state.oidc else {
        return crate::error::AppError::not_found(
            "single sign-on is not set up on this server ([oidc] in server.toml, docs/users.md)",
        )
        .into_response();
    };
    if let Err(over) = state.budgets.sign_in() {
        return too_many(over, "");
    }
    match oidc.begin(next.clone()).await {
        Ok((url, sso_state)) => (
            StatusCode::SEE_OTHER,
            [
                (
                    header::SET_COOKIE,
                    sso_cookie(Some(&sso_state), state.config.tls.is_some()),
                ),
                (header::LOCATION, url),
            ],
        )
            .into_response(),
        Err(e) => {
            tracing::warn!("single sign-on could not start: {e}");
            Redirect::to(&format!("/login?failed=sso&next={}", encode(&next))).into_response()
        }
    }
}

#[derive(Deserialize)]
pub struct SsoCallback {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

/// The cookie named `name`, from the request's cookies.
fn cookie_value(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// The provider sent the browser back: check it, make or update the user, start a session.
async fn sso_callback(
    State(state): State<Shared>,
    headers: axum::http::HeaderMap,
    Query(q): Query<SsoCallback>,
) -> Response {
    let secure = state.config.tls.is_some();
    let failed = |why: String| {
        tracing::warn!("single sign-on refused: {why}");
        (
            StatusCode::SEE_OTHER,
            [
                (header::SET_COOKIE, sso_cookie(None, secure)),
                (header::LOCATION, "/login?failed=sso".to_string()),
            ],
        )
            .into_response()
    };
    let Some(oidc) = &state.oidc else {
        return failed("single sign-on is not set up on this server".into());
    };
    if let Some(e) = q.error {
        return failed(format!(
            "the provider answered {e}: {}",
            q.error_description.unwrap_or_default()
        ));
    }
    let (Some(code), Some(sso_state)) = (q.code, q.state) else {
        return failed("the provider's answer has no code or state".into());
    };
    // The state must be the one this browser started with: else another site's sign-in
    // would sign this browser in as someone else.
    if cookie_value(&headers, SSO_COOKIE).as_deref() != Some(sso_state.as_str()) {
        return failed(
            "the sign-in was not started by this browser (no or another ferry_sso cookie)".into(),
        );
    }
    let who = match oidc.finish(&sso_state, &code).await {
        Ok(who) => who,
        Err(e) => return failed(e.to_string()),
    };
    if crate::service::tenants::id_of(&state, &oidc.config.tenant)
        .await
        .is_err()
    {
        return failed(format!(
            "[oidc] tenant {:?} does not exist; add it (ferryctl tenants add {}) or name another",
            oidc.config.tenant, oidc.config.tenant
        ));
    }
    let user = match state
        .store
        .oidc_user(
            &who.subject,
            &who.name,
            who.role.as_str(),
            &oidc.config.tenant,
        )
        .await
    {
        Ok(Ok(user)) => user,
        Ok(Err(name)) => {
            return failed(format!(
                "a user named {name} already exists who does not sign in through the provider; \
                 rename or remove them (ferryctl users) to let the provider's {name} in"
            ))
        }
        Err(e) => return crate::error::AppError::from(e).into_response(),
    };
    // A role that changed at the provider ends the user's other sessions.
    state
        .sessions
        .end_user_unless(&user.user_id, &session::Principal::user(&user));
    let id = match state.sessions.start(session::Principal::user(&user)) {
        Ok(id) => id,
        Err(e) => return crate::error::AppError::Random(e).into_response(),
    };
    tracing::info!(user = %user.user_name, role = %user.role, "signed in to the web UI through single sign-on");
    // A page, not a redirect: the session cookie is SameSite=Strict, and a browser does not
    // send it on a redirect that began at the provider's site; a step from this page does.
    let next = who.next;
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta http-equiv="refresh" content={ "0;url=" (next) };
                title { "Signed in · Ferry" }
                link rel="stylesheet" href="/ui/ui.css";
            }
            body.login { main { p { "Signed in. " a href=(next) { "Continue" } } } }
        }
    };
    (
        StatusCode::OK,
        axum::response::AppendHeaders([
            (header::SET_COOKIE, session::cookie(Some(&id), secure)),
            (header::SET_COOKIE, sso_cookie(None, secure)),
        ]),
        Html(page.into_string()),
    )
        .into_response()
}

/// A form with nothing but its CSRF token (an action button).
#[derive(Deserialize)]
pub struct NoFields {}

async fn logout(State(state): State<Shared>, CsrfForm(who, _): CsrfForm<NoFields>) -> Response {
    state.sessions.end(&who.session);
    (
        StatusCode::SEE_OTHER,
        [
            (
                header::SET_COOKIE,
                session::cookie(None, state.config.tls.is_some()),
            ),
            (header::LOCATION, "/login".to_string()),
        ],
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instant_reads_to_the_second_in_utc_without_the_script() {
        let t = when("2026-12-05T10:00:01.123Z").into_string();
        assert_eq!(
            t,
            r#"<time datetime="2026-12-05T10:00:01.123Z" title="2026-12-05T10:00:01.123Z">2026-12-05 10:00:01 UTC</time>"#
        );
        assert_eq!(when("-").into_string(), "-");
    }

    #[test]
    fn sign_in_only_returns_to_a_path_on_this_server() {
        assert_eq!(safe_next(Some("/hosts?tag=a")), "/hosts?tag=a");
        assert_eq!(safe_next(Some("//evil.example/")), "/");
        assert_eq!(safe_next(Some("https://evil.example/")), "/");
        assert_eq!(safe_next(Some("/\\evil")), "/");
        // `/%09/evil.example/` once the form is decoded: a browser drops the tab.
        assert_eq!(safe_next(Some("/\t/evil.example/x")), "/");
        assert_eq!(safe_next(Some("/\n/evil.example/")), "/");
        assert_eq!(safe_next(Some("/ /evil.example/")), "/");
        assert_eq!(safe_next(None), "/");
    }
}
