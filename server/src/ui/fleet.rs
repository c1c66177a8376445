//! Dashboard, hosts and a host's page, with its actions (check now, update an item, batch).

use std::collections::{BTreeMap, HashMap};

use axum::extract::{Path, Query, State};
use axum::response::Response;
use ferry_manifests::wire::{BatchRequest, CheckRequest, HistoryView, HostView, TriggerRequest};
use maud::{html, Markup};
use serde::Deserialize;

use super::{badge, csrf, done, encode, failed, page, when};
use crate::auth::{CsrfForm, SignedIn};
use crate::error::AppError;
use crate::policy::fleet;
use crate::service;
use crate::state::Shared;

/// Hosts per page of the hosts list.
pub const PAGE: u32 = 50;

/// The overall badge of a host: in progress, failed (its last install of some item failed,
/// rolled back or was refused: that outranks an update still being available), update
/// available, up to date.
fn host_status(h: &HostView, pending: bool, failed: bool) -> &'static str {
    if pending {
        "in_progress"
    } else if failed {
        "failed"
    } else if !h.available.is_empty() {
        "available"
    } else {
        "up_to_date"
    }
}

/// Items per host with a pending update.
async fn pending(state: &Shared) -> Result<HashMap<String, Vec<String>>, AppError> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for (host, item) in state.store.pending_items().await? {
        out.entry(host).or_default().push(item);
    }
    Ok(out)
}

/// The newest outcome per (host, item).
fn last_outcomes(history: &[HistoryView]) -> HashMap<(&str, &str), &HistoryView> {
    let mut out = HashMap::new();
    for e in history {
        out.insert((e.host_id.as_str(), e.item.as_str()), e);
    }
    out
}

fn is_failure(status: &str) -> bool {
    matches!(status, "failed" | "rolled_back" | "refused")
}

pub async fn dashboard(State(state): State<Shared>, who: SignedIn) -> Response {
    match dashboard_body(&state, &who).await {
        Ok(body) => page("Dashboard", &who, body),
        Err(e) => failed(&who, e),
    }
}

async fn dashboard_body(state: &Shared, who: &SignedIn) -> Result<maud::Markup, AppError> {
    let at = time::OffsetDateTime::now_utc();
    let scope = who.scope();
    // A user limited to a tag sees their hosts' figures only.
    let visible = service::scope::visible_hosts(state, &scope).await?;
    let mut seen = state.store.hosts_seen(None, None).await?;
    if let Some(v) = &visible {
        seen.retain(|(id, _)| v.contains(id));
    }
    let online = seen
        .iter()
        .filter(|(id, last)| crate::service::hosts::connectivity(state, id, last, at).0)
        .count();
    let releases = state.releases().await?;
    let mut by_category: BTreeMap<String, u64> = BTreeMap::new();
    if visible.is_none() {
        for (installed, n) in state.store.installed_counts().await? {
            for a in fleet::available_for(std::slice::from_ref(&installed), &releases) {
                *by_category.entry(a.category).or_default() += n;
            }
        }
    } else if let Some(v) = &visible {
        for h in service::hosts::list(state).await? {
            if v.contains(&h.id) {
                for a in h.available {
                    *by_category.entry(a.category).or_default() += 1;
                }
            }
        }
    }
    let mut campaigns = service::campaigns::requests::list(state, None).await?;
    service::scope::keep_campaigns(state, &scope, &mut campaigns).await?;
    let running: Vec<_> = campaigns
        .iter()
        .filter(|c| matches!(c.status.as_str(), "running" | "paused"))
        .collect();
    let (mut failures, _) = state
        .store
        .history_page(
            None,
            None,
            &["failed", "rolled_back", "refused"],
            0,
            if visible.is_some() { 500 } else { 10 },
        )
        .await?;
    if let Some(v) = &visible {
        failures.retain(|e| v.contains(&e.host_id));
        failures.truncate(10);
    }
    Ok(html! {
        section.cards {
            a.card href="/hosts?status=online" { strong { (online) } " online" }
            a.card href="/hosts?status=offline" { strong { (seen.len() - online) } " offline" }
            @for (category, n) in &by_category {
                a.card href={"/hosts?status=available_" (encode(category))} { strong { (n) } " " (category) " updates available" }
            }
            @if by_category.is_empty() { span.card { strong { "0" } " updates available" } }
        }
        h2 { "Campaigns in progress" }
        @if running.is_empty() { p { "None. " a href="/campaigns" { "Start one" } } }
        @else {
            div.table { table {
                thead { tr { th { "Campaign" } th { "Release" } th { "Status" } th { "Wave" } th { "Progress" } } }
                tbody { @for c in &running { tr {
                    td { a href={"/campaigns/" (c.id)} { (c.name) } }
                    td { (c.item) " " (c.version) }
                    td { (badge(&c.status)) }
                    td { (c.open_wave + 1) " of " (c.waves) }
                    td { (c.counts.get("installed").copied().unwrap_or(0)) " of " (c.members.len()) " installed" }
                } } }
            } }
        }
        h2 { "Recent failures" }
        @if failures.is_empty() { p { "None." } }
        @else {
            div.table { table {
                thead { tr { th { "When" } th { "Host" } th { "Update" } th { "Outcome" } } }
                tbody { @for e in &failures { tr {
                    td { a href={"/history/" (e.id)} { (when(&e.created_at)) } }
                    td { a href={"/hosts/" (e.host_id)} { (e.hostname) } }
                    td { (e.item) " " (e.version) }
                    td { (badge(&e.status)) " " (e.message) }
                } } }
            } }
        }
    })
}

#[derive(Deserialize, Default)]
pub struct HostsQuery {
    q: Option<String>,
    tag: Option<String>,
    status: Option<String>,
    page: Option<u32>,
}

pub async fn hosts(
    State(state): State<Shared>,
    who: SignedIn,
    Query(q): Query<HostsQuery>,
) -> Response {
    match hosts_body(&state, &q, &who.scope()).await {
        Ok(body) => page("Hosts", &who, body),
        Err(e) => failed(&who, e),
    }
}

/// One page of hosts. Text and tag are filtered by the database; a status filter is applied
/// to what they match (so a page may hold fewer than [`PAGE`] hosts).
pub async fn hosts_body(
    state: &Shared,
    q: &HostsQuery,
    scope: &crate::policy::scope::Scope,
) -> Result<maud::Markup, AppError> {
    // A user limited to a tag sees only hosts with it.
    let visible = service::scope::visible_hosts(state, scope).await?;
    let text = q.q.as_deref().map(str::trim).filter(|t| !t.is_empty());
    let tag = q.tag.as_deref().map(str::trim).filter(|t| !t.is_empty());
    let status = q.status.as_deref().filter(|s| !s.is_empty());
    let page_no = q.page.unwrap_or(1).max(1);
    let pending = pending(state).await?;
    let failed: std::collections::HashSet<String> = state
        .store
        .last_failures()
        .await?
        .into_iter()
        .map(|f| f.host_id)
        .collect();
    let at = time::OffsetDateTime::now_utc();
    let (rows, total) = match (status, &visible) {
        (None, None) => {
            state
                .store
                .hosts_search(text, tag, (page_no - 1) * PAGE, PAGE)
                .await?
        }
        // Statuses are not columns: pick the matching ids from a light read, then load the
        // page's hosts.
        (s, _) => {
            page_by_status(
                state,
                (text, tag),
                (s.unwrap_or("any"), visible.as_ref()),
                page_no,
                (&pending, &failed),
                at,
            )
            .await?
        }
    };
    let catalog = state.catalog().await?;
    let none = Vec::new();
    let shown: Vec<(HostView, &'static str)> = rows
        .into_iter()
        .map(|(h, installed)| {
            let releases = catalog.for_tenant(h.tenant_id.as_deref());
            let v = crate::service::hosts::view(state, h, installed, &releases, at);
            let p = !pending.get(&v.id).unwrap_or(&none).is_empty();
            let s = host_status(&v, p, failed.contains(&v.id));
            (v, s)
        })
        .collect();
    let pages = total.div_ceil(PAGE as u64).max(1) as u32;
    let link = |p: u32| {
        format!(
            "/hosts?q={}&tag={}&status={}&page={p}",
            encode(text.unwrap_or("")),
            encode(tag.unwrap_or("")),
            encode(status.unwrap_or(""))
        )
    };
    Ok(html! {
        form.filters method="get" action="/hosts" {
            input type="search" name="q" value=(text.unwrap_or("")) placeholder="hostname, name or id" aria-label="Search";
            input type="text" name="tag" value=(tag.unwrap_or("")) placeholder="tag" aria-label="Tag";
            select name="status" aria-label="Status" {
                @for (v, label) in [("", "any status"), ("online", "online"), ("offline", "offline"), ("failed", "last install failed"), ("available", "update available"), ("available_security", "security update available"), ("available_bugfix", "bug fix available"), ("available_feature", "feature update available"), ("in_progress", "in progress"), ("up_to_date", "up to date")] {
                    option value=(v) selected[status.unwrap_or("") == v] { (label) }
                }
            }
            button type="submit" { "Filter" }
        }
        p.muted { (total) (if total == 1 { " host" } else { " hosts" }) @if pages > 1 { ", page " (page_no) " of " (pages) } }
        div.table { table #hosts {
            thead { tr { th { "Host" } th { "Name" } th { "Tags" } th { "Connectivity" } th { "Status" } th { "Installed" } th { "Last seen" } } }
            tbody { @for (h, st) in &shown { tr {
                td { a href={"/hosts/" (h.id)} { (h.facts.hostname) } }
                td { (h.friendly_name.as_deref().unwrap_or("")) }
                td { @for t in &h.tags { a.tag href={"/hosts?tag=" (encode(t))} { (t) } " " } (reported(h)) }
                td { @if !h.accepted { span.badge.avail { "awaiting acceptance" } " " } @if h.online { span.dot.on {} "online" } @else { span.dot {} "offline" } }
                td { (badge(st)) }
                td { @for i in &h.installed { (i.item) " " (i.version.as_ref().map(|v| v.to_string()).unwrap_or_else(|| "-".into())) br; } }
                td { (when(&h.last_seen)) }
            } } }
        } }
        nav.pages {
            @if page_no > 1 { a href=(link(page_no - 1)) rel="prev" { "← Previous" } }
            @if page_no < pages { a href=(link(page_no + 1)) rel="next" { "Next →" } }
        }
    })
}

/// The tags a device reports of itself that the operator has not given it: shown apart,
/// because they select nothing.
fn reported(h: &HostView) -> Markup {
    html! {
        @for t in h.reported_tags.iter().filter(|t| !h.tags.contains(t)) {
            span.tag.reported title="reported by the device; campaigns target the operator's tags (ferryctl hosts edit --tag)" { (t) "?" } " "
        }
    }
}

/// One page of the hosts (matching `text` and `tag`) whose status is `s`, and how many match.
async fn page_by_status(
    state: &Shared,
    (text, tag): (Option<&str>, Option<&str>),
    (s, visible): (&str, Option<&std::collections::HashSet<String>>),
    page_no: u32,
    (pending, failed): (
        &HashMap<String, Vec<String>>,
        &std::collections::HashSet<String>,
    ),
    at: time::OffsetDateTime,
) -> Result<
    (
        Vec<(
            crate::store::HostRow,
            Vec<ferry_manifests::wire::InstalledItem>,
        )>,
        u64,
    ),
    AppError,
> {
    let seen = state.store.hosts_seen(text, tag).await?;
    // `available_security` and the like: an update of that category available.
    let category = s.strip_prefix("available_");
    let outdated = if matches!(s, "available" | "up_to_date") || category.is_some() {
        crate::service::hosts::with_updates(state, category).await?
    } else {
        Default::default()
    };
    let ids: Vec<String> = seen
        .into_iter()
        .filter(|(id, _)| visible.is_none_or(|v| v.contains(id)))
        .filter(|(id, last)| match s {
            "any" => true,
            "online" => crate::service::hosts::connectivity(state, id, last, at).0,
            "offline" => !crate::service::hosts::connectivity(state, id, last, at).0,
            "in_progress" => pending.contains_key(id),
            "failed" => failed.contains(id),
            "available" => outdated.contains(id),
            _ if category.is_some() => outdated.contains(id),
            "up_to_date" => !outdated.contains(id),
            _ => false,
        })
        .map(|(id, _)| id)
        .collect();
    let page: Vec<String> = ids
        .iter()
        .skip(((page_no - 1) * PAGE) as usize)
        .take(PAGE as usize)
        .cloned()
        .collect();
    Ok((state.store.hosts_by_ids(&page).await?, ids.len() as u64))
}

pub async fn host(State(state): State<Shared>, who: SignedIn, Path(id): Path<String>) -> Response {
    match host_body(&state, &who, &id).await {
        Ok((title, body)) => page(&title, &who, body),
        Err(e) => failed(&who, e),
    }
}

async fn host_body(
    state: &Shared,
    who: &SignedIn,
    id: &str,
) -> Result<(String, maud::Markup), AppError> {
    let (host_id, _) = crate::service::hosts::resolve(state, id).await?;
    let (row, installed) = state
        .store
        .host(&host_id)
        .await?
        .ok_or_else(|| AppError::not_found(format!("host {id} was removed")))?;
    let releases = state.releases_for(row.tenant_id.as_deref()).await?;
    let h = crate::service::hosts::view(
        state,
        row,
        installed,
        &releases,
        time::OffsetDateTime::now_utc(),
    );
    let history = state.store.history(Some(&host_id), None, None).await?;
    let (software, upgrades) = state.store.host_software(&host_id).await?;
    let last = last_outcomes(&history);
    let pending = pending(state).await?;
    let none = Vec::new();
    let pending = pending.get(&host_id).unwrap_or(&none);
    let title = h
        .friendly_name
        .clone()
        .map(|n| format!("{n} ({})", h.facts.hostname))
        .unwrap_or_else(|| h.facts.hostname.clone());
    let action = |what: &str| format!("/hosts/{}/{what}", h.id);
    let operate = who.may("POST", "/hosts/{id}/update");
    let body = html! {
        p.muted {
            @if !h.accepted { span.badge.avail { "awaiting acceptance" } " · " }
            @if h.online { span.dot.on {} "online" } @else { span.dot {} "offline" }
            @if h.long_polling { " · long-polling" }
            " · " (h.facts.os) " " (h.facts.os_version) " · " (h.facts.arch) " · agent " (h.facts.agent_version)
            " · last seen " (when(&h.last_seen))
            @for t in &h.tags { " " a.tag href={"/hosts?tag=" (encode(t))} { (t) } }
            " " (reported(&h))
        }
        // Only what the user's role may do is offered.
        @if operate {
        div.actions {
            @if !h.accepted {
                form.inline method="post" action=(action("accept")) { (csrf(who)) button type="submit" { "Accept host" } }
            }
            form.inline method="post" action=(action("check")) { (csrf(who)) button type="submit" { "Check now" } }
            form.inline method="post" action=(action("batch")) {
                (csrf(who)) input type="hidden" name="category" value="";
                button type="submit" disabled[h.available.is_empty()] { "Update all" }
            }
            @for (cat, label) in [("security", "Security updates only"), ("bugfix", "Bug fixes only"), ("feature", "Features only")] {
                @let none = !h.available.iter().any(|a| a.category == cat);
                form.inline method="post" action=(action("batch")) {
                    (csrf(who)) input type="hidden" name="category" value=(cat);
                    button type="submit" disabled[none] title=[none.then(|| format!("no {cat} update is available for this host"))] { (label) }
                }
            }
        }
        details.labels {
            summary { "Tags and name…" }
            form.stack method="post" action=(action("edit")) {
                (csrf(who))
                label { "Tags (campaigns target these; comma-separated, empty clears) "
                    input type="text" name="tags" value=(h.tags.join(",")) placeholder="e.g. prod,eu-west"; }
                label { "Name " input type="text" name="friendly_name" value=(h.friendly_name.as_deref().unwrap_or("")); }
                button type="submit" { "Save" }
            }
        }
        details.confirm {
            summary { "Remove host…" }
            form.inline method="post" action=(action("remove")) {
                (csrf(who))
                span.muted { "Its record and history go and its credential stops working; the device must enrol again. " }
                button.danger type="submit" { "Remove " (h.facts.hostname) }
            }
        }
        }
        h2 { "Items" }
        div.table { table #items {
            thead { tr { th { "Item" } th { "Installed" } th { "Available" } th { "Status" } th {} } }
            tbody { @for i in &h.installed {
                @let avail = h.available.iter().find(|a| a.item == i.item);
                @let outcome = last.get(&(h.id.as_str(), i.item.as_str()));
                // Why its download waits (a window, a metered link, its site's first fetch),
                // as the device or the server said.
                @let waits = history.iter().find(|e| e.item == i.item && e.status == "pending")
                    .map(|e| e.message.as_str()).filter(|m| m.starts_with("waiting: "));
                @let status = if pending.contains(&i.item) { "in_progress" }
                    else if outcome.is_some_and(|e| is_failure(&e.status) && avail.is_some()) { "failed" }
                    else if avail.is_some() { "available" } else { "up_to_date" };
                tr data-item=(i.item) {
                    td { (i.item) }
                    td { (i.version.as_ref().map(|v| v.to_string()).unwrap_or_else(|| "-".into())) }
                    td { @if let Some(a) = avail { (a.version) " (" (a.category) ")" } }
                    td {
                        @if status == "failed" {
                            @if let Some(e) = outcome { a href={"/history/" (e.id)} { (badge(&e.status)) } }
                        } @else { (badge(status)) }
                        @if let (Some(why), "in_progress") = (waits, status) {
                            br; small.muted.waits { (why) }
                        }
                    }
                    td { @if let (Some(a), true) = (avail, operate) {
                        form.inline method="post" action=(action("update")) {
                            (csrf(who))
                            input type="hidden" name="item" value=(i.item);
                            input type="hidden" name="version" value=(a.version);
                            label.check title="Run the install's hooks in a terminal you type into" {
                                input type="checkbox" name="interactive";
                                " Interactive"
                            }
                            " "
                            label.check title="Keep what is typed into the terminal in the history (off: passwords typed there are not kept)" {
                                input type="checkbox" name="keep_input";
                                " Keep what is typed"
                            }
                            " "
                            button type="submit" disabled[pending.contains(&i.item)] { "Update to " (a.version) }
                        }
                    }
                    @let others = other_versions(&releases, &i.item, i.version.as_ref(), avail.map(|a| &a.version));
                    @if operate && !others.is_empty() {
                        details.versions {
                            summary { "Other versions…" }
                            form.inline method="post" action=(action("update")) {
                                (csrf(who))
                                input type="hidden" name="item" value=(i.item);
                                select name="version" aria-label={"Version of " (i.item) " to install"} {
                                    @for (v, older) in &others {
                                        option value=(v) { (v) @if *older { " (older)" } }
                                    }
                                }
                                " "
                                button type="submit" disabled[pending.contains(&i.item)] { "Install" }
                            }
                            @if others.iter().any(|(_, older)| *older) {
                                p.muted { "An older version installs only where its release allows a downgrade (ferryctl release build --allow-downgrade); other devices refuse it." }
                            }
                        }
                    } }
                }
            } }
        } }
        @if let Some(c) = &software {
            h2 { "Software" }
            p.muted #software-summary {
                (c.total) " packages found by its " code { "[[sources]]" } "; "
                (c.pending) " with an upgrade"
                @if c.security > 0 { ", " span.badge.fail { (c.security) " security" } }
                @if c.bugfix > 0 { ", " (c.bugfix) " bug fixes" }
                ". " a href={"/packages?upgrade=pending"} { "Every host's upgrades" }
                " · Check now refreshes them (" code { "apt-get update" } ")."
            }
            @if !upgrades.is_empty() {
                div.table { table #upgrades {
                    thead { tr { th { "Source" } th { "Package" } th { "Installed" } th { "Upgrade" } th { "Category" } } }
                    tbody { @for u in &upgrades { tr {
                        td { (u.source) }
                        td { (u.name) }
                        td { (u.version) }
                        td {
                            (u.latest.as_deref().unwrap_or(""))
                            @if let Some(r) = &u.release {
                                " " a.release href=(r.url) rel="noopener noreferrer" title=(r.summary) { "release notes" }
                                @if let Some(at) = &r.published_at { " " span.muted { (at.get(..10).unwrap_or(at)) } }
                            }
                        }
                        td { @if let Some(cat) = u.category { span.badge.fail[cat == ferry_manifests::manifest::Category::Security] { (cat) } } }
                    } } }
                } }
            }
        }
        h2 { "History" }
        (super::history::table(history.iter().rev().take(20)))
    };
    Ok((title, body))
}

/// The published (not withdrawn) versions of `item` a host could be sent besides the one it
/// has and the one offered to it, newest first, each marked when older than what it has.
fn other_versions(
    releases: &[ferry_manifests::wire::ReleaseView],
    item: &str,
    installed: Option<&semver::Version>,
    offered: Option<&semver::Version>,
) -> Vec<(semver::Version, bool)> {
    let mut out: Vec<(semver::Version, bool)> = releases
        .iter()
        .filter(|r| r.item == item && Some(&r.version) != installed && Some(&r.version) != offered)
        .map(|r| (r.version.clone(), installed.is_some_and(|i| r.version < *i)))
        .collect();
    out.sort_by(|a, b| b.0.cmp(&a.0));
    out
}

#[derive(Deserialize)]
pub struct ActionForm {
    item: Option<String>,
    version: Option<String>,
    category: Option<String>,
    /// "on" when the update's hooks should run in a terminal here.
    interactive: Option<String>,
    /// "on" when what is typed into that terminal is kept in the history (off by default:
    /// a password typed there is not kept).
    keep_input: Option<String>,
}

pub async fn check(
    State(state): State<Shared>,
    Path(id): Path<String>,
    CsrfForm(who, _): CsrfForm<super::NoFields>,
) -> Response {
    let req = CheckRequest {
        host: Some(id.clone()),
        item: None,
    };
    let result = service::hosts::check_now(&state, &req, &who.scope())
        .await
        .map(|_| "Asked the host to check in now.".to_string())
        .map_err(AppError::from);
    done(&state, &who, &format!("/hosts/{}", encode(&id)), result)
}

pub async fn accept(
    State(state): State<Shared>,
    Path(id): Path<String>,
    CsrfForm(who, _): CsrfForm<super::NoFields>,
) -> Response {
    let result = service::hosts::accept(&state, &id)
        .await
        .map(|h| {
            format!(
                "Accepted {}: it is given updates from its next check-in.",
                h.facts.hostname
            )
        })
        .map_err(AppError::from);
    done(&state, &who, &format!("/hosts/{}", encode(&id)), result)
}

pub async fn update(
    State(state): State<Shared>,
    Path(id): Path<String>,
    CsrfForm(who, f): CsrfForm<ActionForm>,
) -> Response {
    let to = format!("/hosts/{}", encode(&id));
    let interactive = f.interactive.is_some();
    let version = match f
        .version
        .as_deref()
        .filter(|v| !v.is_empty())
        .map(str::parse)
    {
        None => None,
        Some(Ok(v)) => Some(v),
        Some(Err(e)) => {
            return done(
                &state,
                &who,
                &to,
                Err(AppError::bad_request(format!("version: {e}"))),
            )
        }
    };
    let req = TriggerRequest {
        interactive,
        hide_input: f.keep_input.is_none(),
        host: id.clone(),
        item: f.item.unwrap_or_default(),
        version,
        force: false,
        metered_allowed: false,
    };
    let result = service::updates::ask(&state, &req, who.actor())
        .await
        .map_err(AppError::from);
    // An interactive install: straight to its terminal.
    if let (true, Ok(e)) = (interactive, &result) {
        let to = format!("/history/{}", e.id);
        return done(
            &state,
            &who,
            &to,
            Ok("Update queued: type into its terminal once the hooks run.".into()),
        );
    }
    // Queued: to its page, which follows the device's output as it runs.
    match result {
        Ok(e) => done(
            &state,
            &who,
            &format!("/history/{}", e.id),
            Ok(format!(
                "Update queued: {} {} (it starts at the host's next check-in).",
                e.item, e.version
            )),
        ),
        Err(e) => done(&state, &who, &to, Err(e)),
    }
}

#[derive(Deserialize)]
pub struct LabelsForm {
    tags: Option<String>,
    friendly_name: Option<String>,
}

pub async fn edit(
    State(state): State<Shared>,
    Path(id): Path<String>,
    CsrfForm(who, f): CsrfForm<LabelsForm>,
) -> Response {
    let edit = ferry_manifests::wire::HostEdit {
        tags: f.tags.map(|t| {
            t.split(',')
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
                .collect()
        }),
        friendly_name: f.friendly_name.map(|n| n.trim().to_string()),
        share_ok: false,
    };
    let before = service::hosts::labels(&state, &id).await;
    let result = service::hosts::edit(&state, &id, &edit)
        .await
        .map(|h| format!("Saved the tags and name of {}.", h.facts.hostname))
        .map_err(AppError::from);
    let after = service::hosts::labels(&state, &id).await;
    let mut answer = done(&state, &who, &format!("/hosts/{}", encode(&id)), result);
    let axum::Extension(change) = crate::policy::audit::Change::of(before.as_ref(), after.as_ref());
    answer.extensions_mut().insert(change);
    answer
}

pub async fn remove(
    State(state): State<Shared>,
    Path(id): Path<String>,
    CsrfForm(who, _): CsrfForm<super::NoFields>,
) -> Response {
    match service::hosts::remove(&state, &id).await {
        Ok(()) => done(&state, &who, "/hosts", Ok("Host removed.".into())),
        Err(e) => done(
            &state,
            &who,
            &format!("/hosts/{}", encode(&id)),
            Err(e.into()),
        ),
    }
}

pub async fn batch(
    State(state): State<Shared>,
    Path(id): Path<String>,
    CsrfForm(who, f): CsrfForm<ActionForm>,
) -> Response {
    let req = BatchRequest::Host {
        interactive: false,
        host: id.clone(),
        category: f.category.filter(|c| !c.is_empty()),
        exclude: vec![],
    };
    match service::batches::create(&state, req, who.actor()).await {
        Ok(b) => {
            let to = format!("/batches/{}", b.id);
            let started = format!("Batch started: {} updates.", b.entries.len());
            done(&state, &who, &to, Ok(started))
        }
        Err(e) => done(
            &state,
            &who,
            &format!("/hosts/{}", encode(&id)),
            Err(e.into()),
        ),
    }
}
