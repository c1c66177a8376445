//! Watching a wave after its installs (docs/campaigns.md, "Observation"): starting the
//! window, taking devices' health samples at check-in, and carrying out the verdict of
//! `policy::observation` (the next wave, or a pause and a rollback).

use ferry_manifests::wire::{HealthSample, ObserveOrder};
use time::OffsetDateTime;

use super::super::error::ServiceResult;
use crate::policy::campaign::{Campaign, Member};
use crate::policy::observation::{self, Observation, Verdict, Window};
use crate::policy::status::{CampaignStatus, UpdateStatus};
use crate::state::Shared;

/// What became of the watched wave.
pub enum Step {
    /// It passed its window: the next wave may open.
    Passed,
    /// Its window is open.
    Watching,
    /// The campaign paused (a regression, or too few hosts to judge).
    Stopped,
}

/// A member's part in the window over `wave`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// It installed the campaign's release in the wave watched.
    Updated,
    /// It has not installed yet: the control group.
    Control,
}

pub fn role(c: &Campaign, m: &Member, wave: usize) -> Option<Role> {
    let on_release = m.installed.as_deref() == Some(c.version.to_string().as_str());
    if m.wave == wave && (m.update_status == Some(UpdateStatus::Installed) || on_release) {
        Some(Role::Updated)
    } else if m.wave > wave && m.update_id.is_none() && !on_release {
        Some(Role::Control)
    } else {
        None
    }
}

/// The window over the wave watched since `since`.
pub fn window(c: &Campaign, since: &str) -> Option<Window> {
    let started_at =
        OffsetDateTime::parse(since, &time::format_description::well_known::Rfc3339).ok()?;
    let length = time::Duration::seconds(c.observe.secs as i64);
    Some(Window {
        started_at,
        length,
        interval: observation::sample_interval(length),
    })
}

/// The verdict over the watched wave now.
pub async fn judge(
    state: &Shared,
    c: &Campaign,
    members: &[Member],
    wave: usize,
    w: &Window,
    now: OffsetDateTime,
) -> ServiceResult<Observation> {
    let health = state.store.campaign_health(&c.id, wave).await?;
    let of = |role| -> Vec<(&str, &str)> {
        members
            .iter()
            .filter(|m| self::role(c, m, wave) == Some(role))
            .map(|m| (m.host_id.as_str(), m.hostname.as_str()))
            .collect()
    };
    let samples = |id: &str| health.iter().find(|h| h.host_id == id).cloned();
    Ok(observation::judge(
        &of(Role::Updated),
        &of(Role::Control),
        &samples,
        w,
        now,
        &c.observe.thresholds,
    ))
}

/// The step for the wave `decide` wants watched: start its window, or judge it.
pub async fn step(
    state: &Shared,
    c: &Campaign,
    members: &[Member],
    wave: usize,
) -> ServiceResult<Step> {
    let now = OffsetDateTime::now_utc();
    let since = match &c.observe.watching {
        Some((w, since)) if *w == wave => since.clone(),
        _ => {
            let since = ferry_manifests::wire::timestamp(now);
            state
                .store
                .set_observation(&c.id, Some((wave, &since)), c.observe.passed)
                .await?;
            tracing::info!(campaign = %c.id, wave = wave + 1, secs = c.observe.secs, "watching the wave's health");
            // Its hosts and the control group hear of it at their next check-in; those
            // long-polling, now.
            for m in members.iter().filter(|m| role(c, m, wave).is_some()) {
                state.wake(&m.host_id);
            }
            state.campaigns_changed();
            return Ok(Step::Watching);
        }
    };
    let Some(w) = window(c, &since) else {
        return Ok(Step::Watching);
    };
    let o = judge(state, c, members, wave, &w, now).await?;
    match o.verdict {
        Verdict::Observing => Ok(Step::Watching),
        Verdict::Healthy => {
            tracing::info!(
                campaign = %c.id,
                wave = wave + 1,
                wave_share = o.wave.share,
                control_share = o.control.share,
                "the wave passed its observation window"
            );
            state.store.set_observation(&c.id, None, wave + 1).await?;
            Ok(Step::Passed)
        }
        Verdict::TooFew => {
            let reason = format!(
                "too few hosts to judge wave {}: {} of {} needed reported during its window; resume to go on without it, or cancel",
                wave + 1,
                o.wave.counted,
                c.observe.thresholds.min_hosts
            );
            tracing::warn!(campaign = %c.id, "{reason}");
            pause(state, c, &reason).await?;
            Ok(Step::Stopped)
        }
        Verdict::Regressed => {
            regressed(state, c, members, wave, &o).await?;
            Ok(Step::Stopped)
        }
    }
}

/// A wave regressed: the campaign pauses, saying why, and rolls the wave back when asked to.
async fn regressed(
    state: &Shared,
    c: &Campaign,
    members: &[Member],
    wave: usize,
    o: &Observation,
) -> ServiceResult<()> {
    let hosts: Vec<&str> = o.wave.failing.iter().map(|(h, _)| h.as_str()).collect();
    let mut reason = format!(
        "regressed in wave {}: {} of {} updated hosts failing ({}: {}), against {} of {} in the control group ({:.0}% against {:.0}%)",
        wave + 1,
        o.wave.failing.len(),
        o.wave.counted,
        observation::probe_summary(&o.wave),
        hosts.join(", "),
        o.control.failing.len(),
        o.control.counted,
        o.wave.share * 100.0,
        o.control.share * 100.0,
    );
    if c.observe.rollback {
        let (rolled, cannot) = roll_back(state, c, members, wave, &reason).await?;
        reason.push_str(&format!(
            "; rolling back {} host(s) to the release each had",
            rolled
        ));
        if !cannot.is_empty() {
            reason.push_str(&format!(
                "; cannot roll back (no earlier release): {}",
                cannot.join(", ")
            ));
        }
    }
    tracing::warn!(campaign = %c.id, "{reason}");
    pause(state, c, &reason).await
}

async fn pause(state: &Shared, c: &Campaign, reason: &str) -> ServiceResult<()> {
    state
        .store
        .set_campaign_status(&c.id, CampaignStatus::Paused, reason)
        .await?;
    state.campaigns_changed();
    state.cache.set_open_wave(&c.id, None);
    Ok(())
}

/// A rollback for each host of the wave to the version it had, from its kept backup: an
/// update in the history with actor `campaign` and the reason. Returns how many were
/// dispatched and the hosts that had no earlier release.
async fn roll_back(
    state: &Shared,
    c: &Campaign,
    members: &[Member],
    wave: usize,
    reason: &str,
) -> ServiceResult<(usize, Vec<String>)> {
    let (mut rolled, mut cannot) = (0, Vec::new());
    for m in members
        .iter()
        .filter(|m| role(c, m, wave) == Some(Role::Updated))
    {
        let from = match &m.update_id {
            Some(id) => state.store.update_from_version(id).await?,
            None => None,
        };
        let Some(from) = from
            .and_then(|v| v.parse::<semver::Version>().ok())
            .filter(|v| *v != c.version)
        else {
            cannot.push(m.hostname.clone());
            continue;
        };
        let id = state
            .store
            .create_rollback(
                &m.host_id,
                &c.item,
                &from,
                &super::super::Actor::Campaign.to_text(),
                reason,
            )
            .await?;
        tracing::info!(campaign = %c.id, host = %m.hostname, update = %id, to = %from, "rollback dispatched");
        state.wake(&m.host_id);
        rolled += 1;
    }
    Ok((rolled, cannot))
}

/// At check-in: the host's samples for campaigns watching it are kept, and it is told which
/// windows it is in. Returns the orders, and whether the campaign should be judged now (a
/// sample failed, or its window is over).
pub async fn on_check_in(
    state: &Shared,
    c: &Campaign,
    m: &Member,
    health: &[HealthSample],
) -> ServiceResult<(Option<ObserveOrder>, bool)> {
    let Some((wave, since)) = &c.observe.watching else {
        return Ok((None, false));
    };
    if c.status != CampaignStatus::Running {
        return Ok((None, false));
    }
    let (Some(role), Some(w)) = (role(c, m, *wave), window(c, since)) else {
        return Ok((None, false));
    };
    let now = OffsetDateTime::now_utc();
    let mut judge_now = now >= w.ends_at();
    // What a device sends is folded before it is stored: the first and last sample, and the
    // first failing one with every probe that failed, so however many samples a check-in
    // carries, it costs at most three writes.
    let mut first: Option<time::OffsetDateTime> = None;
    let mut last: Option<time::OffsetDateTime> = None;
    let mut first_failed: Option<time::OffsetDateTime> = None;
    let mut probes: Vec<String> = Vec::new();
    for s in health
        .iter()
        .filter(|s| s.campaign_id == c.id)
        .take(observation::MAX_SAMPLES)
    {
        let Some(at) = ferry_manifests::wire::parse_timestamp(&s.at) else {
            continue;
        };
        // A sample counts inside the window, at most now.
        if at < w.started_at {
            continue;
        }
        let at = at.min(now);
        first = Some(first.map_or(at, |f| f.min(at)));
        last = Some(last.map_or(at, |l| l.max(at)));
        if !s.failed.is_empty() {
            first_failed = Some(first_failed.map_or(at, |f| f.min(at)));
            for p in s.failed.iter().take(observation::MAX_PROBES) {
                let p = observation::probe_name(p);
                if !probes.contains(&p) && probes.len() < observation::MAX_PROBES {
                    probes.push(p);
                }
            }
        }
    }
    let stamp = ferry_manifests::wire::timestamp;
    for (at, failed) in [
        (first, Vec::new()),
        (first_failed, probes),
        (last, Vec::new()),
    ] {
        let Some(at) = at else { continue };
        judge_now |= !failed.is_empty();
        state
            .store
            .record_health(&c.id, *wave, &m.host_id, &stamp(at), &failed)
            .await?;
    }
    // Orders go out until laggards would count as silent anyway.
    let order = (now < w.ends_at() + w.silence()).then(|| ObserveOrder {
        campaign_id: c.id.clone(),
        item: c.item.clone(),
        until: ferry_manifests::wire::timestamp(w.ends_at()),
        interval_secs: w.interval.whole_seconds().max(1) as u64,
        control: role == Role::Control,
    });
    Ok((order, judge_now))
}
