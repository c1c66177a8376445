//! The update history and one entry's page, whose output follows the SSE stream while the
//! update runs (assets/ui.js) and is rendered with its ANSI colours.

use axum::extract::{Path, Query, State};
use axum::response::Response;
use ferry_manifests::wire::HistoryView;
use maud::{html, Markup};
use serde::Deserialize;

use super::{badge, csrf, done, encode, failed, output, page, when};
use crate::auth::{CsrfForm, SignedIn};
use crate::error::AppError;
use crate::service;
use crate::state::Shared;

/// Entries per page of the history list.
const PAGE: usize = 100;

/// Who asked for an update: its campaign, linked, or the actor as recorded.
fn actor(e: &HistoryView) -> Markup {
    html! {
        @if let Some(c) = &e.campaign {
            a href={"/campaigns/" (c)} { "campaign " (c.get(..8).unwrap_or(c)) }
        } @else {
            (e.actor)
        }
    }
}

/// A table of history entries, newest first as given.
pub fn table<'a>(entries: impl Iterator<Item = &'a HistoryView>) -> Markup {
    html! {
        div.table { table.history {
            thead { tr { th { "When" } th { "Host" } th { "Update" } th { "Status" } th { "By" } th { "Message" } } }
            tbody { @for e in entries { tr class={"st-" (e.status)} {
                td { a href={"/history/" (e.id)} { (when(&e.created_at)) } }
                td { a href={"/hosts/" (e.host_id)} { (e.hostname) } }
                td { (e.item) " " @if let Some(f) = &e.from_version { (f) " → " } (e.version) }
                td { (badge(&e.status)) }
                td { (actor(e)) }
                td { (e.message) }
            } } }
        } }
    }
}

#[derive(Deserialize)]
pub struct HistoryFilter {
    host: Option<String>,
    item: Option<String>,
    status: Option<String>,
    page: Option<usize>,
}

pub async fn list(
    State(state): State<Shared>,
    who: SignedIn,
    Query(f): Query<HistoryFilter>,
) -> Response {
    let host = f.host.clone().filter(|h| !h.is_empty());
    let item = f.item.clone().filter(|i| !i.is_empty());
    let status = f.status.clone().filter(|s| !s.is_empty());
    let scope = who.scope();
    let host_id = match &host {
        Some(h) => match service::scope::require_host(&state, &scope, h).await {
            Ok((id, _)) => Some(id),
            Err(e) => return failed(&who, e),
        },
        None => None,
    };
    let page_no = f.page.unwrap_or(1).max(1);
    let statuses: Vec<&str> = status.as_deref().into_iter().collect();
    let visible = match service::scope::visible_hosts(&state, &scope).await {
        Ok(v) => v,
        Err(e) => return failed(&who, e),
    };
    // A user limited to a tag: the newest entries (at most 10,000), theirs only, paged here.
    let (offset, limit) = match &visible {
        None => (((page_no - 1) * PAGE) as u32, PAGE as u32),
        Some(_) => (0, 10_000),
    };
    let (entries, total) = match state
        .store
        .history_page(
            host_id.as_deref(),
            item.as_deref(),
            &statuses,
            offset,
            limit,
        )
        .await
    {
        Ok(p) => p,
        Err(e) => return failed(&who, e),
    };
    let (entries, total) = match &visible {
        None => (entries, total),
        Some(v) => {
            let mine: Vec<_> = entries
                .into_iter()
                .filter(|e| v.contains(&e.host_id))
                .collect();
            let total = mine.len() as u64;
            (
                mine.into_iter()
                    .skip((page_no - 1) * PAGE)
                    .take(PAGE)
                    .collect(),
                total,
            )
        }
    };
    let pages = (total as usize).div_ceil(PAGE).max(1);
    let link = |p: usize| {
        format!(
            "/history?host={}&item={}&status={}&page={p}",
            encode(host.as_deref().unwrap_or("")),
            encode(item.as_deref().unwrap_or("")),
            encode(status.as_deref().unwrap_or(""))
        )
    };
    let body = html! {
        form.filters method="get" action="/history" {
            input type="text" name="host" value=(host.as_deref().unwrap_or("")) placeholder="host" aria-label="Host";
            input type="text" name="item" value=(item.as_deref().unwrap_or("")) placeholder="item" aria-label="Item";
            select name="status" aria-label="Status" {
                @for s in ["", "pending", "installed", "failed", "rolled_back", "refused", "cancelled"] {
                    option value=(s) selected[status.as_deref().unwrap_or("") == s] { @if s.is_empty() { "any status" } @else { (s.replace('_', " ")) } }
                }
            }
            button type="submit" { "Filter" }
        }
        p.muted { (total) " entries" @if pages > 1 { ", page " (page_no) " of " (pages) } }
        (table(entries.iter()))
        nav.pages {
            @if page_no > 1 { a href=(link(page_no - 1)) rel="prev" { "← Newer" } }
            @if page_no < pages { a href=(link(page_no + 1)) rel="next" { "Older →" } }
        }
    };
    page("Update history", &who, body)
}

pub async fn cancel(
    State(state): State<Shared>,
    Path(id): Path<String>,
    CsrfForm(who, _): CsrfForm<super::NoFields>,
) -> Response {
    let result = service::updates::cancel(&state, &id)
        .await
        .map(|e| format!("Cancelled {} {} on {}.", e.item, e.version, e.hostname))
        .map_err(AppError::from);
    done(&state, &who, &format!("/history/{}", encode(&id)), result)
}

pub async fn entry(State(state): State<Shared>, who: SignedIn, Path(id): Path<String>) -> Response {
    let e = match service::updates::entry(&state, &id).await {
        Ok(e) => e,
        Err(e) => return failed(&who, e),
    };
    let running = e.status == "pending";
    // An interactive install under way gets a terminal (xterm.js) instead of the output.
    let interactive = running && matches!(state.store.interactive_host(&e.id).await, Ok(Some(_)));
    let title = format!("{} {} on {}", e.item, e.version, e.hostname);
    let body = html! {
        p {
            span #status { (badge(&e.status)) }
            " " (e.message)
        }
        @if running && who.may("POST", "/history/{id}/cancel") {
            form.inline method="post" action={"/history/" (e.id) "/cancel"} {
                (csrf(&who))
                button.danger type="submit" { "Cancel this update" }
            }
        }
        dl.facts {
            dt { "Host" } dd { a href={"/hosts/" (e.host_id)} { (e.hostname) } }
            @if e.packages.is_empty() {
                dt { "From" } dd { (e.from_version.as_deref().unwrap_or("-")) }
            }
            dt { "By" } dd { (actor(&e)) }
            dt { "Queued" } dd { (when(&e.created_at)) }
            dt { "Finished" } dd #finished { (when(e.finished_at.as_deref().unwrap_or("-"))) }
            @if let Some(d) = &e.device_finished_at {
                dt { "Device's clock" } dd.muted { "read " (d) " at the end (it is off; the times here are the server's)" }
            }
            @if let Some(f) = &e.fetched { dt { "Fetched" } dd #fetched { (f.to_string()) } }
            dt { "Id" } dd { code { (e.id) } }
        }
        @if !e.packages.is_empty() {
            h2 { "Packages" }
            p.muted { @if running { "As planned: what the host's source offered." } @else { "Versions before and after, as the device read them. Nothing here is rolled back." } }
            table #changed-packages {
                thead { tr { th { "Package" } th { "Before" } th { "After" } } }
                tbody {
                    @for p in &e.packages {
                        tr {
                            td { (p.name) }
                            td { (p.from.as_deref().unwrap_or("-")) }
                            td { (p.to.as_deref().unwrap_or("-")) }
                        }
                    }
                }
            }
        }
        @if interactive {
            h2 { "Terminal" }
            p.muted #live-note { "The install's hooks run in this terminal: type to answer them (Ctrl-C interrupts)." }
            link rel="stylesheet" href="/ui/xterm.css";
            script src="/ui/xterm.js" {}
            div #terminal.terminal
                data-terminal={"/history/" (e.id) "/terminal"}
                data-follow={"/api/v1/update-history/" (e.id) "/output/stream"}
                data-csrf=(who.csrf()) {}
        } @else {
        h2 { "Output" }
        @if running && e.output.is_empty() {
            p.muted #live-note { "Queued: the device has not started it yet; it takes it at its next check-in (at once when it long-polls). Its output shows here as it runs." }
        } @else if running {
            p.muted #live-note { "Following the device's output as it runs." }
        }
        pre #output.output data-follow=[running.then(|| format!("/api/v1/update-history/{}/output/stream", e.id))] {
            (output(&e.output))
        }
        @if e.output.is_empty() && !running { p.muted { "No output." } }
        }
        @if !e.typed.is_empty() {
            h2 { "Typed by the operator" }
            pre #typed.output { (e.typed) }
        }
    };
    page(&title, &who, body)
}

#[derive(Deserialize)]
pub struct TerminalForm {
    csrf: String,
    #[serde(flatten)]
    input: ferry_manifests::wire::TerminalInput,
}

/// The terminal page's requests (attach, keystrokes, window size, keep-alive), with the
/// session's CSRF token: the API's terminal endpoint for a signed-in operator.
pub async fn terminal(
    State(state): State<Shared>,
    who: SignedIn,
    Path(id): Path<String>,
    axum::Json(f): axum::Json<TerminalForm>,
) -> Response {
    use axum::response::IntoResponse;
    if let Some(r) = who.check_csrf(&f.csrf) {
        return r;
    }
    match service::updates::terminal(&state, &id, f.input, &who.owner()).await {
        Ok(lease) => axum::Json(lease).into_response(),
        Err(e) => AppError::from(e).into_response(),
    }
}
