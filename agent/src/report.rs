//! The report stage: outcomes are queued on disk (one file each, written atomically) and sent
//! at the next contact; a file is removed only once the server acknowledges its id, so a
//! report is never lost, and the id makes a resend after a lost answer harmless.

use std::fs;

use ferry_manifests::wire::{Outcome, PackageReport, Report};

use crate::agent::Agent;
use crate::client::Api;
use crate::error::{io_err, Error};
use crate::state::{read_json, Pending, StateDir};
use ferry_manifests::wire::now;

/// Reports sent per request.
const BATCH: usize = 50;

/// An install attempt under way.
pub struct Attempt {
    report_id: String,
    job_id: Option<String>,
    item: String,
    version: semver::Version,
    from_version: Option<semver::Version>,
    started_at: String,
    pub output: String,
    fetched: Option<ferry_manifests::wire::Fetched>,
}

pub struct Finished {
    pub report: Report,
}

impl Attempt {
    pub fn start(item: &str, pending: &Pending, installed: Option<semver::Version>) -> Attempt {
        Attempt {
            report_id: uuid::Uuid::new_v4().to_string(),
            job_id: pending.job_id.clone(),
            item: item.to_string(),
            version: pending.version.clone(),
            from_version: installed,
            started_at: now(),
            output: String::new(),
            fetched: pending.fetched.clone(),
        }
    }

    pub fn with(self, outcome: Outcome, message: String) -> Finished {
        Finished {
            report: Report {
                report_id: self.report_id,
                job_id: self.job_id,
                item: self.item,
                version: self.version,
                from_version: self.from_version,
                outcome,
                message,
                output: self.output,
                started_at: self.started_at,
                finished_at: now(),
                fetched: self.fetched,
            },
        }
    }

    pub fn refused(self, message: String) -> Finished {
        self.with(Outcome::Refused, message)
    }
}

/// Records an attempt that ended without touching the install root (a refusal, or a failure
/// before staging): queue its report, clear the pending install, save state.
/// Records an attempt that ended without touching the install root (a refusal, or a failure
/// before staging): queue its report, clear the pending install, save state.
pub fn finish(agent: &mut Agent, attempt: Finished, pending: &Pending) -> Result<Outcome, Error> {
    let outcome = attempt.report.outcome;
    log_outcome(agent, &attempt.report);
    queue(&agent.dir, &attempt.report)?;
    agent.outcomes.push(outcome);
    if let Some(st) = agent.state.items.get_mut(&attempt.report.item) {
        st.finish(pending, outcome == Outcome::Installed);
    }
    let _ = agent
        .dir
        .remove_file(&agent.dir.manifests().join(&pending.envelope));
    agent.dir.save_state(&agent.state)?;
    Ok(outcome)
}

/// Logs an attempt's outcome (and shows it on a terminal); the stage's progress ends.
pub fn log_outcome(agent: &Agent, report: &ferry_manifests::wire::Report) {
    // The stage is over, whatever its outcome.
    crate::dashboard::clear_progress(&agent.dir);
    match report.outcome {
        Outcome::Installed => {
            tracing::info!(item = %report.item, version = %report.version, "{}", report.message)
        }
        _ => {
            tracing::warn!(item = %report.item, version = %report.version, outcome = report.outcome.as_str(), "{}", report.message)
        }
    }
    if let Some(progress) = &agent.progress {
        progress.line(&format!(
            "{} {}: {} — {}",
            report.item,
            report.version,
            report.outcome.as_str(),
            report.message
        ));
    }
}

pub fn queue(dir: &StateDir, report: &Report) -> Result<(), Error> {
    dir.write_json(
        &dir.reports().join(format!("{}.json", report.report_id)),
        report,
    )?;
    crate::dashboard::record_outcome(dir, report);
    Ok(())
}

pub fn queued(dir: &StateDir) -> Result<Vec<Report>, Error> {
    read_reports(&dir.reports())
}

/// The reports in `reports_dir`, oldest first.
fn read_reports(reports_dir: &std::path::Path) -> Result<Vec<Report>, Error> {
    let mut out = Vec::new();
    for entry in fs::read_dir(reports_dir).map_err(io_err(reports_dir))? {
        let path = entry.map_err(io_err(reports_dir))?.path();
        if path.extension().is_some_and(|e| e == "json")
            && !path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        {
            match read_json::<Report>(&path) {
                Ok(Some(r)) => out.push(r),
                Ok(None) => {}
                Err(e) => {
                    // A torn or foreign file must not block every other report.
                    tracing::warn!("skipping unreadable queued report: {e}");
                }
            }
        }
    }
    out.sort_by(|a, b| a.finished_at.cmp(&b.finished_at));
    Ok(out)
}

/// Outcomes a device with no server keeps in `history/`.
pub const KEEP_LOCAL: usize = 100;

/// With no server to send them to, queued reports move to `history/` (a rename: atomic) and
/// only the newest [`KEEP_LOCAL`] stay.
pub fn keep_local(dir: &StateDir) -> Result<usize, Error> {
    let history = dir.history();
    let mut moved = 0;
    for report in queued(dir)? {
        let name = format!("{}.json", report.report_id);
        let from = dir.reports().join(&name);
        let to = history.join(&name);
        fs::rename(&from, &to).map_err(io_err(&from))?;
        moved += 1;
    }
    let mut kept = local_history(dir)?;
    if kept.len() > KEEP_LOCAL {
        for old in kept.drain(KEEP_LOCAL..) {
            let _ = fs::remove_file(history.join(format!("{}.json", old.report_id)));
        }
    }
    Ok(moved)
}

/// The outcomes kept on this device, newest first.
pub fn local_history(dir: &StateDir) -> Result<Vec<Report>, Error> {
    let mut out = read_reports(&dir.history())?;
    out.reverse();
    Ok(out)
}

/// Sends every queued report; returns how many the server acknowledged.
pub fn flush(api: &Api, dir: &StateDir) -> Result<usize, Error> {
    let reports = queued(dir)?;
    let mut acked_total = 0;
    for chunk in reports.chunks(BATCH) {
        let ack = api.send_reports(chunk.to_vec(), Vec::new())?;
        acked_total += remove_acked(&dir.reports(), &ack.acked, |id| {
            chunk.iter().any(|r| r.report_id == id)
        });
    }
    for chunk in queued_packages(dir)?.chunks(BATCH) {
        let ack = api.send_reports(Vec::new(), chunk.to_vec())?;
        acked_total += remove_acked(&dir.package_reports(), &ack.acked, |id| {
            chunk.iter().any(|r| r.report_id == id)
        });
    }
    Ok(acked_total)
}

/// Removes the acknowledged reports of `queue`: ids come from the server, so only those
/// this batch `sent` under that id. Returns how many.
fn remove_acked(queue: &std::path::Path, acked: &[String], sent: impl Fn(&str) -> bool) -> usize {
    let mut removed = 0;
    for id in acked {
        if sent(id) {
            let _ = fs::remove_file(queue.join(format!("{id}.json")));
            removed += 1;
        }
    }
    removed
}

/// Queues the outcome of a package upgrade.
pub fn queue_packages(dir: &StateDir, report: &PackageReport) -> Result<(), Error> {
    dir.write_json(
        &dir.package_reports()
            .join(format!("{}.json", report.report_id)),
        report,
    )
}

/// The queued outcomes of package upgrades.
pub fn queued_packages(dir: &StateDir) -> Result<Vec<PackageReport>, Error> {
    let queue = dir.package_reports();
    let mut out = Vec::new();
    for entry in fs::read_dir(&queue).map_err(io_err(&queue))? {
        let path = entry.map_err(io_err(&queue))?.path();
        if path.extension().is_some_and(|e| e == "json")
            && !path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        {
            match read_json::<PackageReport>(&path) {
                Ok(Some(r)) => out.push(r),
                Ok(None) => {}
                Err(e) => tracing::warn!("skipping unreadable queued package report: {e}"),
            }
        }
    }
    out.sort_by(|a, b| a.finished_at.cmp(&b.finished_at));
    Ok(out)
}

/// A job that cannot start yet for a cause that is not the release's (no space, a root this
/// run may not write): the server hears why, and the job stays pending (best effort).
pub fn waiting(agent: &Agent, pending: &Pending, why: &Error) {
    if let (Some(job), true) = (&pending.job_id, agent.cfg.server_url.is_some()) {
        agent.api.note_waiting(job, &format!("waiting: {why}"));
    }
}
