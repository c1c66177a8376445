//! Campaigns (create, watch per wave and host, pause, resume, cancel) and batches.

use axum::extract::{Path, Query, State};
use axum::response::Response;
use ferry_manifests::wire::{CampaignRequest, CampaignTarget, CampaignView};
use maud::html;
use serde::Deserialize;

use super::{badge, csrf, done, encode, failed, page, when};
use crate::auth::{CsrfForm, SignedIn};
use crate::error::AppError;
use crate::service::campaigns::requests as campaigns;
use crate::service::{self};
use crate::state::Shared;

#[derive(Deserialize)]
pub struct StatusFilter {
    status: Option<String>,
}

fn status(f: &StatusFilter) -> Option<&str> {
    f.status.as_deref().filter(|s| !s.is_empty())
}

fn status_filter(action: &str, current: Option<&str>, statuses: &[&str]) -> maud::Markup {
    html! {
        form.filters method="get" action=(action) {
            select name="status" aria-label="Status" {
                option value="" { "any status" }
                @for s in statuses { option value=(s) selected[current == Some(*s)] { (s) } }
            }
            button type="submit" { "Filter" }
        }
    }
}

pub async fn campaigns(
    State(state): State<Shared>,
    who: SignedIn,
    Query(f): Query<StatusFilter>,
) -> Response {
    campaigns_page(&state, &who, &f, None).await
}

/// The campaigns page; with `refused`, the form as it was sent, its values kept, and why it
/// was refused, in red.
async fn campaigns_page(
    state: &Shared,
    who: &SignedIn,
    f: &StatusFilter,
    refused: Option<(&CampaignForm, String)>,
) -> Response {
    let sent = refused.as_ref().map(|(f, _)| *f);
    let val = |pick: fn(&CampaignForm) -> &Option<String>| {
        sent.and_then(|f| pick(f).clone()).unwrap_or_default()
    };
    let target = sent.map(|f| f.target.as_str()).unwrap_or("all");
    let release = sent.map(|f| f.release.as_str()).unwrap_or("");
    let list = match campaigns::list(state, status(f)).await {
        Ok(mut l) => {
            if let Err(e) = crate::service::scope::keep_campaigns(state, &who.scope(), &mut l).await
            {
                return failed(who, e);
            }
            l
        }
        Err(e) => return failed(who, e),
    };
    let releases = match state.releases().await {
        Ok(r) => r,
        Err(e) => return failed(who, e),
    };
    let body = html! {
        (status_filter("/campaigns", f.status.as_deref(), &["running", "paused", "completed", "cancelled", "failed"]))
        div.table { table #campaigns {
            thead { tr { th { "Campaign" } th { "Release" } th { "Status" } th { "Wave" } th { "Installed" } th { "Failed" } th { "Created" } } }
            tbody { @for c in list.iter().rev() { tr {
                td { a href={"/campaigns/" (c.id)} { (c.name) } }
                td { (c.item) " " (c.version) }
                td { (badge(&c.status)) }
                td { (c.open_wave + 1) " of " (c.waves) }
                td { (c.counts.get("installed").copied().unwrap_or(0)) " of " (c.members.len()) }
                td { @let failed = ["failed", "rolled_back", "refused"].iter().map(|s| c.counts.get(*s).copied().unwrap_or(0)).sum::<usize>();
                     @if failed > 0 { span.badge.fail { (failed) } } @else { "0" } }
                td { (when(&c.created_at)) }
            } } }
        } }
        @if who.may("POST", "/campaigns") { details #new-campaign open[list.is_empty() || sent.is_some()] {
            summary { h2.inline { "New campaign" } }
            @if let Some((_, why)) = &refused { p.flash.bad role="alert" { (why) } }
            form.stack method="post" action="/campaigns" {
                (csrf(who))
                label { "Name " input type="text" name="name" placeholder="optional" value=(val(|f| &f.name)); }
                label { "Release "
                    select name="release" required {
                        // Nothing preselected: a release is chosen, never defaulted.
                        option value="" selected[release.is_empty()] disabled { "Choose a release…" }
                        @for r in releases.iter().rev() {
                            @let v = format!("{}@{}", r.item, r.version);
                            option value=(v) selected[release == v] { (r.item) " " (r.version) " (" (r.category) ")" }
                        }
                    }
                }
                fieldset {
                    legend { "Targets" }
                    label { input type="radio" name="target" value="all" checked[target == "all"]; " every host with the item" }
                    label { input type="radio" name="target" value="tags" checked[target == "tags"]; " hosts with any of these tags" }
                    label { input type="radio" name="target" value="hosts" checked[target == "hosts"]; " these hosts" }
                    input type="text" name="values" placeholder="tags or hostnames, comma-separated" aria-label="Tags or hosts" value=(val(|f| &f.values));
                }
                label { input type="checkbox" name="require_acceptance" value="true" checked[sent.is_some_and(|f| f.require_acceptance.is_some())]; " Each host must accept (on the device: --running-mode=campaign_accept)" }
                label { input type="checkbox" name="require_approval" value="true" checked[sent.is_some_and(|f| f.require_approval.is_some())]; " Another user with the approver role must approve it before its first wave opens" }
                label { "Waves " input type="text" name="waves" placeholder="default: one wave up to 5 hosts, else 1,10%,50%,100%" value=(val(|f| &f.waves)); }
                label { "Stop when more than this share fails (%) " input type="number" name="max_failure_pct" min="0" max="100" step="any" placeholder="default" value=(val(|f| &f.max_failure_pct)); }
                label { "Succeed at this share installed (%) " input type="number" name="success_pct" min="0" max="100" step="any" placeholder="default" value=(val(|f| &f.success_pct)); }
                label { "Window (device's local time) " input type="text" name="window" placeholder="e.g. 02:00-05:00" value=(val(|f| &f.window)); }
                label { "Watch each wave's health for " input type="text" name="observe" placeholder="e.g. 30m (default: off)" value=(val(|f| &f.observe)); }
                label { input type="checkbox" name="rollback_on_regression" value="true" checked[sent.is_some_and(|f| f.rollback_on_regression.is_some())]; " Roll a wave that regresses back to the release each host had" }
                button type="submit" { "Review campaign" }
            }
        } }
    };
    page("Campaigns", who, body)
}

/// The campaign a form describes, and how many hosts each wave reaches, before it is
/// created: the same form again, hidden, with a button that creates it.
fn review(who: &SignedIn, f: &CampaignForm, per_wave: &[usize]) -> Response {
    let total: usize = per_wave.iter().sum();
    let hidden = |name: &'static str, value: &Option<String>| {
        html! { @if let Some(v) = value { input type="hidden" name=(name) value=(v); } }
    };
    let body = html! {
        p { "Release " strong { (f.release.replace('@', " ")) } }
        @if total == 0 {
            p.error { "No host matches this campaign now. Create it only if hosts will join as they check in (tag them with ferryctl hosts edit --tag, or on their pages)." }
        } @else {
            p { "It will reach " strong { (total) " " (if total == 1 { "host" } else { "hosts" }) } " now, in " (per_wave.len()) " " (if per_wave.len() == 1 { "wave" } else { "waves" }) ":" }
            div.table { table #review {
                thead { tr { th { "Wave" } th { "Hosts" } } }
                tbody { @for (i, n) in per_wave.iter().enumerate() { tr { td { (i + 1) } td { (n) } } } }
            } }
        }
        form.stack method="post" action="/campaigns" {
            (csrf(who))
            input type="hidden" name="release" value=(f.release);
            input type="hidden" name="target" value=(f.target);
            (hidden("name", &f.name))
            (hidden("values", &f.values))
            (hidden("require_acceptance", &f.require_acceptance))
            (hidden("require_approval", &f.require_approval))
            (hidden("waves", &f.waves))
            (hidden("max_failure_pct", &f.max_failure_pct))
            (hidden("success_pct", &f.success_pct))
            (hidden("window", &f.window))
            (hidden("observe", &f.observe))
            (hidden("rollback_on_regression", &f.rollback_on_regression))
            input type="hidden" name="confirm" value="yes";
            @if total == 0 { input type="hidden" name="allow_empty" value="true"; }
            button type="submit" { "Create campaign" }
            " " a href="/campaigns" { "Cancel" }
        }
    };
    page("Review the campaign", who, body)
}

#[derive(Deserialize, Clone)]
pub struct CampaignForm {
    name: Option<String>,
    release: String,
    target: String,
    values: Option<String>,
    require_acceptance: Option<String>,
    require_approval: Option<String>,
    waves: Option<String>,
    max_failure_pct: Option<String>,
    success_pct: Option<String>,
    window: Option<String>,
    /// The observation window after each wave (`30m`).
    observe: Option<String>,
    rollback_on_regression: Option<String>,
    /// Set by the review page's button: create it (without it the form is reviewed first).
    confirm: Option<String>,
    allow_empty: Option<String>,
}

/// The API request a campaign form makes (the checks are the API's).
fn campaign_request(f: &CampaignForm) -> Result<CampaignRequest, AppError> {
    let f = f.clone();
    let (item, version) = f
        .release
        .split_once('@')
        .ok_or_else(|| AppError::bad_request("pick a release"))?;
    let version = version
        .parse()
        .map_err(|e| AppError::bad_request(format!("version: {e}")))?;
    let values: Vec<String> = f
        .values
        .unwrap_or_default()
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect();
    let target = match f.target.as_str() {
        "all" => CampaignTarget::All,
        "tags" => CampaignTarget::Tags(values),
        "hosts" => CampaignTarget::Hosts(values),
        other => return Err(AppError::bad_request(format!("unknown target {other:?}"))),
    };
    let share = |v: Option<String>, what: &str| -> Result<Option<f64>, AppError> {
        match v.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => v
                .parse::<f64>()
                .map(|p| Some(p / 100.0))
                .map_err(|_| AppError::bad_request(format!("{what}: {v:?} is not a number"))),
        }
    };
    let text = |v: Option<String>| v.map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
    Ok(CampaignRequest {
        name: text(f.name),
        item: item.to_string(),
        version,
        target,
        require_acceptance: f.require_acceptance.is_some(),
        waves: text(f.waves),
        success_threshold: share(f.success_pct, "success share")?,
        max_failure_rate: share(f.max_failure_pct, "failure share")?,
        window: text(f.window),
        allow_empty: f.allow_empty.is_some(),
        require_approval: f.require_approval.is_some(),
        observe_secs: text(f.observe)
            .map(|o| ferry_manifests::wire::parse_duration_secs(&o))
            .transpose()
            .map_err(|e| AppError::bad_request(format!("watch each wave: {e}")))?,
        rollback_on_regression: f.rollback_on_regression.is_some(),
        regression_max_share: None,
        regression_max_excess: None,
        regression_min_hosts: None,
    })
}

/// An approver approves a campaign that waits for it: its first wave opens.
pub async fn approve_campaign(
    State(state): State<Shared>,
    Path(id): Path<String>,
    CsrfForm(who, _): CsrfForm<super::NoFields>,
) -> Response {
    let to = format!("/campaigns/{id}");
    let approved = crate::service::campaigns::requests::approve(&state, &id, who.user_name())
        .await
        .map(|c| format!("Campaign {} approved; its first wave is open.", c.name))
        .map_err(AppError::from);
    done(&state, &who, &to, approved)
}

pub async fn create_campaign(
    State(state): State<Shared>,
    CsrfForm(who, f): CsrfForm<CampaignForm>,
) -> Response {
    // A refusal shows the form again as it was sent, with why.
    let no_filter = StatusFilter { status: None };
    let refused = |e: AppError| format!("Refused: {}", e.message());
    let req = match campaign_request(&f) {
        Ok(req) => req,
        Err(e) => return campaigns_page(&state, &who, &no_filter, Some((&f, refused(e)))).await,
    };
    // A user limited to a tag targets only their hosts.
    if let Err(e) =
        crate::service::scope::check_target(&state, &who.scope(), who.user_name(), &req.target)
            .await
    {
        return campaigns_page(&state, &who, &no_filter, Some((&f, refused(e.into())))).await;
    }
    if f.confirm.as_deref() != Some("yes") {
        return match campaigns::preview(&state, &req, &who.user().tenant_id).await {
            Ok(per_wave) => review(&who, &f, &per_wave),
            Err(e) => campaigns_page(&state, &who, &no_filter, Some((&f, refused(e.into())))).await,
        };
    }
    let created = campaigns::create(&state, req, who.user())
        .await
        .map_err(AppError::from);
    match created {
        Ok(c) => {
            let to = format!("/campaigns/{}", c.id);
            done(
                &state,
                &who,
                &to,
                Ok(format!("Campaign {} created.", c.name)),
            )
        }
        Err(e) => done(&state, &who, "/campaigns", Err(e)),
    }
}

/// What a running campaign waits for before its next wave opens, in words: the open wave's
/// installs against `success_threshold`, acceptance, the window.
fn waiting_for(c: &CampaignView) -> Option<String> {
    if c.status != "running" || c.open_wave + 1 >= c.waves {
        return None;
    }
    let wave: Vec<_> = c.members.iter().filter(|m| m.wave == c.open_wave).collect();
    let installed = wave.iter().filter(|m| m.status == "installed").count();
    let needed = (c.success_threshold * wave.len() as f64).ceil() as usize;
    let mut why = format!(
        "Wave {} opens once {} of the {} hosts of wave {} have installed (success threshold {:.0}%); {} have.",
        c.open_wave + 2,
        needed.max(1),
        wave.len(),
        c.open_wave + 1,
        c.success_threshold * 100.0,
        installed
    );
    let awaiting = wave
        .iter()
        .filter(|m| m.status == "awaiting_acceptance")
        .count();
    if awaiting > 0 {
        why.push_str(&format!(" {awaiting} await their device's acceptance."));
    }
    if let Some(w) = &c.window {
        why.push_str(&format!(" Installs start only within {w} (device time)."));
    }
    Some(why)
}

/// The watched wave against the control group: the verdict, the two failure shares, the
/// failing hosts, and the shares over the window as a small chart.
fn observation(c: &CampaignView) -> maud::Markup {
    let Some(o) = &c.observation else {
        return html! {
            @if c.observe_secs > 0 {
                p.muted #observation { "Each wave is watched for " (c.observe_secs) " s after its installs"
                    @if c.rollback_on_regression { "; a wave that regresses is rolled back" } "." }
            }
        };
    };
    let n = o.series.len().max(2) - 1;
    let points = |share: &dyn Fn(&ferry_manifests::wire::SharePoint) -> f64| {
        o.series
            .iter()
            .enumerate()
            .map(|(i, p)| {
                format!(
                    "{:.1},{:.1}",
                    i as f64 * 300.0 / n as f64 + 10.0,
                    110.0 - share(p) * 100.0
                )
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let pct = |v: f64| format!("{:.0}%", v * 100.0);
    html! {
        section #observation {
            h2 { "Observation of wave " (o.wave + 1) }
            p { (badge(&o.verdict)) " "
                @if o.left_secs > 0 { (o.left_secs) " s left · " }
                (o.wave_hosts) " updated " (if o.wave_hosts == 1 { "host" } else { "hosts" }) ", " (pct(o.wave_share)) " failing · "
                (o.control_hosts) " in the control group, " (pct(o.control_share)) " failing" }
            @if !o.probes.is_empty() { p { "Failed: " (o.probes) } }
            svg #observation-chart viewBox="0 0 320 120" width="320" height="120" role="img"
                aria-label={"Failure share over the window: wave " (pct(o.wave_share)) ", control group " (pct(o.control_share))} {
                line x1="10" y1="110" x2="310" y2="110" stroke="currentColor" stroke-opacity="0.4" {}
                line x1="10" y1="10" x2="310" y2="10" stroke="currentColor" stroke-opacity="0.15" {}
                polyline.wave points=(points(&|p| p.wave)) fill="none" stroke="#c0392b" stroke-width="2" {}
                polyline.control points=(points(&|p| p.control)) fill="none" stroke="#2471a3" stroke-width="2" stroke-dasharray="5 3" {}
            }
            p.muted { "Failing share from the window's start (left) to now: red, the updated hosts; blue, dashed, the control group (hosts not yet updated). The top line is 100%." }
            @if !o.failing.is_empty() {
                ul #failing { @for f in &o.failing { li { (f.hostname) ": " (f.probes.join(", ")) } } }
            }
        }
    }
}

fn progress(c: &CampaignView) -> maud::Markup {
    let total = c.members.len().max(1);
    html! {
        div.table { table #waves {
            thead { tr { th { "Wave" } th { "Hosts" } th { "Installed" } th { "Failed" } th { "Waiting" } } }
            // Waves are numbered from 0 in the API, from 1 here.
            tbody { @for w in 0..c.waves {
                @let members: Vec<_> = c.members.iter().filter(|m| m.wave == w).collect();
                @let installed = members.iter().filter(|m| m.status == "installed").count();
                @let failed = members.iter().filter(|m| matches!(m.status.as_str(), "failed" | "rolled_back" | "refused")).count();
                // Every wave opened so far is marked, not only the newest.
                tr class=[(w <= c.open_wave).then_some("open")] {
                    td { (w + 1) @if w < c.open_wave { " (opened)" } @else if w == c.open_wave && c.status == "running" { " (open)" } }
                    td { (members.len()) }
                    td { (installed) }
                    td { (failed) }
                    td { (members.len() - installed - failed) }
                }
            } }
        } }
        p.muted { (c.counts.get("installed").copied().unwrap_or(0)) " of " (c.members.len()) " installed; failure share "
            (format!("{:.0}%", c.failure_share * 100.0)) " (stops above " (format!("{:.0}%", c.max_failure_rate * 100.0)) ")" }
        @if let Some(why) = waiting_for(c) { p #waiting { (why) } }
        progress value=(c.counts.get("installed").copied().unwrap_or(0)) max=(total) {}
        div.table { table #members {
            thead { tr { th { "Host" } th { "Wave" } th { "Accepted" } th { "Status" } } }
            tbody { @for m in &c.members { tr {
                td { a href={"/hosts/" (m.host_id)} { (m.hostname) } }
                td { (m.wave + 1) }
                td { @if c.require_acceptance { @if m.accepted { "yes" } @else { "not yet" } } @else { "-" } }
                td { @if let Some(u) = &m.update_id { a href={"/history/" (u)} { (badge(&m.status)) } } @else { (badge(&m.status)) } }
            } } }
        } }
    }
}

pub async fn campaign(
    State(state): State<Shared>,
    who: SignedIn,
    Path(id): Path<String>,
) -> Response {
    let c = match campaigns::show(&state, &id).await {
        Ok(c) => c,
        Err(e) => return failed(&who, e),
    };
    let open = matches!(c.status.as_str(), "running" | "paused");
    let target = match &c.target {
        CampaignTarget::All => "every host with the item".to_string(),
        CampaignTarget::Tags(t) => format!("tags {}", t.join(", ")),
        CampaignTarget::Hosts(h) => format!("{} hosts", h.len()),
    };
    let action = |a: &str| format!("/campaigns/{}/{a}", c.id);
    let body = html! {
        section #live data-refresh=[open.then_some("2")] {
            p { span #status { (badge(&c.status)) } " " (c.status_reason) }
            p.muted { (c.item) " " (c.version) " · " (target)
                @if c.require_acceptance { " · acceptance required" }
                @if let Some(w) = &c.window { " · window " (w) } }
            @if let Some(a) = &c.approval {
                p #approval {
                    @if let Some(by) = &a.approved_by {
                        "Approved by " (by) @if let Some(at) = &a.approved_at { " at " (when(at)) } "."
                    } @else {
                        "Waits for approval by another user than " (a.created_by) " (the approver or admin role)."
                    }
                }
                @if open && a.approved_by.is_none() && a.created_by != who.user_name() && who.may("POST", "/campaigns/{id}/approve") {
                    form.inline #approve method="post" action=(action("approve")) { (csrf(&who)) button type="submit" { "Approve" } }
                }
            }
            @if open && who.may("POST", "/campaigns/{id}/{action}") {
                div.actions {
                    @if c.status == "running" {
                        form.inline method="post" action=(action("pause")) { (csrf(&who)) button type="submit" { "Pause" } }
                    } @else if c.approval.as_ref().is_none_or(|a| a.approved_by.is_some()) {
                        form.inline method="post" action=(action("resume")) { (csrf(&who)) button type="submit" { "Resume" } }
                    }
                    details.edit {
                        summary { "Edit…" }
                        form.stack method="post" action=(action("edit")) {
                            (csrf(&who))
                            label { "Success threshold (% of a wave that must install before the next opens) "
                                input type="number" name="success_threshold" min="0" max="100" step="any" value=(pct(c.success_threshold)); }
                            label { "Failure threshold (% of installs since the last resume that may fail before it pauses) "
                                input type="number" name="max_failure_rate" min="0" max="100" step="any" value=(pct(c.max_failure_rate)); }
                            label { "Install window, device time (empty: any time) "
                                input type="text" name="window" value=(c.window.as_deref().unwrap_or("")) placeholder="02:00-04:00"; }
                            label { "Waves, all of them as at creation (empty: unchanged; those already open stay as they are) "
                                input type="text" name="waves" placeholder="e.g. 1,10%,50%,100%"; }
                            button type="submit" { "Save" }
                        }
                    }
                    // Two steps, no script: cancelling cannot be undone.
                    details.confirm {
                        summary { "Cancel…" }
                        form.inline method="post" action=(action("cancel")) {
                            (csrf(&who))
                            span.muted { "Its installs not yet started are cancelled; it cannot be resumed. " }
                            button.danger type="submit" { "Cancel the campaign" }
                        }
                    }
                }
            }
            (progress(&c))
            (observation(&c))
        }
    };
    page(&format!("Campaign {}", c.name), &who, body)
}

/// A share shown as a percentage for a form.
fn pct(share: f64) -> String {
    let p = share * 100.0;
    if p.fract() == 0.0 {
        format!("{p:.0}")
    } else {
        format!("{p}")
    }
}

#[derive(Deserialize)]
pub struct EditForm {
    success_threshold: Option<String>,
    max_failure_rate: Option<String>,
    window: Option<String>,
    waves: Option<String>,
}

/// A percentage typed into the edit form as a share; empty leaves it unchanged.
fn share(field: &str, text: Option<&str>) -> Result<Option<f64>, AppError> {
    let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    match text.trim_end_matches('%').trim().parse::<f64>() {
        Ok(p) if (0.0..=100.0).contains(&p) => Ok(Some(p / 100.0)),
        _ => Err(AppError::bad_request(format!(
            "{field} {text:?} must be a percentage from 0 to 100"
        ))),
    }
}

/// `ferryctl campaigns edit`: thresholds, window and waves of an open campaign.
pub async fn edit_campaign(
    State(state): State<Shared>,
    Path(id): Path<String>,
    CsrfForm(who, f): CsrfForm<EditForm>,
) -> Response {
    let back = format!("/campaigns/{}", encode(&id));
    let req = share("success threshold", f.success_threshold.as_deref()).and_then(|s| {
        Ok(ferry_manifests::wire::CampaignEdit {
            success_threshold: s,
            max_failure_rate: share("failure threshold", f.max_failure_rate.as_deref())?,
            window: Some(f.window.unwrap_or_default()),
            waves: f.waves.filter(|w| !w.trim().is_empty()),
        })
    });
    let result = match req {
        Ok(req) => campaigns::edit(&state, &id, req)
            .await
            .map(|c| format!("Campaign {} saved.", c.name))
            .map_err(AppError::from),
        Err(e) => Err(e),
    };
    done(&state, &who, &back, result)
}

pub async fn campaign_action(
    State(state): State<Shared>,
    Path((id, action)): Path<(String, String)>,
    CsrfForm(who, _): CsrfForm<super::NoFields>,
) -> Response {
    let result = campaigns::action(&state, &id, &action)
        .await
        .map(|c| format!("Campaign {}: {}.", c.name, c.status))
        .map_err(AppError::from);
    done(&state, &who, &format!("/campaigns/{}", encode(&id)), result)
}

pub async fn batches(
    State(state): State<Shared>,
    who: SignedIn,
    Query(f): Query<StatusFilter>,
) -> Response {
    let list = match service::batches::list(&state, status(&f)).await {
        Ok(mut l) => {
            if let Err(e) = service::scope::keep_batches(&state, &who.scope(), &mut l).await {
                return failed(&who, e);
            }
            l
        }
        Err(e) => return failed(&who, e),
    };
    let body = html! {
        (status_filter("/batches", f.status.as_deref(), &["running", "completed", "failed"]))
        div.table { table #batches {
            thead { tr { th { "Batch" } th { "Status" } th { "Entries" } th { "By" } th { "Created" } } }
            tbody { @for b in list.iter().rev() { tr {
                td { a href={"/batches/" (b.id)} { (b.description) } }
                td { (badge(&b.status)) }
                td { @for (s, n) in &b.counts { (n) " " (s.replace('_', " ")) " " } }
                td { (b.actor) }
                td { (when(&b.created_at)) }
            } } }
        } }
    };
    page("Batches", &who, body)
}

pub async fn batch(State(state): State<Shared>, who: SignedIn, Path(id): Path<String>) -> Response {
    let b = match service::batches::show(&state, &id).await {
        Ok(b) => b,
        Err(e) => return failed(&who, e),
    };
    let running = b.status == "running";
    let body = html! {
        section #live data-refresh=[running.then_some("2")] {
            p { (badge(&b.status)) " started by " (b.actor) " at " (when(&b.created_at)) }
            div.table { table #entries {
                thead { tr { th { "Host" } th { "Item" } th { "Version" } th { "Status" } th { "Message" } } }
                tbody { @for e in &b.entries { tr {
                    td { a href={"/hosts/" (e.host_id)} { (e.hostname) } }
                    td { (e.item) }
                    td { (e.version) }
                    td { @if let Some(u) = &e.update_id { a href={"/history/" (u)} { (badge(&e.status)) } } @else { (badge(&e.status)) } }
                    td { (e.message) }
                } } }
            } }
        }
    };
    page(&format!("Batch: {}", b.description), &who, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_percentage_typed_into_the_edit_form_is_a_share_or_refused() {
        assert_eq!(share("t", Some("50")).unwrap(), Some(0.5));
        assert_eq!(share("t", Some(" 12.5% ")).unwrap(), Some(0.125));
        assert_eq!(share("t", Some("")).unwrap(), None);
        assert_eq!(share("t", None).unwrap(), None);
        for bad in ["150", "-1", "half"] {
            let e = share("failure threshold", Some(bad)).unwrap_err();
            assert!(e.message().contains("percentage from 0 to 100"), "{bad}");
        }
        assert_eq!(pct(0.5), "50");
        assert_eq!(pct(0.125), "12.5");
    }
}
