//! What an install finds at its root before its journal is first written: the live release,
//! the overlay's plan, and the configuration files a person edited.

use std::path::{Path, PathBuf};

use ferry_manifests::{Layout, VerifiedManifest};

use super::{overlay, symlink};
use crate::error::RootError;
use crate::state::ItemState;

/// What an install needs to know before its journal is first written.
#[derive(Debug)]
pub(super) struct Prepared {
    /// The symlink layout's `current` target before the install.
    pub previous_target: Option<PathBuf>,
    /// The overlay layout's plan.
    pub plan: Option<overlay::Plan>,
    /// The release is already what is live: nothing to place.
    pub in_place: bool,
    /// Configuration files edited on the device since the installed release shipped them.
    pub kept_configs: Vec<String>,
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
pub(super) fn prepare(
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
