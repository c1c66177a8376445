//! Release key files.
//!
//! Both files are small TOML documents so that a person can read them and tools can parse them
//! with any TOML library:
//!
//! ```toml
//! # release.pub
//! format = "ferry-ed25519-public-v1"
//! keyid = "3f9c…"          # first 16 bytes of sha256(public key), hex
//! public = "base64 of the 32-byte ed25519 public key"
//! ```
//!
//! ```toml
//! # release.key (mode 0600, keep offline)
//! format = "ferry-ed25519-private-v1"
//! keyid = "3f9c…"
//! secret = "base64 of the 32-byte ed25519 seed"
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::VerifyingKey;
#[cfg(any(test, feature = "sign"))]
use ed25519_dalek::{Signature, Signer as _, SigningKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Format tag of a public key file.
pub const PUBLIC_FORMAT: &str = "ferry-ed25519-public-v1";
/// Format tag of a private key file.
#[cfg(any(test, feature = "sign"))]
pub const PRIVATE_FORMAT: &str = "ferry-ed25519-private-v1";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read key file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("key file {path} is not a valid Ferry key file: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("cannot generate a key: the system random source failed: {0}")]
    Random(String),
}

/// The id of a key: the first 16 bytes of sha256 over the raw public key, in hex.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct KeyId(pub String);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl KeyId {
    pub fn of(key: &VerifyingKey) -> KeyId {
        let digest = Sha256::digest(key.as_bytes());
        KeyId(hex::encode(&digest[..16]))
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PublicFile {
    format: String,
    keyid: String,
    public: String,
}

#[cfg(any(test, feature = "sign"))]
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PrivateFile {
    format: String,
    keyid: String,
    secret: String,
}

/// A trusted public key with its id.
#[derive(Debug, Clone)]
pub struct PublicKey {
    pub id: KeyId,
    pub key: VerifyingKey,
}

impl PublicKey {
    pub fn to_file_string(&self) -> String {
        let file = PublicFile {
            format: PUBLIC_FORMAT.to_string(),
            keyid: self.id.0.clone(),
            public: B64.encode(self.key.as_bytes()),
        };
        toml_string(&file)
    }

    /// Parses a public key file's text; `path` only names the file in errors.
    pub fn from_file_str(text: &str, path: &Path) -> Result<PublicKey, KeyError> {
        let invalid = |reason: String| KeyError::Invalid {
            path: path.to_path_buf(),
            reason,
        };
        let file: PublicFile = toml::from_str(text).map_err(|e| {
            // A private key where a public one belongs: say so, not "unknown field".
            if toml::from_str::<toml::Table>(text).is_ok_and(|t| t.contains_key("secret")) {
                invalid(
                    "this is a private release key (`ferryctl keygen` writes NAME.key and NAME.pub): give the .pub file here, and keep the .key off devices"
                        .to_string(),
                )
            } else {
                invalid(e.message().to_string())
            }
        })?;
        if file.format != PUBLIC_FORMAT {
            return Err(invalid(format!(
                "format is {:?}, expected {PUBLIC_FORMAT:?} (is this a private key?)",
                file.format
            )));
        }
        let bytes: [u8; 32] = B64
            .decode(file.public.trim())
            .map_err(|e| invalid(format!("public is not base64: {e}")))?
            .try_into()
            .map_err(|_| invalid("public must be 32 bytes".to_string()))?;
        let key = VerifyingKey::from_bytes(&bytes)
            .map_err(|e| invalid(format!("public is not an ed25519 key: {e}")))?;
        let id = KeyId::of(&key);
        if id.0 != file.keyid {
            return Err(invalid(format!(
                "keyid {} does not match the key (its id is {id})",
                file.keyid
            )));
        }
        Ok(PublicKey { id, key })
    }

    pub fn load(path: &Path) -> Result<PublicKey, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        PublicKey::from_file_str(&text, path)
    }
}

/// A release signing key, as held offline by the release manager. Only `ferryctl` (and tests)
/// build with the `sign` feature, so the server and the agent cannot link signing.
#[cfg(any(test, feature = "sign"))]
pub struct SigningKeyFile {
    pub id: KeyId,
    key: SigningKey,
}

#[cfg(any(test, feature = "sign"))]
impl fmt::Debug for SigningKeyFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret.
        f.debug_struct("SigningKeyFile")
            .field("id", &self.id)
            .finish()
    }
}

#[cfg(any(test, feature = "sign"))]
impl SigningKeyFile {
    #[cfg(feature = "sign")]
    pub fn generate() -> Result<SigningKeyFile, KeyError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(SigningKeyFile::from_seed(seed))
    }

    pub fn from_seed(seed: [u8; 32]) -> SigningKeyFile {
        let key = SigningKey::from_bytes(&seed);
        SigningKeyFile {
            id: KeyId::of(&key.verifying_key()),
            key,
        }
    }

    pub fn public(&self) -> PublicKey {
        PublicKey {
            id: self.id.clone(),
            key: self.key.verifying_key(),
        }
    }

    pub fn sign(&self, message: &[u8]) -> Signature {
        self.key.sign(message)
    }

    pub fn to_file_string(&self) -> String {
        let file = PrivateFile {
            format: PRIVATE_FORMAT.to_string(),
            keyid: self.id.0.clone(),
            secret: B64.encode(self.key.to_bytes()),
        };
        toml_string(&file)
    }

    pub fn from_file_str(text: &str, path: &Path) -> Result<SigningKeyFile, KeyError> {
        let invalid = |reason: String| KeyError::Invalid {
            path: path.to_path_buf(),
            reason,
        };
        // A public key file where the private one belongs is the usual slip: say so, rather
        // than what its fields lack.
        if text.contains(PUBLIC_FORMAT) {
            return Err(invalid(
                "this is the public key; pass the private .key file that `ferryctl keygen` wrote beside it".into(),
            ));
        }
        let file: PrivateFile =
            toml::from_str(text).map_err(|e| invalid(e.message().to_string()))?;
        if file.format != PRIVATE_FORMAT {
            return Err(invalid(format!(
                "format is {:?}, expected {PRIVATE_FORMAT:?}",
                file.format
            )));
        }
        let seed: [u8; 32] = B64
            .decode(file.secret.trim())
            .map_err(|e| invalid(format!("secret is not base64: {e}")))?
            .try_into()
            .map_err(|_| invalid("secret must be 32 bytes".to_string()))?;
        let key = SigningKeyFile::from_seed(seed);
        if key.id.0 != file.keyid {
            return Err(invalid(format!(
                "keyid {} does not match the key (its id is {})",
                file.keyid, key.id
            )));
        }
        Ok(key)
    }

    pub fn load(path: &Path) -> Result<SigningKeyFile, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        SigningKeyFile::from_file_str(&text, path)
    }
}

fn toml_string<T: Serialize>(value: &T) -> String {
    // Serialising a struct of three strings cannot fail.
    toml::to_string(value).unwrap_or_default()
}

/// The set of keys a verifier trusts, indexed by key id.
#[derive(Debug, Clone, Default)]
pub struct TrustedKeys {
    keys: BTreeMap<KeyId, VerifyingKey>,
}

impl TrustedKeys {
    pub fn new(keys: impl IntoIterator<Item = PublicKey>) -> TrustedKeys {
        TrustedKeys {
            keys: keys.into_iter().map(|k| (k.id, k.key)).collect(),
        }
    }

    pub fn get(&self, id: &KeyId) -> Option<&VerifyingKey> {
        self.keys.get(id)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_files_round_trip_and_ids_match() {
        let key = SigningKeyFile::from_seed([7; 32]);
        let text = key.to_file_string();
        let back = SigningKeyFile::from_file_str(&text, Path::new("k")).unwrap();
        assert_eq!(back.id, key.id);
        let public =
            PublicKey::from_file_str(&key.public().to_file_string(), Path::new("p")).unwrap();
        assert_eq!(public.id, key.id);
        assert_eq!(public.id.0.len(), 32);
    }

    #[test]
    fn a_keyid_that_does_not_match_is_refused() {
        let key = SigningKeyFile::from_seed([7; 32]);
        let text = key
            .public()
            .to_file_string()
            .replace(&key.id.0, "00000000000000000000000000000000");
        let err = PublicKey::from_file_str(&text, Path::new("p.pub")).unwrap_err();
        assert!(err.to_string().contains("does not match"), "{err}");
        assert!(err.to_string().contains("p.pub"), "{err}");
    }

    #[test]
    fn a_private_key_is_not_accepted_as_public_and_is_named_as_such() {
        let key = SigningKeyFile::from_seed([7; 32]);
        let err = PublicKey::from_file_str(&key.to_file_string(), Path::new("x"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("private release key"), "{err}");
        assert!(err.contains(".pub"), "{err}");
    }
}
