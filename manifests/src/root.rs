//! The signed trust root: which release keys a device trusts, signed by offline root keys.
//!
//! A device starts from a root shipped with it (version 1, or whatever its image carries) and
//! accepts version N+1 only when it is signed by a threshold of version N's root keys *and* by
//! a threshold of its own root keys (so a rotation cannot hand control to keys that never
//! signed). Versions never go back. Release manifests are then verified against the current
//! root's release keys and release threshold. This is how release keys are added and retired,
//! and root keys rotated, without reflashing devices.

use std::collections::BTreeSet;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::envelope::{Envelope, VerifyError, MAX_ENVELOPE_BYTES};
use crate::invalid::{Invalid, KeyProblem};
#[cfg(any(test, feature = "sign"))]
use crate::keys::SigningKeyFile;
use crate::keys::{KeyId, PublicKey, TrustedKeys};

/// Payload type of a trust root.
pub const ROOT_PAYLOAD_TYPE: &str = "application/vnd.ferry.root.v1+json";

/// A public key as written inside a root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RootKey {
    pub keyid: KeyId,
    /// Base64 of the 32-byte ed25519 public key.
    pub public: String,
}

impl RootKey {
    pub fn from_public(key: &PublicKey) -> RootKey {
        RootKey {
            keyid: key.id.clone(),
            public: B64.encode(key.key.as_bytes()),
        }
    }

    fn to_public(&self) -> Result<PublicKey, Invalid> {
        let refused = |problem| Invalid::Key {
            keyid: self.keyid.to_string(),
            problem,
        };
        let bytes: [u8; 32] = B64
            .decode(&self.public)
            .map_err(|e| refused(KeyProblem::NotBase64(e.to_string())))?
            .try_into()
            .map_err(|_| refused(KeyProblem::Not32Bytes))?;
        let key = VerifyingKey::from_bytes(&bytes)
            .map_err(|e| refused(KeyProblem::NotEd25519(e.to_string())))?;
        let id = KeyId::of(&key);
        if id != self.keyid {
            return Err(refused(KeyProblem::WrongId(id.to_string())));
        }
        Ok(PublicKey { id, key })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustRoot {
    pub version: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    pub root_keys: Vec<RootKey>,
    pub root_threshold: usize,
    pub release_keys: Vec<RootKey>,
    pub release_threshold: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum RootError {
    #[error(transparent)]
    Verify(#[from] VerifyError),
    #[error("trust root is not valid JSON: {0}")]
    Parse(String),
    #[error("trust root is invalid: {0}")]
    Invalid(#[from] Invalid),
    #[error("trust root version {found} cannot follow version {current}: only {expected} can")]
    NotNext {
        current: u64,
        expected: u64,
        found: u64,
    },
    #[error("trust root version {version} expired at {expires_at}; the server must publish a newer root")]
    Expired { version: u64, expires_at: String },
}

/// A root whose signatures and fields were checked.
#[derive(Debug, Clone)]
pub struct VerifiedRoot {
    root: TrustRoot,
    /// The envelope as received, to store on the device.
    pub envelope: Envelope,
}

impl std::ops::Deref for VerifiedRoot {
    type Target = TrustRoot;
    fn deref(&self) -> &TrustRoot {
        &self.root
    }
}

impl TrustRoot {
    pub fn validate(&self) -> Result<(), Invalid> {
        for (name, keys, threshold) in [
            ("root", &self.root_keys, self.root_threshold),
            ("release", &self.release_keys, self.release_threshold),
        ] {
            let mut ids = BTreeSet::new();
            for k in keys {
                k.to_public()?;
                if !ids.insert(&k.keyid) {
                    return Err(Invalid::KeyTwice {
                        role: name,
                        keyid: k.keyid.to_string(),
                    });
                }
            }
            if threshold == 0 || threshold > keys.len() {
                return Err(Invalid::Threshold {
                    role: name,
                    threshold,
                    keys: keys.len(),
                });
            }
        }
        if self.version == 0 {
            return Err(Invalid::RootVersion);
        }
        Ok(())
    }

    fn keys(list: &[RootKey]) -> TrustedKeys {
        TrustedKeys::new(list.iter().filter_map(|k| k.to_public().ok()))
    }

    pub fn root_keyset(&self) -> TrustedKeys {
        Self::keys(&self.root_keys)
    }

    /// The keys and threshold release manifests are verified against.
    pub fn release_keyset(&self) -> TrustedKeys {
        Self::keys(&self.release_keys)
    }

    #[cfg(any(test, feature = "sign"))]
    pub fn sign(&self, keys: &[&SigningKeyFile]) -> Envelope {
        let payload = serde_json::to_vec_pretty(self).unwrap_or_default();
        Envelope::sign(ROOT_PAYLOAD_TYPE, &payload, keys)
    }

    fn parse_verified(
        env: &Envelope,
        keys: &TrustedKeys,
        threshold: usize,
    ) -> Result<TrustRoot, RootError> {
        let payload = env.verify(ROOT_PAYLOAD_TYPE, keys, threshold)?;
        let root: TrustRoot =
            serde_json::from_slice(&payload).map_err(|e| RootError::Parse(e.to_string()))?;
        root.validate()?;
        Ok(root)
    }

    /// Verifies a root shipped with the device: signed by a threshold of its own root keys.
    /// (Trust in it comes from how it was installed, not from the network.)
    pub fn verify_initial(bytes: &[u8]) -> Result<VerifiedRoot, RootError> {
        if bytes.len() > MAX_ENVELOPE_BYTES {
            return Err(VerifyError::TooLarge {
                size: bytes.len(),
                max: MAX_ENVELOPE_BYTES,
            }
            .into());
        }
        let envelope = Envelope::parse(bytes)?;
        let unverified: TrustRoot = serde_json::from_slice(&envelope.unverified_payload()?)
            .map_err(|e| RootError::Parse(e.to_string()))?;
        unverified.validate()?;
        let root = Self::parse_verified(
            &envelope,
            &unverified.root_keyset(),
            unverified.root_threshold,
        )?;
        Ok(VerifiedRoot { root, envelope })
    }

    /// Verifies `bytes` as the successor of `self`: version + 1, signed by a threshold of this
    /// root's keys and by a threshold of its own.
    pub fn verify_next(&self, bytes: &[u8]) -> Result<VerifiedRoot, RootError> {
        let envelope = Envelope::parse(bytes)?;
        let next = Self::parse_verified(&envelope, &self.root_keyset(), self.root_threshold)?;
        if next.version != self.version + 1 {
            return Err(RootError::NotNext {
                current: self.version,
                expected: self.version + 1,
                found: next.version,
            });
        }
        Self::parse_verified(&envelope, &next.root_keyset(), next.root_threshold)?;
        Ok(VerifiedRoot {
            root: next,
            envelope,
        })
    }

    /// Refuses an expired root (a frozen device must not trust stale keys forever).
    pub fn check_fresh(&self, now: OffsetDateTime) -> Result<(), RootError> {
        if self.expires_at <= now {
            return Err(RootError::Expired {
                version: self.version,
                expires_at: crate::wire::timestamp(self.expires_at),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::Duration;

    fn key(n: u8) -> SigningKeyFile {
        SigningKeyFile::from_seed([n; 32])
    }

    fn root(version: u64, roots: &[&SigningKeyFile], releases: &[&SigningKeyFile]) -> TrustRoot {
        TrustRoot {
            version,
            expires_at: OffsetDateTime::now_utc() + Duration::days(365),
            root_keys: roots
                .iter()
                .map(|k| RootKey::from_public(&k.public()))
                .collect(),
            root_threshold: 1,
            release_keys: releases
                .iter()
                .map(|k| RootKey::from_public(&k.public()))
                .collect(),
            release_threshold: 1,
        }
    }

    fn bytes(env: &Envelope) -> Vec<u8> {
        env.to_json().into_bytes()
    }

    #[test]
    fn a_rotation_signed_by_old_and_new_root_keys_is_accepted() {
        let (r1, r2, rel1, rel2) = (key(1), key(2), key(11), key(12));
        let v1 =
            TrustRoot::verify_initial(&bytes(&root(1, &[&r1], &[&rel1]).sign(&[&r1]))).unwrap();
        // Rotate the root key r1 -> r2 and the release key rel1 -> rel2.
        let v2_doc = root(2, &[&r2], &[&rel2]);
        let v2 = v1.verify_next(&bytes(&v2_doc.sign(&[&r1, &r2]))).unwrap();
        assert_eq!(v2.version, 2);
        assert!(v2.release_keyset().get(&rel2.id).is_some());
        assert!(v2.release_keyset().get(&rel1.id).is_none());
    }

    #[test]
    fn a_root_not_signed_by_the_previous_root_keys_is_refused() {
        let (r1, r2, rel) = (key(1), key(2), key(11));
        let v1 = TrustRoot::verify_initial(&bytes(&root(1, &[&r1], &[&rel]).sign(&[&r1]))).unwrap();
        let hijack = root(2, &[&r2], &[&rel]).sign(&[&r2]);
        assert!(matches!(
            v1.verify_next(&bytes(&hijack)),
            Err(RootError::Verify(_))
        ));
        // Signed by the old key only, not by the new root key it names: refused too.
        let unproven = root(2, &[&r2], &[&rel]).sign(&[&r1]);
        assert!(v1.verify_next(&bytes(&unproven)).is_err());
    }

    #[test]
    fn versions_only_move_forward_one_at_a_time() {
        let (r1, rel) = (key(1), key(11));
        let v1 = TrustRoot::verify_initial(&bytes(&root(1, &[&r1], &[&rel]).sign(&[&r1]))).unwrap();
        for version in [1, 3, 0] {
            let doc = root(version, &[&r1], &[&rel]);
            let err = v1.verify_next(&bytes(&doc.sign(&[&r1])));
            assert!(err.is_err(), "version {version} accepted after 1");
        }
    }

    #[test]
    fn an_expired_root_is_not_fresh() {
        let (r1, rel) = (key(1), key(11));
        let mut doc = root(1, &[&r1], &[&rel]);
        doc.expires_at = OffsetDateTime::now_utc() - Duration::days(1);
        let v1 = TrustRoot::verify_initial(&bytes(&doc.sign(&[&r1]))).unwrap();
        assert!(matches!(
            v1.check_fresh(OffsetDateTime::now_utc()),
            Err(RootError::Expired { .. })
        ));
    }
}
