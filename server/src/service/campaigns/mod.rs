//! Campaigns at work: hosts join when they check in, installs are dispatched as the gate lets
//! them through, and a report re-decides the campaigns of its update. The rules themselves are
//! in `policy::campaign`; this is the shell that loads, decides and stores.

use ferry_manifests::wire::{CampaignOffer, HealthSample, InstalledItem, ObserveOrder};
use time::OffsetDateTime;

pub mod observe;
pub mod requests;

use super::error::{ServiceError, ServiceResult};
use crate::policy::campaign::{self, Campaign, Member};
use crate::policy::status::{CampaignStatus, MemberStatus};
use crate::state::Shared;

/// Dispatches one member's install if the gate lets it through now; true if dispatched.
async fn dispatch_member(
    state: &Shared,
    c: &Campaign,
    m: &Member,
    open_wave: usize,
) -> ServiceResult<bool> {
    let now = OffsetDateTime::now_utc();
    if campaign::gate(c, m, open_wave, now) != MemberStatus::Dispatchable {
        return Ok(false);
    }
    if state
        .store
        .active_update(&m.host_id, &c.item)
        .await?
        .is_some()
    {
        return Ok(false); // one at a time: it gets its turn when that one finishes
    }
    let id = state
        .store
        .create_update(
            &m.host_id,
            &c.item,
            &c.version,
            &super::Actor::Campaign.to_text(),
            None,
        )
        .await?;
    state
        .store
        .set_member_update(&c.id, &m.host_id, &id)
        .await?;
    tracing::info!(campaign = %c.id, host = %m.hostname, update = %id, "campaign install dispatched");
    state.wake(&m.host_id);
    Ok(true)
}

/// Applies the rules to one campaign over all its members: pause on too many failures,
/// dispatch what may go now, remember the open wave. Runs when something changed (created,
/// resumed, a host joined or accepted, a report arrived), not on every check-in. One at a time
/// per campaign, across every instance on the database.
pub async fn evaluate(state: &Shared, campaign_id: &str) -> ServiceResult<()> {
    let lock = state.store.lock_campaign(campaign_id).await?;
    let done = evaluate_locked(state, campaign_id).await;
    lock.release().await;
    done
}

async fn evaluate_locked(state: &Shared, campaign_id: &str) -> ServiceResult<()> {
    let Some(c) = state.store.campaign(campaign_id).await? else {
        return Ok(());
    };
    if c.status != CampaignStatus::Running {
        state.cache.set_open_wave(&c.id, None);
        return Ok(());
    }
    let members = state.store.members(campaign_id).await?;
    let mut c = c;
    let mut d = campaign::decide(&c, &members);
    // A wave that must be watched first: start its window or judge it; each wave that
    // passes lets the next one be decided (bounded by the number of waves).
    for _ in 0..=c.waves.len() {
        let Some(wave) = d.observe_wave else { break };
        match observe::step(state, &c, &members, wave).await? {
            observe::Step::Passed => {
                c.observe.passed = wave + 1;
                c.observe.watching = None;
                d = campaign::decide(&c, &members);
            }
            observe::Step::Watching => break,
            observe::Step::Stopped => return Ok(()),
        }
    }
    if let Some(succeeded) = d.complete {
        let installed = members
            .iter()
            .filter(|m| {
                m.update_status == Some(crate::policy::status::UpdateStatus::Installed)
                    || m.installed.as_deref() == Some(c.version.to_string().as_str())
            })
            .count();
        let reason = format!(
            "{}: {installed} of {} hosts installed {}",
            if succeeded {
                "succeeded"
            } else {
                "did not reach its success threshold"
            },
            members.len(),
            c.version
        );
        tracing::info!(campaign = %c.id, "campaign completed; {reason}");
        state
            .store
            .set_campaign_status(&c.id, CampaignStatus::Completed, &reason)
            .await?;
        state.campaigns_changed();
        state.cache.set_open_wave(&c.id, None);
        return Ok(());
    }
    if d.pause {
        let reason = format!(
            "paused itself: {:.0}% of finished installs failed, more than the {:.0}% allowed",
            d.failure_share * 100.0,
            c.max_failure_rate * 100.0
        );
        tracing::warn!(campaign = %c.id, "{reason}");
        state
            .store
            .set_campaign_status(&c.id, CampaignStatus::Paused, &reason)
            .await?;
        state.campaigns_changed();
        state.cache.set_open_wave(&c.id, None);
        return Ok(());
    }
    if state.cache.open_wave(&c.id) != Some(d.open_wave) {
        state.cache.set_open_wave(&c.id, Some(d.open_wave));
        // Other instances decide their check-ins on the wave they last knew.
        state.store.announce(crate::store::Notice::Campaigns);
    }
    for m in &members {
        dispatch_member(state, &c, m, d.open_wave).await?;
    }
    Ok(())
}

/// At check-in: the host joins running campaigns it matches (if it has the item), and its own
/// membership may be dispatched. The cost does not grow with the campaign's size: one
/// membership lookup per campaign, and the open wave from the last evaluation. The host's
/// health samples go to the campaigns watching it. Returns the offers needing the host's
/// acceptance, and the observation windows it is in.
pub async fn on_check_in(
    state: &Shared,
    host_id: &str,
    (tags, tenant): (&[String], Option<&str>),
    installed: &[InstalledItem],
    health: &[HealthSample],
) -> ServiceResult<(Vec<CampaignOffer>, Vec<ObserveOrder>)> {
    let mut offers = Vec::new();
    let mut orders = Vec::new();
    for c in state.store.campaigns().await? {
        let running = c.status == CampaignStatus::Running;
        if matches!(
            c.status,
            CampaignStatus::Cancelled | CampaignStatus::Completed
        ) {
            continue;
        }
        let mut member = state.store.member(&c.id, host_id).await?;
        // Joining and dispatching decide over the campaign: under its lock, and with what
        // the database holds once it is taken. Most check-ins need neither.
        let joins = member.is_none()
            && running
            && installed.iter().any(|i| i.item == c.item)
            // Only a host of the campaign's tenant joins it.
            && c.tenant_id.as_deref() == tenant
            && campaign::matches(&c.target, host_id, tags);
        let may_dispatch = member.as_ref().is_some_and(|m| {
            running
                && m.update_id.is_none()
                && state.cache.open_wave(&c.id).is_none_or(|w| {
                    campaign::gate(&c, m, w, OffsetDateTime::now_utc())
                        == MemberStatus::Dispatchable
                })
        });
        let lock = match joins || may_dispatch {
            true => {
                let lock = state.store.lock_campaign(&c.id).await?;
                member = state.store.member(&c.id, host_id).await?;
                Some(lock)
            }
            false => None,
        };
        let joined = join_and_dispatch(state, &c, host_id, joins, member).await;
        if let Some(lock) = lock {
            lock.release().await;
        }
        let Some((member, dispatched)) = joined? else {
            continue;
        };
        let (order, judge) = observe::on_check_in(state, &c, &member, health).await?;
        orders.extend(order);
        if judge {
            evaluate(state, &c.id).await?;
        }
        if c.require_acceptance && running && !dispatched {
            offers.push(CampaignOffer {
                campaign_id: c.id.clone(),
                name: c.name.clone(),
                item: c.item.clone(),
                version: c.version.clone(),
                accepted: member.accepted,
            });
        }
    }
    Ok((offers, orders))
}

/// The host joins the campaign if it matches, and its membership is dispatched if the gate
/// lets it through; the membership (if any) and whether it has an install.
async fn join_and_dispatch(
    state: &Shared,
    c: &Campaign,
    host_id: &str,
    joins: bool,
    mut member: Option<Member>,
) -> ServiceResult<Option<(Member, bool)>> {
    if joins && member.is_none() {
        let seq = state.store.member_count(&c.id).await? as u64;
        let wave = campaign::wave_for(&c.waves, seq, seq + 1);
        if state
            .store
            .add_member(&c.id, host_id, seq as i64, wave)
            .await?
        {
            tracing::info!(campaign = %c.id, %host_id, wave, "host joined campaign");
        }
        member = state.store.member(&c.id, host_id).await?;
    }
    let Some(member) = member else {
        return Ok(None);
    };
    let mut dispatched = member.update_id.is_some();
    if c.status == CampaignStatus::Running && !dispatched {
        let open_wave = match state.cache.open_wave(&c.id) {
            Some(w) => w,
            None => {
                evaluate_locked(state, &c.id).await?;
                state.cache.open_wave(&c.id).unwrap_or(0)
            }
        };
        dispatched = dispatch_member(state, c, &member, open_wave).await?;
    }
    Ok(Some((member, dispatched)))
}

/// `campaigns resume`: the failure threshold judges only what finishes from now on, so a
/// campaign that paused itself goes on until new failures pass it again.
pub async fn resume(state: &Shared, c: &Campaign) -> ServiceResult<()> {
    let members = state.store.members(&c.id).await?;
    let mut next = c.clone();
    next.baseline = campaign::baseline(c, &members);
    state.store.update_campaign(&next).await?;
    // A wave stopped by its observation (a regression, too few hosts) counts as passed:
    // resuming is the operator's decision to go on.
    if let Some((wave, _)) = &c.observe.watching {
        state.store.set_observation(&c.id, None, wave + 1).await?;
    }
    state
        .store
        .set_campaign_status(&c.id, CampaignStatus::Running, "")
        .await?;
    evaluate(state, &c.id).await
}

/// `campaigns edit`: new thresholds, window or later waves, then a fresh decision.
pub async fn edit(state: &Shared, c: &Campaign, e: &campaign::Edit) -> ServiceResult<()> {
    let members = state.store.members(&c.id).await?;
    let open_wave = campaign::decide(c, &members).open_wave;
    let (next, moved) = campaign::edit(c, &members, open_wave, e).map_err(ServiceError::invalid)?;
    state.store.update_campaign(&next).await?;
    for (host_id, wave) in moved {
        state.store.set_member_wave(&c.id, &host_id, wave).await?;
    }
    state.cache.set_open_wave(&c.id, None);
    evaluate(state, &c.id).await
}

/// After a report: the campaigns of that update may open a wave or pause.
pub async fn on_report(state: &Shared, update_id: &str) -> ServiceResult<()> {
    for id in state.store.campaigns_of_update(update_id).await? {
        evaluate(state, &id).await?;
    }
    Ok(())
}

/// Cancels a campaign: its installs not yet started are cancelled, and its members waiting on
/// a long-poll hear of it now.
pub(crate) async fn cancel(state: &Shared, id: &str, reason: &str) -> ServiceResult<()> {
    state
        .store
        .set_campaign_status(id, CampaignStatus::Cancelled, reason)
        .await?;
    state.store.cancel_campaign_updates(id).await?;
    for m in state.store.members(id).await? {
        state.wake(&m.host_id);
    }
    Ok(())
}
