//! Which keys release manifests are verified against: the `trusted_keys` pinned in the config,
//! or the current signed trust root, which rotates through the server (version N+1 accepted
//! only when signed by version N's root keys; see `ferry_manifests::root`).

use std::path::PathBuf;

use ferry_manifests::root::{RootError, TrustRoot, VerifiedRoot};
use ferry_manifests::TrustedKeys;
use time::OffsetDateTime;

use crate::config::Config;
use crate::error::{io_err, Error};
use crate::state::StateDir;

/// Root versions fetched in one run at most; a device far behind catches up over a few runs.
pub const MAX_ROOT_STEPS: u64 = 100;

pub struct Trust {
    pub keys: TrustedKeys,
    pub threshold: usize,
    pub root: Option<VerifiedRoot>,
}

fn stored_root_path(dir: &StateDir) -> PathBuf {
    dir.root().join("root.json")
}

fn load_root(path: &std::path::Path) -> Result<VerifiedRoot, Error> {
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    TrustRoot::verify_initial(&bytes).map_err(|source| Error::TrustRoot {
        path: path.to_path_buf(),
        source,
    })
}

impl Trust {
    /// The configured keys, or the newer of the shipped root and the one stored by earlier
    /// rotations (an image update may ship a newer root than the device has seen).
    pub fn load(cfg: &Config, dir: &StateDir) -> Result<Trust, Error> {
        let Some(shipped) = &cfg.trust_root else {
            return Ok(Trust {
                keys: cfg.trusted.clone(),
                threshold: cfg.signature_threshold,
                root: None,
            });
        };
        let shipped = load_root(shipped)?;
        let stored_path = stored_root_path(dir);
        let root = if stored_path.exists() {
            let stored = load_root(&stored_path)?;
            if stored.version >= shipped.version {
                stored
            } else {
                shipped
            }
        } else {
            shipped
        };
        Ok(Trust::from_root(root))
    }

    fn from_root(root: VerifiedRoot) -> Trust {
        Trust {
            keys: root.release_keyset(),
            threshold: root.release_threshold,
            root: Some(root),
        }
    }

    pub fn root_version(&self) -> Option<u64> {
        self.root.as_ref().map(|r| r.version)
    }

    /// Manifests may be verified only against a root that has not expired at `now` (the
    /// agent's trusted time).
    pub fn check_fresh(&self, now: OffsetDateTime) -> Result<(), RootError> {
        match &self.root {
            Some(root) => root.check_fresh(now),
            None => Ok(()),
        }
    }

    /// Accepts the next root version; persists it before using it.
    pub fn advance(&mut self, dir: &StateDir, bytes: &[u8]) -> Result<(), Error> {
        let Some(current) = &self.root else {
            return Ok(());
        };
        let next = current.verify_next(bytes).map_err(Error::TrustRootUpdate)?;
        dir.write_atomic(&stored_root_path(dir), next.envelope.to_json().as_bytes())?;
        tracing::info!(version = next.version, "trust root updated");
        *self = Trust::from_root(next);
        Ok(())
    }
}
