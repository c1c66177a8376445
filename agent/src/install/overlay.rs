//! The `overlay` layout: a release's files are placed into existing paths under ROOT (for
//! example ROOT=/ and `usr/local/bin/tool`, `var/www/site/index.html`), as a bundle updater
//! does. Files the new version no longer has are removed. Every file replaced or removed is
//! kept in a backup, so a failed install rolls back and `--running-mode=rollback` restores the
//! previous version.
//!
//! Work happens in `ROOT/.ferry-ITEM/` (mode 0700, same filesystem as ROOT so renames and hard
//! links work): `staging-V/` holds the verified unpacked release, `backup-before-V/` the files
//! V replaced or removed, and `backup-before-V/plan.json` what V changed.
//!
//! The swap, per path, never leaves a path missing that existed: a replaced file is first
//! hard-linked into the backup, then the new file is renamed over it (atomic); a removed file
//! is renamed into the backup. The [`Plan`] — which paths existed before — is journalled
//! before the first change, so [`restore`] can undo any prefix of the swap, again and again.

use std::path::{Path, PathBuf};

use ferry_manifests::VerifiedManifest;
use serde::{Deserialize, Serialize};

use super::layout::{ensure_space, InstallLayout, StageError};
use super::unpack::unpack_verified;
use crate::error::{io_err as at, RootError};
use crate::fsops::{self, Fs};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Put the new version's file here.
    Place,
    /// The old version had this file and the new one does not: take it away.
    Remove,
    /// The new version has this file unchanged at the same path (a delta says so, and
    /// assembling the release checked the live file's content): it is not touched.
    Keep,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub path: String,
    pub action: Action,
    /// Whether ROOT/path existed before the swap (and so is in the backup once swapped).
    pub existed: bool,
    /// The release's path whose staged file goes to `path`, when they differ: an edited
    /// configuration file stays and the release's version goes beside it (`PATH.ferry-new`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

/// What an overlay install changes, computed before any change and journalled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub entries: Vec<Entry>,
    /// Directories the swap creates (parents first), removed again by a rollback.
    pub new_dirs: Vec<String>,
    /// The previous version's file list, restored into the state by a rollback.
    pub old_files: Vec<String>,
}

impl Plan {
    /// The files the new version has: what the state records once it is installed.
    pub fn placed_files(&self) -> Vec<String> {
        self.entries
            .iter()
            .filter(|e| matches!(e.action, Action::Place | Action::Keep))
            .map(|e| e.from.clone().unwrap_or_else(|| e.path.clone()))
            .collect()
    }
}

pub fn work_dir(root: &Path, item: &str) -> PathBuf {
    root.join(format!(".ferry-{item}"))
}

pub fn staging(root: &Path, item: &str, version: &semver::Version) -> PathBuf {
    work_dir(root, item).join(format!("staging-{version}"))
}

pub fn backup(root: &Path, item: &str, version: &semver::Version) -> PathBuf {
    work_dir(root, item).join(format!("backup-before-{version}"))
}

/// Refuses paths that would write through a symlinked directory (out of ROOT) or over a
/// directory.
fn check_target(root: &Path, rel: &str) -> Result<bool, RootError> {
    let mut prefix = root.to_path_buf();
    let parts: Vec<&str> = rel.split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        prefix.push(part);
        match std::fs::symlink_metadata(&prefix) {
            Ok(m) if i + 1 < parts.len() && m.file_type().is_symlink() => {
                return Err(RootError::ThroughSymlink { path: prefix })
            }
            Ok(m) if i + 1 == parts.len() => {
                if m.is_dir() {
                    return Err(RootError::DirectoryInTheWay { path: prefix });
                }
                return Ok(true);
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(source) => {
                return Err(RootError::Inspect {
                    path: prefix,
                    source,
                })
            }
        }
    }
    Ok(false)
}

/// Whether anything (a file, a link, even a dangling one) is at `path`, without following it.
fn present(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

/// Works out what installing `manifest` over `old_files` changes under ROOT.
pub fn plan(
    root: &Path,
    manifest: &VerifiedManifest,
    old_files: &[String],
    kept_configs: &[String],
    unchanged: &[String],
) -> Result<Plan, RootError> {
    let mut entries = Vec::new();
    let mut new_dirs: Vec<String> = Vec::new();
    // Files and the release's signed links are placed alike: a link is renamed into place
    // as a file is, and backed up the same way.
    let paths = manifest
        .files
        .iter()
        .map(|f| &f.path)
        .chain(manifest.links.iter().map(|l| &l.path));
    for rel in paths {
        if unchanged.contains(rel) && !kept_configs.contains(rel) {
            entries.push(Entry {
                path: rel.to_string(),
                action: Action::Keep,
                existed: true,
                from: None,
            });
            continue;
        }
        let (path, from) = if kept_configs.contains(rel) {
            (format!("{rel}.ferry-new"), Some(rel.to_string()))
        } else {
            (rel.to_string(), None)
        };
        let existed = check_target(root, &path)?;
        entries.push(Entry {
            path,
            action: Action::Place,
            existed,
            from,
        });
        let mut dir = String::new();
        for part in rel
            .split('/')
            .collect::<Vec<_>>()
            .split_last()
            .map(|(_, d)| d.to_vec())
            .unwrap_or_default()
        {
            if !dir.is_empty() {
                dir.push('/');
            }
            dir.push_str(part);
            if !root.join(&dir).exists() && !new_dirs.contains(&dir) {
                new_dirs.push(dir.clone());
            }
        }
    }
    for old in old_files {
        if manifest.files.iter().any(|f| &f.path == old)
            || manifest.links.iter().any(|l| &l.path == old)
        {
            continue;
        }
        let existed = check_target(root, old)?;
        entries.push(Entry {
            path: old.clone(),
            action: Action::Remove,
            existed,
            from: None,
        });
    }
    Ok(Plan {
        entries,
        new_dirs,
        old_files: old_files.to_vec(),
    })
}

/// Unpacks the verified artifact into the staging directory.
pub fn stage(
    fs: &dyn Fs,
    root: &Path,
    item: &str,
    manifest: &VerifiedManifest,
    source: &super::delta::Source<'_>,
) -> Result<(), StageError> {
    let work = work_dir(root, item);
    // Backups of files from a web root or /etc must not be readable by others.
    fs.create_private_dir(&work).map_err(at(&work))?;
    ensure_space(&work, manifest)?;
    let staging = staging(root, item, &manifest.version);
    fs.remove_dir_all(&staging).map_err(at(&staging))?;
    match source {
        super::delta::Source::Artifact(artifact) => {
            unpack_verified(fs, artifact, manifest, &staging)?
        }
        super::delta::Source::Delta { file, base } => {
            super::delta::assemble(fs, file, base, manifest, &staging)?
        }
    }
    Ok(fs.sync_fs(&staging).map_err(at(&staging))?)
}

fn ensure_parent(fs: &dyn Fs, path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(p) if !p.is_dir() => fs.create_dir_all(p),
        _ => Ok(()),
    }
}

/// Applies the plan: backups first (hard link or move), then each new file renamed into place.
pub fn swap(
    fs: &dyn Fs,
    root: &Path,
    item: &str,
    version: &semver::Version,
    plan: &Plan,
) -> std::io::Result<()> {
    let staging = staging(root, item, version);
    let backup = backup(root, item, version);
    fs.create_dir_all(&backup)?;
    for dir in &plan.new_dirs {
        fs.create_dir_all(&root.join(dir))?;
    }
    for e in &plan.entries {
        let target = root.join(&e.path);
        let saved = backup.join(&e.path);
        match e.action {
            Action::Place => {
                if e.existed && !present(&saved) {
                    ensure_parent(fs, &saved)?;
                    fs.hard_link(&target, &saved)?;
                }
                let staged = staging.join(e.from.as_deref().unwrap_or(&e.path));
                if present(&staged) {
                    fs.rename(&staged, &target)?;
                }
            }
            Action::Remove => {
                if e.existed && !present(&saved) && present(&target) {
                    ensure_parent(fs, &saved)?;
                    fs.rename(&target, &saved)?;
                }
            }
            Action::Keep => {}
        }
    }
    fs.sync_fs(root)
}

/// Puts back what the plan's swap changed, from `backup`. Safe to repeat after a crash.
pub fn restore(fs: &dyn Fs, root: &Path, backup: &Path, plan: &Plan) -> std::io::Result<()> {
    for e in plan.entries.iter().filter(|e| e.action != Action::Keep) {
        let target = root.join(&e.path);
        let saved = backup.join(&e.path);
        if e.existed {
            // The backup holds the old file until it is moved back; once moved, the target is
            // the old file already.
            if std::fs::symlink_metadata(&saved).is_ok() {
                fs.rename(&saved, &target)?;
            }
        } else {
            fs.remove_file(&target)?;
        }
    }
    for dir in plan.new_dirs.iter().rev() {
        fs.remove_dir(&root.join(dir))?;
    }
    fs.sync_fs(root)
}

/// Removes backups beyond the newest `keep`, and any staging directories.
pub fn prune(fs: &dyn Fs, root: &Path, item: &str, keep: usize) {
    let work = work_dir(root, item);
    let Ok(entries) = std::fs::read_dir(&work) else {
        return;
    };
    let mut backups: Vec<(semver::Version, PathBuf)> = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("staging-") {
            let _ = fs.remove_dir_all(&e.path());
        } else if let Some(v) = name.strip_prefix("backup-before-") {
            if let Ok(v) = v.parse() {
                backups.push((v, e.path()));
            }
        }
    }
    backups.sort_by(|a, b| b.0.cmp(&a.0));
    for (_, path) in backups.into_iter().skip(keep) {
        let _ = fs.remove_dir_all(&path);
    }
}

/// An overlay-layout install of `version` of `item` under `root`, changing what `plan` says.
pub struct Overlay<'a> {
    pub root: &'a Path,
    pub item: &'a str,
    pub version: &'a semver::Version,
    pub plan: &'a Plan,
}

impl InstallLayout for Overlay<'_> {
    fn stage(
        &self,
        fs: &dyn Fs,
        manifest: &VerifiedManifest,
        source: &super::delta::Source<'_>,
    ) -> Result<(), StageError> {
        stage(fs, self.root, self.item, manifest, source)
    }

    fn switch(&self, fs: &dyn Fs) -> std::io::Result<()> {
        swap(fs, self.root, self.item, self.version, self.plan)
    }

    fn restore(&self, fs: &dyn Fs) -> std::io::Result<()> {
        let backup = backup(self.root, self.item, self.version);
        restore(fs, self.root, &backup, self.plan)?;
        fs.remove_dir_all(&backup)?;
        self.remove_staged(fs)
    }

    fn remove_staged(&self, fs: &dyn Fs) -> std::io::Result<()> {
        fs.remove_dir_all(&staging(self.root, self.item, self.version))
    }

    fn release_dir(&self) -> PathBuf {
        self.root.to_path_buf()
    }

    /// Keeps what this version changed beside its backup, for a rollback by hand.
    fn commit(
        &self,
        fs: &dyn Fs,
        _previous: Option<&semver::Version>,
        keep: usize,
    ) -> std::io::Result<()> {
        let backup = backup(self.root, self.item, self.version);
        fs.create_dir_all(&backup)?;
        let bytes = serde_json::to_vec_pretty(self.plan)?;
        fsops::write_atomic(fs, &backup.join("plan.json"), &bytes)?;
        // The backup of the version before this one is the previous release.
        prune(fs, self.root, self.item, keep.saturating_sub(1));
        Ok(())
    }
}
