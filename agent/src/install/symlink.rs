//! The `symlink` layout: each version unpacked under `ROOT/releases/VERSION/`, and
//! `ROOT/current` a relative symlink to the one in use, flipped with an atomic rename. The
//! previous release stays on disk as the backup; a rollback is a flip back.
//!
//! Order of operations (each step durable before the next):
//! 1. unpack into `releases/.staging-VERSION` (fresh), verifying every file; `syncfs`;
//! 2. rename staging to `releases/VERSION`; fsync `releases/`;
//! 3. create `.current.new` -> `releases/VERSION`, rename it over `current`; fsync `ROOT`;
//! 4. post-install commands, then the health check; on failure flip back (step 3 with the old
//!    target) and remove the new release;
//! 5. prune releases beyond `keep_releases`.
//!
//! Until step 3 the old version is untouched; after it the new one is complete on disk.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ferry_manifests::wire::Outcome;
use ferry_manifests::VerifiedManifest;

use super::hooks::{self, HookEnv};
use super::unpack::unpack_verified;
use super::Placed;

pub struct Request<'a> {
    pub item: &'a str,
    pub root: &'a Path,
    pub manifest: &'a VerifiedManifest,
    pub artifact: &'a Path,
    pub hook_timeout: Duration,
    pub keep_releases: usize,
}

fn failed(message: String) -> Placed {
    Placed {
        outcome: Outcome::Failed,
        message,
        output: String::new(),
    }
}

/// Target of `ROOT/current`, relative to ROOT, if it is a symlink.
pub fn current_target(root: &Path) -> Result<Option<PathBuf>, String> {
    let current = root.join("current");
    match fs::symlink_metadata(&current) {
        Ok(meta) if meta.file_type().is_symlink() => fs::read_link(&current)
            .map(Some)
            .map_err(|e| format!("cannot read {}: {e}", current.display())),
        Ok(_) => Err(format!(
            "{} exists and is not a symlink; move it aside so Ferry can manage this root",
            current.display()
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot inspect {}: {e}", current.display())),
    }
}

/// Points `ROOT/current` at `target` (relative to ROOT) atomically, or removes it.
pub fn flip(root: &Path, target: Option<&Path>) -> std::io::Result<()> {
    let current = root.join("current");
    match target {
        Some(target) => {
            let tmp = root.join(".current.new");
            let _ = fs::remove_file(&tmp);
            symlink(target, &tmp)?;
            fs::rename(&tmp, &current)?;
        }
        None => match fs::remove_file(&current) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        },
    }
    fs::File::open(root)?.sync_all()
}

fn sync_tree(dir: &Path) -> std::io::Result<()> {
    // One syncfs for the whole unpacked tree instead of an fsync per file.
    let fd = fs::File::open(dir)?;
    nix::unistd::syncfs(&fd).map_err(std::io::Error::from)
}

pub fn install(req: &Request<'_>) -> Placed {
    let version = req.manifest.version.to_string();
    let releases = req.root.join("releases");
    if let Err(e) = fs::create_dir_all(&releases) {
        return failed(format!("cannot create {}: {e}", releases.display()));
    }
    let previous = match current_target(req.root) {
        Ok(t) => t,
        Err(message) => return failed(message),
    };
    let new_target = PathBuf::from("releases").join(&version);
    if previous.as_deref() == Some(new_target.as_path()) {
        return Placed {
            outcome: Outcome::Installed,
            message: format!("{} {version} is already in place", req.item),
            output: String::new(),
        };
    }
    let staging = releases.join(format!(".staging-{version}"));
    let final_dir = releases.join(&version);
    if staging.exists() {
        if let Err(e) = fs::remove_dir_all(&staging) {
            return failed(format!("cannot clear {}: {e}", staging.display()));
        }
    }
    if let Err(e) = unpack_verified(req.artifact, req.manifest, &staging) {
        let _ = fs::remove_dir_all(&staging);
        return Placed {
            outcome: if e.is_refusal() {
                Outcome::Refused
            } else {
                Outcome::Failed
            },
            message: e.to_string(),
            output: String::new(),
        };
    }
    let step = || -> std::io::Result<()> {
        sync_tree(&staging)?;
        if final_dir.exists() {
            // Not current (checked above): a leftover of a rolled-back attempt.
            fs::remove_dir_all(&final_dir)?;
        }
        fs::rename(&staging, &final_dir)?;
        fs::File::open(&releases)?.sync_all()?;
        flip(req.root, Some(&new_target))
    };
    if let Err(e) = step() {
        let _ = fs::remove_dir_all(&staging);
        return failed(format!(
            "cannot put {version} in place under {}: {e}",
            req.root.display()
        ));
    }

    let previous_version = previous
        .as_ref()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned());
    let env = HookEnv {
        item: req.item,
        version: &version,
        previous_version: previous_version.as_deref(),
        root: req.root,
        release_dir: &final_dir,
    };
    let mut output = String::new();
    let mut failure = None;
    let commands = req
        .manifest
        .install
        .post_install
        .iter()
        .map(|c| ("post-install", c))
        .chain(
            req.manifest
                .install
                .health_check
                .iter()
                .map(|c| ("health check", c)),
        );
    for (what, command) in commands {
        let result = hooks::run(command, &env, req.hook_timeout);
        output.push_str(&format!("$ {command}\n{}", result.output));
        if !result.output.is_empty() && !result.output.ends_with('\n') {
            output.push('\n');
        }
        output.push_str(&format!("[{what} {}]\n", result.status));
        if !result.success {
            failure = Some(format!("{what} `{command}` {}", result.status));
            break;
        }
    }

    if let Some(failure) = failure {
        return match flip(req.root, previous.as_deref()) {
            Ok(()) => {
                let _ = fs::remove_dir_all(&final_dir);
                let back = previous_version
                    .as_deref()
                    .unwrap_or("nothing (first install)");
                Placed {
                    outcome: Outcome::RolledBack,
                    message: format!("{failure}; rolled back to {back}"),
                    output,
                }
            }
            Err(e) => Placed {
                outcome: Outcome::Failed,
                message: format!("{failure}; rollback failed: {e}"),
                output,
            },
        };
    }

    prune(
        &releases,
        &version,
        previous_version.as_deref(),
        req.keep_releases,
    );
    Placed {
        outcome: Outcome::Installed,
        message: match previous_version {
            Some(p) => format!("installed {version} (was {p})"),
            None => format!("installed {version}"),
        },
        output,
    }
}

/// Removes old releases, keeping the current one, the previous one and, beyond those, the
/// newest by semver up to `keep` in all. Leftover staging directories are removed too.
fn prune(releases: &Path, current: &str, previous: Option<&str>, keep: usize) {
    let Ok(entries) = fs::read_dir(releases) else {
        return;
    };
    let mut others: Vec<(semver::Version, PathBuf)> = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == current || Some(name.as_str()) == previous {
            continue;
        }
        if name.starts_with(".staging-") {
            let _ = fs::remove_dir_all(entry.path());
            continue;
        }
        if let Ok(v) = name.parse::<semver::Version>() {
            others.push((v, entry.path()));
        }
    }
    others.sort_by(|a, b| b.0.cmp(&a.0));
    let kept = 1 + usize::from(previous.is_some());
    for (_, path) in others.into_iter().skip(keep.saturating_sub(kept)) {
        let _ = fs::remove_dir_all(path);
    }
}
