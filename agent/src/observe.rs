//! Watching this device's health while a campaign observes it (docs/campaigns.md,
//! "Observation"): after installing the campaign's release, or as one of its control group.
//! The server's check-in answer names the windows (`observe`); each cycle takes a sample of
//! every window that is due and the next check-in carries the samples. The windows, the boot
//! id and the units' restart counters they started from are kept in `STATE_DIR/observe.json`,
//! so a restart of the agent or a reboot of the device continues the window.
//!
//! Probes: the release's health check again (not for the control group), the systemd units
//! the release names (active, and `NRestarts` not rising), a reboot (the boot id changed), and
//! agent.toml's `health_probe`.

use std::collections::BTreeMap;
use std::time::Duration;

use ferry_manifests::wire::{HealthSample, ObserveOrder};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::agent::Agent;
use crate::error::Error;

/// One window this device is in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Watch {
    pub campaign_id: String,
    pub item: String,
    /// The end of the window, in the server's time.
    pub until: String,
    pub interval_secs: u64,
    #[serde(default)]
    pub control: bool,
    /// The boot id when the window began here (or at the last reboot seen).
    #[serde(default)]
    pub boot_id: Option<String>,
    /// Each unit's restart counter at the first sample.
    #[serde(default)]
    pub restarts: BTreeMap<String, u64>,
    /// When the last sample was taken (server time).
    #[serde(default)]
    pub last_sample: Option<String>,
    /// Samples the server has not received yet.
    #[serde(default)]
    pub unsent: Vec<HealthSample>,
    /// A sample at or after `until` was taken: nothing more to do once it is sent.
    #[serde(default)]
    pub done: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Watches {
    pub watches: Vec<Watch>,
}

/// At most this many samples go with one check-in (the oldest wait for the next).
const MAX_SENT: usize = 100;

fn at(text: &str) -> Option<OffsetDateTime> {
    ferry_manifests::wire::parse_timestamp(text)
}

/// Whether `w` wants a sample at `now` (server time).
pub fn due(w: &Watch, now: OffsetDateTime) -> bool {
    if w.done {
        return false;
    }
    match w.last_sample.as_deref().and_then(at) {
        None => true,
        Some(last) => now >= last + time::Duration::seconds(w.interval_secs as i64),
    }
}

/// How long until the first window wants its next sample.
pub fn next_due(ws: &Watches, now: OffsetDateTime) -> Option<Duration> {
    ws.watches
        .iter()
        .filter(|w| !w.done)
        .map(|w| match w.last_sample.as_deref().and_then(at) {
            None => Duration::ZERO,
            Some(last) => {
                let next = last + time::Duration::seconds(w.interval_secs as i64);
                Duration::try_from(next - now).unwrap_or(Duration::ZERO)
            }
        })
        .min()
}

/// The server's orders joined into what is kept: new windows start, known ones follow the
/// server (a later end, another interval). Windows done and delivered are dropped.
pub fn merge(ws: &mut Watches, orders: &[ObserveOrder]) {
    ws.watches.retain(|w| !(w.done && w.unsent.is_empty()));
    for o in orders {
        match ws
            .watches
            .iter_mut()
            .find(|w| w.campaign_id == o.campaign_id)
        {
            Some(w) => {
                if w.until != o.until {
                    w.done = false;
                }
                w.until = o.until.clone();
                w.interval_secs = o.interval_secs.max(1);
                w.control = o.control;
                w.item = o.item.clone();
            }
            None => ws.watches.push(Watch {
                campaign_id: o.campaign_id.clone(),
                item: o.item.clone(),
                until: o.until.clone(),
                interval_secs: o.interval_secs.max(1),
                control: o.control,
                boot_id: None,
                restarts: BTreeMap::new(),
                last_sample: None,
                unsent: Vec::new(),
                done: false,
            }),
        }
    }
}

/// A unit as `systemctl show --property=ActiveState,NRestarts` describes it: whether it is
/// active, and its restart counter.
pub fn unit_state(show: &str) -> (bool, Option<u64>) {
    let mut active = false;
    let mut restarts = None;
    for line in show.lines() {
        match line.split_once('=') {
            Some(("ActiveState", v)) => active = v.trim() == "active",
            Some(("NRestarts", v)) => restarts = v.trim().parse().ok(),
            _ => {}
        }
    }
    (active, restarts)
}

/// What one look at the device found, before it is a sample.
#[derive(Debug, Default)]
pub struct Look {
    /// The health check passed (`None`: none ran).
    pub health: Option<bool>,
    /// Each unit: (active, restart counter).
    pub units: Vec<(String, bool, Option<u64>)>,
    pub boot_id: Option<String>,
    pub probe: Option<bool>,
}

/// The probes that failed in a look, against what the window started from; updates the
/// window's baselines (the first restart counters, the boot id after a reboot).
pub fn failed(w: &mut Watch, look: &Look) -> Vec<String> {
    let mut failed = Vec::new();
    if look.health == Some(false) {
        failed.push("health".to_string());
    }
    for (unit, active, restarts) in &look.units {
        let base = *w
            .restarts
            .entry(unit.clone())
            .or_insert(restarts.unwrap_or(0));
        if !active || restarts.is_some_and(|r| r > base) {
            failed.push(format!("unit:{unit}"));
        }
        if let Some(r) = restarts {
            // One restart counts once.
            w.restarts.insert(unit.clone(), (*r).max(base));
        }
    }
    if let Some(boot) = &look.boot_id {
        match &w.boot_id {
            Some(before) if before != boot => failed.push("reboot".to_string()),
            _ => {}
        }
        w.boot_id = Some(boot.clone());
    }
    if look.probe == Some(false) {
        failed.push("probe".to_string());
    }
    failed
}

fn load(agent: &Agent) -> Result<Watches, Error> {
    Ok(crate::state::read_json(&agent.dir.root().join("observe.json"))?.unwrap_or_default())
}

fn save(agent: &Agent, ws: &Watches) -> Result<(), Error> {
    let path = agent.dir.root().join("observe.json");
    if ws.watches.is_empty() {
        let _ = std::fs::remove_file(&path);
        return Ok(());
    }
    agent.dir.write_json(&path, ws)
}

fn server_now(agent: &Agent) -> OffsetDateTime {
    OffsetDateTime::now_utc() - time::Duration::seconds(agent.clock_skew_secs.unwrap_or(0))
}

/// Before a check-in: a sample of each window that is due; returns what the check-in carries.
pub fn take(agent: &Agent) -> Result<Vec<HealthSample>, Error> {
    let mut ws = load(agent)?;
    if ws.watches.is_empty() {
        return Ok(Vec::new());
    }
    let now = server_now(agent);
    for w in &mut ws.watches {
        if !due(w, now) {
            continue;
        }
        let look = look(agent, w);
        let failed = failed(w, &look);
        if !failed.is_empty() {
            tracing::warn!(campaign = %w.campaign_id, item = %w.item, failed = %failed.join(", "), "health sample: failing");
        }
        let stamp = ferry_manifests::wire::timestamp(now);
        w.unsent.push(HealthSample {
            campaign_id: w.campaign_id.clone(),
            at: stamp.clone(),
            failed,
        });
        w.last_sample = Some(stamp);
        if at(&w.until).is_some_and(|until| now >= until) {
            w.done = true;
        }
    }
    save(agent, &ws)?;
    Ok(ws
        .watches
        .iter()
        .flat_map(|w| w.unsent.iter().cloned())
        .take(MAX_SENT)
        .collect())
}

/// After a check-in the server answered: the samples it carried are delivered, and the
/// server's windows are kept.
pub fn delivered(
    agent: &Agent,
    sent: &[HealthSample],
    orders: &[ObserveOrder],
) -> Result<(), Error> {
    let mut ws = load(agent)?;
    if ws.watches.is_empty() && orders.is_empty() {
        return Ok(());
    }
    for w in &mut ws.watches {
        w.unsent.retain(|s| !sent.contains(s));
    }
    for o in orders {
        if !ws.watches.iter().any(|w| w.campaign_id == o.campaign_id) {
            tracing::info!(campaign = %o.campaign_id, item = %o.item, until = %o.until, control = o.control, "a campaign watches this device's health");
        }
    }
    merge(&mut ws, orders);
    save(agent, &ws)
}

/// Whether the server names a window this device does not keep yet.
pub fn new_orders(agent: &Agent, orders: &[ObserveOrder]) -> bool {
    let known = load(agent).unwrap_or_default();
    orders.iter().any(|o| {
        !known
            .watches
            .iter()
            .any(|w| w.campaign_id == o.campaign_id && w.until == o.until)
    })
}

/// How long until a window wants its next sample, if any does.
pub fn wait(agent: &Agent) -> Option<Duration> {
    next_due(&load(agent).ok()?, server_now(agent))
}

/// The boot id: changes at every boot.
fn boot_id() -> Option<String> {
    #[cfg(feature = "fault-injection")]
    if let Some(path) = std::env::var_os("FERRY_FAULT_BOOT_ID_FILE") {
        return std::fs::read_to_string(path)
            .ok()
            .map(|s| s.trim().to_string());
    }
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
}

/// One look at the device for window `w`.
fn look(agent: &Agent, w: &Watch) -> Look {
    let manifest = agent.dir.installed_release(&w.item);
    let root = agent
        .cfg
        .items
        .iter()
        .find(|i| i.name == w.item)
        .map(|i| i.root.clone());
    let timeout = Duration::from_secs(agent.cfg.hook_timeout_secs);
    let run = |command: &str, version: &str| -> bool {
        let root = root.clone().unwrap_or_default();
        let current = root.join("current");
        let release_dir = if current.is_dir() {
            current
        } else {
            root.clone()
        };
        let env = crate::install::hooks::HookEnv {
            item: &w.item,
            version,
            previous_version: None,
            root: &root,
            release_dir: &release_dir,
            terminal: None,
        };
        crate::install::hooks::run(command, &env, timeout, None, &mut |_| {}).success
    };
    let version = manifest
        .as_ref()
        .map(|m| m.version.to_string())
        .unwrap_or_default();
    let mut look = Look {
        boot_id: boot_id(),
        ..Look::default()
    };
    if let Some(m) = &manifest {
        if !w.control {
            look.health = m.install.health_check.as_deref().map(|c| run(c, &version));
        }
        for unit in &m.install.units {
            let (active, restarts) = systemctl_show(unit);
            look.units.push((unit.clone(), active, restarts));
        }
    }
    look.probe = agent.cfg.health_probe.as_deref().map(|c| run(c, &version));
    look
}

fn systemctl_show(unit: &str) -> (bool, Option<u64>) {
    let out = std::process::Command::new("systemctl")
        .args(["show", "--property=ActiveState,NRestarts", "--", unit])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output();
    match out {
        Ok(o) if o.status.success() => unit_state(&String::from_utf8_lossy(&o.stdout)),
        _ => (false, None),
    }
}

#[cfg(test)]
mod tests;
