//! The install layouts behind one interface. `install::mod` drives the steps and journals each
//! one; a layout only knows how to place files under its item's root:
//!
//! 0. `install::mod` looks at the root first (`prepare`): the symlink layout's current
//!    target, the overlay layout's plan, whether the release is already in place.
//! 1. [`InstallLayout::stage`]: put the verified release beside what is live. Nothing visible
//!    changes; [`InstallLayout::remove_staged`] undoes it.
//! 2. [`InstallLayout::switch`]: make the staged release live.
//! 3. Hooks run in [`InstallLayout::release_dir`] (see `hooks.rs`).
//! 4. [`InstallLayout::commit`] keeps what a rollback by hand needs and prunes old releases, or
//!    [`InstallLayout::restore`] puts back what was live before the switch.
//!
//! Every step is safe to repeat, since recovery after a crash may run it again. `install::mod`
//! builds a layout from the journal alone, so recovery sees exactly what the install saw.

use std::io;
use std::path::{Path, PathBuf};

use ferry_manifests::VerifiedManifest;

use super::unpack::UnpackError;
use crate::error::PathIo;
use crate::fsops::Fs;

pub trait InstallLayout {
    /// Unpacks the verified artifact (or assembles the release from a delta) beside what is
    /// live, verifying every file.
    fn stage(
        &self,
        fs: &dyn Fs,
        manifest: &VerifiedManifest,
        source: &super::delta::Source<'_>,
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

/// Headroom beyond the signed unpacked size: directories and metadata (docs/operations.md).
pub const HEADROOM_BYTES: u64 = 1024 * 1024;
/// Headroom per file, for its inode and directory entry.
pub const HEADROOM_PER_FILE: u64 = 4096;

/// Refuses to stage into `dir` unless its filesystem has room for the release's signed
/// unpacked size plus the headroom.
pub fn ensure_space(dir: &Path, manifest: &VerifiedManifest) -> Result<(), StageError> {
    let needed =
        manifest.unpacked_size() + HEADROOM_BYTES + HEADROOM_PER_FILE * manifest.files.len() as u64;
    let free = crate::fsops::free_space(dir).map_err(crate::error::io_err(dir))?;
    if free < needed {
        return Err(StageError::Space {
            path: dir.to_path_buf(),
            needed,
            free,
        });
    }
    Ok(())
}

/// Why staging failed. Nothing visible changed.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error(transparent)]
    Unpack(#[from] UnpackError),
    #[error("not enough space under {path} to unpack: {needed} bytes needed (the release's files plus 1 MiB and 4 KiB a file of headroom), {free} free")]
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
