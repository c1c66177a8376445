//! The install stage: take each pending, downloaded release, verify it again, place it with its
//! layout, run its hooks, and roll back when they fail. Every irreversible step is journalled
//! first ([`journal`]); [`recover`] runs at the start of every run and finishes or undoes an
//! install that a crash or power cut interrupted. docs/crash-safety.md gives the argument.

pub mod delta;
pub mod hooks;
pub mod journal;
pub mod layout;
pub mod overlay;
pub mod symlink;
pub mod terminal;
pub mod unpack;

use std::path::{Path, PathBuf};
use std::time::Duration;

use ferry_manifests::wire::Outcome;
use ferry_manifests::{Layout, VerifiedManifest};

use self::journal::{Journal, Phase, Recovery, MAX_INTERRUPTED};
use self::layout::{InstallLayout, StageError};
use self::overlay::Overlay;
use self::symlink::Symlink;
use crate::agent::Agent;
use crate::error::{io_err, Error, RootError};
use crate::fsops::fault;
use crate::report::{self, Attempt};
use crate::state::{read_json, ItemState, Pending};
use crate::verify;
use ferry_manifests::wire::now;

/// Installs every pending release whose artifact is downloaded. Returns the outcomes.
pub fn run(agent: &mut Agent) -> Result<Vec<Outcome>, Error> {
    let before = agent.outcomes.len();
    let names: Vec<String> = agent.cfg.items.iter().map(|i| i.name.clone()).collect();
    for name in names {
        // A stop asked for between items: the next run installs the rest.
        agent.check_stop()?;
        let Some(pending) = agent.item_state(&name).pending.clone() else {
            continue;
        };
        if !pending.downloaded {
            continue;
        }
        let installed = agent.item_state(&name).installed.clone();
        let verified = match verify::load_verified(agent, &name, &pending) {
            Ok(v) => v,
            Err(refusal) => {
                report::finish(
                    agent,
                    Attempt::start(&name, &pending, installed).refused(refusal.to_string()),
                    &pending,
                )?;
                continue;
            }
        };
        install_one(agent, &name, &pending, &verified)?;
    }
    Ok(agent.outcomes[before..].to_vec())
}

fn journal_path(agent: &Agent, item: &str) -> PathBuf {
    agent.dir.journal().join(format!("{item}.json"))
}

fn save_journal(agent: &Agent, j: &Journal) -> Result<(), Error> {
    agent.dir.write_json(&journal_path(agent, &j.item), j)
}

fn root_of(agent: &Agent, item: &str) -> Result<PathBuf, Error> {
    agent
        .cfg
        .item(item)
        .map(|i| i.root.clone())
        .ok_or_else(|| Error::NotConfigured(item.to_string()))
}

fn install_one(
    agent: &mut Agent,
    name: &str,
    pending: &Pending,
    verified: &VerifiedManifest,
) -> Result<(), Error> {
    let root = root_of(agent, name)?;
    let fs = agent.dir.fs.clone();
    let st = agent.item_state(name);
    let installed = st.installed.clone();
    // A delta downloaded instead of the full artifact (`download::run` decided it was usable).
    let full = agent.dir.artifact_path(name, &verified.artifact.sha256);
    let delta_file = pending
        .delta
        .as_ref()
        .map(|d| agent.dir.artifact_path(name, &d.sha256))
        .filter(|p| p.exists() && !full.exists());
    let unchanged = delta_file
        .as_deref()
        .map(delta::unchanged_paths)
        .unwrap_or_default();
    let prepared = match prepare(&root, verified, &st, &unchanged) {
        Ok(p) => p,
        Err(e) => {
            let attempt = Attempt::start(name, pending, installed.clone());
            return report::finish(agent, attempt.with(Outcome::Failed, e.to_string()), pending)
                .map(|_| ());
        }
    };
    let artifact = delta_file.clone().unwrap_or_else(|| full.clone());
    let mut j = Journal {
        item: name.to_string(),
        version: verified.version.clone(),
        job_id: pending.job_id.clone(),
        report_id: uuid::Uuid::new_v4().to_string(),
        started_at: now(),
        from_version: installed.clone(),
        previous_target: prepared.previous_target,
        envelope: pending.envelope.clone(),
        artifact: artifact.clone(),
        layout: verified.install.layout,
        plan: prepared.plan,
        configs: verified
            .files
            .iter()
            .filter(|f| f.config)
            .map(|f| (f.path.clone(), f.sha256.clone()))
            .collect(),
        old_configs: st.configs.clone(),
        kept_configs: prepared.kept_configs,
        fetched: pending.fetched.clone(),
        phase: Phase::Staging,
    };
    if prepared.in_place {
        return commit(
            agent,
            &j,
            format!("{name} {} is already in place", verified.version),
            String::new(),
        );
    }
    tracing::info!(item = %name, version = %verified.version, root = %root.display(), layout = %j.layout, "installing");
    let total: u64 = verified.files.iter().map(|f| f.size).sum();
    let progress = crate::dashboard::Progress {
        item: name.to_string(),
        version: verified.version.to_string(),
        stage: "installing".into(),
        bytes_done: 0,
        bytes_total: total,
        files_done: Some(0),
        files_total: Some(verified.files.len() as u64),
        pid: std::process::id(),
        updated_at: ferry_manifests::wire::now(),
    };
    crate::dashboard::record_progress(&agent.dir, &progress);
    // Staging counts the files it unpacks into the progress a dashboard reads.
    let counting =
        crate::dashboard::UnpackCount::new(fs.clone(), &agent.dir, progress, &verified.files);
    if let Some(progress) = &agent.progress {
        progress.line(&format!(
            "installing {name} {} into {}",
            verified.version,
            root.display()
        ));
    }

    // A delta starts from the installed release: its directory (symlink) or the root itself
    // (overlay).
    let base = match j.layout {
        Layout::Symlink => j.previous_target.as_ref().map(|t| root.join(t)),
        Layout::Overlay => Some(root.clone()),
    };
    let source = match (&delta_file, &base) {
        (Some(file), Some(base)) => delta::Source::Delta { file, base },
        _ => delta::Source::Artifact(&full),
    };
    save_journal(agent, &j)?;
    fault::point("staging");
    if let Err(e) = layout_of(agent, &j, &root)?.stage(&counting, verified, &source) {
        // Nothing visible changed. Clean up; if even that fails (a crash, a full disk) the
        // journal stays and the next run's recovery finishes the job.
        remove_staged(agent, &j)?;
        if let (Some(file), false) = (&delta_file, matches!(e, StageError::Space { .. })) {
            // Never a failed install because of a delta: fetch the full artifact instead.
            tracing::warn!(item = %name, version = %verified.version, "the delta cannot be used ({e}); fetching the full artifact");
            agent.dir.remove_file(&journal_path(agent, &j.item))?;
            let _ = agent.dir.remove_file(file);
            if let Some(p) = agent
                .state
                .items
                .get_mut(name)
                .and_then(|s| s.pending.as_mut())
            {
                p.delta = None;
                p.downloaded = false;
            }
            return agent.dir.save_state(&agent.state);
        }
        if let StageError::Space { path, needed, free } = e {
            // Not the release's fault and not final: keep it pending with its verified
            // download, so the next run installs it once space is freed.
            agent.dir.remove_file(&journal_path(agent, &j.item))?;
            return Err(Error::NoSpaceToInstall {
                item: name.to_string(),
                version: verified.version.clone(),
                path,
                needed,
                free,
            });
        }
        let outcome = if e.is_refusal() {
            Outcome::Refused
        } else {
            Outcome::Failed
        };
        let attempt = Attempt::start(name, pending, j.from_version.clone());
        report::finish(agent, attempt.with(outcome, e.to_string()), pending)?;
        return cleanup(agent, &j);
    }

    fault::point("switching");
    j.phase = Phase::Switching;
    save_journal(agent, &j)?;
    let (switched, release_dir) = {
        let placed = layout_of(agent, &j, &root)?;
        (placed.switch(fs.as_ref()), placed.release_dir())
    };
    if let Err(e) = switched {
        let message = format!(
            "cannot switch {} to {}: {e}",
            root.display(),
            verified.version
        );
        return roll_back(agent, &j, message, String::new());
    }
    fault::point("switched");

    let previous_version = installed.as_ref().map(|v| v.to_string());
    // Hook output goes to the server as it comes, for operators watching live; the report
    // carries all of it anyway, so a failed send is only logged.
    let mut live = crate::client::LiveOutput::new(&agent.api, j.job_id.as_deref());
    // An interactive job: the hooks run in the operator's terminal.
    let terminal = match (&j.job_id, pending.interactive) {
        (Some(job), true) if agent.cfg.server_url.is_some() => {
            live = live.interactive();
            Some(terminal::Terminal::open(
                &agent.api,
                job,
                Duration::from_secs(agent.cfg.interactive_timeout_secs),
            ))
        }
        _ => None,
    };
    let version = verified.version.to_string();
    let env = hooks::HookEnv {
        item: name,
        version: &version,
        previous_version: previous_version.as_deref(),
        root: &root,
        release_dir: &release_dir,
        terminal: terminal.as_ref(),
    };
    let stop = hooks::Stop {
        flag: &agent.stop,
        grace: Duration::from_secs(agent.cfg.stop_grace_secs),
        since: std::cell::Cell::new(None),
    };
    let hooks = hooks::run_install_hooks(
        &env,
        verified,
        Duration::from_secs(agent.cfg.hook_timeout_secs),
        &stop,
        &mut |text| live.push(text),
    );
    live.flush();
    fault::point("hooks-done");
    if hooks.interrupted {
        // Not the release's fault: put the previous version back and try again next run.
        tracing::warn!(item = %name, version = %verified.version, "stopped by a signal during the install's hooks; restoring the previous version, the install is retried at the next run");
        j.phase = Phase::Postponing;
        save_journal(agent, &j)?;
        postpone(agent, &j)?;
        return Err(Error::Interrupted);
    }
    if hooks.ok {
        j.phase = Phase::Committing {
            message: hooks.message.clone(),
            output: hooks.output.clone(),
        };
        save_journal(agent, &j)?;
        fault::point("committing");
        commit(agent, &j, hooks.message, hooks.output)
    } else {
        let back = previous_version
            .as_deref()
            .unwrap_or("nothing (first install)");
        let message = format!("{}; rolled back to {back}", hooks.message);
        j.phase = Phase::RollingBack {
            message: message.clone(),
            output: hooks.output.clone(),
        };
        save_journal(agent, &j)?;
        fault::point("rolling-back");
        roll_back(agent, &j, message, hooks.output)
    }
}

/// What an install needs to know before its journal is first written.
#[derive(Debug)]
struct Prepared {
    /// The symlink layout's `current` target before the install.
    previous_target: Option<PathBuf>,
    /// The overlay layout's plan.
    plan: Option<overlay::Plan>,
    /// The release is already what is live: nothing to place.
    in_place: bool,
    /// Configuration files edited on the device since the installed release shipped them.
    kept_configs: Vec<String>,
}

/// The configuration files of `manifest` that a person edited in `live` (the installed
/// release's files): content that differs both from what the installed release shipped
/// (`st.configs`) and from the new version. A file the installed release did not ship as
/// configuration, or that cannot be read, is replaced as usual.
fn edited_configs(live: Option<&Path>, manifest: &VerifiedManifest, st: &ItemState) -> Vec<String> {
    let Some(live) = live else {
        return Vec::new();
    };
    manifest
        .files
        .iter()
        .filter(|f| f.config)
        .filter(|f| {
            let Some(shipped) = st.configs.get(&f.path) else {
                return false;
            };
            sha256_of(&live.join(&f.path)).is_some_and(|now| &now != shipped && now != f.sha256)
        })
        .map(|f| f.path.clone())
        .collect()
}

/// The sha256 of a regular file (not through a symlink), or `None`.
fn sha256_of(path: &Path) -> Option<String> {
    use sha2::Digest as _;
    if !std::fs::symlink_metadata(path).ok()?.is_file() {
        return None;
    }
    let mut hasher = sha2::Sha256::new();
    std::io::copy(&mut std::fs::File::open(path).ok()?, &mut hasher).ok()?;
    Some(hex::encode(hasher.finalize()))
}

/// Looks at the root as it is now and works out what installing `manifest` there changes.
/// `unchanged`: files a delta says the new release has, unchanged, at the same path (the
/// overlay layout leaves them alone).
fn prepare(
    root: &Path,
    manifest: &VerifiedManifest,
    st: &ItemState,
    unchanged: &[String],
) -> Result<Prepared, RootError> {
    Ok(match manifest.install.layout {
        Layout::Symlink => {
            let previous_target = symlink::current_target(root)?;
            let in_place =
                previous_target.as_deref() == Some(symlink::target_of(&manifest.version).as_path());
            let live = previous_target.as_ref().map(|t| root.join(t));
            Prepared {
                kept_configs: edited_configs(live.as_deref(), manifest, st),
                previous_target,
                plan: None,
                in_place,
            }
        }
        Layout::Overlay => {
            let kept_configs = edited_configs(Some(root), manifest, st);
            Prepared {
                previous_target: None,
                plan: Some(overlay::plan(
                    root,
                    manifest,
                    &st.files,
                    &kept_configs,
                    unchanged,
                )?),
                in_place: st.installed.as_ref() == Some(&manifest.version),
                kept_configs,
            }
        }
    })
}

/// The layout the journal describes, at the item's root: built from the journal alone, so
/// recovery sees exactly what the install saw.
fn layout_of<'a>(
    agent: &Agent,
    j: &'a Journal,
    root: &'a Path,
) -> Result<Box<dyn InstallLayout + 'a>, Error> {
    Ok(match (j.layout, &j.plan) {
        (Layout::Symlink, _) => Box::new(Symlink {
            root,
            version: &j.version,
            previous_target: j.previous_target.as_deref(),
            kept_configs: &j.kept_configs,
        }),
        (Layout::Overlay, Some(plan)) => Box::new(Overlay {
            root,
            item: &j.item,
            version: &j.version,
            plan,
        }),
        // No version of the agent writes one.
        (Layout::Overlay, None) => {
            return Err(Error::CorruptState {
                path: journal_path(agent, &j.item),
                message: "an overlay install without its plan".into(),
            })
        }
    })
}

/// Removes what staging may have left, without touching what is live.
fn remove_staged(agent: &Agent, j: &Journal) -> Result<(), Error> {
    let root = root_of(agent, &j.item)?;
    let removed = layout_of(agent, j, &root)?.remove_staged(agent.dir.fs.as_ref());
    Ok(removed.map_err(io_err(&root))?)
}

/// Records a proven release: state, report, prune, then drop the journal. Idempotent, so
/// recovery can run it again after a crash anywhere inside it.
fn commit(agent: &mut Agent, j: &Journal, message: String, output: String) -> Result<(), Error> {
    let root = root_of(agent, &j.item)?;
    let files = j.plan.as_ref().map(overlay::Plan::placed_files);
    let st = agent.state.items.entry(j.item.clone()).or_default();
    st.commit(&j.version, j.from_version.as_ref(), files);
    if j.from_version.as_ref() != Some(&j.version) {
        st.previous_configs = j.old_configs.clone();
    }
    st.configs = j.configs.clone();
    st.kept_configs = j.kept_configs.clone();
    // The installed release's manifest is kept: a delta to the next one starts from it.
    let envelope = agent.dir.manifests().join(&j.envelope);
    if !j.envelope.is_empty() && envelope.exists() {
        let kept = agent.dir.installed_manifest(&j.item);
        agent
            .dir
            .fs
            .rename(&envelope, &kept)
            .map_err(io_err(&kept))?;
    }
    let message = if j.kept_configs.is_empty() {
        message
    } else {
        format!(
            "{message}; kept edited configuration: {} (this version is beside each as FILE.ferry-new)",
            j.kept_configs.join(", ")
        )
    };
    let previous = st.previous.clone();
    agent.dir.save_state(&agent.state)?;
    fault::point("committed-state");
    queue(agent, j, Outcome::Installed, message, output)?;
    let pruned = layout_of(agent, j, &root)?.commit(
        agent.dir.fs.as_ref(),
        previous.as_ref(),
        agent.cfg.keep_releases,
    );
    pruned.map_err(io_err(&root))?;
    cleanup(agent, j)
}

/// Restores the previous release and records the failure. Idempotent.
fn roll_back(agent: &mut Agent, j: &Journal, message: String, output: String) -> Result<(), Error> {
    let root = root_of(agent, &j.item)?;
    let restored = layout_of(agent, j, &root)?.restore(agent.dir.fs.as_ref());
    restored.map_err(io_err(&root))?;
    let by_hand = match &j.phase {
        Phase::ManualRollback { to, .. } => {
            Some((to.clone(), j.plan.as_ref().map(|p| p.old_files.clone())))
        }
        _ => None,
    };
    let st = agent.state.items.entry(j.item.clone()).or_default();
    if by_hand.is_some() {
        // The restored release's configuration (from the journal: safe to repeat).
        st.configs = j.configs.clone();
        st.previous_configs.clear();
        st.kept_configs.clear();
    }
    st.roll_back(&j.version, by_hand);
    agent.dir.save_state(&agent.state)?;
    queue(agent, j, Outcome::RolledBack, message, output)?;
    cleanup(agent, j)
}

/// Restores the previous release after a stop cut the hooks short: no report and no failure
/// recorded; the release stays pending with its verified download, so the next run installs
/// it again. Idempotent.
fn postpone(agent: &mut Agent, j: &Journal) -> Result<(), Error> {
    let root = root_of(agent, &j.item)?;
    let restored = layout_of(agent, j, &root)?.restore(agent.dir.fs.as_ref());
    restored.map_err(io_err(&root))?;
    agent.dir.remove_file(&journal_path(agent, &j.item))
}

/// `--running-mode=rollback --item NAME`: restores the previous version of an item by hand.
pub fn rollback_by_hand(agent: &mut Agent, item: &str) -> Result<(), Error> {
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
    let message = format!("rolled back by hand from {installed} to {previous}");
    let j = Journal {
        item: item.to_string(),
        version: installed.clone(),
        job_id: None,
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

fn queue(
    agent: &mut Agent,
    j: &Journal,
    outcome: Outcome,
    message: String,
    output: String,
) -> Result<(), Error> {
    let report = j.report(outcome, message, output);
    report::log_outcome(agent, &report);
    report::queue(&agent.dir, &report)?;
    agent.outcomes.push(outcome);
    Ok(())
}

fn cleanup(agent: &mut Agent, j: &Journal) -> Result<(), Error> {
    // The envelope and artifact are no longer needed whatever happened.
    let _ = agent
        .dir
        .remove_file(&agent.dir.manifests().join(&j.envelope));
    let _ = agent.dir.remove_file(&j.artifact);
    agent.dir.remove_file(&journal_path(agent, &j.item))
}

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
