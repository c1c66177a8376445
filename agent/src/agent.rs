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
    /// Campaigns needing this device's acceptance, from the last check-in.
    pub campaigns: Vec<ferry_manifests::wire::CampaignOffer>,
    /// `status` prints one JSON object instead of text (`--json`).
    pub json: bool,
    /// Set by SIGUSR1 (a `check` run by hand while the service runs): `full` mode starts a
    /// cycle now instead of waiting out its long-poll or poll interval.
    pub wake: Arc<AtomicBool>,
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
            utc_offset_secs: None,
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
}
