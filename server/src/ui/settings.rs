//! Software items and releases, and the settings: operator and enrolment tokens, MQTT
//! connections.

use axum::extract::{Path, State};
use axum::response::Response;
use ferry_manifests::manifest::Category;
use ferry_manifests::wire::{ItemEdit, MqttConnectionRequest, TokenRequest};
use maud::html;
use serde::Deserialize;

use super::{csrf, done, encode, failed, page, when};
use crate::auth::{CsrfForm, SignedIn};
use crate::error::AppError;
use crate::mqtt::connections;
use crate::service;
use crate::state::Shared;

#[derive(Deserialize)]
pub struct PackagesQuery {
    name: Option<String>,
    older_than: Option<String>,
    /// `""` any; `pending`: with an upgrade offered; or a category of upgrade.
    upgrade: Option<String>,
}

/// The hosts that have a package (found by their agents' `[[sources]]`), older than a
/// version if given, or every upgrade pending (of a category): `ferryctl packages search`
/// in the browser.
pub async fn packages(
    State(state): State<Shared>,
    who: SignedIn,
    axum::extract::Query(q): axum::extract::Query<PackagesQuery>,
) -> Response {
    let name = q
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty() && n.len() <= 256);
    let older = q
        .older_than
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty());
    let upgrade = q.upgrade.as_deref().unwrap_or("");
    let category = upgrade.parse::<Category>().ok();
    let search = service::packages::Search {
        name,
        older_than: older,
        pending: upgrade == "pending",
        category,
    };
    // Without a name, "which hosts have (security) upgrades pending": hosts in numbers.
    let scope = who.scope();
    let by_host = if name.is_none() && (search.pending || category.is_some()) {
        match state.store.hosts_pending(category).await {
            Ok(mut h) => {
                if let Err(e) =
                    service::scope::keep_visible(&state, &scope, &mut h, |h| &h.host_id).await
                {
                    return failed(&who, e);
                }
                Some(h)
            }
            Err(e) => return failed(&who, e),
        }
    } else {
        None
    };
    let hits = if name.is_some() {
        match service::packages::search(&state, &search).await {
            Ok(mut h) => {
                if let Err(e) =
                    service::scope::keep_visible(&state, &scope, &mut h, |h| &h.host_id).await
                {
                    return failed(&who, e);
                }
                Some(h)
            }
            Err(e) => return failed(&who, e),
        }
    } else {
        None
    };
    let hosts = hits.as_ref().map(|h| {
        h.iter()
            .map(|h| h.host_id.as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    });
    let choices = [
        ("", "any version"),
        ("pending", "with an upgrade pending"),
        ("security", "with a security upgrade pending"),
        ("bugfix", "with a bugfix upgrade pending"),
    ];
    let body = html! {
        form.filters method="get" action="/packages" {
            input type="search" name="name" value=(name.unwrap_or("")) placeholder="package, e.g. openssl" aria-label="Package name";
            input type="text" name="older_than" value=(older.unwrap_or("")) placeholder="older than, e.g. 3.0.15" aria-label="Older than version";
            select name="upgrade" aria-label="Upgrades" {
                @for (value, label) in choices { option value=(value) selected[value == upgrade] { (label) } }
            }
            button type="submit" { "Search" }
        }
        p.muted { "Software the agents' " code { "[[sources]]" } " found on their hosts, with the upgrade each host's own source offers (docs/sources.md); versions compare as dpkg compares them. Without a name: the hosts with upgrades pending." }
        @if let Some(hosts) = &by_host {
            @if hosts.is_empty() {
                p #no-hits { "No host has " @if let Some(c) = category { (c) " " } "upgrades pending." }
            } @else {
                p { (hosts.len()) @if hosts.len() == 1 { " host" } @else { " hosts" } }
                div.table { table #pending-hosts {
                    thead { tr { th { "Host" } th { "Pending" } th { "Security" } th { "Bug fixes" } th { "Features" } th { "Packages" } } }
                    tbody { @for h in hosts { tr {
                        td { a href={"/hosts/" (h.host_id)} { (h.hostname) } }
                        td { (h.pending) }
                        td { @if h.security > 0 { span.badge.fail { (h.security) } } @else { "0" } }
                        td { (h.bugfix) }
                        td { (h.feature) }
                        td { (h.total) }
                    } } }
                } }
            }
        }
        @if let (Some(hits), Some(hosts)) = (&hits, hosts) {
            @if hits.is_empty() {
                p #no-hits {
                    "No host has "
                    @match name { Some(n) => { (n) }, None => { "any package" } }
                    @if let Some(v) = older { " older than " (v) }
                    @if let Some(c) = category { " with a " (c) " upgrade pending" } @else if search.pending { " with an upgrade pending" }
                    "."
                }
            } @else {
                p { (hosts) @if hosts == 1 { " host" } @else { " hosts" } @if name.is_none() { ", " (hits.len()) " packages" } }
                div.table { table #packages {
                    thead { tr { th { "Host" } th { "Source" } th { "Package" } th { "Version" } th { "Upgrade" } } }
                    tbody { @for h in hits { tr {
                        td { a href={"/hosts/" (h.host_id)} { (h.hostname) } }
                        td { (h.source) }
                        td { (h.name) }
                        td { (h.version) }
                        td { @if let Some(l) = &h.latest {
                            (l)
                            @if let Some(c) = h.category { " " span.badge.fail[c == Category::Security] { (c) } }
                        } }
                    } } }
                } }
            }
        }
    };
    page("Packages", &who, body)
}

pub async fn items(State(state): State<Shared>, who: SignedIn) -> Response {
    let catalog = match state.catalog().await {
        Ok(c) => c,
        Err(e) => return failed(&who, e),
    };
    let tenant = who.user().tenant_id.clone();
    let items = match service::items::list(&state).await {
        Ok(mut i) => {
            // The user's tenant's items (all of them with one tenant).
            i.retain(|i| catalog.is_of(&i.name, Some(&tenant)));
            i
        }
        Err(e) => return failed(&who, e),
    };
    // Every release, withdrawn ones too (marked), unlike what devices are offered.
    let releases = match state.store.releases(None).await {
        Ok(r) => r,
        Err(e) => return failed(&who, e),
    };
    let body = html! {
        @for i in &items {
            section.item #{"item-" (i.name)} {
                h2 {
                    @if let Some(icon) = &i.icon_url { img.icon src=(icon) alt="" width="24" height="24"; " " }
                    (i.name)
                    @if i.featured { " " span.badge.prog { "featured" } }
                    @if i.deactivated { " " span.badge.fail { "deactivated" } }
                }
                @if who.may("POST", "/items/{name}") { form.inline method="post" action={"/items/" (encode(&i.name))} {
                    (csrf(&who))
                    label { "Icon URL " input type="url" name="icon_url" value=(i.icon_url.as_deref().unwrap_or("")) placeholder="https://…"; }
                    label { input type="checkbox" name="featured" value="true" checked[i.featured]; " featured" }
                    button type="submit" { "Save" }
                } }
                div.table { table {
                    thead { tr { th { "Version" } th { "Category" } th { "Released" } th { "Notes" } th {} } }
                    tbody { @for r in releases.iter().filter(|r| r.item == i.name).rev() { tr.withdrawn[r.withdrawn_at.is_some()] {
                        td { (r.version) }
                        td { (r.category) }
                        td { (when(&r.released_at)) }
                        td {
                            @if let Some(at) = &r.withdrawn_at {
                                span.badge.fail { "withdrawn" } " " (when(at)) ": " (r.withdrawn_reason.as_deref().unwrap_or("")) br;
                            }
                            (r.notes)
                            @if let Some(u) = r.release_url.as_ref().filter(|u| ferry_manifests::invalid::validate_release_url(u).is_ok()) { " " a href=(u) rel="noreferrer" { "release page" } }
                        }
                        td { @if r.withdrawn_at.is_none() {
                            // Two steps, no script: open, confirm.
                            @if who.may("POST", "/items/{name}/{version}/batch") { details.confirm {
                                summary { "Update every host…" }
                                form.inline method="post" action={"/items/" (encode(&r.item)) "/" (r.version) "/batch"} {
                                    (csrf(&who))
                                    span.muted { "Every host with " (r.item) " not at " (r.version) " gets it now, all at once (for waves and a failure threshold, start a " a href="/campaigns" { "campaign" } "). " }
                                    button type="submit" { "Update every host to " (r.version) }
                                }
                            } }
                            // Two steps, no script: open, say why, confirm.
                            @if who.may("POST", "/items/{name}/{version}/withdraw") { details.withdraw {
                                summary { "Withdraw…" }
                                form.stack method="post" action={"/items/" (encode(&r.item)) "/" (r.version) "/withdraw"} {
                                    (csrf(&who))
                                    label { "Why " input type="text" name="reason" maxlength="512" placeholder="e.g. crashes on start"; }
                                    p.muted { "It is no longer offered; installs of it not yet started and its campaigns are cancelled." }
                                    button.danger type="submit" { "Withdraw " (r.item) " " (r.version) }
                                }
                            } }
                        } }
                    } } }
                } }
            }
        }
        @if items.is_empty() { p { "No releases yet: " code { "ferryctl release publish" } "." } }
    };
    page("Software items", &who, body)
}

#[derive(Deserialize)]
pub struct ItemForm {
    icon_url: Option<String>,
    featured: Option<String>,
}

pub async fn edit_item(
    State(state): State<Shared>,
    Path(name): Path<String>,
    CsrfForm(who, f): CsrfForm<ItemForm>,
) -> Response {
    let edit = ItemEdit {
        featured: Some(f.featured.is_some()),
        icon_url: Some(f.icon_url.unwrap_or_default().trim().to_string()),
        deactivated: None,
    };
    let result = match service::releases::require_item_of(
        &state,
        &name,
        Some(&who.user().tenant_id),
    )
    .await
    {
        Ok(()) => service::items::edit(&state, &name, &edit)
            .await
            .map(|i| format!("{} saved.", i.name))
            .map_err(AppError::from),
        Err(e) => Err(e.into()),
    };
    done(&state, &who, "/items", result)
}

#[derive(Deserialize)]
pub struct WithdrawForm {
    reason: Option<String>,
}

pub async fn withdraw_release(
    State(state): State<Shared>,
    Path((item, version)): Path<(String, String)>,
    CsrfForm(who, f): CsrfForm<WithdrawForm>,
) -> Response {
    let mine = service::releases::require_item_of(&state, &item, Some(&who.user().tenant_id)).await;
    let result = match (mine, version.parse::<semver::Version>()) {
        (Err(e), _) => Err(e.into()),
        (Ok(()), Ok(v)) => {
            service::releases::withdraw(&state, &item, &v, f.reason.as_deref().unwrap_or(""))
                .await
                .map(|r| {
                    format!(
                        "Withdrew {} {}: it is no longer offered.",
                        r.item, r.version
                    )
                })
                .map_err(AppError::from)
        }
        (Ok(()), Err(e)) => Err(AppError::bad_request(format!("version {version:?}: {e}"))),
    };
    done(
        &state,
        &who,
        &format!("/items#item-{}", encode(&item)),
        result,
    )
}

/// `ferryctl update batch-item`: every host with the item to this version.
pub async fn batch_item(
    State(state): State<Shared>,
    Path((item, version)): Path<(String, String)>,
    CsrfForm(who, _): CsrfForm<super::NoFields>,
) -> Response {
    let back = format!("/items#item-{}", encode(&item));
    let to_version = match version.parse::<semver::Version>() {
        Ok(v) => v,
        Err(e) => {
            let e = AppError::bad_request(format!("version {version:?}: {e}"));
            return done(&state, &who, &back, Err(e));
        }
    };
    let req = ferry_manifests::wire::BatchRequest::Item {
        item,
        to_version,
        hosts: vec![],
    };
    // Every host of the user's tenant, in an install of several.
    let req = match service::scope::check_batch(&state, &who.scope(), who.user_name(), req).await {
        Ok(req) => req,
        Err(e) => return done(&state, &who, &back, Err(e.into())),
    };
    match service::batches::create(&state, req, who.actor()).await {
        Ok(b) => {
            let started = format!("Batch started: {} updates.", b.entries.len());
            done(&state, &who, &format!("/batches/{}", b.id), Ok(started))
        }
        Err(e) => done(&state, &who, &back, Err(e.into())),
    }
}

/// The audit log, newest last (the admin's).
pub async fn audit(State(state): State<Shared>, who: SignedIn) -> Response {
    let entries = match state
        .store
        .audit(&who.user().tenant_id, None, None, 500)
        .await
    {
        Ok(e) => e,
        Err(e) => return failed(&who, e),
    };
    let body = html! {
        p.muted { "Every change an operator asked for, refused or not: the newest 500. " code { "ferryctl audit list" } " reads them all." }
        div.table { table #audit {
            thead { tr { th { "When" } th { "User" } th { "Request" } th { "Status" } th { "From" } th { "Before" } th { "After" } } }
            tbody { @for e in &entries { tr {
                td { (when(&e.at)) }
                td { (e.user) }
                td { code { (e.method) " " (e.path) } }
                td { (e.status) }
                td { (e.address.as_deref().unwrap_or("-")) }
                td { @if let Some(b) = &e.before { code { (b.to_string()) } } }
                td { @if let Some(a) = &e.after { code { (a.to_string()) } } }
            } } }
        } }
    };
    page("Audit log", &who, body)
}

pub async fn settings(State(state): State<Shared>, who: SignedIn) -> Response {
    let tokens = match service::tokens::list(&state, &who.user().tenant_id).await {
        Ok(t) => t,
        Err(e) => return failed(&who, e),
    };
    let mqtt = match connections::list(&state, who.user()).await {
        Ok(m) => m,
        Err(e) => return failed(&who, e),
    };
    // The token this session signed in with, marked in the list.
    let mine = match who.token_hash() {
        Some(hash) => state.store.token_id(hash).await.ok().flatten(),
        None => None,
    };
    let body = html! {
        h2 { "Tokens" }
        p.muted { "Operators sign in and drive the API with an operator token; devices enrol with an enrolment token. A token is shown once, when it is created." }
        div.table { table #tokens {
            thead { tr { th { "Name" } th { "Kind" } th { "Created" } th { "Revoked" } th {} } }
            tbody { @for t in &tokens { tr.mine[mine.as_deref() == Some(t.id.as_str())] {
                td { (t.name) @if mine.as_deref() == Some(t.id.as_str()) { " " span.badge.prog { "this session" } } }
                td { (t.kind) }
                td { (when(&t.created_at)) }
                td { (t.revoked_at.as_deref().unwrap_or("-")) }
                td { @if t.revoked_at.is_none() {
                    // Two steps, no script: a revoked token is refused at once, everywhere.
                    details.confirm {
                        summary { "Revoke…" }
                        form.inline method="post" action={"/settings/tokens/" (t.id) "/revoke"} {
                            (csrf(&who))
                            @if mine.as_deref() == Some(t.id.as_str()) {
                                span.muted { "You are signed in with this token: revoking it signs you out. " }
                            }
                            button.danger type="submit" { "Revoke " (t.name) }
                        }
                    }
                } }
            } } }
        } }
        form.inline method="post" action="/settings/tokens" {
            (csrf(&who))
            label { "Name " input type="text" name="name" required; }
            select name="kind" aria-label="Kind" {
                option value="operator" { "operator" }
                option value="enrol" { "fleet enrolment" }
            }
            button type="submit" { "Create token" }
        }
        // The user's tenant's broker connections.
        @if who.may("POST", "/settings/mqtt") {
        h2 { "MQTT connections" }
        div.table { table #mqtt {
            thead { tr { th { "Name" } th { "Broker" } th { "State" } th { "Published" } th { "From" } th { "Last error" } th {} } }
            tbody { @for c in &mqtt { tr {
                td { (c.name) }
                td { (c.url) }
                td { @if c.connected { span.dot.on {} "connected" } @else { span.dot {} "not connected" } }
                td { (c.published) }
                td { (c.source) }
                td { (c.last_error.as_deref().unwrap_or("")) }
                td {
                    form.inline method="post" action={"/settings/mqtt/" (encode(&c.name)) "/test"} {
                        (csrf(&who)) button type="submit" { "Test" }
                    }
                    @if c.source == "api" {
                        form.inline method="post" action={"/settings/mqtt/" (encode(&c.name)) "/remove"} {
                            (csrf(&who)) button.danger type="submit" { "Remove" }
                        }
                    }
                }
            } } }
        } }
        details {
            summary { "Add a broker connection" }
            form.stack method="post" action="/settings/mqtt" {
                (csrf(&who))
                label { "Name " input type="text" name="name" required; }
                label { "Broker URL " input type="text" name="url" required placeholder="mqtt://broker:1883 or mqtts://broker:8883"; }
                label { "Username " input type="text" name="username" autocomplete="off"; }
                label { "Password " input type="password" name="password" autocomplete="new-password"; }
                label { "CA certificate (PEM, mqtts only) " textarea name="ca_pem" rows="3" {} }
                label { "Topic prefix " input type="text" name="topic_prefix" placeholder="ferry"; }
                label { input type="checkbox" name="discovery" value="true" checked; " Home Assistant discovery" }
                p.muted { "The password and CA are stored encrypted and never shown again." }
                button type="submit" { "Add connection" }
            }
        }
        }
    };
    page("Settings", &who, body)
}

#[derive(Deserialize)]
pub struct TokenForm {
    name: String,
    kind: String,
}

pub async fn create_token(
    State(state): State<Shared>,
    CsrfForm(who, f): CsrfForm<TokenForm>,
) -> Response {
    let req = TokenRequest {
        name: f.name,
        kind: Some(f.kind),
        expires_in_days: None,
        uses: None,
        needs_acceptance: false,
        user: None,
    };
    let result = service::tokens::create(&state, &req, who.user())
        .await
        .map(|t| {
            format!(
                "{} token {} created; copy it now, it is not shown again: {}",
                t.kind,
                t.name,
                t.token.unwrap_or_default()
            )
        });
    done(&state, &who, "/settings", result.map_err(AppError::from))
}

pub async fn revoke_token(
    State(state): State<Shared>,
    Path(id): Path<String>,
    CsrfForm(who, _): CsrfForm<super::NoFields>,
) -> Response {
    let result = service::tokens::revoke(&state, &who.user().tenant_id, &id)
        .await
        .map(|_| "Token revoked.".to_string())
        .map_err(AppError::from);
    done(&state, &who, "/settings", result)
}

#[derive(Deserialize)]
pub struct MqttForm {
    name: String,
    url: String,
    username: Option<String>,
    password: Option<String>,
    ca_pem: Option<String>,
    topic_prefix: Option<String>,
    discovery: Option<String>,
}

pub async fn add_mqtt(
    State(state): State<Shared>,
    CsrfForm(who, f): CsrfForm<MqttForm>,
) -> Response {
    let text = |v: Option<String>| v.map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
    let req = MqttConnectionRequest {
        name: Some(f.name.trim().to_string()),
        url: Some(f.url.trim().to_string()),
        username: text(f.username),
        password: f.password.filter(|p| !p.is_empty()),
        ca_pem: text(f.ca_pem),
        client_id: None,
        topic_prefix: text(f.topic_prefix),
        discovery: Some(f.discovery.is_some()),
        discovery_prefix: None,
    };
    let result = connections::add(&state, who.user(), req)
        .await
        .map(|c| format!("MQTT connection {} added.", c.name))
        .map_err(AppError::from);
    done(&state, &who, "/settings", result)
}

pub async fn mqtt_action(
    State(state): State<Shared>,
    Path((name, action)): Path<(String, String)>,
    CsrfForm(who, _): CsrfForm<super::NoFields>,
) -> Response {
    let result = match action.as_str() {
        "remove" => connections::remove(&state, who.user(), &name)
            .await
            .map(|_| format!("MQTT connection {name} removed."))
            .map_err(AppError::from),
        "test" => connections::test(&state, who.user(), &name)
            .await
            .map_err(AppError::from)
            .map(|v| match (v.connected, v.last_error) {
                (true, _) => format!("{name} is connected to {}.", v.url),
                (false, Some(e)) => format!("{name} is not connected: {e}"),
                (false, None) => format!("{name} is not connected yet."),
            }),
        other => Err(AppError::not_found(format!("no MQTT action {other:?}"))),
    };
    done(&state, &who, "/settings", result)
}
