//! The agent's state directory: one directory, every file written atomically (write, fsync,
//! rename, fsync the directory), so after a crash or power cut each file is either the old or
//! the new content, never a mix.
//!
//! ```text
//! STATE_DIR/
//!   lock                  held (fs2 exclusive lock) while a run is active
//!   state.json            per-item state: installed, previous, highest, available, pending
//!   device.json           host id and device credential (mode 0600)
//!   manifests/            signed envelopes as fetched, re-verified before use
//!   downloads/            artifacts: ITEM-SHA256.part while downloading, ITEM-SHA256.tar.gz
//!                         when verified
//!   reports/              queued reports, one JSON file each, deleted once the server acks
//!   history/              with no server: the newest outcomes, kept here instead of sent
//!   journal/              ITEM.json while an install of ITEM is under way (see install/)
//! ```

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::error::{io_err, Error};
use crate::fsops::{self, Fs};

/// Per-item state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemState {
    /// The version in place now.
    pub installed: Option<semver::Version>,
    /// The version kept as the backup.
    pub previous: Option<semver::Version>,
    /// The highest version ever installed: older releases are refused (anti-rollback).
    pub highest: Option<semver::Version>,
    /// The newest signed release the server offers.
    pub available: Option<semver::Version>,
    /// What the server said of the available release (category, notes, release page): for
    /// display only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offered: Option<ferry_manifests::wire::Available>,
    /// An install that was asked for (a job, or auto_install) and verified at check time.
    pub pending: Option<Pending>,
    /// Installs of `pending` interrupted before the switch (power cut while unpacking); after
    /// a few the agent gives up rather than loop.
    #[serde(default)]
    pub interrupted: u32,
    /// The last version that failed, was refused or rolled back here; `auto_install` does not
    /// retry it (an operator's job still can).
    #[serde(default)]
    pub last_failed: Option<semver::Version>,
    /// The version a person rolled back from by hand (`--running-mode=rollback`): not a
    /// failure, but `auto_install` does not bring it back either.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolled_back_by_hand: Option<semver::Version>,
    /// Files of the installed version, for the `overlay` layout (what the next version must
    /// remove if it no longer has them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<String>,
    /// The offered version whose manifest was last fetched and verified for freshness.
    #[serde(default)]
    pub available_seen: Option<semver::Version>,
    /// Configuration files of the installed release and the sha256 it shipped each with: a
    /// file whose content differs from it was edited on the device.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub configs: BTreeMap<String, String>,
    /// The same for the previous release, put back by a rollback by hand.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub previous_configs: BTreeMap<String, String>,
    /// Edited configuration files the last install kept; its own version of each is beside
    /// it as `PATH.ferry-new`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kept_configs: Vec<String>,
    /// When the newest release index taken from the repository was signed: an older one is
    /// refused (a mirror replaying an old index).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_issued_at: Option<String>,
}

/// The transitions of an item's state. Each install, rollback or refusal ends in exactly one of
/// these, so what a commit or a rollback leaves behind is decided in one place.
impl ItemState {
    fn clear_pending(&mut self, version: &semver::Version) {
        if self.pending.as_ref().is_some_and(|p| &p.version == version) {
            self.pending = None;
        }
    }

    /// `version` is proven in place, installed over `from`. `files` is its file list when the
    /// layout tracks one (overlay).
    pub fn commit(
        &mut self,
        version: &semver::Version,
        from: Option<&semver::Version>,
        files: Option<Vec<String>>,
    ) {
        if from != Some(version) {
            self.previous = from.cloned();
        }
        self.installed = Some(version.clone());
        if self.highest.as_ref().is_none_or(|h| version > h) {
            self.highest = Some(version.clone());
        }
        if self.available.as_ref().is_some_and(|a| a <= version) {
            self.available = None;
        }
        self.clear_pending(version);
        if self.last_failed.as_ref() == Some(version) {
            self.last_failed = None;
        }
        if self.rolled_back_by_hand.as_ref() == Some(version) {
            self.rolled_back_by_hand = None;
        }
        if let Some(files) = files {
            self.files = files;
        }
        self.interrupted = 0;
    }

    /// `version` was rolled back. For a rollback by hand, `by_hand` is the version now in place
    /// again and its file list when the layout tracks one. The highest version stays:
    /// anti-rollback still refuses anything older unless signed to allow it, and
    /// `auto_install` does not bring `version` back by itself.
    pub fn roll_back(
        &mut self,
        version: &semver::Version,
        by_hand: Option<(semver::Version, Option<Vec<String>>)>,
    ) {
        self.clear_pending(version);
        if let Some((to, files)) = by_hand {
            self.installed = Some(to);
            self.previous = None;
            if let Some(files) = files {
                self.files = files;
            }
            self.rolled_back_by_hand = Some(version.clone());
        } else {
            self.last_failed = Some(version.clone());
        }
        self.interrupted = 0;
    }

    /// Whether `auto_install` leaves `version` alone: it failed here, or a person rolled back
    /// from it.
    pub fn held_back(&self, version: &semver::Version) -> bool {
        self.last_failed.as_ref() == Some(version)
            || self.rolled_back_by_hand.as_ref() == Some(version)
    }

    /// A person asks for `version` again: neither a failure nor a rollback by hand holds it
    /// back any more.
    pub fn release_hold(&mut self, version: &semver::Version) {
        if self.last_failed.as_ref() == Some(version) {
            self.last_failed = None;
        }
        if self.rolled_back_by_hand.as_ref() == Some(version) {
            self.rolled_back_by_hand = None;
        }
    }

    /// An install of `version` was interrupted while staging. After `limit` interruptions the
    /// agent gives up on it: returns how many there were, and `version` counts as failed.
    pub fn interrupt(&mut self, version: &semver::Version, limit: u32) -> Option<u32> {
        self.interrupted += 1;
        if self.interrupted < limit {
            return None;
        }
        let times = self.interrupted;
        self.clear_pending(version);
        self.last_failed = Some(version.clone());
        self.interrupted = 0;
        Some(times)
    }

    /// An attempt at `pending` ended without touching the install root: refused, or failed
    /// before staging (`installed` false), or found already in place.
    pub fn finish(&mut self, pending: &Pending, installed: bool) {
        if self.pending.as_ref() == Some(pending) {
            self.pending = None;
        }
        if !installed {
            self.last_failed = Some(pending.version.clone());
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub version: semver::Version,
    pub job_id: Option<String>,
    /// File name under `manifests/` of the envelope that was verified.
    pub envelope: String,
    /// Set once the artifact is downloaded and its hash matched.
    pub downloaded: bool,
    /// The repository directory the release came from (`repository_url`/ITEM/): relative
    /// artifact URLs resolve against it. None: the server's artifact endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The operator asked for an interactive install: its hooks run in their terminal.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub interactive: bool,
    /// A delta from the installed version the server offered; used when it fits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<ferry_manifests::wire::DeltaOffer>,
    /// More places serving the artifact the server offered (mirrors, a CDN): tried after the
    /// signed manifest's absolute URLs, before the server's own copy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mirrors: Vec<String>,
    /// What the download stage fetched for it, for the report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetched: Option<ferry_manifests::wire::Fetched>,
    /// The server let it download over a metered link.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub metered_allowed: bool,
    /// Devices at this site holding the artifact (`http://IP:PORT/artifacts/SHA256`), nearest
    /// first: tried before the mirrors and the server, with no credential.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<String>,
    /// Why its download waits (outside the download window, a metered link), as the server
    /// was told; cleared once it is downloaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    #[serde(default)]
    pub items: BTreeMap<String, ItemState>,
    #[serde(default)]
    pub last_check: Option<String>,
    /// Release date of the newest verified manifest seen, reported so the server can flag a
    /// device that is being starved of updates.
    #[serde(default)]
    pub newest_manifest_at: Option<String>,
    /// The server's clock at the newest check-in: expiry is never checked against an earlier
    /// time, whatever this device's clock says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_time: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceCredential {
    pub host_id: String,
    /// The bearer token; empty for a device that authenticates by certificate.
    #[serde(default)]
    pub device_token: String,
    pub server_url: String,
    /// The certificate the server's device CA issued for this device's key (PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    /// When it expires, and when it was received (the server's clock, RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_not_after: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_received_at: Option<String>,
}

/// The state directory. Changing it needs the run lock ([`StateDir::lock`]); reading does not,
/// since every file in it is replaced atomically.
pub struct StateDir {
    root: PathBuf,
    /// Every change to the state directory and install roots goes through this.
    pub fs: Arc<dyn Fs>,
}

impl StateDir {
    /// Creates the directory layout (no lock taken).
    pub fn open(root: &Path, fs: Arc<dyn Fs>) -> Result<StateDir, Error> {
        for sub in [
            "",
            "manifests",
            "downloads",
            "reports",
            "package-reports",
            "journal",
            "history",
        ] {
            let dir = root.join(sub);
            fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        }
        Ok(StateDir {
            root: root.to_path_buf(),
            fs,
        })
    }

    pub fn lock_path(&self) -> PathBuf {
        self.root.join("lock")
    }

    /// Takes the run lock for a run in `mode` (see [`crate::lock::take`]), then clears what
    /// an interrupted atomic write of an earlier run left behind.
    pub fn lock(
        &self,
        mode: &str,
        wait: std::time::Duration,
        stop: &std::sync::atomic::AtomicBool,
        waiting: &mut dyn FnMut(&str),
    ) -> Result<crate::lock::RunLock, Error> {
        let lock = crate::lock::take(&self.lock_path(), mode, wait, stop, waiting)?;
        self.clear_temp_files();
        Ok(lock)
    }

    /// Removes the `.NAME.tmp` files an interrupted atomic write leaves behind; the lock is
    /// held, so no other run is writing them.
    fn clear_temp_files(&self) {
        for sub in ["", "journal", "reports", "package-reports", "manifests"] {
            let Ok(entries) = fs::read_dir(self.root.join(sub)) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') && name.ends_with(".tmp") {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn manifests(&self) -> PathBuf {
        self.root.join("manifests")
    }

    pub fn downloads(&self) -> PathBuf {
        self.root.join("downloads")
    }

    /// Verified artifacts of installed releases, named by sha256, served to the site's peers
    /// (`share_listen`).
    pub fn shared(&self) -> PathBuf {
        self.root.join("shared")
    }

    pub fn reports(&self) -> PathBuf {
        self.root.join("reports")
    }

    /// Outcomes of package upgrades, queued like [`StateDir::reports`].
    pub fn package_reports(&self) -> PathBuf {
        self.root.join("package-reports")
    }

    pub fn journal(&self) -> PathBuf {
        self.root.join("journal")
    }

    /// Outcomes kept on a device with no server (the newest [`crate::report::KEEP_LOCAL`]).
    pub fn history(&self) -> PathBuf {
        self.root.join("history")
    }

    pub fn load_state(&self) -> Result<State, Error> {
        Ok(read_json(&self.root.join("state.json"))?.unwrap_or_default())
    }

    pub fn save_state(&self, state: &State) -> Result<(), Error> {
        self.write_json(&self.root.join("state.json"), state)
    }

    pub fn write_json<T: Serialize>(&self, path: &Path, value: &T) -> Result<(), Error> {
        let bytes = serde_json::to_vec_pretty(value).map_err(|e| Error::CorruptState {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        self.write_atomic(path, &bytes)
    }

    pub fn write_atomic(&self, path: &Path, bytes: &[u8]) -> Result<(), Error> {
        Ok(fsops::write_atomic(self.fs.as_ref(), path, bytes).map_err(io_err(path))?)
    }

    pub fn remove_file(&self, path: &Path) -> Result<(), Error> {
        Ok(self.fs.remove_file(path).map_err(io_err(path))?)
    }

    pub fn credential(&self) -> Result<Option<DeviceCredential>, Error> {
        read_json(&self.root.join("device.json"))
    }

    pub fn save_credential(&self, cred: &DeviceCredential) -> Result<(), Error> {
        self.write_json(&self.root.join("device.json"), cred)
    }

    /// Path of a verified artifact of `item` in the download area. Per item, so two items
    /// whose releases have byte-identical artifacts never remove each other's download.
    pub fn artifact_path(&self, item: &str, sha256: &str) -> PathBuf {
        self.downloads().join(format!("{item}-{sha256}.tar.gz"))
    }

    /// The signed manifest of `item`'s installed release, kept for deltas.
    pub fn installed_manifest(&self, item: &str) -> PathBuf {
        self.manifests().join(format!("installed-{item}.json"))
    }

    /// The manifest of `item`'s installed release, as kept at its install (verified then).
    pub fn installed_release(&self, item: &str) -> Option<ferry_manifests::Manifest> {
        let text = fs::read(self.installed_manifest(item)).ok()?;
        let envelope = ferry_manifests::Envelope::parse(&text).ok()?;
        ferry_manifests::Manifest::parse_unverified(&envelope).ok()
    }

    /// Path of the partial download of that artifact.
    pub fn partial_path(&self, item: &str, sha256: &str) -> PathBuf {
        self.downloads().join(format!("{item}-{sha256}.part"))
    }
}

pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, Error> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::CorruptState {
                path: path.to_path_buf(),
                message: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(path)(e).into()),
    }
}

pub fn fsync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))?;
    Ok(())
}

#[cfg(test)]
mod tests;
