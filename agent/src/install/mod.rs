//! The install stage: take each pending, downloaded release, verify it again and hand it to
//! its [`Installer`]; Ferry's [`Tarball`] places it with its layout, runs its hooks, and
//! rolls back when they fail. Every irreversible step is journalled
//! first ([`journal`]); [`recover`] runs at the start of every run and finishes or undoes an
//! install that a crash or power cut interrupted. docs/crash-safety.md gives the argument.

pub mod delta;
pub mod hooks;
pub mod journal;
pub mod layout;
pub mod overlay;
pub mod packages;
mod prepare;
mod recover;
pub mod symlink;
mod tarball;
pub mod terminal;
pub mod unpack;

pub use recover::{recover, rollback_by_hand, rollback_job};
pub use tarball::Tarball;

use std::path::{Path, PathBuf};

use ferry_manifests::wire::Outcome;
use ferry_manifests::{Layout, VerifiedManifest};

use self::journal::{Journal, Phase};
use self::layout::InstallLayout;
use self::overlay::Overlay;
use self::symlink::Symlink;
use crate::agent::Agent;
use crate::error::{io_err, Error};
use crate::fsops::fault;
use crate::report::{self, Attempt};
use crate::state::Pending;
use crate::verify;

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
        installer_for(&verified).install(agent, &name, &pending, &verified)?;
    }
    Ok(agent.outcomes[before..].to_vec())
}

/// How an item is installed: the one step of the cycle that differs between kinds of
/// software. Check, download, history, live output, the terminal, reports and campaigns are
/// shared; an installer places a verified, downloaded release and reports its outcome
/// (`report::finish`, or its journal's report), and says what it guarantees.
pub trait Installer {
    fn guarantees(&self) -> Guarantees;
    fn install(
        &self,
        agent: &mut Agent,
        name: &str,
        pending: &Pending,
        verified: &VerifiedManifest,
    ) -> Result<(), Error>;
}

/// What an installer promises about a failed or interrupted install.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Guarantees {
    /// The item is at exactly the old or the new version at every instant.
    pub atomic: bool,
    /// A failed install puts the previous version back.
    pub rollback: bool,
}

/// The installer of a release: Ferry's tarball, the only kind a manifest names today.
fn installer_for(_verified: &VerifiedManifest) -> &'static dyn Installer {
    &Tarball
}

/// Moves the journal to its next phase and writes it before the step begins.
fn advance(agent: &Agent, j: &mut Journal, phase: Phase) -> Result<(), Error> {
    j.phase = phase;
    save_journal(agent, j)
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
    crate::share::keep(agent, &j.item, &j.artifact);
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

/// Whether this run may write in `root` (or, while it does not exist, in the directory that
/// would hold it), asked of the kernel (`access(2)`, which also answers for a read-only mount)
/// so that nothing is ever left behind, even by a kill. Only a refusal counts (read-only file
/// system, permission); any other trouble is for the install to meet and report.
pub fn writable(root: &std::path::Path) -> std::io::Result<()> {
    use nix::unistd::{access, AccessFlags};
    let dir = root.ancestors().find(|p| p.is_dir()).unwrap_or(root);
    match access(dir, AccessFlags::W_OK) {
        Ok(()) => Ok(()),
        Err(
            e @ (nix::errno::Errno::EROFS | nix::errno::Errno::EACCES | nix::errno::Errno::EPERM),
        ) => Err(std::io::Error::from(e)),
        Err(_) => Ok(()),
    }
}
