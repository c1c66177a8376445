//! The check stage: enrol on first contact, send queued reports, check in with what is
//! installed, and turn jobs (and, with `auto_install`, available upgrades) into pending
//! installs. What to install is `policy::wanted`; each manifest goes through `verify::admit`
//! (signatures, expiry, item, version, device class, anti-rollback) before anything is
//! recorded; a refusal is reported and changes nothing else.

use std::collections::BTreeMap;

use ferry_manifests::wire::{Available, CheckInResponse};
use ferry_manifests::VerifiedManifest;

use crate::agent::Agent;
use crate::error::Error;
use crate::policy::{self, Admission};
use crate::report::{self, Attempt};
use crate::state::ItemState;
use crate::state::Pending;
use crate::verify;

mod enrol;
pub use enrol::{ensure_enrolled, facts};
use ferry_manifests::wire::now;

#[derive(Debug, Default)]
pub struct CheckSummary {
    pub available: Vec<(String, semver::Version)>,
    /// Offered versions the device had not recorded before this check-in.
    pub newly_available: Vec<(String, semver::Version)>,
    pub newly_pending: Vec<(String, semver::Version)>,
    /// Items whose repository index was refused (the others were checked as usual).
    pub problems: Vec<Error>,
}

/// What an idle long-poll between cycles found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Something for a cycle to do: a new job, a cancellation, a new release, a campaign, or
    /// the server woke the device (`ferryctl check`).
    Work,
    /// The wait ran out with nothing new.
    Nothing,
    /// The server answered at once with only jobs the device already has.
    Busy,
}

/// Holds a check-in open for up to `secs` seconds without the run lock (it changes nothing
/// on the device) and says whether a cycle has work. A stop ends it at once: the request runs
/// on its own thread and is abandoned.
pub fn wait_for_work(agent: &Agent, secs: u64) -> Result<Wait, Error> {
    if !agent.api.has_token() && !agent.api.has_identity() {
        // Not enrolled yet: the next cycle enrols.
        return Ok(Wait::Nothing);
    }
    let facts = facts(agent);
    let api = agent.api.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let started = std::time::Instant::now();
    std::thread::spawn(move || {
        let _ = tx.send(api.check_in(&facts, secs, None, Vec::new()));
    });
    let resp = loop {
        agent.check_stop()?;
        // A check run by hand asked for a cycle now: the long-poll is abandoned.
        if agent.wake.swap(false, std::sync::atomic::Ordering::SeqCst) {
            return Ok(Wait::Work);
        }
        match rx.recv_timeout(std::time::Duration::from_millis(100)) {
            Ok(answer) => break answer?,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => continue,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                return Err(Error::Unreachable {
                    what: "server",
                    url: agent.api.base.to_string(),
                    message: "the check-in was abandoned".into(),
                })
            }
        }
    };
    // Jobs the device has in hand: pending here, or done with the report still queued.
    let reported: Vec<String> = report::queued(&agent.dir)?
        .into_iter()
        .filter_map(|r| r.job_id)
        .collect();
    let known = |job: &ferry_manifests::wire::Job| {
        reported.contains(&job.job_id)
            || agent.state.items.get(&job.item).is_some_and(|st| {
                st.pending
                    .as_ref()
                    .is_some_and(|p| p.job_id.as_deref() == Some(job.job_id.as_str()))
            })
    };
    // With a repository, what the server offers is not what this device installs.
    let new_release = agent.cfg.repository_url.is_none()
        && resp.available.iter().any(|a| {
            agent
                .state
                .items
                .get(&a.item)
                .and_then(|st| st.available.as_ref())
                != Some(&a.version)
        });
    let early = started.elapsed() + std::time::Duration::from_secs(1)
        < std::time::Duration::from_secs(secs);
    // Package upgrades in hand: reported, or waiting here for the package manager's lock.
    let packages_reported: Vec<String> = report::queued_packages(&agent.dir)?
        .into_iter()
        .map(|r| r.job_id)
        .chain(agent.packages_waiting.iter().cloned())
        .collect();
    let new_package_job = resp
        .package_jobs
        .iter()
        .any(|j| !packages_reported.contains(&j.job_id));
    if resp.check_requested {
        agent
            .check_asked
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }
    Ok(
        if resp.check_requested
            || resp.jobs.iter().any(|j| !known(j))
            || new_package_job
            || !resp.cancelled_jobs.is_empty()
            || new_release
            || resp.campaigns != agent.campaigns
            || crate::observe::new_orders(agent, &resp.observe)
        {
            Wait::Work
        } else if early && !(resp.jobs.is_empty() && resp.package_jobs.is_empty()) {
            Wait::Busy
        } else if early {
            Wait::Work
        } else {
            Wait::Nothing
        },
    )
}

/// The list the server last stored from this device (`inventory-sent.json`).
#[derive(serde::Serialize, serde::Deserialize)]
struct SentInventory {
    digest: String,
    packages: Vec<ferry_manifests::wire::InventoryPackage>,
}

/// Sends the software list: only what changed when the server still has the list this
/// device sent last (`base`), else the whole list (also when the server refuses the delta).
/// A failure is logged; the list goes at the next check.
fn send_inventory(
    agent: &Agent,
    packages: Vec<ferry_manifests::wire::InventoryPackage>,
    base: Option<&str>,
) {
    use ferry_manifests::wire::{inventory_delta, inventory_digest, InventoryUpload};
    let path = agent.dir.root().join("inventory-sent.json");
    let sent: Option<SentInventory> = crate::state::read_json(&path).ok().flatten();
    let digest = inventory_digest(&packages);
    let delta = match (sent, base) {
        (Some(prev), Some(base)) if prev.digest == base => {
            let (changed, removed) = inventory_delta(&prev.packages, &packages);
            Some((
                InventoryUpload {
                    packages: changed,
                    base: Some(base.to_string()),
                    removed,
                    digest: Some(digest.clone()),
                },
                base,
            ))
        }
        _ => None,
    };
    let count = packages.len();
    let result = match delta {
        Some((upload, _)) => {
            let (changed, removed) = (upload.packages.len(), upload.removed.len());
            match agent.api.send_inventory(&upload) {
                Ok(()) => {
                    tracing::info!(
                        count,
                        changed,
                        removed,
                        "sent the installed software to the server: what changed"
                    );
                    Ok(())
                }
                Err(Error::Server { status: 409, .. }) => {
                    tracing::info!(
                        "the server no longer has the list this device sent; sending it whole"
                    );
                    send_whole(agent, &packages)
                }
                Err(e) => Err(e),
            }
        }
        None => send_whole(agent, &packages),
    };
    match result {
        Ok(()) => {
            let record = SentInventory { digest, packages };
            if let Err(e) = agent.dir.write_json(&path, &record) {
                tracing::warn!("cannot keep the list sent ({e}); the next change goes whole");
            }
        }
        Err(e) => {
            tracing::warn!("cannot send the installed software ({e}); it goes at the next check")
        }
    }
}

fn send_whole(
    agent: &Agent,
    packages: &[ferry_manifests::wire::InventoryPackage],
) -> Result<(), Error> {
    agent
        .api
        .send_inventory(&ferry_manifests::wire::InventoryUpload {
            packages: packages.to_vec(),
            base: None,
            removed: Vec::new(),
            digest: None,
        })?;
    tracing::info!(
        count = packages.len(),
        "sent the installed software to the server"
    );
    Ok(())
}

/// Checks, and records the result for a local dashboard (`dashboard::record_check`).
pub fn run(agent: &mut Agent) -> Result<CheckSummary, Error> {
    let result = run_inner(agent);
    let error = match &result {
        Err(e) => Some(e.to_string()),
        Ok(summary) if !summary.problems.is_empty() => Some(
            summary
                .problems
                .iter()
                .map(Error::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        ),
        Ok(_) => None,
    };
    crate::dashboard::record_check(&agent.dir, error);
    result
}

fn run_inner(agent: &mut Agent) -> Result<CheckSummary, Error> {
    if agent.cfg.server_url.is_none() {
        return check_in(agent);
    }
    ensure_enrolled(agent)?;
    match check_in(agent) {
        // The server no longer knows this credential (the host was removed, or the server's
        // data was reset): enrol again with the enrolment token, once.
        Err(Error::Server { status: 401, .. }) if agent.cfg.enrol_token.is_some() => {
            tracing::warn!(
                "the server does not know this device's credential (removed?); enrolling again"
            );
            enrol::enrol(agent)?;
            check_in(agent)
        }
        Err(Error::Server {
            url, status: 401, ..
        }) => Err(Error::CredentialRefused {
            url,
            config: agent.cfg.path.clone(),
        }),
        other => other,
    }
}

/// With a server: send queued reports and check in. With none: keep the outcomes on the
/// device and start from an empty answer, which the repository fills.
fn ask_server(
    agent: &mut Agent,
    inventory_digest: Option<String>,
) -> Result<CheckInResponse, Error> {
    if agent.cfg.server_url.is_none() {
        report::keep_local(&agent.dir)?;
        return Ok(CheckInResponse {
            host_id: String::new(),
            available: Vec::new(),
            jobs: Vec::new(),
            acked_reports: Vec::new(),
            trust_root_version: None,
            poll_interval_secs: None,
            campaigns: Vec::new(),
            cancelled_jobs: Vec::new(),
            awaiting_acceptance: false,
            server_time: None,
            inventory_wanted: false,
            inventory_base: None,
            check_requested: false,
            package_jobs: Vec::new(),
            issues_certificates: false,
            observe: Vec::new(),
        });
    }
    match report::flush(&agent.api, &agent.dir) {
        Ok(0) => {}
        Ok(sent) => tracing::info!(count = sent, "delivered queued reports"),
        // The server failed to store them, or this host waits for an operator's acceptance:
        // they stay queued on disk and go with the next contact. That is no reason to skip
        // the check-in and miss what the server offers.
        Err(e @ Error::Server { status: 500.., .. })
        | Err(e @ Error::Server { status: 403, .. }) => {
            tracing::warn!("{e}; the reports stay queued and are sent again at the next contact")
        }
        Err(e) => return Err(e),
    }
    let facts = facts(agent);
    // Health samples for the campaigns watching this device: kept until the server has them.
    let health = crate::observe::take(agent)?;
    let resp = agent
        .api
        .check_in(&facts, 0, inventory_digest, health.clone())?;
    crate::observe::delivered(agent, &health, &resp.observe)?;
    Ok(resp)
}

/// What the configured sources find; a source that cannot be read is logged and reported
/// nothing this time (it never holds back updates).
fn inventory(agent: &Agent, manual: bool) -> Option<Vec<ferry_manifests::wire::InventoryPackage>> {
    let items: BTreeMap<String, String> = agent
        .state
        .items
        .iter()
        .filter_map(|(name, st)| st.installed.as_ref().map(|v| (name.clone(), v.to_string())))
        .collect();
    match crate::inventory::collect(&agent.cfg.sources, agent.dir.root(), manual, &items) {
        Ok(found) => found,
        Err(e) => {
            tracing::warn!(
                "cannot read the installed software ({e}); it is reported again at the next check"
            );
            None
        }
    }
}

fn check_in(agent: &mut Agent) -> Result<CheckSummary, Error> {
    // Asked for in a long-poll's answer: this check is as one run by hand.
    let asked = agent
        .check_asked
        .swap(false, std::sync::atomic::Ordering::SeqCst);
    let mut inventory = inventory(agent, agent.manual_check || asked);
    let digest = inventory
        .as_deref()
        .map(ferry_manifests::wire::inventory_digest);
    let mut resp = ask_server(agent, digest.clone())?;
    agent.note_server_time(resp.server_time.as_deref());
    enrol::keep_certificate(agent, resp.issues_certificates)?;
    let mut send_list = resp.inventory_wanted;
    if resp.check_requested && !(agent.manual_check || asked) {
        // Asked for in this answer (a device without a long-poll): refresh the sources now
        // and send what changed, rather than at the next run.
        tracing::info!("the server asked for a check now");
        inventory = self::inventory(agent, true);
        let fresh = inventory
            .as_deref()
            .map(ferry_manifests::wire::inventory_digest);
        send_list |= fresh.is_some() && fresh != digest;
    }
    if let (true, Some(packages)) = (send_list, inventory) {
        send_inventory(agent, packages, resp.inventory_base.as_deref());
    }
    if resp.awaiting_acceptance {
        tracing::warn!(
            "this host waits for an operator's acceptance on the server (`ferryctl hosts accept {}`); it is offered nothing until then",
            resp.host_id
        );
    }
    let mut summary = CheckSummary::default();
    // With a repository, releases come from it; the server (if any) still hands out jobs.
    if let Some(repo) = agent.cfg.repository_url.clone() {
        let (available, problems) = crate::repository::offers(agent, &repo)?;
        resp.available = available;
        summary.problems = problems;
    }
    agent.suggested_poll_secs = resp.poll_interval_secs;
    agent.campaigns = resp.campaigns.clone();
    // A package upgrade whose outcome is already queued here is done (its report is on its
    // way); the rest wait for the install stage.
    let reported: std::collections::BTreeSet<String> = report::queued_packages(&agent.dir)?
        .into_iter()
        .map(|r| r.job_id)
        .collect();
    agent.package_jobs = std::mem::take(&mut resp.package_jobs)
        .into_iter()
        .filter(|j| !reported.contains(&j.job_id))
        .collect();
    drop_cancelled(agent, &resp.cancelled_jobs)?;
    roll_back_asked(agent, &mut resp)?;
    update_trust_root(agent, resp.trust_root_version)?;

    let configured: Vec<String> = agent.cfg.items.iter().map(|i| i.name.clone()).collect();
    record_available(agent, &resp.available, &configured, &mut summary);
    verify_offered(agent, &resp.available, &configured)?;
    for wanted in wanted(agent, &resp, &configured)? {
        take_up(agent, wanted, &mut summary)?;
    }
    agent.state.last_check = Some(now());
    agent.dir.save_state(&agent.state)?;
    Ok(summary)
}

/// Rollbacks the server asked for (a campaign's wave regressed) are done now, from the backup
/// kept here; they leave the jobs the install stage takes.
fn roll_back_asked(agent: &mut Agent, resp: &mut CheckInResponse) -> Result<(), Error> {
    let reported: Vec<String> = report::queued(&agent.dir)?
        .into_iter()
        .filter_map(|r| r.job_id)
        .collect();
    let (rollbacks, jobs): (Vec<_>, Vec<_>) = std::mem::take(&mut resp.jobs)
        .into_iter()
        .partition(|j| j.rollback.is_some());
    resp.jobs = jobs;
    for job in rollbacks {
        if reported.contains(&job.job_id) || !agent.cfg.items.iter().any(|i| i.name == job.item) {
            continue;
        }
        tracing::warn!(item = %job.item, to = %job.version, reason = %job.rollback.as_deref().unwrap_or(""), "the server asks to roll back");
        crate::install::rollback_job(agent, &job)?;
    }
    Ok(())
}

/// A person asked to install with nothing downloaded (`--running-mode=install`, the
/// dashboard's button): each item's offered release that `policy::explicit_install` allows,
/// a version that failed here included, is verified and recorded as pending. Returns how
/// many were taken up.
pub fn take_up_offered(agent: &mut Agent) -> Result<usize, Error> {
    let mut summary = CheckSummary::default();
    let names: Vec<String> = agent.cfg.items.iter().map(|i| i.name.clone()).collect();
    let mut taken = 0;
    for name in names {
        let st = agent.item_state(&name);
        let Some(offered) = policy::explicit_install(
            st.offered.as_ref(),
            &st,
            agent.cfg.auto_install,
            agent.cfg.server_url.is_some(),
        )
        .cloned() else {
            continue;
        };
        if st.held_back(&offered.version) {
            tracing::info!(item = %name, version = %offered.version, "trying again a version that failed or was rolled back here, as asked");
            agent
                .state
                .items
                .entry(name.clone())
                .or_default()
                .release_hold(&offered.version);
        }
        take_up(
            agent,
            policy::Wanted {
                item: name,
                version: offered.version.clone(),
                job_id: None,
                manifest_path: offered.manifest_path.clone(),
                interactive: false,
                delta: offered.delta.clone(),
                mirrors: offered.mirrors.clone(),
                metered_allowed: false,
                peers: vec![],
            },
            &mut summary,
        )?;
        taken += 1;
    }
    agent.dir.save_state(&agent.state)?;
    Ok(taken)
}

/// Records what the answer offers for each configured item, and what is new in it.
fn record_available(
    agent: &mut Agent,
    available: &[Available],
    configured: &[String],
    summary: &mut CheckSummary,
) {
    for name in configured {
        let offered = available.iter().find(|a| &a.item == name);
        let st = agent.state.items.entry(name.clone()).or_default();
        let before = st.available.take();
        st.available = offered.map(|a| a.version.clone());
        st.offered = offered.cloned();
        if let Some(a) = offered {
            summary.available.push((a.item.clone(), a.version.clone()));
            if before.as_ref() != Some(&a.version) {
                summary
                    .newly_available
                    .push((a.item.clone(), a.version.clone()));
            }
        }
    }
}

/// Verifies each newly offered release once, so the device knows (and reports) how fresh
/// the newest signed manifest it has seen is; a server that withholds releases (freeze)
/// shows as a device whose newest manifest grows old.
fn verify_offered(
    agent: &mut Agent,
    available: &[Available],
    configured: &[String],
) -> Result<(), Error> {
    for a in available {
        let seen = agent
            .state
            .items
            .get(&a.item)
            .and_then(|s| s.available_seen.clone());
        if !configured.contains(&a.item) || seen.as_ref() == Some(&a.version) {
            continue;
        }
        match agent.api.envelope(&a.manifest_path) {
            Ok((envelope, _)) => match verify::admit(agent, &a.item, &a.version, &envelope) {
                Ok((verified, _)) => agent.note_manifest(&verified),
                Err(e) => {
                    tracing::warn!(item = %a.item, version = %a.version, "offered release does not verify: {e}")
                }
            },
            Err(e) if e.is_transient() => return Err(e),
            Err(e) => {
                tracing::warn!(item = %a.item, version = %a.version, "cannot fetch the offered manifest: {e}")
            }
        }
        agent
            .state
            .items
            .entry(a.item.clone())
            .or_default()
            .available_seen = Some(a.version.clone());
    }
    Ok(())
}

/// What to install now (`policy::wanted`), leaving out jobs already reported from here.
fn wanted(
    agent: &Agent,
    resp: &CheckInResponse,
    configured: &[String],
) -> Result<Vec<policy::Wanted>, Error> {
    let states: BTreeMap<String, ItemState> = resp
        .available
        .iter()
        .map(|a| (a.item.clone(), agent.item_state(&a.item)))
        .collect();
    // A job whose outcome is already queued here is done: its report is on its way (the
    // server may have failed to store it). Doing it again would only queue another report.
    let reported: std::collections::BTreeSet<String> = report::queued(&agent.dir)?
        .into_iter()
        .filter_map(|r| r.job_id)
        .collect();
    let jobs: Vec<ferry_manifests::wire::Job> = resp
        .jobs
        .iter()
        .filter(|j| !reported.contains(&j.job_id))
        .cloned()
        .collect();
    Ok(policy::wanted(
        &jobs,
        &resp.available,
        agent.cfg.auto_install,
        configured,
        &states,
    ))
}

/// Whether this release is already verified and recorded as pending (for the same job); a
/// delta built since is taken up.
fn already_pending(
    agent: &mut Agent,
    item: &str,
    version: &semver::Version,
    job_id: Option<&str>,
    (delta, peers, metered_allowed): (&Option<ferry_manifests::wire::DeltaOffer>, &[String], bool),
) -> bool {
    let Some(p) = agent.pending_mut(item) else {
        return false;
    };
    if &p.version != version || p.job_id.as_deref() != job_id {
        return false;
    }
    if !p.downloaded && &p.delta != delta {
        p.delta = delta.clone();
    }
    // The site's peers change as its devices fetch: the newest list is the one to try.
    if !p.downloaded && p.peers != peers {
        p.peers = peers.to_vec();
    }
    // An operator may allow the release on metered links after the job was first offered.
    if !p.downloaded {
        p.metered_allowed = metered_allowed;
    }
    true
}

/// Takes up one wanted release: verified, its manifest kept and its install pending; or
/// refused, reported and nothing else changed.
fn take_up(
    agent: &mut Agent,
    wanted: policy::Wanted,
    summary: &mut CheckSummary,
) -> Result<(), Error> {
    let policy::Wanted {
        item,
        version,
        job_id,
        manifest_path,
        interactive,
        delta,
        mirrors,
        metered_allowed,
        peers,
    } = wanted;
    let st = agent.item_state(&item);
    if already_pending(
        agent,
        &item,
        &version,
        job_id.as_deref(),
        (&delta, &peers, metered_allowed),
    ) {
        return Ok(());
    }
    let pending = Pending {
        version: version.clone(),
        job_id: job_id.clone(),
        envelope: format!("{item}-{version}.json"),
        downloaded: false,
        source: crate::repository::source_of(&manifest_path),
        interactive,
        delta,
        mirrors,
        fetched: None,
        metered_allowed,
        peers,
        waiting: None,
    };
    if agent.cfg.item(&item).is_none() {
        let attempt = Attempt::start(&item, &pending, None);
        report::finish(
            agent,
            attempt.refused(format!(
                "item {item:?} is not configured on this device (no [[items]] entry in {})",
                agent.cfg.path.display()
            )),
            &pending,
        )?;
        return Ok(());
    }
    let (envelope, bytes) = match agent.api.envelope(&manifest_path) {
        Ok(fetched) => fetched,
        Err(e) if e.is_transient() => return Err(e),
        Err(e) => {
            // The server answered, but not with a manifest we can use (oversized,
            // malformed, missing): refuse this install and say why.
            let attempt = Attempt::start(&item, &pending, st.installed.clone());
            report::finish(
                agent,
                attempt.refused(format!("cannot use the manifest: {e}")),
                &pending,
            )?;
            return Ok(());
        }
    };
    match verify::admit(agent, &item, &version, &envelope) {
        Ok((verified, Admission::AlreadyInstalled)) => {
            agent.note_manifest(&verified);
            let attempt = Attempt::start(&item, &pending, st.installed.clone());
            report::finish(
                agent,
                attempt.with(
                    ferry_manifests::wire::Outcome::Installed,
                    format!("{item} {version} is already installed"),
                ),
                &pending,
            )?;
        }
        Ok((verified, Admission::Install)) => {
            agent.note_manifest(&verified);
            agent
                .dir
                .write_atomic(&agent.dir.manifests().join(&pending.envelope), &bytes)?;
            tracing::info!(%item, %version, job = job_id.as_deref().unwrap_or("auto_install"), "update verified and pending");
            summary.newly_pending.push((item.clone(), version.clone()));
            agent.state.items.entry(item).or_default().pending = Some(pending);
        }
        Err(refusal) if refusal.clock_dependent() => {
            // Not remembered as a failure: it installs once the clock is right or the
            // release is signed again. An operator's job hears why; an upgrade auto_install
            // found is only logged (no report every cycle).
            let message = format!("{refusal}{}", agent.clock_note());
            if job_id.is_some() {
                let attempt = Attempt::start(&item, &pending, st.installed.clone());
                report::finish(agent, attempt.refused(message), &pending)?;
                if let Some(st) = agent.state.items.get_mut(&item) {
                    if st.last_failed.as_ref() == Some(&version) {
                        st.last_failed = None;
                    }
                }
                agent.dir.save_state(&agent.state)?;
            } else {
                tracing::warn!(%item, %version, "not installed for now: {message}");
            }
        }
        Err(refusal) => {
            let attempt = Attempt::start(&item, &pending, st.installed.clone());
            report::finish(agent, attempt.refused(refusal.to_string()), &pending)?;
        }
    }
    Ok(())
}

/// A cancelled job that has not started installing is dropped, and not retried.
fn drop_cancelled(agent: &mut Agent, cancelled: &[String]) -> Result<(), Error> {
    let mut changed = false;
    for st in agent.state.items.values_mut() {
        let Some(p) = &st.pending else { continue };
        if p.job_id.as_ref().is_some_and(|j| cancelled.contains(j)) {
            tracing::info!(version = %p.version, job = p.job_id.as_deref().unwrap_or("-"), "job cancelled by the server; dropping it");
            let _ = std::fs::remove_file(agent.dir.manifests().join(&p.envelope));
            st.pending = None;
            changed = true;
        }
    }
    if changed {
        agent.dir.save_state(&agent.state)?;
    }
    Ok(())
}

/// Walks the trust root forward one version at a time to what the server has.
fn update_trust_root(agent: &mut Agent, latest: Option<u64>) -> Result<(), Error> {
    let (Some(current), Some(latest)) = (agent.trust.root_version(), latest) else {
        return Ok(());
    };
    for version in (current + 1)..=latest.min(current + crate::trust::MAX_ROOT_STEPS) {
        let bytes = match agent.api.envelope(&format!("api/v1/trust-roots/{version}")) {
            Ok((_, bytes)) => bytes,
            Err(e) if e.is_transient() => return Err(e),
            Err(e) => {
                tracing::error!("cannot fetch trust root {version}: {e}");
                break;
            }
        };
        if let Err(e) = agent.trust.advance(&agent.dir, &bytes) {
            // Keep the root we have; manifests signed under a root we refused stay refused.
            tracing::error!("{e}");
            break;
        }
    }
    Ok(())
}

impl Agent {
    /// Remembers the newest release date among verified manifests (freeze detection).
    fn note_manifest(&mut self, verified: &VerifiedManifest) {
        let at = ferry_manifests::wire::timestamp(verified.released_at);
        if self
            .state
            .newest_manifest_at
            .as_ref()
            .is_none_or(|seen| &at > seen)
        {
            self.state.newest_manifest_at = Some(at);
        }
    }
}
