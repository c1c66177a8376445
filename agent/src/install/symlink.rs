//! The `symlink` layout: each version unpacked under `ROOT/releases/VERSION/`, and
//! `ROOT/current` a relative symlink to the one in use, flipped with an atomic rename. The
//! previous release stays on disk as the backup; a rollback is a flip back.
//!
//! The steps, driven and journalled by `install::mod`:
//! 1. [`stage`]: unpack into `releases/.staging-V` (fresh), verifying every file; `syncfs`;
//!    rename it to `releases/V`; fsync `releases/`. `current` is untouched.
//! 2. [`flip`]: create `.current.new` -> `releases/V`, rename it over `current`, fsync ROOT.
//! 3. The hooks (`hooks.rs`): post-install commands, then the health check.
//! 4. On failure [`flip`] back and [`remove_release`]; on success [`prune`].
//!
//! Until step 2 the old version is untouched; from step 2 on the new one is complete on disk.

use std::path::{Path, PathBuf};

use ferry_manifests::VerifiedManifest;

use super::layout::{ensure_space, InstallLayout, StageError};
use super::unpack::unpack_verified;
use crate::error::{io_err as at, RootError};
use crate::fsops::Fs;

pub fn releases(root: &Path) -> PathBuf {
    root.join("releases")
}

/// The `current` link's target for `version`, relative to ROOT.
pub fn target_of(version: &semver::Version) -> PathBuf {
    PathBuf::from("releases").join(version.to_string())
}

fn staging(root: &Path, version: &semver::Version) -> PathBuf {
    releases(root).join(format!(".staging-{version}"))
}

/// Target of `ROOT/current`, relative to ROOT, if it is a symlink.
pub fn current_target(root: &Path) -> Result<Option<PathBuf>, RootError> {
    let current = root.join("current");
    let inspect = |source| RootError::Inspect {
        path: current.clone(),
        source,
    };
    match std::fs::symlink_metadata(&current) {
        Ok(meta) if meta.file_type().is_symlink() => {
            std::fs::read_link(&current).map(Some).map_err(inspect)
        }
        Ok(_) => Err(RootError::NotASymlink { path: current }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(inspect(e)),
    }
}

/// Step 1: unpacks the verified artifact and moves it to `releases/V`.
/// Carries edited configuration files into the new release: in `staging`, each kept
/// `PATH` becomes `PATH.ferry-new` and `live/PATH` is copied in its place (with its mode).
fn carry_configs(
    fs: &dyn Fs,
    staging: &Path,
    live: &Path,
    kept: &[String],
) -> Result<(), StageError> {
    use std::os::unix::fs::PermissionsExt as _;
    for rel in kept {
        let staged = staging.join(rel);
        let beside = staging.join(format!("{rel}.ferry-new"));
        fs.rename(&staged, &beside).map_err(at(&beside))?;
        let edited = live.join(rel);
        let mut from = std::fs::File::open(&edited).map_err(at(&edited))?;
        let mode = from.metadata().map_err(at(&edited))?.permissions().mode();
        let mut to = fs.create_new(&staged).map_err(at(&staged))?;
        std::io::copy(&mut from, &mut to).map_err(at(&staged))?;
        to.set_permissions(std::fs::Permissions::from_mode(mode & 0o7777))
            .map_err(at(&staged))?;
    }
    Ok(())
}

pub fn stage(
    fs: &dyn Fs,
    root: &Path,
    manifest: &VerifiedManifest,
    source: &super::delta::Source<'_>,
    carry: Option<(&Path, &[String])>,
) -> Result<(), StageError> {
    let releases = releases(root);
    fs.create_dir_all(&releases).map_err(at(&releases))?;
    ensure_space(&releases, manifest)?;
    let staging = staging(root, &manifest.version);
    fs.remove_dir_all(&staging).map_err(at(&staging))?;
    match source {
        super::delta::Source::Artifact(artifact) => {
            unpack_verified(fs, artifact, manifest, &staging)?
        }
        super::delta::Source::Delta { file, base } => {
            super::delta::assemble(fs, file, base, manifest, &staging)?
        }
    }
    if let Some((live, kept)) = carry {
        carry_configs(fs, &staging, live, kept)?;
    }
    // One syncfs for the whole unpacked tree instead of an fsync per file.
    fs.sync_fs(&staging).map_err(at(&staging))?;
    let final_dir = releases.join(manifest.version.to_string());
    // Never current here (the caller checked): a leftover of an earlier attempt.
    fs.remove_dir_all(&final_dir).map_err(at(&final_dir))?;
    fs.rename(&staging, &final_dir).map_err(at(&final_dir))?;
    Ok(fs.sync_dir(&releases).map_err(at(&releases))?)
}

/// Removes what [`stage`] may have left: the staging directory and `releases/V`, unless
/// `releases/V` is what `current` points to.
pub fn remove_release(fs: &dyn Fs, root: &Path, version: &semver::Version) -> std::io::Result<()> {
    fs.remove_dir_all(&staging(root, version))?;
    let target = target_of(version);
    if current_target(root).ok().flatten().as_deref() != Some(target.as_path()) {
        fs.remove_dir_all(&root.join(target))?;
    }
    Ok(())
}

/// Points `ROOT/current` at `target` (relative to ROOT) atomically, or removes it.
pub fn flip(fs: &dyn Fs, root: &Path, target: Option<&Path>) -> std::io::Result<()> {
    let current = root.join("current");
    match target {
        Some(target) => {
            let tmp = root.join(".current.new");
            fs.remove_file(&tmp)?;
            fs.symlink(target, &tmp)?;
            fs.rename(&tmp, &current)?;
        }
        None => fs.remove_file(&current)?,
    }
    fs.sync_dir(root)
}

/// Removes old releases, keeping the current one, the previous one and, beyond those, the
/// newest by semver up to `keep` in all. Leftover staging directories are removed too.
pub fn prune(fs: &dyn Fs, root: &Path, current: &str, previous: Option<&str>, keep: usize) {
    let releases = releases(root);
    let Ok(entries) = std::fs::read_dir(&releases) else {
        return;
    };
    let mut others: Vec<(semver::Version, PathBuf)> = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == current || Some(name.as_str()) == previous {
            continue;
        }
        if name.starts_with(".staging-") {
            let _ = fs.remove_dir_all(&entry.path());
            continue;
        }
        if let Ok(v) = name.parse::<semver::Version>() {
            others.push((v, entry.path()));
        }
    }
    others.sort_by(|a, b| b.0.cmp(&a.0));
    let kept = 1 + usize::from(previous.is_some());
    for (_, path) in others.into_iter().skip(keep.saturating_sub(kept)) {
        let _ = fs.remove_dir_all(&path);
    }
}

/// A symlink-layout install of `version` under `root`.
pub struct Symlink<'a> {
    pub root: &'a Path,
    pub version: &'a semver::Version,
    /// What `current` pointed at before; restored by a rollback.
    pub previous_target: Option<&'a Path>,
    /// Edited configuration files carried over from the previous release.
    pub kept_configs: &'a [String],
}

impl InstallLayout for Symlink<'_> {
    fn stage(
        &self,
        fs: &dyn Fs,
        manifest: &VerifiedManifest,
        source: &super::delta::Source<'_>,
    ) -> Result<(), StageError> {
        let live = self.previous_target.map(|t| self.root.join(t));
        let carry = live
            .as_deref()
            .filter(|_| !self.kept_configs.is_empty())
            .map(|l| (l, self.kept_configs));
        stage(fs, self.root, manifest, source, carry)
    }

    fn switch(&self, fs: &dyn Fs) -> std::io::Result<()> {
        flip(fs, self.root, Some(&target_of(self.version)))
    }

    fn restore(&self, fs: &dyn Fs) -> std::io::Result<()> {
        flip(fs, self.root, self.previous_target)?;
        if self.previous_target != Some(target_of(self.version).as_path()) {
            remove_release(fs, self.root, self.version)?;
        }
        Ok(())
    }

    fn remove_staged(&self, fs: &dyn Fs) -> std::io::Result<()> {
        remove_release(fs, self.root, self.version)
    }

    fn release_dir(&self) -> PathBuf {
        self.root.join(target_of(self.version))
    }

    fn commit(
        &self,
        fs: &dyn Fs,
        previous: Option<&semver::Version>,
        keep: usize,
    ) -> std::io::Result<()> {
        let previous = previous.map(|v| v.to_string());
        prune(
            fs,
            self.root,
            &self.version.to_string(),
            previous.as_deref(),
            keep,
        );
        Ok(())
    }
}
