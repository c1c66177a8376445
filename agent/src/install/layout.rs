//! The install layouts behind one interface. `install::mod` drives the steps and journals each
//! one; a layout only knows how to place files under its item's root:
//!
//! 1. [`InstallLayout::stage`]: put the verified release beside what is live. Nothing visible
//!    changes; [`InstallLayout::remove_staged`] undoes it.
//! 2. [`InstallLayout::switch`]: make the staged release live.
//! 3. Hooks run in [`InstallLayout::release_dir`] (see `hooks.rs`).
//! 4. [`InstallLayout::commit`] keeps what a rollback by hand needs and prunes old releases, or
//!    [`InstallLayout::restore`] puts back what was live before the switch.
//!
//! Every step is safe to repeat, since recovery after a crash may run it again. A layout is
//! built from the journal alone ([`of`]), so recovery sees exactly what the install saw.

use std::io;
use std::path::{Path, PathBuf};

use ferry_manifests::{Layout, VerifiedManifest};

use super::journal::Journal;
use super::overlay::{self, Overlay};
use super::symlink::{self, Symlink};
use super::unpack::UnpackError;
use crate::error::PathIo;
use crate::fsops::Fs;
use crate::state::ItemState;

pub trait InstallLayout {
    /// Unpacks the verified artifact beside what is live, verifying every file.
    fn stage(
        &self,
        fs: &dyn Fs,
        manifest: &VerifiedManifest,
        artifact: &Path,
    ) -> Result<(), StageError>;
    /// Makes the staged release live.
    fn switch(&self, fs: &dyn Fs) -> io::Result<()>;
    /// Puts back what was live before [`InstallLayout::switch`] (any prefix of it) and drops
    /// the new release.
    fn restore(&self, fs: &dyn Fs) -> io::Result<()>;
    /// Removes what [`InstallLayout::stage`] may have left, without touching what is live.
    fn remove_staged(&self, fs: &dyn Fs) -> io::Result<()>;
    /// Where the hooks run.
    fn release_dir(&self) -> PathBuf;
    /// After a proven install: keeps what a rollback by hand needs, and removes releases or
    /// backups beyond the newest `keep` (the one before `previous` is never pruned away).
    fn commit(
        &self,
        fs: &dyn Fs,
        previous: Option<&semver::Version>,
        keep: usize,
    ) -> io::Result<()>;
}

/// Why staging failed. Nothing visible changed.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error(transparent)]
    Unpack(#[from] UnpackError),
    #[error("not enough space under {path} to unpack: {needed} bytes needed, {free} free")]
    Space {
        path: PathBuf,
        needed: u64,
        free: u64,
    },
    #[error(transparent)]
    Io(#[from] PathIo),
}

impl StageError {
    /// A refusal of the artifact (not a local failure): reported as refused.
    pub fn is_refusal(&self) -> bool {
        matches!(self, StageError::Unpack(u) if u.is_refusal())
    }
}

/// Why an item's root cannot take an install as it is.
#[derive(Debug, thiserror::Error)]
pub enum RootError {
    #[error("{path} exists and is not a symlink; move it aside so Ferry can manage this root")]
    NotASymlink { path: PathBuf },
    #[error("{path} is a symlink; an overlay release may not write through it")]
    ThroughSymlink { path: PathBuf },
    #[error("{path} is a directory; the release has a file there")]
    DirectoryInTheWay { path: PathBuf },
    #[error("cannot inspect {path}: {source}")]
    Inspect {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// What an install needs to know before its journal is first written.
#[derive(Debug)]
pub struct Prepared {
    /// The symlink layout's `current` target before the install.
    pub previous_target: Option<PathBuf>,
    /// The overlay layout's plan.
    pub plan: Option<overlay::Plan>,
    /// The release is already what is live: nothing to place.
    pub in_place: bool,
}

/// Looks at the root as it is now and works out what installing `manifest` there changes.
pub fn prepare(
    root: &Path,
    manifest: &VerifiedManifest,
    st: &ItemState,
) -> Result<Prepared, RootError> {
    Ok(match manifest.install.layout {
        Layout::Symlink => {
            let previous_target = symlink::current_target(root)?;
            let in_place =
                previous_target.as_deref() == Some(symlink::target_of(&manifest.version).as_path());
            Prepared {
                previous_target,
                plan: None,
                in_place,
            }
        }
        Layout::Overlay => Prepared {
            previous_target: None,
            plan: Some(overlay::plan(root, manifest, &st.files)?),
            in_place: st.installed.as_ref() == Some(&manifest.version),
        },
    })
}

/// The layout a journal describes, at `root`. `None` for an overlay journal without its plan,
/// which no version of the agent writes.
pub fn of<'a>(j: &'a Journal, root: &'a Path) -> Option<Box<dyn InstallLayout + 'a>> {
    match (j.layout, &j.plan) {
        (Layout::Symlink, _) => Some(Box::new(Symlink {
            root,
            version: &j.version,
            previous_target: j.previous_target.as_deref(),
        })),
        (Layout::Overlay, Some(plan)) => Some(Box::new(Overlay {
            root,
            item: &j.item,
            version: &j.version,
            plan,
        })),
        (Layout::Overlay, None) => None,
    }
}
