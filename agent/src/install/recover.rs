//! Undoing and redoing: recovery of installs a crash interrupted (run before anything else),
//! and a rollback asked for by hand.

use std::path::{Path, PathBuf};

use ferry_manifests::wire::{now, Outcome};
use ferry_manifests::Layout;

use super::journal::{self, Journal, Phase, Recovery, MAX_INTERRUPTED};
use super::{
    cleanup, commit, journal_path, overlay, postpone, queue, remove_staged, roll_back, root_of,
    save_journal, symlink,
};
use crate::agent::Agent;
use crate::error::{io_err, Error};
use crate::state::read_json;

/// Finishes or undoes every install a crash interrupted. Runs before anything else.
pub fn recover(agent: &mut Agent) -> Result<(), Error> {
    let dir = agent.dir.journal();
    let mut journals: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(io_err(&dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| is_journal_file(p))
        .collect();
    journals.sort();
    for path in journals {
        let Some(j) = read_json::<Journal>(&path)? else {
            continue;
        };
        let action = journal::recovery_for(&j);
        tracing::warn!(item = %j.item, version = %j.version, phase = j.phase.name(), "recovering an interrupted install: {}", action.describe());
        match action {
            Recovery::Commit { message, output } => commit(agent, &j, message, output)?,
            Recovery::RollBack { message, output } => roll_back(agent, &j, message, output)?,
            Recovery::Undo => undo(agent, &j)?,
            Recovery::Postpone => postpone(agent, &j)?,
        }
    }
    Ok(())
}

fn is_journal_file(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "json")
        && !p
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
}

/// An install interrupted while staging: nothing visible changed. Remove the partial release
/// and leave the install pending, unless it has been interrupted too often.
fn undo(agent: &mut Agent, j: &Journal) -> Result<(), Error> {
    remove_staged(agent, j)?;
    let st = agent.state.items.entry(j.item.clone()).or_default();
    let gave_up = st.interrupt(&j.version, MAX_INTERRUPTED);
    agent.dir.save_state(&agent.state)?;
    let Some(times) = gave_up else {
        return agent.dir.remove_file(&journal_path(agent, &j.item));
    };
    queue(
        agent,
        j,
        Outcome::Failed,
        format!(
            "install of {} was interrupted {times} times while unpacking; giving up",
            j.version
        ),
        String::new(),
    )?;
    cleanup(agent, j)
}

/// `--running-mode=rollback --item NAME`: restores the previous version of an item by hand.
pub fn rollback_by_hand(agent: &mut Agent, item: &str) -> Result<(), Error> {
    restore_previous(agent, item, None)
}

/// A rollback the server asked for (a campaign's wave regressed: `job.rollback` says why):
/// the previous version is restored from the backup kept here, and the outcome reported on
/// the job. A device whose backup is not `job.version` reports that it cannot.
pub fn rollback_job(agent: &mut Agent, job: &ferry_manifests::wire::Job) -> Result<(), Error> {
    let st = agent.item_state(&job.item);
    let reason = job.rollback.clone().unwrap_or_default();
    let refused = match (&st.installed, &st.previous) {
        (Some(_), Some(previous)) if *previous == job.version => None,
        (Some(installed), Some(previous)) if *installed == job.version => Some(format!(
            "{} is installed already (the backup kept is {previous})",
            job.version
        )),
        (_, Some(previous)) => Some(format!(
            "the backup kept here is {previous}, not {}",
            job.version
        )),
        (_, None) => Some("no earlier release is kept here".to_string()),
    };
    if let Some(why) = refused {
        let report = ferry_manifests::wire::Report {
            report_id: uuid::Uuid::new_v4().to_string(),
            job_id: Some(job.job_id.clone()),
            item: job.item.clone(),
            version: job.version.clone(),
            from_version: st.installed.clone(),
            outcome: Outcome::Failed,
            message: format!("cannot roll back to {}: {why}", job.version),
            output: String::new(),
            started_at: now(),
            finished_at: now(),
            fetched: None,
        };
        crate::report::log_outcome(agent, &report);
        crate::report::queue(&agent.dir, &report)?;
        agent.outcomes.push(Outcome::Failed);
        return Ok(());
    }
    restore_previous(agent, &job.item, Some((&job.job_id, &reason)))
}

/// Restores an item's previous version: by hand, or for a job with its reason.
fn restore_previous(agent: &mut Agent, item: &str, job: Option<(&str, &str)>) -> Result<(), Error> {
    let root = root_of(agent, item)?;
    let st = agent.item_state(item);
    let (Some(installed), Some(previous)) = (st.installed.clone(), st.previous.clone()) else {
        return Err(Error::NothingToRollBack {
            item: item.to_string(),
            installed: st
                .installed
                .as_ref()
                .map_or("nothing".to_string(), |v| v.to_string()),
        });
    };
    let overlay_plan = overlay::backup(&root, item, &installed).join("plan.json");
    let (layout, plan, to_target) = if overlay_plan.exists() {
        let plan: overlay::Plan = read_json(&overlay_plan)?
            .ok_or_else(|| io_err(&overlay_plan)(std::io::ErrorKind::NotFound.into()))?;
        (Layout::Overlay, Some(plan), None)
    } else {
        let to_target = symlink::target_of(&previous);
        if !root.join(&to_target).is_dir() {
            return Err(Error::BackupMissing {
                item: item.to_string(),
                version: previous,
                path: root.join(&to_target),
            });
        }
        let current = symlink::current_target(&root)?;
        if current.as_deref() != Some(symlink::target_of(&installed).as_path()) {
            return Err(Error::CurrentMoved {
                path: root.join("current"),
                version: installed,
            });
        }
        (Layout::Symlink, None, Some(to_target))
    };
    let message = match job {
        None => format!("rolled back by hand from {installed} to {previous}"),
        Some((_, reason)) => {
            format!("rolled back from {installed} to {previous} by the campaign: {reason}")
        }
    };
    let j = Journal {
        item: item.to_string(),
        version: installed.clone(),
        job_id: job.map(|(id, _)| id.to_string()),
        report_id: uuid::Uuid::new_v4().to_string(),
        started_at: now(),
        from_version: Some(installed),
        previous_target: to_target,
        envelope: String::new(),
        artifact: PathBuf::new(),
        layout,
        plan,
        configs: st.previous_configs.clone(),
        old_configs: st.configs.clone(),
        kept_configs: Vec::new(),
        fetched: None,
        phase: Phase::ManualRollback {
            to: previous,
            message: message.clone(),
        },
    };
    save_journal(agent, &j)?;
    roll_back(agent, &j, message, String::new())
}
