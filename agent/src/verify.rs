//! Verification, for every stage that touches a release: check verifies what the server
//! offers, download and install verify the stored envelope again (keys may have changed, the
//! manifest may have expired, the file may have been altered since the check). Signatures and
//! expiry come from `ferry-manifests`; whether this device takes the release is
//! `policy::admit`.

use std::path::PathBuf;

use ferry_manifests::root::RootError;
use ferry_manifests::{Envelope, Manifest, ManifestError, VerifiedManifest};

use crate::agent::Agent;
use crate::error::Error;
use crate::policy::{self, Admission};
use crate::state::{read_json, Pending};

/// Why a release was not admitted; each is reported as a refusal.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// The trust root the device holds has expired: nothing verifies until a fresh one comes.
    #[error(transparent)]
    StaleRoot(#[from] RootError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Policy(#[from] policy::Refusal),
    #[error("cannot read the stored manifest: {0}")]
    Stored(#[source] Box<Error>),
    #[error("stored manifest {path} is missing")]
    Missing { path: PathBuf },
}

impl Refused {
    /// A refusal the device's clock may have caused (expiry): it can pass once the clock is
    /// right or the release is signed again, so it is not remembered as a failure.
    pub fn clock_dependent(&self) -> bool {
        matches!(
            self,
            Refused::Manifest(ManifestError::Expired { .. })
                | Refused::StaleRoot(RootError::Expired { .. })
        )
    }
}

/// Verifies an envelope offered for `item`/`version` and applies the device's policy.
pub fn admit(
    agent: &Agent,
    item: &str,
    version: &semver::Version,
    envelope: &Envelope,
) -> Result<(VerifiedManifest, Admission), Refused> {
    agent.trust.check_fresh(agent.trusted_now())?;
    let verified = Manifest::verify(
        envelope,
        &agent.trust.keys,
        agent.trust.threshold,
        agent.trusted_now(),
    )?;
    let admission = policy::admit(
        &verified,
        item,
        version,
        &agent.item_state(item),
        agent.cfg.device_class.as_deref(),
    )?;
    Ok((verified, admission))
}

/// Loads a pending release's stored envelope and verifies it again.
pub fn load_verified(
    agent: &Agent,
    item: &str,
    pending: &Pending,
) -> Result<VerifiedManifest, Refused> {
    let path = agent.dir.manifests().join(&pending.envelope);
    let envelope: Envelope = read_json(&path)
        .map_err(|e| Refused::Stored(Box::new(e)))?
        .ok_or(Refused::Missing { path })?;
    let (verified, _) = admit(agent, item, &pending.version, &envelope)?;
    Ok(verified)
}
