//! The signature envelope (DSSE-style).
//!
//! An envelope carries the exact payload bytes (base64) and signatures. Each signature is an
//! ed25519 signature over the *pre-authentication encoding* of the payload type and the bytes:
//!
//! ```text
//! "DSSEv1" SP len(type) SP type SP len(payload) SP payload
//! ```
//!
//! so a signature for one kind of document can never be replayed as another, and no JSON
//! canonicalisation is needed: the verifier checks the bytes it was given and only then parses
//! them ([`Envelope::verify`] returns the bytes; nothing else hands them out).

use std::collections::BTreeSet;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::Signature;
use serde::{Deserialize, Serialize};

#[cfg(any(test, feature = "sign"))]
use crate::keys::SigningKeyFile;
use crate::keys::{KeyId, TrustedKeys};

/// Largest envelope accepted, checked before any JSON is parsed: a manifest lists files, so a
/// few thousand entries fit comfortably, and a hostile server cannot make a device parse more.
pub const MAX_ENVELOPE_BYTES: usize = 32 * 1024 * 1024;

/// Payload type of a Ferry release manifest.
pub const MANIFEST_PAYLOAD_TYPE: &str = "application/vnd.ferry.manifest.v1+json";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Envelope {
    #[cfg_attr(feature = "openapi", schema(min_length = 1))]
    pub payload_type: String,
    /// Base64 (standard alphabet, padded) of the exact signed bytes.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 4, pattern = "^[A-Za-z0-9+/]*={0,2}$")
    )]
    pub payload: String,
    #[cfg_attr(feature = "openapi", schema(min_items = 1))]
    pub signatures: Vec<EnvelopeSignature>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EnvelopeSignature {
    #[cfg_attr(
        feature = "openapi",
        schema(value_type = String, pattern = "^[0-9a-f]{32}$")
    )]
    pub keyid: KeyId,
    /// Base64 of the 64-byte ed25519 signature.
    #[cfg_attr(feature = "openapi", schema(pattern = "^[A-Za-z0-9+/]{86}==$"))]
    pub sig: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("signed document is {size} bytes, more than the {max} allowed")]
    TooLarge { size: usize, max: usize },
    #[error("signed document is not a valid envelope: {0}")]
    Malformed(String),
    #[error("signed document has payload type {found:?}, expected {expected:?}")]
    WrongType { found: String, expected: String },
    #[error("signed document has no signatures")]
    Unsigned,
    #[error(
        "signed document has {valid} valid signature(s) from trusted keys, {threshold} required \
         (signatures by unknown keys: {}; invalid signatures by trusted keys: {}); \
         check that the release was signed with a key listed in trusted_keys",
        list(unknown),
        list(invalid)
    )]
    BelowThreshold {
        valid: usize,
        threshold: usize,
        unknown: Vec<KeyId>,
        invalid: Vec<KeyId>,
    },
}

/// Key ids for a person: `a, b`, or `none`.
fn list(ids: &[KeyId]) -> String {
    if ids.is_empty() {
        return "none".into();
    }
    ids.iter()
        .map(KeyId::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The pre-authentication encoding that every signature covers.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + payload_type.len() + 32);
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(payload_type.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

impl Envelope {
    /// Signs `payload` with every key given.
    #[cfg(any(test, feature = "sign"))]
    pub fn sign(payload_type: &str, payload: &[u8], keys: &[&SigningKeyFile]) -> Envelope {
        let message = pae(payload_type, payload);
        Envelope {
            payload_type: payload_type.to_string(),
            payload: B64.encode(payload),
            signatures: keys
                .iter()
                .map(|k| EnvelopeSignature {
                    keyid: k.id.clone(),
                    sig: B64.encode(k.sign(&message).to_bytes()),
                })
                .collect(),
        }
    }

    /// Parses envelope JSON, refusing oversized input before parsing.
    pub fn parse(bytes: &[u8]) -> Result<Envelope, VerifyError> {
        if bytes.len() > MAX_ENVELOPE_BYTES {
            return Err(VerifyError::TooLarge {
                size: bytes.len(),
                max: MAX_ENVELOPE_BYTES,
            });
        }
        serde_json::from_slice(bytes).map_err(|e| VerifyError::Malformed(e.to_string()))
    }

    pub fn to_json(&self) -> String {
        // An envelope is strings only; serialisation cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Checks the signatures and returns the signed bytes when at least `threshold` *distinct*
    /// trusted keys signed them with the expected payload type. A key's signature repeated
    /// counts once; signatures by unknown keys are ignored (and named in the error).
    pub fn verify(
        &self,
        expected_type: &str,
        trusted: &TrustedKeys,
        threshold: usize,
    ) -> Result<Vec<u8>, VerifyError> {
        if self.payload_type != expected_type {
            return Err(VerifyError::WrongType {
                found: self.payload_type.clone(),
                expected: expected_type.to_string(),
            });
        }
        if self.signatures.is_empty() {
            return Err(VerifyError::Unsigned);
        }
        let payload = B64
            .decode(self.payload.as_bytes())
            .map_err(|e| VerifyError::Malformed(format!("payload is not base64: {e}")))?;
        let message = pae(&self.payload_type, &payload);
        let mut valid = BTreeSet::new();
        let mut unknown = Vec::new();
        let mut invalid = Vec::new();
        for sig in &self.signatures {
            let Some(key) = trusted.get(&sig.keyid) else {
                unknown.push(sig.keyid.clone());
                continue;
            };
            let ok = B64
                .decode(sig.sig.as_bytes())
                .ok()
                .and_then(|bytes| <[u8; 64]>::try_from(bytes).ok())
                .map(|bytes| Signature::from_bytes(&bytes))
                .is_some_and(|signature| key.verify_strict(&message, &signature).is_ok());
            if ok {
                valid.insert(sig.keyid.clone());
            } else {
                invalid.push(sig.keyid.clone());
            }
        }
        // A threshold of 0 would accept anything: treat it as 1.
        let threshold = threshold.max(1);
        if valid.len() >= threshold {
            Ok(payload)
        } else {
            Err(VerifyError::BelowThreshold {
                valid: valid.len(),
                threshold,
                unknown,
                invalid,
            })
        }
    }

    /// The payload bytes *without* verification, for indexing on the server, which relays
    /// envelopes but never decides trust. Devices must use [`Envelope::verify`].
    pub fn unverified_payload(&self) -> Result<Vec<u8>, VerifyError> {
        B64.decode(self.payload.as_bytes())
            .map_err(|e| VerifyError::Malformed(format!("payload is not base64: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SigningKeyFile;

    fn keys() -> (SigningKeyFile, SigningKeyFile) {
        (
            SigningKeyFile::from_seed([1; 32]),
            SigningKeyFile::from_seed([2; 32]),
        )
    }

    #[test]
    fn pae_matches_the_dsse_definition() {
        assert_eq!(pae("t", b"abc"), b"DSSEv1 1 t 3 abc".to_vec());
    }

    #[test]
    fn a_signed_payload_verifies_and_returns_the_exact_bytes() {
        let (a, _) = keys();
        let env = Envelope::sign("t", b"{ \"x\" : 1 }", &[&a]);
        let trusted = TrustedKeys::new([a.public()]);
        let back = Envelope::parse(env.to_json().as_bytes()).unwrap();
        assert_eq!(back.verify("t", &trusted, 1).unwrap(), b"{ \"x\" : 1 }");
    }

    #[test]
    fn a_changed_payload_is_refused() {
        let (a, _) = keys();
        let mut env = Envelope::sign("t", b"version 1", &[&a]);
        env.payload = B64.encode(b"version 2");
        let trusted = TrustedKeys::new([a.public()]);
        let err = env.verify("t", &trusted, 1).unwrap_err();
        assert!(
            matches!(err, VerifyError::BelowThreshold { valid: 0, ref invalid, .. } if invalid.len() == 1)
        );
    }

    #[test]
    fn an_unknown_key_is_refused_and_named() {
        let (a, b) = keys();
        let env = Envelope::sign("t", b"x", &[&b]);
        let err = env
            .verify("t", &TrustedKeys::new([a.public()]), 1)
            .unwrap_err();
        assert!(err.to_string().contains(&b.id.0), "{err}");
    }

    #[test]
    fn the_type_tag_is_covered_by_the_signature() {
        let (a, _) = keys();
        let mut env = Envelope::sign("other", b"x", &[&a]);
        let trusted = TrustedKeys::new([a.public()]);
        assert!(matches!(
            env.verify("t", &trusted, 1),
            Err(VerifyError::WrongType { .. })
        ));
        // Relabelling the envelope does not help: the signature covers the type.
        env.payload_type = "t".into();
        assert!(matches!(
            env.verify("t", &trusted, 1),
            Err(VerifyError::BelowThreshold { .. })
        ));
    }

    #[test]
    fn a_repeated_signature_counts_once_toward_the_threshold() {
        let (a, b) = keys();
        let mut env = Envelope::sign("t", b"x", &[&a]);
        env.signatures.push(env.signatures[0].clone());
        let trusted = TrustedKeys::new([a.public(), b.public()]);
        assert!(matches!(
            env.verify("t", &trusted, 2),
            Err(VerifyError::BelowThreshold {
                valid: 1,
                threshold: 2,
                ..
            })
        ));
        let both = Envelope::sign("t", b"x", &[&a, &b]);
        assert!(both.verify("t", &trusted, 2).is_ok());
    }

    #[test]
    fn unsigned_and_oversized_documents_are_refused() {
        let (a, _) = keys();
        let mut env = Envelope::sign("t", b"x", &[&a]);
        env.signatures.clear();
        let trusted = TrustedKeys::new([a.public()]);
        assert_eq!(env.verify("t", &trusted, 1), Err(VerifyError::Unsigned));
        let big = vec![b' '; MAX_ENVELOPE_BYTES + 1];
        assert!(matches!(
            Envelope::parse(&big),
            Err(VerifyError::TooLarge { .. })
        ));
    }
}
