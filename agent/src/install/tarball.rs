//! Ferry's own installer: a signed tarball placed with its layout (atomic switch, a backup,
//! hooks, automatic rollback). Each step is journalled before it starts ([`advance`]), so a
//! crash at any instant leaves the root at the old or the new release.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ferry_manifests::wire::{now, Outcome};
use ferry_manifests::{Layout, VerifiedManifest};

use super::journal::{Journal, Phase};
use super::layout::StageError;
use super::prepare::prepare;
use super::{
    advance, cleanup, commit, delta, hooks, journal_path, layout_of, postpone, remove_staged,
    roll_back, root_of, save_journal, terminal, Guarantees, Installer,
};
use crate::agent::Agent;
use crate::error::Error;
use crate::fsops::fault;
use crate::report::{self, Attempt};
use crate::state::Pending;

/// The tarball installer (the only one a release manifest can name today).
pub struct Tarball;

impl Installer for Tarball {
    fn guarantees(&self) -> Guarantees {
        Guarantees {
            atomic: true,
            rollback: true,
        }
    }

    fn install(
        &self,
        agent: &mut Agent,
        name: &str,
        pending: &Pending,
        verified: &VerifiedManifest,
    ) -> Result<(), Error> {
        let Some(mut begun) = begin(agent, name, pending, verified)? else {
            return Ok(());
        };
        let Some(release_dir) = stage_and_switch(agent, &mut begun, pending, verified)? else {
            return Ok(());
        };
        let hooks = run_hooks(agent, &begun, pending, verified, &release_dir);
        settle(agent, begun, verified, hooks)
    }
}

/// An install whose journal is written: the journal, the item's root, and what staging
/// unpacks from.
struct Begun {
    j: Journal,
    root: PathBuf,
    /// The full artifact's place in the state directory.
    full: PathBuf,
    /// A delta downloaded instead of the full artifact (`download::run` decided it was usable).
    delta_file: Option<PathBuf>,
}

/// Looks at the root and writes nothing yet; `None` when the install ended here (a root that
/// cannot take it is reported, a release already in place is committed).
fn begin(
    agent: &mut Agent,
    name: &str,
    pending: &Pending,
    verified: &VerifiedManifest,
) -> Result<Option<Begun>, Error> {
    let root = root_of(agent, name)?;
    // Not the release's fault and not final (a unit's ReadWritePaths, a read-only mount):
    // it stays pending, with nothing written.
    if let Err(source) = super::writable(&root) {
        let e = Error::RootNotWritable {
            item: name.to_string(),
            version: verified.version.clone(),
            path: root,
            source,
        };
        report::waiting(agent, pending, &e);
        return Err(e);
    }
    let st = agent.item_state(name);
    let installed = st.installed.clone();
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
            let attempt = Attempt::start(name, pending, installed);
            report::finish(agent, attempt.with(Outcome::Failed, e.to_string()), pending)?;
            return Ok(None);
        }
    };
    let j = Journal {
        item: name.to_string(),
        version: verified.version.clone(),
        job_id: pending.job_id.clone(),
        report_id: uuid::Uuid::new_v4().to_string(),
        started_at: now(),
        from_version: installed,
        previous_target: prepared.previous_target,
        envelope: pending.envelope.clone(),
        artifact: delta_file.clone().unwrap_or_else(|| full.clone()),
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
        let message = format!("{name} {} is already in place", verified.version);
        commit(agent, &j, message, String::new())?;
        return Ok(None);
    }
    Ok(Some(Begun {
        j,
        root,
        full,
        delta_file,
    }))
}

/// Shows the install's progress on the terminal and to a local dashboard; staging counts
/// the files it unpacks through the `Fs` this returns.
fn show_progress(
    agent: &Agent,
    root: &Path,
    verified: &VerifiedManifest,
) -> crate::dashboard::UnpackCount {
    let name = &verified.item;
    let progress = crate::dashboard::Progress {
        item: name.to_string(),
        version: verified.version.to_string(),
        stage: "installing".into(),
        bytes_done: 0,
        bytes_total: verified.files.iter().map(|f| f.size).sum(),
        files_done: Some(0),
        files_total: Some(verified.files.len() as u64),
        pid: std::process::id(),
        updated_at: now(),
    };
    crate::dashboard::record_progress(&agent.dir, &progress);
    if let Some(p) = &agent.progress {
        p.line(&format!(
            "installing {name} {} into {}",
            verified.version,
            root.display()
        ));
    }
    crate::dashboard::UnpackCount::new(agent.dir.fs.clone(), &agent.dir, progress, &verified.files)
}

/// Stages the release beside the live one and switches to it. The release's directory, or
/// `None` when the install ended here (staging failed and was cleaned up or reported; the
/// switch failed and was rolled back).
fn stage_and_switch(
    agent: &mut Agent,
    begun: &mut Begun,
    pending: &Pending,
    verified: &VerifiedManifest,
) -> Result<Option<PathBuf>, Error> {
    let Begun {
        j,
        root,
        full,
        delta_file,
    } = begun;
    tracing::info!(item = %j.item, version = %verified.version, root = %root.display(), layout = %j.layout, "installing");
    let counting = show_progress(agent, root, verified);
    // A delta starts from the installed release: its directory (symlink) or the root itself
    // (overlay).
    let base = match j.layout {
        Layout::Symlink => j.previous_target.as_ref().map(|t| root.join(t)),
        Layout::Overlay => Some(root.clone()),
    };
    let source = match (&delta_file, &base) {
        (Some(file), Some(base)) => delta::Source::Delta { file, base },
        _ => delta::Source::Artifact(full),
    };
    save_journal(agent, j)?;
    fault::point("staging");
    if let Err(e) = layout_of(agent, j, root)?.stage(&counting, verified, &source) {
        staging_failed(agent, j, e, delta_file.as_deref(), pending, verified)?;
        return Ok(None);
    }
    fault::point("switching");
    advance(agent, j, Phase::Switching)?;
    let (switched, release_dir) = {
        let placed = layout_of(agent, j, root)?;
        (placed.switch(agent.dir.fs.as_ref()), placed.release_dir())
    };
    if let Err(e) = switched {
        let message = format!(
            "cannot switch {} to {}: {e}",
            root.display(),
            verified.version
        );
        roll_back(agent, j, message, String::new())?;
        return Ok(None);
    }
    fault::point("switched");
    Ok(Some(release_dir))
}

/// Staging failed: nothing visible changed. Cleans up (if even that fails, a crash or a full
/// disk, the journal stays and the next run's recovery finishes the job), then falls back to
/// the full artifact after a delta, keeps the release pending when space ran out, or reports.
fn staging_failed(
    agent: &mut Agent,
    j: &Journal,
    e: StageError,
    delta_file: Option<&Path>,
    pending: &Pending,
    verified: &VerifiedManifest,
) -> Result<(), Error> {
    let name = &j.item;
    remove_staged(agent, j)?;
    if let (Some(file), false) = (delta_file, matches!(e, StageError::Space { .. })) {
        // Never a failed install because of a delta: fetch the full artifact instead.
        tracing::warn!(item = %name, version = %verified.version, "the delta cannot be used ({e}); fetching the full artifact");
        agent.dir.remove_file(&journal_path(agent, name))?;
        let _ = agent.dir.remove_file(file);
        if let Some(p) = agent.pending_mut(name) {
            p.delta = None;
            p.downloaded = false;
        }
        return agent.dir.save_state(&agent.state);
    }
    if let StageError::Space { path, needed, free } = e {
        // Not the release's fault and not final: keep it pending with its verified download,
        // so the next run installs it once space is freed.
        agent.dir.remove_file(&journal_path(agent, name))?;
        let e = Error::NoSpaceToInstall {
            item: name.to_string(),
            version: verified.version.clone(),
            path,
            needed,
            free,
        };
        report::waiting(agent, pending, &e);
        return Err(e);
    }
    let outcome = if e.is_refusal() {
        Outcome::Refused
    } else {
        Outcome::Failed
    };
    let attempt = Attempt::start(name, pending, j.from_version.clone());
    report::finish(agent, attempt.with(outcome, e.to_string()), pending)?;
    cleanup(agent, j)
}

/// Runs the post-install and health-check hooks of the switched release, their output sent
/// live to the server (and, for an interactive job, on the operator's terminal).
fn run_hooks(
    agent: &Agent,
    begun: &Begun,
    pending: &Pending,
    verified: &VerifiedManifest,
    release_dir: &Path,
) -> hooks::HookOutcome {
    let j = &begun.j;
    let previous_version = j.from_version.as_ref().map(|v| v.to_string());
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
        item: &j.item,
        version: &version,
        previous_version: previous_version.as_deref(),
        root: &begun.root,
        release_dir,
        terminal: terminal.as_ref(),
    };
    let stop = hooks::Stop {
        flag: &agent.stop,
        grace: Duration::from_secs(agent.cfg.stop_grace_secs),
        since: std::cell::Cell::new(None),
    };
    let result = hooks::run_install_hooks(
        &env,
        verified,
        Duration::from_secs(agent.cfg.hook_timeout_secs),
        &stop,
        &mut |text| live.push(text),
    );
    live.flush();
    fault::point("hooks-done");
    result
}

/// After the hooks: commit, roll back, or (stopped by a signal) put the previous release
/// back and try again at the next run.
fn settle(
    agent: &mut Agent,
    begun: Begun,
    verified: &VerifiedManifest,
    hooks: hooks::HookOutcome,
) -> Result<(), Error> {
    let mut j = begun.j;
    if hooks.interrupted {
        // Not the release's fault: put the previous version back and try again next run.
        tracing::warn!(item = %j.item, version = %verified.version, "stopped by a signal during the install's hooks; restoring the previous version, the install is retried at the next run");
        advance(agent, &mut j, Phase::Postponing)?;
        postpone(agent, &j)?;
        return Err(Error::Interrupted);
    }
    if hooks.ok {
        let phase = Phase::Committing {
            message: hooks.message.clone(),
            output: hooks.output.clone(),
        };
        advance(agent, &mut j, phase)?;
        fault::point("committing");
        commit(agent, &j, hooks.message, hooks.output)
    } else {
        let back = j
            .from_version
            .as_ref()
            .map_or("nothing (first install)".to_string(), |v| v.to_string());
        let message = format!("{}; rolled back to {back}", hooks.message);
        let phase = Phase::RollingBack {
            message: message.clone(),
            output: hooks.output.clone(),
        };
        advance(agent, &mut j, phase)?;
        fault::point("rolling-back");
        roll_back(agent, &j, message, hooks.output)
    }
}
