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
                        nav { @for (href, label) in nav { a href=(href) { (label) } } }
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

async fn login_form(Query(q): Query<LoginQuery>) -> Response {
    let next = safe_next(q.next.as_deref());
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
                        @if q.failed.is_some() {
                            p.flash.bad role="alert" { "That token is not a valid operator token." }
                        }
                        form method="post" action="/login" {
                            input type="hidden" name="next" value=(next);
                            label for="token" { "Operator token" }
                            input #token type="password" name="token" autocomplete="current-password" required autofocus;
                            p.hint { "From DATA_DIR/operator.token, or " code { "ferryctl tokens create --kind operator" } "." }
                            button type="submit" { "Sign in" }
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
    token: String,
    next: Option<String>,
}

async fn login(State(state): State<Shared>, Form(f): Form<LoginForm>) -> Response {
    let next = safe_next(f.next.as_deref());
    // Sign-in attempts are budgeted for the whole server, as enrolment is.
    if let Err(over) = state.budgets.sign_in() {
        if over.first {
            tracing::warn!("more web UI sign-in attempts than the server allows; refusing with 429 for a while");
        }
        return crate::error::AppError::Busy {
            retry_after: over.retry_after,
            message: format!(
                "too many sign-in attempts; try again in {} s",
                over.retry_after.as_secs().max(1)
            ),
        }
        .into_response();
    }
    match sign_in(state.as_ref(), &f.token).await {
        Ok(Some(id)) => (
            StatusCode::SEE_OTHER,
            [
                (
                    header::SET_COOKIE,
                    session::cookie(Some(&id), state.config.tls.is_some()),
                ),
                (header::LOCATION, next),
            ],
        )
            .into_response(),
        Ok(None) => {
            tracing::warn!("web UI sign-in refused: not a valid operator token");
            Redirect::to(&format!("/login?failed=1&next={}", encode(&next))).into_response()
        }
        Err(e) => e.into_response(),
    }
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
