//! Campaigns (fleet rollouts) as plain code over data: targeting, waves, the per-member gate
//! (wave, acceptance, window), the success and failure thresholds, and maintenance windows.
//! `service::campaigns` gathers the data and calls these when a host checks in or a report
//! arrives.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::status::{CampaignStatus, MemberStatus, UpdateStatus};

/// A campaign as stored.
#[derive(Debug, Clone)]
pub struct Campaign {
    pub id: String,
    pub name: String,
    pub item: String,
    pub version: semver::Version,
    pub target: Target,
    pub require_acceptance: bool,
    pub waves: Vec<WaveSize>,
    pub success_threshold: f64,
    pub max_failure_rate: f64,
    pub window: Option<Window>,
    pub status: CampaignStatus,
    pub status_reason: String,
    pub created_at: String,
    /// Finished and failed installs when the campaign was last resumed: the failure threshold
    /// judges only what happened since, so a campaign that paused itself can go on.
    pub baseline: Baseline,
    /// The tenant it belongs to: only its hosts join (`None`: the default tenant).
    pub tenant_id: Option<String>,
    /// Watching each wave's health after its installs (off unless `observe.secs` > 0).
    pub observe: Observe,
}

/// A campaign's observation of its waves (docs/campaigns.md, "Observation").
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observe {
    /// The window after each wave's installs, in seconds; 0: waves are judged on their
    /// installs alone.
    pub secs: u64,
    /// A wave that regresses is rolled back to the release each host had.
    pub rollback: bool,
    pub thresholds: super::observation::Thresholds,
    /// The wave being watched, and since when (RFC 3339).
    pub watching: Option<(usize, String)>,
    /// Waves before this one passed their window.
    pub passed: usize,
}

/// Counts of finished and failed member installs at a moment (a resume).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Baseline {
    pub finished: usize,
    pub failed: usize,
}

/// One host's membership of a campaign, as stored.
#[derive(Debug, Clone)]
pub struct Member {
    pub host_id: String,
    pub hostname: String,
    pub seq: i64,
    pub wave: usize,
    pub accepted: bool,
    /// The install dispatched for it, once dispatched.
    pub update_id: Option<String>,
    pub update_status: Option<UpdateStatus>,
    /// The host's installed version of the campaign's item.
    pub installed: Option<String>,
    pub utc_offset_secs: i32,
}

/// What a member's install came to so far: its update's status, or `Installed` if the host
/// already had the version; `None` while nothing was dispatched.
fn outcome(c: &Campaign, m: &Member) -> Option<UpdateStatus> {
    m.update_status.or_else(|| {
        (m.installed.as_deref() == Some(c.version.to_string().as_str()))
            .then_some(UpdateStatus::Installed)
    })
}

/// The member gate: whether `m` may be dispatched `now`, and if not, what holds it. Members in
/// waves after `open_wave` wait; then acceptance (if required), then the window in the
/// device's local time.
pub fn gate(c: &Campaign, m: &Member, open_wave: usize, now: OffsetDateTime) -> MemberStatus {
    if let Some(s) = outcome(c, m) {
        return MemberStatus::Update(s);
    }
    // A cancelled campaign holds nothing back any more: what was not dispatched is cancelled.
    if c.status == super::status::CampaignStatus::Cancelled {
        return MemberStatus::Update(UpdateStatus::Cancelled);
    }
    let minute_utc = u32::from(now.hour()) * 60 + u32::from(now.minute());
    if m.wave > open_wave {
        MemberStatus::Waiting
    } else if c.require_acceptance && !m.accepted {
        MemberStatus::AwaitingAcceptance
    } else if c
        .window
        .is_some_and(|w| !w.contains(minute_utc, m.utc_offset_secs))
    {
        MemberStatus::OutsideWindow
    } else {
        MemberStatus::Dispatchable
    }
}

/// Which hosts a campaign is for. Campaigns are dynamic: a host that enrols or gains a
/// matching tag later joins at its next check-in.
pub use ferry_manifests::wire::CampaignTarget as Target;

/// Whether a host is targeted.
pub fn matches(target: &Target, host_id: &str, tags: &[String]) -> bool {
    match target {
        Target::All => true,
        Target::Tags(wanted) => wanted.iter().any(|t| tags.contains(t)),
        Target::Hosts(ids) => ids.iter().any(|h| h == host_id),
    }
}

/// The end of a wave: a share of the members, or a count.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WaveSize {
    Percent(f64),
    Count(u64),
}

/// Parses `10%,50%,100%` or `5,50,100%`. The last wave always takes everyone. Waves must
/// grow: each percentage above the one before, each count above the one before, and counts
/// before percentages (a count after a percentage cannot be ordered without the fleet's size).
pub fn parse_waves(text: &str) -> Result<Vec<WaveSize>, String> {
    let mut waves: Vec<WaveSize> = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let wave = if let Some(p) = part.strip_suffix('%') {
            let v: f64 = p
                .parse()
                .map_err(|_| format!("wave {part:?} is not a percentage"))?;
            if !(v > 0.0 && v <= 100.0) {
                return Err(format!("wave {part:?} must be between 0% and 100%"));
            }
            WaveSize::Percent(v)
        } else {
            let v: u64 = part
                .parse()
                .map_err(|_| format!("wave {part:?} is neither a count nor a percentage"))?;
            if v == 0 {
                return Err("a wave of 0 hosts never starts".into());
            }
            WaveSize::Count(v)
        };
        match (waves.last(), wave) {
            (Some(WaveSize::Percent(before)), WaveSize::Percent(now)) if now <= *before => {
                return Err(format!(
                    "waves must grow: {now}% does not come after {before}%"
                ))
            }
            (Some(WaveSize::Count(before)), WaveSize::Count(now)) if now <= *before => {
                return Err(format!(
                    "waves must grow: {now} hosts does not come after {before}"
                ))
            }
            (Some(WaveSize::Percent(before)), WaveSize::Count(now)) => {
                return Err(format!(
                    "a count ({now}) cannot follow a percentage ({before}%); give counts first, as in 5,50%,100%"
                ))
            }
            _ => {}
        }
        waves.push(wave);
    }
    if waves.len() > 20 {
        return Err("at most 20 waves".into());
    }
    if waves.last() != Some(&WaveSize::Percent(100.0)) {
        waves.push(WaveSize::Percent(100.0));
    }
    Ok(waves)
}

/// How many of `members` hosts the waves up to and including `wave` cover. A percentage
/// rounds to the nearest host (half up: 34% of 3 is 1), and every wave takes at least one
/// host more than the one before while hosts remain.
fn cutoff(waves: &[WaveSize], wave: usize, members: u64) -> u64 {
    let mut end = 0;
    for size in waves.iter().take(wave + 1) {
        let raw = match *size {
            WaveSize::Percent(p) => ((members as f64) * p / 100.0 + 0.5).floor() as u64,
            WaveSize::Count(c) => c,
        };
        end = raw.max(end + 1).min(members);
    }
    if wave >= waves.len() {
        return members;
    }
    end
}

/// The wave of the host that joins as member number `index` (0-based) of `members`.
pub fn wave_for(waves: &[WaveSize], index: u64, members: u64) -> usize {
    (0..waves.len())
        .find(|&w| index < cutoff(waves, w, members.max(index + 1)))
        .unwrap_or(waves.len().saturating_sub(1))
}

#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Members in waves up to this one may be dispatched.
    pub open_wave: usize,
    /// The failure share passed the threshold: the campaign pauses itself.
    pub pause: bool,
    /// Failed among the installs finished since the last resume.
    pub failure_share: f64,
    /// Every member has a final outcome: `Some(succeeded)`, where succeeded means the share
    /// that installed reached `success_threshold`.
    pub complete: Option<bool>,
    /// This wave's installs are done and it must pass its observation window before the
    /// next wave opens (or, for the last wave, before the campaign completes).
    pub observe_wave: Option<usize>,
}

/// Finished and failed member installs now: the baseline a resume records.
pub fn baseline(c: &Campaign, members: &[Member]) -> Baseline {
    let finished: Vec<UpdateStatus> = members
        .iter()
        .filter_map(|m| outcome(c, m))
        .filter(|s| *s != UpdateStatus::Pending)
        .collect();
    Baseline {
        finished: finished.len(),
        failed: finished.iter().filter(|s| s.is_failure()).count(),
    }
}

/// Opens wave k when the share of wave k-1's members that installed reaches
/// `success_threshold`; pauses when the share of finished installs that failed exceeds
/// `max_failure_rate`. hawkBit's defaults are 0.5 and 0.5.
pub fn decide(c: &Campaign, members: &[Member]) -> Decision {
    let outcomes: Vec<(usize, Option<UpdateStatus>)> =
        members.iter().map(|m| (m.wave, outcome(c, m))).collect();
    let finished: Vec<UpdateStatus> = outcomes
        .iter()
        .filter_map(|(_, s)| *s)
        .filter(|s| *s != UpdateStatus::Pending)
        .collect();
    let failures = finished.iter().filter(|s| s.is_failure()).count();
    // Only what finished since the last resume counts.
    let judged = finished.len().saturating_sub(c.baseline.finished);
    let failed = failures.saturating_sub(c.baseline.failed);
    let failure_share = if judged == 0 {
        0.0
    } else {
        failed as f64 / judged as f64
    };
    let all_final = !members.is_empty()
        && outcomes
            .iter()
            .all(|(_, s)| s.is_some_and(|s| s != UpdateStatus::Pending));
    let complete = all_final.then(|| {
        let installed = finished
            .iter()
            .filter(|s| **s == UpdateStatus::Installed)
            .count();
        installed as f64 / members.len() as f64 >= c.success_threshold
    });
    let observing = c.observe.secs > 0;
    // A wave's installs are done when each of its members has a final outcome.
    let wave_done = |wave: usize| {
        outcomes
            .iter()
            .filter(|(w, _)| *w == wave)
            .all(|(_, s)| s.is_some_and(|s| s != UpdateStatus::Pending))
    };
    let mut open_wave = 0;
    let mut observe_wave = None;
    while open_wave + 1 < c.waves.len() {
        let in_wave: Vec<Option<UpdateStatus>> = outcomes
            .iter()
            .filter(|(wave, _)| *wave == open_wave)
            .map(|(_, s)| *s)
            .collect();
        if in_wave.is_empty() {
            // An empty wave (few members so far) does not hold the next one back.
            open_wave += 1;
            continue;
        }
        let installed = in_wave
            .iter()
            .filter(|s| **s == Some(UpdateStatus::Installed))
            .count();
        if (installed as f64) / (in_wave.len() as f64) < c.success_threshold {
            break;
        }
        if observing && open_wave >= c.observe.passed {
            // Installed enough: now it is watched, once all its installs are done.
            if wave_done(open_wave) {
                observe_wave = Some(open_wave);
            }
            break;
        }
        open_wave += 1;
    }
    // The last wave is watched too before the campaign completes.
    let last = outcomes.iter().map(|(w, _)| *w).max();
    let mut complete = complete;
    if let (true, Some(true), Some(last)) = (observing, complete, last) {
        if last >= c.observe.passed {
            complete = None;
            observe_wave = Some(last);
        }
    }
    Decision {
        open_wave,
        pause: complete.is_none() && failure_share > c.max_failure_rate,
        failure_share,
        complete,
        observe_wave,
    }
}

/// What an operator may change of a campaign under way (`ferryctl campaigns edit`).
#[derive(Debug, Clone, Default)]
pub struct Edit {
    pub success_threshold: Option<f64>,
    pub max_failure_rate: Option<f64>,
    /// `Some(None)` removes the window.
    pub window: Option<Option<Window>>,
    pub waves: Option<Vec<WaveSize>>,
}

/// Applies `edit` to `c`: thresholds and window freely, waves only where they have not
/// opened (the waves up to `open_wave` must stay as they are). Returns the new campaign and
/// the members (host id, new wave) that move because the later waves changed.
pub fn edit(
    c: &Campaign,
    members: &[Member],
    open_wave: usize,
    e: &Edit,
) -> Result<(Campaign, Vec<(String, usize)>), String> {
    let mut next = c.clone();
    for (name, v) in [
        ("success_threshold", e.success_threshold),
        ("max_failure_rate", e.max_failure_rate),
    ] {
        if let Some(v) = v {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("{name} {v} must be between 0 and 1"));
            }
        }
    }
    if let Some(v) = e.success_threshold {
        next.success_threshold = v;
    }
    if let Some(v) = e.max_failure_rate {
        next.max_failure_rate = v;
    }
    if let Some(w) = e.window {
        next.window = w;
    }
    let mut moved = Vec::new();
    if let Some(waves) = &e.waves {
        let opened = open_wave + 1;
        if waves.len() < opened || waves[..opened] != c.waves[..opened.min(c.waves.len())] {
            return Err(format!(
                "waves 1 to {opened} have opened and cannot change; give them as they are and change only the later ones"
            ));
        }
        next.waves = waves.clone();
        let total = members.len() as u64;
        for m in members {
            if m.wave > open_wave && m.update_id.is_none() {
                let wave = wave_for(waves, m.seq as u64, total).max(opened);
                if wave != m.wave {
                    moved.push((m.host_id.clone(), wave));
                }
            }
        }
    }
    Ok((next, moved))
}

/// A daily window, in the device's local time, during which installs may start. Windows may
/// wrap midnight (`22:00-04:00`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub start_min: u32,
    pub end_min: u32,
}

/// Why the text of a maintenance window was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    #[error("window {0:?} must look like 02:00-04:00")]
    Shape(String),
    #[error("{0:?} is not HH:MM")]
    NotHoursMinutes(String),
    #[error("{0:?} is not a time of day")]
    NotATimeOfDay(String),
    #[error("an empty window never opens")]
    Empty,
}

/// `HH:MM-HH:MM`, in the device's local time.
pub fn parse_window(text: &str) -> Result<Window, WindowError> {
    let parse = |t: &str| -> Result<u32, WindowError> {
        let not_hh_mm = || WindowError::NotHoursMinutes(t.to_string());
        let (h, m) = t.split_once(':').ok_or_else(not_hh_mm)?;
        let (h, m): (u32, u32) = (
            h.parse().map_err(|_| not_hh_mm())?,
            m.parse().map_err(|_| not_hh_mm())?,
        );
        if h > 23 || m > 59 {
            return Err(WindowError::NotATimeOfDay(t.to_string()));
        }
        Ok(h * 60 + m)
    };
    let (a, b) = text
        .split_once('-')
        .ok_or_else(|| WindowError::Shape(text.to_string()))?;
    let w = Window {
        start_min: parse(a.trim())?,
        end_min: parse(b.trim())?,
    };
    if w.start_min == w.end_min {
        return Err(WindowError::Empty);
    }
    Ok(w)
}

impl Window {
    /// Whether `utc_minute` (minute of the day in UTC) plus the device's UTC offset falls in
    /// the window.
    pub fn contains(&self, utc_minute: u32, offset_secs: i32) -> bool {
        let local = (utc_minute as i64 + (offset_secs as i64) / 60).rem_euclid(1440) as u32;
        if self.start_min < self.end_min {
            (self.start_min..self.end_min).contains(&local)
        } else {
            local >= self.start_min || local < self.end_min
        }
    }
}

#[cfg(test)]
mod tests;
