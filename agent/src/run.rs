//! Running: the modes of `--running-mode`, one cycle (check, download, install, report)
//! repeated while it finds work, and the long-running `full` loop with its long-poll.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::agent::{Agent, Mode};
use crate::client::jittered;
use crate::config::Config;
use crate::error::{exit, Error};
use crate::state::StateDir;
use crate::{check, download, fsops, install, report, status};

/// Opens the state directory with the given filesystem, takes the run lock at once (or
/// fails with [`Error::Locked`]) and finishes or undoes any install that was interrupted.
pub fn open_with(
    cfg: Config,
    progress: bool,
    fs: std::sync::Arc<dyn fsops::Fs>,
) -> Result<Agent, Error> {
    let mut agent = Agent::unlocked(cfg, progress, fs)?;
    lock(&mut agent, Mode::Once, Duration::ZERO)?;
    Ok(agent)
}

/// Takes the run lock for `mode` (waiting up to `wait`), then finishes or undoes any install
/// that was interrupted: every run that changes the state directory starts here.
pub fn lock(agent: &mut Agent, mode: Mode, wait: Duration) -> Result<(), Error> {
    agent.lock_run(mode, wait)?;
    install::recover(agent)
}

/// Rounds of check, download and install one run makes while each round finds work: a queue
/// of jobs is worked through at once instead of one per poll interval.
pub const MAX_ROUNDS: usize = 10;

/// One full cycle, repeated at once while it finds work (up to [`MAX_ROUNDS`]).
pub fn run_once(agent: &mut Agent) -> Result<i32, Error> {
    let mut code = exit::OK;
    for round in 0..MAX_ROUNDS {
        let before = agent.outcomes.len();
        code = cycle(agent)?;
        if agent.outcomes.len() == before || round + 1 == MAX_ROUNDS {
            break;
        }
        agent.check_stop()?;
    }
    Ok(code)
}

/// Check, download, install, report. A server that cannot be reached does not stop the install
/// of what is already downloaded; the exit code still says the server was unreachable.
fn cycle(agent: &mut Agent) -> Result<i32, Error> {
    let mut unreachable = None;
    // A refused repository index: the other items go on; the run ends with the error.
    let mut refused = None;
    match check::run(agent) {
        Ok(summary) => {
            log_check(agent, &summary);
            refused = summary.problems.into_iter().next();
        }
        Err(e) if e.is_transient() => unreachable = Some(e),
        Err(e) => return Err(e),
    }
    agent.check_stop()?;
    if unreachable.is_none() {
        match download::run(agent) {
            Ok(_) => {}
            Err(e) if e.is_transient() => unreachable = Some(e),
            Err(e) => return Err(e),
        }
    }
    agent.check_stop()?;
    install::run(agent)?;
    // Upgrades of the sources' packages the server asked for, after Ferry's own items.
    install::packages::run(agent)?;
    // A delta that could not be used leaves its release pending without a download: fetch
    // the full artifact and install it in this cycle.
    let fell_back = agent
        .state
        .items
        .values()
        .any(|s| s.pending.as_ref().is_some_and(|p| !p.downloaded));
    if fell_back && unreachable.is_none() {
        agent.check_stop()?;
        match download::run(agent) {
            Ok(_) => {
                install::run(agent)?;
            }
            Err(e) if e.is_transient() => unreachable = Some(e),
            Err(e) => return Err(e),
        }
    }
    if agent.cfg.server_url.is_none() {
        report::keep_local(&agent.dir)?;
    } else if unreachable.is_none()
        && !(report::queued(&agent.dir)?.is_empty()
            && report::queued_packages(&agent.dir)?.is_empty())
    {
        // Queued on disk until the server takes them: a `full` run tries again within
        // seconds (`next_wait`), cron at its next run.
        match report::flush(&agent.api, &agent.dir) {
            Ok(_) => {}
            Err(e) if e.is_transient() => {
                tracing::warn!("{e}; the reports stay queued and are sent again shortly");
                unreachable = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    let code = exit::for_outcomes(&agent.outcomes);
    let unreachable = unreachable.or(refused);
    match unreachable {
        Some(e) if code == exit::OK => Err(e),
        Some(e) => {
            tracing::warn!("{e}; reports stay queued");
            Ok(code)
        }
        None => Ok(code),
    }
}

/// Logs what a check found: at info only what changed (a newly offered version, a new
/// pending install), so a cron run with nothing new prints nothing; the rest at debug.
fn log_check(agent: &Agent, summary: &check::CheckSummary) {
    let list = |v: &[(String, semver::Version)]| {
        v.iter()
            .map(|(i, v)| format!("{i} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if summary.newly_available.is_empty() {
        if summary.available.is_empty() {
            tracing::debug!("no updates available");
        } else {
            tracing::debug!("available: {}", list(&summary.available));
        }
    } else {
        tracing::info!("newly available: {}", list(&summary.newly_available));
    }
    if let Some(p) = &agent.progress {
        p.line(&if summary.available.is_empty() {
            "no updates available".to_string()
        } else {
            format!("available: {}", list(&summary.available))
        });
        for (item, version) in &summary.newly_pending {
            p.line(&format!("pending install: {item} {version}"));
        }
    }
}

pub fn run_mode(
    mode: Mode,
    item: Option<&str>,
    campaign_id: Option<&str>,
    agent: &mut Agent,
) -> Result<i32, Error> {
    // `status` only reads; `full` takes the lock for each cycle. Every other mode changes the
    // state directory: it takes the lock for the whole run, waiting a while for a run that
    // holds it (the service's cycle, say) to let go.
    if !matches!(mode, Mode::Status | Mode::Full | Mode::Share) {
        lock(agent, mode, Duration::from_secs(agent.cfg.lock_wait_secs))?;
    }
    let result = run_locked(mode, item, campaign_id, agent);
    if !matches!(mode, Mode::Status | Mode::Full | Mode::Share) {
        crate::metrics::write(agent);
    }
    match result {
        // Stopped after every install of this run finished well: that is a success; what is
        // left waits for the next run.
        Err(Error::Interrupted)
            if !agent.outcomes.is_empty() && exit::for_outcomes(&agent.outcomes) == exit::OK =>
        {
            tracing::info!("stopped as asked, after the install finished; anything left waits for the next run");
            Ok(exit::OK)
        }
        other => other,
    }
}

fn run_locked(
    mode: Mode,
    item: Option<&str>,
    campaign_id: Option<&str>,
    agent: &mut Agent,
) -> Result<i32, Error> {
    match mode {
        Mode::CampaignCheck | Mode::CampaignAccept if agent.cfg.server_url.is_none() => {
            Err(Error::NeedsServer {
                what: "campaign acceptance",
                config: agent.cfg.path.clone(),
            })
        }
        Mode::CampaignCheck => campaign_check(agent),
        Mode::CampaignAccept => campaign_accept(agent, campaign_id),
        Mode::Rollback => rollback(agent, item),
        Mode::Once => run_once(agent),
        Mode::Check => {
            agent.manual_check = true;
            let summary = check::run(agent)?;
            log_check(agent, &summary);
            ServicePid::wake(&agent.dir);
            match summary.problems.into_iter().next() {
                Some(refused) => Err(refused),
                None => Ok(exit::for_outcomes(&agent.outcomes)),
            }
        }
        Mode::Download => {
            // Downloading needs the credential for the server's artifact endpoint.
            check::ensure_enrolled(agent)?;
            download::run(agent)?;
            Ok(exit::for_outcomes(&agent.outcomes))
        }
        Mode::Install => {
            if install::run(agent)?.is_empty() {
                // Nothing downloaded: a person asked, so what is pending, and the offered
                // release (one that failed here included, `policy::explicit_install`), is
                // fetched and installed.
                check::take_up_offered(agent)?;
                let undownloaded = agent
                    .state
                    .items
                    .values()
                    .any(|s| s.pending.as_ref().is_some_and(|p| !p.downloaded));
                if undownloaded {
                    check::ensure_enrolled(agent)?;
                    download::run(agent)?;
                    install::run(agent)?;
                } else {
                    tracing::info!("nothing downloaded or offered to install");
                }
            }
            Ok(exit::for_outcomes(&agent.outcomes))
        }
        Mode::Status if agent.json => {
            println!("{}", status::json(agent)?);
            Ok(exit::OK)
        }
        Mode::Status => {
            print!("{}", status::render(agent)?);
            Ok(exit::OK)
        }
        Mode::Full => run_full(agent),
        Mode::Share => {
            let Some(listen) = agent.cfg.share_listen else {
                return Err(Error::Usage(format!(
                    "--running-mode=share needs share_listen in {}",
                    agent.cfg.path.display()
                )));
            };
            crate::share::serve(listen, agent.dir.shared(), Arc::clone(&agent.stop))?;
            Ok(exit::OK)
        }
    }
}

/// `campaign_check`: the campaigns that need this device's acceptance, with their ids.
fn campaign_check(agent: &mut Agent) -> Result<i32, Error> {
    check::run(agent)?;
    if agent.campaigns.is_empty() {
        println!("no campaigns need this device's acceptance");
    }
    for c in &agent.campaigns {
        println!(
            "{}  {}  {} {}  {}",
            c.campaign_id,
            c.name,
            c.item,
            c.version,
            if c.accepted {
                "accepted"
            } else {
                "needs acceptance"
            }
        );
    }
    Ok(exit::OK)
}

/// `campaign_accept --campaign-id ID`: accepts the campaign; its update installs in the next
/// cycle.
fn campaign_accept(agent: &mut Agent, campaign_id: Option<&str>) -> Result<i32, Error> {
    let Some(id) = campaign_id else {
        return Err(Error::Usage(
            "--running-mode=campaign_accept needs --campaign-id ID".into(),
        ));
    };
    check::ensure_enrolled(agent)?;
    let offer = agent.api.accept_campaign(id)?;
    println!(
        "accepted campaign {} ({} {}); it installs in the next cycle",
        offer.campaign_id, offer.item, offer.version
    );
    Ok(exit::OK)
}

/// `rollback --item NAME`: the previous version back by hand, and the server told.
fn rollback(agent: &mut Agent, item: Option<&str>) -> Result<i32, Error> {
    let Some(item) = item else {
        return Err(Error::Usage(
            "--running-mode=rollback needs --item NAME".into(),
        ));
    };
    install::rollback_by_hand(agent, item)?;
    // Tell the server now if it can be reached; otherwise the report waits.
    if let Err(e) = check::run(agent) {
        tracing::warn!("rolled back; the server will hear of it at the next contact: {e}");
    }
    Ok(exit::OK)
}

/// The long-running mode. A cycle runs under the run lock; between cycles the lock is free
/// (so `status` and staged commands by hand work while the service runs) and the agent waits
/// for the next one: with `long_poll_secs` in an open check-in that the server answers as soon
/// as there is work, else for the poll interval (±10% jitter so a fleet restarted together
/// spreads out). It backs off while the server is unreachable. SIGTERM ends the wait at once.
fn run_full(agent: &mut Agent) -> Result<i32, Error> {
    let _service = ServicePid::claim(&agent.dir)?;
    // Said at start, not first at the install it would break.
    for item in &agent.cfg.items {
        if let Err(e) = crate::install::writable(&item.root) {
            tracing::warn!(item = %item.name, root = %item.root.display(), "the item's root is not writable for this service ({e}); installs will wait until it is: under systemd add ReadWritePaths={} in a drop-in (systemctl edit ferry-agent.service)", item.root.display());
        }
    }
    let stop = Arc::clone(&agent.stop);
    if let Some(listen) = agent.cfg.share_listen {
        let (shared, stop) = (agent.dir.shared(), Arc::clone(&stop));
        std::thread::spawn(move || {
            if let Err(e) = crate::share::serve(listen, shared, stop) {
                tracing::error!("{e}");
            }
        });
    }
    let mut failures: u32 = 0;
    let mut next_cycle = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        let base = poll_interval(&agent.cfg, agent.suggested_poll_secs);
        if Instant::now() >= next_cycle {
            agent.outcomes.clear();
            let wait = Duration::from_secs(agent.cfg.lock_wait_secs);
            let result = lock(agent, Mode::Full, wait).and_then(|()| run_once(agent));
            crate::metrics::write(agent);
            agent.unlock();
            let ended = match result {
                Err(Error::Interrupted) => break,
                Err(e) if e.is_transient() => {
                    tracing::warn!("{e}; trying again shortly");
                    Ended::Retry
                }
                Err(e) => {
                    tracing::error!("{e}");
                    Ended::Done
                }
                // Reports the server has not taken yet (it answered the check-in, then not
                // the reports): sent again within seconds, not a poll interval later.
                Ok(_)
                    if agent.cfg.server_url.is_some()
                        && report::queued(&agent.dir).is_ok_and(|q| !q.is_empty()) =>
                {
                    Ended::Retry
                }
                Ok(_) => Ended::Done,
            };
            let (wait, f) = next_wait(base, failures, ended);
            failures = f;
            next_cycle = Instant::now() + wait;
            // A campaign watching this device wants its samples on time.
            if let Some(due) = crate::observe::wait(agent) {
                next_cycle = next_cycle.min(Instant::now() + due.max(Duration::from_secs(1)));
            }
        }
        if agent.cfg.long_poll_secs > 0 && failures == 0 && agent.cfg.server_url.is_some() {
            let started = Instant::now();
            // Wait no longer than until the next cycle is due (at least a second).
            let until_cycle = next_cycle.saturating_duration_since(started).as_secs();
            let secs = agent.cfg.long_poll_secs.min(until_cycle).max(1);
            match check::wait_for_work(agent, secs) {
                Ok(check::Wait::Work) => next_cycle = Instant::now(),
                Ok(check::Wait::Nothing) => {}
                // The server answers at once (a job the device already has): long-polling
                // is pointless until the next cycle.
                Ok(check::Wait::Busy) => {
                    if sleep_until(&stop, &agent.wake, next_cycle) {
                        next_cycle = Instant::now();
                    }
                }
                Err(Error::Interrupted) => break,
                Err(e) => {
                    tracing::warn!("{e}");
                    failures = 1;
                    next_cycle = next_cycle.min(Instant::now() + Duration::from_secs(2));
                }
            }
            // Never long-poll faster than once a second, whatever the server does.
            if sleep_until(&stop, &agent.wake, started + Duration::from_secs(1)) {
                next_cycle = Instant::now();
            }
        } else if sleep_until(&stop, &agent.wake, next_cycle) {
            next_cycle = Instant::now();
        }
    }
    tracing::info!("stopping on signal");
    Ok(exit::OK)
}

/// `state/service.pid` while `full` mode runs: a `check` run by hand wakes that process
/// (SIGUSR1) so it acts on what the check found at once.
/// `STATE_DIR/service.pid`, held locked (fs2) for the life of a `full` run: a second one
/// on the same state directory refuses to start, naming the first.
struct ServicePid {
    path: PathBuf,
    /// Open while the run lasts: its lock is what a second run finds taken.
    _held: std::fs::File,
}

impl ServicePid {
    fn path(dir: &StateDir) -> PathBuf {
        dir.root().join("service.pid")
    }

    fn claim(dir: &StateDir) -> Result<ServicePid, Error> {
        use fs2::FileExt as _;
        use std::io::Write as _;
        let path = Self::path(dir);
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(crate::error::io_err(&path))?;
        if file.try_lock_exclusive().is_err() {
            let pid = std::fs::read_to_string(&path).unwrap_or_default();
            return Err(Error::Locked {
                path,
                holder: format!("ferry-agent --running-mode=full (pid {})", pid.trim()),
                advice: "one full-mode agent runs per state directory: stop that one (systemctl stop ferry-agent) or give this one its own state_dir".into(),
            });
        }
        let written = file
            .set_len(0)
            .and_then(|()| file.write_all(std::process::id().to_string().as_bytes()));
        if let Err(e) = written {
            tracing::warn!(path = %path.display(), "cannot record the service's pid: {e}");
        }
        Ok(ServicePid { path, _held: file })
    }

    /// Wakes the `full` mode run of this state directory, if one runs.
    fn wake(dir: &StateDir) {
        let Ok(text) = std::fs::read_to_string(Self::path(dir)) else {
            return;
        };
        let Ok(pid) = text.trim().parse::<i32>() else {
            return;
        };
        if pid as u32 == std::process::id() {
            return;
        }
        // Only a ferry-agent: a stale file may name a pid some other program has now.
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() != "ferry-agent" {
            return;
        }
        match nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGUSR1,
        ) {
            Ok(()) => tracing::info!(pid, "woke the running service to act on this check"),
            Err(e) => tracing::debug!(pid, "cannot wake the running service: {e}"),
        }
    }
}

impl Drop for ServicePid {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// How a `full`-mode cycle ended, for when the next one is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Done, or failed in a way only a person fixes: the next cycle in a poll interval.
    Done,
    /// Transient trouble (unreachable, 5xx, 429, a cut transfer) or reports still queued.
    Retry,
}

/// The longest a device waits between retries after transient trouble, whatever its poll
/// interval: a short server or database outage delays its reports by about this much.
pub const RETRY_CAP: Duration = Duration::from_secs(30);

/// The wait before the next cycle and the count of consecutive retries: after transient
/// trouble 2, 4, 8 … s (at most [`RETRY_CAP`] or the poll interval) with ±50% jitter, so a
/// fleet that lost its server together does not come back together; else the poll interval
/// ±10%.
pub fn next_wait(base: Duration, failures: u32, ended: Ended) -> (Duration, u32) {
    match ended {
        Ended::Done => (jittered(base, 0.1), 0),
        Ended::Retry => {
            let failures = failures.saturating_add(1);
            let backoff = Duration::from_secs(1u64 << failures.min(10));
            (jittered(backoff.min(RETRY_CAP).min(base), 0.5), failures)
        }
    }
}

/// Sleeps until `until`, a stop, or a wake (returned: true), whichever comes first.
fn sleep_until(stop: &AtomicBool, wake: &AtomicBool, until: Instant) -> bool {
    while Instant::now() < until && !stop.load(Ordering::SeqCst) {
        if wake.swap(false, Ordering::SeqCst) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100).min(until - Instant::now()));
    }
    false
}

/// The interval between cycles: the server's suggestion within the device's bounds, else the
/// device's own `poll_interval_secs`.
pub fn poll_interval(cfg: &Config, suggested: Option<u64>) -> Duration {
    Duration::from_secs(match suggested {
        Some(s) => s.clamp(cfg.poll_interval_min_secs, cfg.poll_interval_max_secs),
        None => cfg.poll_interval_secs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_trouble_is_retried_within_a_minute_whatever_the_poll_interval() {
        let hour = Duration::from_secs(3600);
        let mut failures = 0;
        let mut waits = Vec::new();
        for _ in 0..12 {
            let (wait, f) = next_wait(hour, failures, Ended::Retry);
            failures = f;
            waits.push(wait);
        }
        assert!(waits[0] >= Duration::from_secs(1) && waits[0] <= Duration::from_secs(3));
        assert!(
            waits.iter().all(|w| *w <= RETRY_CAP.mul_f64(1.5)),
            "{waits:?}"
        );
        assert!(waits[11] >= RETRY_CAP / 2, "it backs off: {waits:?}");
        // Back to the rhythm once a cycle went through.
        let (wait, failures) = next_wait(hour, failures, Ended::Done);
        assert_eq!(failures, 0);
        assert!(wait >= hour.mul_f64(0.9));
        // A short poll interval caps the retries too.
        let (wait, _) = next_wait(Duration::from_secs(5), 9, Ended::Retry);
        assert!(wait <= Duration::from_secs(8), "{wait:?}");
    }

    #[test]
    fn the_servers_poll_interval_is_kept_within_the_devices_bounds() {
        let dir = tempfile::tempdir().unwrap();
        let key = ferry_manifests::SigningKeyFile::from_seed([1; 32]);
        std::fs::write(dir.path().join("k.pub"), key.public().to_file_string()).unwrap();
        let cfg = Config::parse(
            "server_url = \"http://127.0.0.1:1\"\ntrusted_keys = [\"k.pub\"]\npoll_interval_secs = 900\npoll_interval_min_secs = 60\npoll_interval_max_secs = 3600\n",
            &dir.path().join("a.toml"),
        )
        .unwrap();
        assert_eq!(poll_interval(&cfg, None), Duration::from_secs(900));
        assert_eq!(poll_interval(&cfg, Some(5)), Duration::from_secs(60));
        assert_eq!(poll_interval(&cfg, Some(300)), Duration::from_secs(300));
        assert_eq!(poll_interval(&cfg, Some(99_999)), Duration::from_secs(3600));
    }
}
