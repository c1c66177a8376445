//! Watching a wave after its installs (docs/campaigns.md, "Observation"), as plain code over
//! the health samples devices sent, with the clock as an argument.
//!
//! A wave's hosts are compared with the campaign's control group (its members that have not
//! installed), over the same span of time, so a storm that hits the whole fleet does not
//! read as the release's fault:
//!
//! - a host *fails* once one of its samples reported a failed probe (the health check, a unit,
//!   a reboot, the custom probe), or once it falls silent: no sample for three intervals;
//! - an updated host that never reports counts as silent three intervals into the window (it
//!   reported its install just before); a control host counts only once it has reported;
//! - a wave's failures are judged only once every host still reporting has reported since
//!   them (`compared_to`), and each control host has reported once or had three intervals
//!   to, so a wave host's failure is not judged before the control hosts had their chance to
//!   report the same storm;
//! - the wave *regressed* when its failure share passes `max_share` and exceeds the control's
//!   by more than `max_excess`, as soon as that is so; it is *healthy* when the window has
//!   passed without that; with fewer than `min_hosts` wave hosts reporting, it is *too few* to
//!   judge, and an operator decides.

use time::{Duration, OffsetDateTime};

/// The operator's thresholds (`ferryctl campaigns create --observe …`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// A wave whose failure share is at most this is healthy, whatever the control does.
    pub max_share: f64,
    /// A wave is healthy while its failure share exceeds the control's by at most this.
    pub max_excess: f64,
    /// Wave hosts that must report for a verdict.
    pub min_hosts: usize,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            max_share: 0.2,
            max_excess: 0.2,
            min_hosts: 1,
        }
    }
}

/// What the server keeps of one host's samples in one campaign's window.
#[derive(Debug, Clone, PartialEq)]
pub struct HostHealth {
    pub host_id: String,
    pub hostname: String,
    pub first_at: OffsetDateTime,
    pub last_at: OffsetDateTime,
    /// When a sample first reported a failed probe.
    pub failed_at: Option<OffsetDateTime>,
    /// The probes that failed (`health`, `unit:NAME`, `reboot`, `probe`).
    pub probes: Vec<String>,
}

/// A wave's observation window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    /// When the wave's installs were done and watching began.
    pub started_at: OffsetDateTime,
    pub length: Duration,
    /// How often devices sample.
    pub interval: Duration,
}

impl Window {
    pub fn ends_at(&self) -> OffsetDateTime {
        self.started_at + self.length
    }

    /// How long a host may go without a sample before it counts as silent.
    pub fn silence(&self) -> Duration {
        self.interval * 3
    }
}

/// How often devices sample over a window of `length`: ten samples a window, between 1 s and
/// 5 min apart.
pub fn sample_interval(length: Duration) -> Duration {
    let tenth: Duration = length / 10;
    tenth.clamp(Duration::seconds(1), Duration::minutes(5))
}

#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// The window is open and nothing has regressed so far.
    Observing,
    /// The window passed and the wave is healthy: its successor may open.
    Healthy,
    /// The wave fails more than the thresholds allow.
    Regressed,
    /// The window passed with fewer wave hosts reporting than `min_hosts`.
    TooFew,
}

/// One side of the comparison.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Group {
    /// Hosts that count: wave hosts that reported or fell silent; control hosts that reported.
    pub counted: usize,
    /// Failing hosts (hostname) with the probes that failed.
    pub failing: Vec<(String, Vec<String>)>,
    pub share: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub verdict: Verdict,
    pub wave: Group,
    pub control: Group,
    /// Every host still reporting has reported past this moment.
    pub compared_to: OffsetDateTime,
    /// Until the window ends (zero once it has).
    pub left: Duration,
}

/// The probe a silent host is listed with.
pub const SILENT: &str = "silent";

/// Samples of one campaign taken from one check-in, and probes kept per host.
pub const MAX_SAMPLES: usize = 100;
pub const MAX_PROBES: usize = 20;

/// A probe's name as a device reported it, kept only if it looks like one (`health`,
/// `unit:web.service`, `reboot`, `probe`): at most 128 of `A-Z a-z 0-9 : . _ @ -`; anything
/// else is still a failure, named `unknown`.
pub fn probe_name(raw: &str) -> String {
    let ok = (1..=128).contains(&raw.len())
        && raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ":._@-".contains(c));
    if ok {
        raw.to_string()
    } else {
        "unknown".to_string()
    }
}

/// Judges a wave: `wave` are the hosts that installed in it (by id and name) and `control`
/// the members that have not installed, each with what the server kept of their samples.
pub fn judge(
    wave: &[(&str, &str)],
    control: &[(&str, &str)],
    samples: &dyn Fn(&str) -> Option<HostHealth>,
    window: &Window,
    now: OffsetDateTime,
    t: &Thresholds,
) -> Observation {
    let silent_before = now - window.silence();
    let first_due = window.started_at + window.silence();
    let wave_h: Vec<(&str, Option<HostHealth>)> =
        wave.iter().map(|(id, name)| (*name, samples(id))).collect();
    let control_h: Vec<(&str, HostHealth)> = control
        .iter()
        .filter_map(|(id, name)| samples(id).map(|h| (*name, h)))
        .collect();
    // Until each control host has reported once (or had the time to), nothing is compared:
    // a storm would reach the wave's reports before the control's.
    let control_pending = now < first_due && control_h.len() < control.len();
    // Compared up to the moment every host still reporting has reported past.
    let compared_to = wave_h
        .iter()
        .filter_map(|(_, h)| h.as_ref())
        .chain(control_h.iter().map(|(_, h)| h))
        .filter(|h| h.last_at >= silent_before)
        .map(|h| h.last_at)
        .min()
        .unwrap_or(now)
        .min(now);
    let compared_to = if control_pending {
        compared_to.min(window.started_at)
    } else {
        compared_to
    };
    let failing = |h: &HostHealth| -> Option<Vec<String>> {
        if h.last_at < silent_before {
            let mut p = h.probes.clone();
            p.push(SILENT.into());
            return Some(p);
        }
        h.failed_at
            .filter(|at| *at <= now)
            .map(|_| h.probes.clone())
    };
    // A wave's failures are judged once every host still reporting has reported since them:
    // the control group's hosts then had their chance to report the same storm.
    let latest_wave_failure = wave_h
        .iter()
        .filter_map(|(_, h)| h.as_ref())
        .filter(|h| h.last_at >= silent_before)
        .filter_map(|h| h.failed_at)
        .max();
    let ready = latest_wave_failure.is_none_or(|f| compared_to >= f);
    let mut w = Group::default();
    for (name, h) in &wave_h {
        match h {
            Some(h) => {
                w.counted += 1;
                if let Some(p) = failing(h) {
                    w.failing.push((name.to_string(), p));
                }
            }
            None if now >= first_due => {
                w.counted += 1;
                w.failing.push((name.to_string(), vec![SILENT.into()]));
            }
            None => {}
        }
    }
    let mut c = Group::default();
    for (name, h) in &control_h {
        c.counted += 1;
        if let Some(p) = failing(h) {
            c.failing.push((name.to_string(), p));
        }
    }
    for g in [&mut w, &mut c] {
        g.share = if g.counted == 0 {
            0.0
        } else {
            g.failing.len() as f64 / g.counted as f64
        };
    }
    let ends = window.ends_at();
    // The window is over once everyone still reporting has reported past its end, or the
    // laggards have had time to fall silent.
    let over = now >= ends && (compared_to >= ends || now >= ends + window.silence());
    let regressed = ready
        && w.counted >= t.min_hosts
        && w.share > t.max_share
        && w.share - c.share > t.max_excess;
    let verdict = if regressed {
        Verdict::Regressed
    } else if !over {
        Verdict::Observing
    } else if w.counted < t.min_hosts {
        Verdict::TooFew
    } else {
        Verdict::Healthy
    };
    Observation {
        verdict,
        wave: w,
        control: c,
        compared_to,
        left: (ends - now).max(Duration::ZERO),
    }
}

/// The two failure shares over time, at `points` moments from `from` to `to`: at each, the
/// hosts that had failed by then among those that had reported by then.
pub fn series(
    wave: &[HostHealth],
    control: &[HostHealth],
    from: OffsetDateTime,
    to: OffsetDateTime,
    points: usize,
) -> Vec<(OffsetDateTime, f64, f64)> {
    let share = |hosts: &[HostHealth], t: OffsetDateTime| {
        let seen: Vec<&HostHealth> = hosts.iter().filter(|h| h.first_at <= t).collect();
        if seen.is_empty() {
            return 0.0;
        }
        let failed = seen
            .iter()
            .filter(|h| h.failed_at.is_some_and(|f| f <= t))
            .count();
        failed as f64 / seen.len() as f64
    };
    if to <= from || points < 2 {
        return vec![(to, share(wave, to), share(control, to))];
    }
    (0..points)
        .map(|i| {
            let t = from + (to - from) * (i as f64 / (points - 1) as f64);
            (t, share(wave, t), share(control, t))
        })
        .collect()
}

/// The probes failing in a group, most common first, as `probe (n)`.
pub fn probe_summary(g: &Group) -> String {
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for (_, probes) in &g.failing {
        for p in probes {
            *counts.entry(p.as_str()).or_default() += 1;
        }
    }
    let mut v: Vec<(&str, usize)> = counts.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    v.iter()
        .map(|(p, n)| format!("{p} ({n})"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests;
