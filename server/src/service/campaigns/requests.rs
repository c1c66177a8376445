//! What operators (and devices, accepting) ask of campaigns: create, list, show, pause,
//! resume, cancel, edit, accept. `policy::campaign` decides; the parent module carries out.

use std::collections::BTreeMap;

use ferry_manifests::wire::{
    CampaignEdit, CampaignMemberView, CampaignOffer, CampaignRequest, CampaignView,
};

use super::super::error::{ServiceError, ServiceResult};
use super::evaluate;
use crate::policy::campaign::{self, Target};
use crate::policy::status::CampaignStatus;
use crate::state::Shared;
use crate::store::LiveOperator;
use crate::store::{Campaign, IdKind};

const DEFAULT_THRESHOLD: f64 = 0.5;

/// The wave watched now (or the last one judged, once the campaign stopped on it).
async fn observation_view(
    state: &Shared,
    c: &Campaign,
    members: &[campaign::Member],
    now: time::OffsetDateTime,
) -> ServiceResult<Option<ferry_manifests::wire::ObservationView>> {
    use crate::policy::observation::{self, Verdict};
    use ferry_manifests::wire::{FailingHost, ObservationView, SharePoint};
    let Some((wave, since)) = &c.observe.watching else {
        return Ok(None);
    };
    let Some(w) = super::observe::window(c, since) else {
        return Ok(None);
    };
    let o = super::observe::judge(state, c, members, *wave, &w, now).await?;
    let health = state.store.campaign_health(&c.id, *wave).await?;
    let of = |role| -> Vec<observation::HostHealth> {
        health
            .iter()
            .filter(|h| {
                members.iter().any(|m| {
                    m.host_id == h.host_id && super::observe::role(c, m, *wave) == Some(role)
                })
            })
            .cloned()
            .collect()
    };
    let to = now.min(w.ends_at());
    let series = observation::series(
        &of(super::observe::Role::Updated),
        &of(super::observe::Role::Control),
        w.started_at,
        to,
        20,
    );
    Ok(Some(ObservationView {
        wave: *wave,
        started_at: since.clone(),
        ends_at: ferry_manifests::wire::timestamp(w.ends_at()),
        left_secs: o.left.whole_seconds().max(0) as u64,
        verdict: match o.verdict {
            Verdict::Observing => "observing",
            Verdict::Healthy => "healthy",
            Verdict::Regressed => "regressed",
            Verdict::TooFew => "too_few",
        }
        .into(),
        wave_hosts: o.wave.counted,
        wave_share: o.wave.share,
        control_hosts: o.control.counted,
        control_share: o.control.share,
        probes: observation::probe_summary(&o.wave),
        failing: o
            .wave
            .failing
            .iter()
            .map(|(hostname, probes)| FailingHost {
                hostname: hostname.clone(),
                probes: probes.clone(),
            })
            .collect(),
        series: series
            .into_iter()
            .map(|(at, wave, control)| SharePoint {
                at: ferry_manifests::wire::timestamp(at),
                wave,
                control,
            })
            .collect(),
    }))
}

async fn view(state: &Shared, c: Campaign) -> ServiceResult<CampaignView> {
    let members = state.store.members(&c.id).await?;
    let approval =
        state
            .store
            .approval(&c.id)
            .await?
            .map(|(created_by, approved_by, approved_at)| {
                ferry_manifests::wire::CampaignApproval {
                    created_by,
                    approved_by,
                    approved_at,
                }
            });
    let d = campaign::decide(&c, &members);
    let now = time::OffsetDateTime::now_utc();
    let observation = observation_view(state, &c, &members, now).await?;
    let members: Vec<CampaignMemberView> = members
        .iter()
        .map(|m| CampaignMemberView {
            host_id: m.host_id.clone(),
            hostname: m.hostname.clone(),
            wave: m.wave,
            accepted: m.accepted,
            status: campaign::gate(&c, m, d.open_wave, now).as_str().to_string(),
            update_id: m.update_id.clone(),
        })
        .collect();
    let mut counts = BTreeMap::new();
    for m in &members {
        *counts.entry(m.status.clone()).or_insert(0) += 1;
    }
    Ok(CampaignView {
        observe_secs: c.observe.secs,
        rollback_on_regression: c.observe.rollback,
        observation,
        id: c.id,
        name: c.name,
        item: c.item,
        version: c.version,
        target: c.target,
        require_acceptance: c.require_acceptance,
        waves: c.waves.len(),
        success_threshold: c.success_threshold,
        max_failure_rate: c.max_failure_rate,
        window: c.window.map(|w| {
            format!(
                "{:02}:{:02}-{:02}:{:02}",
                w.start_min / 60,
                w.start_min % 60,
                w.end_min / 60,
                w.end_min % 60
            )
        }),
        succeeded: (c.status == CampaignStatus::Completed)
            .then_some(d.complete)
            .flatten(),
        status: c.status.as_str().to_string(),
        status_reason: c.status_reason,
        open_wave: d.open_wave,
        failure_share: d.failure_share,
        counts,
        members,
        created_at: c.created_at,
        approval,
    })
}

fn share(name: &str, v: Option<f64>) -> ServiceResult<f64> {
    let v = v.unwrap_or(DEFAULT_THRESHOLD);
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(ServiceError::invalid(format!(
            "{name} {v} must be between 0 and 1"
        )))
    }
}

/// Creates a campaign from a request: targeting, waves, thresholds and window checked;
/// members placed; the first wave dispatched.
/// Creates a campaign for `creator` (a user's name); one that needs approval starts
/// paused, and waits for another user's.
pub async fn create(
    state: &Shared,
    req: CampaignRequest,
    creator: &LiveOperator,
) -> ServiceResult<CampaignView> {
    let (mut row, matching) = plan(state, &req, &creator.tenant_id).await?;
    let creator = creator.user_name.as_str();
    if req.require_approval {
        row.status = CampaignStatus::Paused;
        row.status_reason = format!(
            "waits for approval by an approver other than {creator} (ferryctl campaigns approve {})",
            &row.id[..8.min(row.id.len())]
        );
    }
    if matching.is_empty() && !req.allow_empty {
        return Err(ServiceError::conflict(format!(
            "no host matches this campaign now ({} with item {}); tag hosts first (ferryctl hosts edit --tag), or pass --allow-empty (\"allow_empty\": true) to create it and let hosts join as they check in",
            describe(&row.target),
            row.item
        )));
    }
    let id = row.id.clone();
    state.store.create_campaign(&row).await?;
    if req.require_approval {
        state.store.require_approval(&id, creator).await?;
    }
    state.campaigns_changed();
    tracing::info!(campaign = %id, item = %req.item, version = %req.version, members = matching.len(), "campaign created");
    join_known_hosts(state, &row, &matching).await?;
    evaluate(state, &id).await?;
    let c = state
        .store
        .campaign(&id)
        .await?
        .ok_or_else(|| ServiceError::Vanished("campaign"))?;
    view(state, c).await
}

/// How many hosts each wave of the campaign `req` asks for would reach now (nothing is
/// created): what a person confirms before creating it.
pub async fn preview(
    state: &Shared,
    req: &CampaignRequest,
    tenant_id: &str,
) -> ServiceResult<Vec<usize>> {
    let (row, matching) = plan(state, req, tenant_id).await?;
    let total = matching.len() as u64;
    let mut per_wave = vec![0; row.waves.len()];
    for seq in 0..total {
        per_wave[campaign::wave_for(&row.waves, seq, total)] += 1;
    }
    Ok(per_wave)
}

/// Waves when a request names none: one wave for a few hosts; for more, one host first,
/// then a tenth, half, and the rest, so a bad release stops at its first hosts.
pub const DEFAULT_WAVES_FEW: &str = "100%";
pub const DEFAULT_WAVES_MANY: &str = "1,10%,50%,100%";
/// Hosts up to which one wave is the default.
pub const FEW_HOSTS: usize = 5;

/// The campaign a request describes, checked, with the hosts it would reach now.
/// It belongs to `tenant_id`, and reaches that tenant's hosts only.
async fn plan(
    state: &Shared,
    req: &CampaignRequest,
    tenant_id: &str,
) -> ServiceResult<(Campaign, Vec<String>)> {
    super::super::items::ensure_active(state, &req.item).await?;
    super::super::releases::require_item_of(state, &req.item, Some(tenant_id)).await?;
    super::super::releases::installable(state, &req.item, Some(&req.version)).await?;
    let target = resolve_target(state, req.target.clone()).await?;
    let waves = campaign::parse_waves(req.waves.as_deref().unwrap_or(DEFAULT_WAVES_FEW))
        .map_err(ServiceError::invalid)?;
    let window = req
        .window
        .as_deref()
        .map(campaign::parse_window)
        .transpose()
        .map_err(ServiceError::invalid)?;
    let id = uuid::Uuid::new_v4().to_string();
    let row = Campaign {
        name: req
            .name
            .clone()
            .unwrap_or_else(|| format!("{} {}", req.item, req.version)),
        id: id.clone(),
        item: req.item.clone(),
        version: req.version.clone(),
        target,
        require_acceptance: req.require_acceptance,
        waves,
        success_threshold: share("success_threshold", req.success_threshold)?,
        max_failure_rate: share("max_failure_rate", req.max_failure_rate)?,
        window,
        status: CampaignStatus::Running,
        status_reason: String::new(),
        created_at: ferry_manifests::wire::now(),
        baseline: Default::default(),
        tenant_id: Some(tenant_id.to_string()),
        observe: observe_of(req)?,
    };
    let mut row = row;
    let matching = matching_hosts(state, &row).await?;
    if req.waves.is_none() && matching.len() > FEW_HOSTS {
        row.waves = campaign::parse_waves(DEFAULT_WAVES_MANY).map_err(ServiceError::invalid)?;
    }
    Ok((row, matching))
}

/// The observation a request asks for, checked.
fn observe_of(req: &CampaignRequest) -> ServiceResult<campaign::Observe> {
    let secs = req.observe_secs.unwrap_or(0);
    if secs > 30 * 24 * 3600 {
        return Err(ServiceError::invalid(
            "observe_secs must be at most 2592000 (30 days)",
        ));
    }
    if req.rollback_on_regression && secs == 0 {
        return Err(ServiceError::invalid(
            "rollback_on_regression needs an observation window (observe_secs, `--observe 30m`)",
        ));
    }
    let defaults = crate::policy::observation::Thresholds::default();
    let min_hosts = req
        .regression_min_hosts
        .unwrap_or(defaults.min_hosts as u64);
    if !(1..=100_000).contains(&min_hosts) {
        return Err(ServiceError::invalid(
            "regression_min_hosts must be between 1 and 100000",
        ));
    }
    Ok(campaign::Observe {
        secs,
        rollback: req.rollback_on_regression,
        thresholds: crate::policy::observation::Thresholds {
            max_share: match req.regression_max_share {
                Some(v) => share("regression_max_share", Some(v))?,
                None => defaults.max_share,
            },
            max_excess: match req.regression_max_excess {
                Some(v) => share("regression_max_excess", Some(v))?,
                None => defaults.max_excess,
            },
            min_hosts: min_hosts as usize,
        },
        watching: None,
        passed: 0,
    })
}

/// A target in words, for a refusal.
fn describe(target: &Target) -> String {
    match target {
        Target::All => "every host".into(),
        Target::Tags(tags) => format!("hosts tagged {}", tags.join(" or ")),
        Target::Hosts(ids) => format!("the {} named host(s)", ids.len()),
    }
}

/// The target with its host names resolved to ids and its tags checked.
async fn resolve_target(state: &Shared, target: Target) -> ServiceResult<Target> {
    Ok(match target {
        Target::Hosts(names) => {
            let mut ids = Vec::new();
            for n in &names {
                ids.push(super::super::hosts::resolve(state, n).await?.0);
            }
            Target::Hosts(ids)
        }
        Target::Tags(tags) => {
            ferry_manifests::wire::validate_labels(&tags, None).map_err(ServiceError::invalid)?;
            if tags.is_empty() {
                return Err(ServiceError::invalid("give at least one tag"));
            }
            Target::Tags(tags)
        }
        Target::All => Target::All,
    })
}

/// The accepted hosts that match `row` now: they have its item and fit its target.
async fn matching_hosts(state: &Shared, row: &Campaign) -> ServiceResult<Vec<String>> {
    Ok(state
        .store
        .hosts()
        .await?
        .into_iter()
        .filter(|(h, installed)| {
            let (tags, _) = crate::policy::fleet::effective_labels(
                &h.device_tags,
                None,
                h.operator_tags.as_deref(),
                None,
                state.config.trust_device_tags,
            );
            h.accepted
                && h.tenant_id == row.tenant_id
                && installed.iter().any(|i| i.item == row.item)
                && campaign::matches(&row.target, &h.id, &tags)
        })
        .map(|(h, _)| h.id)
        .collect())
}

/// Hosts known now join at once (in one pass, then one evaluation); later ones join when
/// they check in.
async fn join_known_hosts(
    state: &Shared,
    row: &Campaign,
    matching: &[String],
) -> ServiceResult<()> {
    let total = matching.len() as u64;
    for (seq, host_id) in (0u64..).zip(matching) {
        let wave = campaign::wave_for(&row.waves, seq, total);
        state
            .store
            .add_member(&row.id, host_id, seq as i64, wave)
            .await?;
    }
    Ok(())
}

/// Every campaign, or those with `status`.
pub async fn list(state: &Shared, status: Option<&str>) -> ServiceResult<Vec<CampaignView>> {
    let wanted = status
        .filter(|s| !s.is_empty())
        .map(str::parse::<CampaignStatus>)
        .transpose()
        .map_err(|e| ServiceError::invalid(format!("status {e}")))?;
    let mut out = Vec::new();
    for c in state.store.campaigns().await? {
        if wanted.is_none_or(|s| s == c.status) {
            out.push(view(state, c).await?);
        }
    }
    Ok(out)
}

/// One campaign by id or unique id prefix.
pub async fn show(state: &Shared, id: &str) -> ServiceResult<CampaignView> {
    let id = super::super::full_id(state, IdKind::Campaign, id).await?;
    let c = load(state, &id).await?;
    view(state, c).await
}

/// Pauses, resumes or cancels a campaign that can still change.
pub async fn action(state: &Shared, id: &str, action: &str) -> ServiceResult<CampaignView> {
    let id = super::super::full_id(state, IdKind::Campaign, id).await?;
    let c = load_open(state, &id).await?;
    match action {
        "pause" => {
            state
                .store
                .set_campaign_status(&id, CampaignStatus::Paused, "paused by an operator")
                .await?
        }
        "resume" => {
            if let Some((_, None, _)) = state.store.approval(&id).await? {
                return Err(ServiceError::conflict(
                    "this campaign waits for approval; an approver other than its creator approves it (ferryctl campaigns approve), which also starts it",
                ));
            }
            super::resume(state, &c).await?
        }
        "cancel" => super::cancel(state, &id, "cancelled by an operator").await?,
        other => {
            return Err(ServiceError::not_found(format!(
                "no campaign action {other:?}: use pause, resume or cancel"
            )))
        }
    }
    state.campaigns_changed();
    tracing::info!(campaign = %id, %action, "campaign {action}");
    let c = load(state, &id).await?;
    view(state, c).await
}

/// Approves a campaign that waits for it, by `approver` (a user's name, not its creator's),
/// and starts it.
pub async fn approve(state: &Shared, id: &str, approver: &str) -> ServiceResult<CampaignView> {
    let id = super::super::full_id(state, IdKind::Campaign, id).await?;
    let c = load_open(state, &id).await?;
    match state.store.approval(&id).await? {
        None => {
            return Err(ServiceError::conflict(
                "this campaign does not need approval",
            ))
        }
        Some((_, Some(by), _)) => {
            return Err(ServiceError::conflict(format!(
                "this campaign was approved already, by {by}"
            )))
        }
        Some((creator, None, _)) if creator == approver => {
            return Err(ServiceError::conflict(format!(
                "{approver} created this campaign and cannot approve it: another user with the approver (or admin) role does"
            )))
        }
        Some(_) => {}
    }
    if !state.store.approve(&id, approver).await? {
        return Err(ServiceError::conflict("this campaign was approved already"));
    }
    super::resume(state, &c).await?;
    state.campaigns_changed();
    tracing::info!(campaign = %id, %approver, "campaign approved and started");
    let c = load(state, &id).await?;
    view(state, c).await
}

/// Changes what may change while a campaign runs.
pub async fn edit(state: &Shared, id: &str, req: CampaignEdit) -> ServiceResult<CampaignView> {
    let id = super::super::full_id(state, IdKind::Campaign, id).await?;
    let c = load_open(state, &id).await?;
    let window = match req.window.as_deref().map(str::trim) {
        None => None,
        Some("") => Some(None),
        Some(w) => Some(Some(
            campaign::parse_window(w).map_err(ServiceError::invalid)?,
        )),
    };
    let waves = req
        .waves
        .as_deref()
        .map(campaign::parse_waves)
        .transpose()
        .map_err(ServiceError::invalid)?;
    let e = campaign::Edit {
        success_threshold: req.success_threshold,
        max_failure_rate: req.max_failure_rate,
        window,
        waves,
    };
    super::edit(state, &c, &e).await?;
    tracing::info!(campaign = %id, "campaign edited");
    let c = load(state, &id).await?;
    view(state, c).await
}

/// A device accepts a campaign that targets it; its install may then be dispatched. A device
/// names the campaign by its full id (as its check-in gave it): a prefix would let a device
/// probe the ids of campaigns not meant for it.
pub async fn accept(state: &Shared, host_id: &str, id: &str) -> ServiceResult<CampaignOffer> {
    let c = load(state, id).await?;
    if !state.store.accept(id, host_id).await? {
        return Err(ServiceError::not_found(format!(
            "campaign {id} does not target this device"
        )));
    }
    evaluate(state, id).await?;
    Ok(CampaignOffer {
        campaign_id: c.id,
        name: c.name,
        item: c.item,
        version: c.version,
        accepted: true,
    })
}

/// A campaign that can still change: 409 for a cancelled or completed one.
async fn load_open(state: &Shared, id: &str) -> ServiceResult<Campaign> {
    let c = load(state, id).await?;
    if matches!(
        c.status,
        CampaignStatus::Cancelled | CampaignStatus::Completed
    ) {
        return Err(ServiceError::conflict(format!(
            "campaign {id} is {}",
            c.status
        )));
    }
    Ok(c)
}

async fn load(state: &Shared, id: &str) -> ServiceResult<Campaign> {
    state
        .store
        .campaign(id)
        .await?
        .ok_or_else(|| ServiceError::not_found(format!("no campaign {id}")))
}
