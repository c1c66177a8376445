//! The agent's context for one run: its configuration, state directory, API client, the
//! keys it verifies against, the run lock and what this run has done so far. Every stage
//! takes it; it imports no stage.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ferry_manifests::wire::Outcome;

use crate::client::Api;
use crate::config::Config;
use crate::error::Error;
use crate::progress::Progress;
use crate::state::{ItemState, State, StateDir};
use crate::{fsops, lock, trust};

/// What a run was asked to do (`--running-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum Mode {
    /// check, download, install, report; then exit.
    Once,
    /// `once` in a loop every `poll_interval_secs` (with jitter) until SIGTERM.
    Full,
    /// Poll the server, verify manifests, record what is available and pending.
    Check,
    /// Download the artifacts of pending updates.
    Download,
    /// Install downloaded updates (no network needed).
    Install,
    /// Print what is installed, available, downloaded and pending.
    Status,
    /// Restore the previous version of `--item` by hand (and report it).
    Rollback,
    /// List the campaigns that target this device and need its acceptance, with their ids.
    CampaignCheck,
    /// Accept the campaign `--campaign-id`; its update then becomes installable.
    CampaignAccept,
    /// Serve the verified artifacts this device keeps to its site's peers (`share_listen`)
    /// until SIGTERM; `full` does this itself.
    Share,
}

impl Mode {
    /// The mode as `--running-mode` spells it.
    pub fn name(self) -> String {
        clap::ValueEnum::to_possible_value(&self)
            .map(|v| v.get_name().to_string())
            .unwrap_or_default()
    }
}

pub struct Agent {
    pub cfg: Config,
    pub dir: StateDir,
    pub api: Api,
    pub state: State,
    pub progress: Option<Progress>,
    /// Outcomes recorded during this run, from every stage; they decide the exit code.
    pub outcomes: Vec<Outcome>,
    /// The keys manifests are verified against.
    pub trust: trust::Trust,
    /// Set by SIGTERM/SIGINT: downloads stop (the partial file is kept) and no new stage
    /// starts; an install under way finishes, since it is short and journalled.
    pub stop: Arc<AtomicBool>,
    /// The run lock, while this run changes the state directory.
    pub lock: Option<lock::RunLock>,
    /// The poll interval the server last suggested.
    pub suggested_poll_secs: Option<u64>,
    /// This device's offset from UTC, read at start-up (for maintenance windows).
    pub utc_offset_secs: Option<i32>,
    /// How far this device's clock is ahead of the server's (negative: behind), from the
    /// last check-in's `server_time`.
    pub clock_skew_secs: Option<i64>,
    /// This device's key, once loaded (a token's session stays open for the run).
    device_key: Option<crate::identity::DeviceKey>,
    /// Campaigns needing this device's acceptance, from the last check-in.
    pub campaigns: Vec<ferry_manifests::wire::CampaignOffer>,
    /// `status` prints one JSON object instead of text (`--json`).
    pub json: bool,
    /// Set by SIGUSR1 (a `check` run by hand while the service runs): `full` mode starts a
    /// cycle now instead of waiting out its long-poll or poll interval.
    pub wake: Arc<AtomicBool>,
    /// A person asked for this check (`--running-mode=check`): sources refresh what they
    /// know (APT's lists) before they are read.
    pub manual_check: bool,
    /// The server asked for a check now (`ferryctl hosts check`) in a long-poll's answer:
    /// the next cycle's check behaves as one run by hand.
    pub check_asked: AtomicBool,
    /// Upgrades of the sources' packages the last check-in handed out, for the install
    /// stage.
    pub package_jobs: Vec<ferry_manifests::wire::PackageJob>,
    /// Package upgrades that waited for the package manager's lock in this process: a
    /// long-poll that hands them out again is no reason for a cycle at once.
    pub packages_waiting: Vec<String>,
}

impl Agent {
    /// An agent over its state directory, without the run lock: enough for `status`. The
    /// running modes take the lock with [`Agent::lock_run`].
    pub fn unlocked(
        cfg: Config,
        progress: bool,
        fs: std::sync::Arc<dyn fsops::Fs>,
    ) -> Result<Agent, Error> {
        let dir = StateDir::open(&cfg.state_dir, fs)?;
        let state = dir.load_state()?;
        let trust = trust::Trust::load(&cfg, &dir)?;
        // The server, or with none the repository (its files are fetched by full URL).
        let base = match (&cfg.server_url, &cfg.repository_url) {
            (Some(server), _) => server.clone(),
            (None, Some(repo)) => repo.clone(),
            (None, None) => {
                return Err(Error::Usage(format!(
                    "{}: set `server_url` or `repository_url`",
                    cfg.path.display()
                )))
            }
        };
        let api = Api::new(
            base,
            Duration::from_secs(cfg.connect_timeout_secs),
            Duration::from_secs(cfg.read_timeout_secs),
            cfg.server_ca.as_deref(),
        )?;
        let agent = Agent {
            cfg,
            dir,
            api,
            state,
            progress: progress.then_some(Progress),
            outcomes: Vec::new(),
            trust,
            stop: Arc::new(AtomicBool::new(false)),
            lock: None,
            suggested_poll_secs: None,
            campaigns: Vec::new(),
            json: false,
            wake: Arc::new(AtomicBool::new(false)),
            manual_check: false,
            check_asked: AtomicBool::new(false),
            package_jobs: Vec::new(),
            packages_waiting: Vec::new(),
            utc_offset_secs: None,
            clock_skew_secs: None,
            device_key: None,
        };
        Ok(agent)
    }

    /// Takes the run lock for `mode`, waiting up to `wait` for another run, then reloads
    /// what another run may have changed meanwhile. [`crate::run::lock`] also finishes or
    /// undoes an install that was interrupted: every run goes through it.
    pub fn lock_run(&mut self, mode: Mode, wait: Duration) -> Result<(), Error> {
        let name = mode.name();
        let progress = self.progress;
        let lock = self.dir.lock(&name, wait, &self.stop, &mut |text| {
            tracing::info!("{text}");
            if let Some(p) = &progress {
                p.line(text);
            }
        })?;
        self.state = self.dir.load_state()?;
        self.trust = trust::Trust::load(&self.cfg, &self.dir)?;
        self.lock = Some(lock);
        Ok(())
    }

    /// Lets go of the run lock (`full` mode, between cycles).
    pub fn unlock(&mut self) {
        self.lock = None;
    }

    /// Fails with [`Error::Interrupted`] once a stop was asked for.
    /// This device's key for its certificate: loaded (and made, on first use) once per run.
    pub fn device_key(&mut self) -> Result<crate::identity::DeviceKey, Error> {
        if let Some(key) = &self.device_key {
            return Ok(key.clone());
        }
        let key = crate::identity::DeviceKey::load(&self.cfg.identity, &self.dir)?;
        self.device_key = Some(key.clone());
        Ok(key)
    }

    pub fn check_stop(&self) -> Result<(), Error> {
        if self.stop.load(Ordering::SeqCst) {
            Err(Error::Interrupted)
        } else {
            Ok(())
        }
    }

    pub fn item_state(&self, item: &str) -> ItemState {
        self.state.items.get(item).cloned().unwrap_or_default()
    }

    /// The pending install of `item`, to change in place.
    pub fn pending_mut(&mut self, item: &str) -> Option<&mut crate::state::Pending> {
        self.state
            .items
            .get_mut(item)
            .and_then(|s| s.pending.as_mut())
    }
}

/// A clock difference beyond this is worth saying (seconds).
const SKEW_WORTH_SAYING_SECS: i64 = 300;

impl Agent {
    /// The time expiry is checked against: this device's clock, but never earlier than the
    /// newest signed release date it has verified nor the server's time at the last
    /// check-in. A clock that is behind (no RTC, a dead battery) cannot revive an expired
    /// manifest or index.
    pub fn trusted_now(&self) -> time::OffsetDateTime {
        trusted_time(
            time::OffsetDateTime::now_utc(),
            &[
                self.state.newest_manifest_at.as_deref(),
                self.state.server_time.as_deref(),
            ],
        )
    }

    /// Records the server's clock from a check-in: the floor of [`Agent::trusted_now`], and
    /// how far this device's clock is from it.
    pub fn note_server_time(&mut self, server_time: Option<&str>) {
        let Some(server) = server_time.and_then(ferry_manifests::wire::parse_timestamp) else {
            return;
        };
        let skew = (time::OffsetDateTime::now_utc() - server).whole_seconds();
        if skew.abs() > SKEW_WORTH_SAYING_SECS && self.clock_skew_secs.is_none() {
            tracing::warn!("{}", clock_words(skew));
        }
        self.clock_skew_secs = Some(skew);
        let seen = self
            .state
            .server_time
            .as_deref()
            .and_then(ferry_manifests::wire::parse_timestamp);
        if seen.is_none_or(|s| server > s) {
            self.state.server_time = Some(ferry_manifests::wire::timestamp(server));
        }
    }

    /// `; this device's clock is … the server's …` when the last check-in showed them apart,
    /// for a refusal the clock may have caused; empty otherwise.
    pub fn clock_note(&self) -> String {
        match self.clock_skew_secs {
            Some(skew) if skew.abs() > SKEW_WORTH_SAYING_SECS => format!("; {}", clock_words(skew)),
            _ => String::new(),
        }
    }
}

/// `now`, or the latest of `floors` (wire timestamps) when that is later.
fn trusted_time(now: time::OffsetDateTime, floors: &[Option<&str>]) -> time::OffsetDateTime {
    floors
        .iter()
        .flatten()
        .filter_map(|t| ferry_manifests::wire::parse_timestamp(t))
        .fold(now, |a, b| a.max(b))
}

fn clock_words(skew: i64) -> String {
    let a = skew.unsigned_abs();
    let amount = if a >= 2 * 86_400 {
        format!("{} days", a / 86_400)
    } else if a >= 2 * 3600 {
        format!("{} hours", a / 3600)
    } else {
        format!("{} minutes", a / 60)
    };
    format!(
        "this device's clock is {amount} {} the server's: set it right (NTP, timedatectl) and what it refused for expiry is tried again",
        if skew > 0 { "ahead of" } else { "behind" }
    )
}

#[cfg(test)]
mod clock_tests {
    use super::*;

    #[test]
    fn a_clock_behind_is_lifted_to_the_newest_time_it_trusts() {
        let t = |s: &str| ferry_manifests::wire::parse_timestamp(s).unwrap();
        let behind = t("2024-12-05T00:00:00Z");
        let server = "2026-12-05T10:00:00.000Z";
        let signed = "2026-11-30T00:00:00.000Z";
        assert_eq!(
            trusted_time(behind, &[Some(signed), Some(server)]),
            t(server)
        );
        // A clock ahead keeps its own time; nothing known, the clock.
        let ahead = t("2027-01-01T00:00:00Z");
        assert_eq!(trusted_time(ahead, &[Some(signed), Some(server)]), ahead);
        assert_eq!(trusted_time(behind, &[None, Some("garbage")]), behind);
    }

    #[test]
    fn a_clock_difference_is_said_in_the_unit_that_reads_best() {
        assert!(clock_words(2 * 86_400 + 5).contains("2 days ahead of the server's"));
        assert!(clock_words(-3 * 3600).contains("3 hours behind"));
        assert!(clock_words(600).contains("10 minutes ahead"));
    }
}
