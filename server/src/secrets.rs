//! Secrets at rest (MQTT passwords and CA certificates added through the API): sealed with
//! AES-256-GCM under a key kept outside the database, in `DATA_DIR/secrets.key` (32 random
//! bytes, mode 0600, created on first start). A copy of the database alone reveals nothing;
//! back the key up with it.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read or create the secrets key {path}: {source}")]
    Key {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the secrets key {0} is not 32 bytes (base64 in the environment); restore it from the backup")]
    BadKey(PathBuf),
    #[error("cannot draw random bytes: {0}")]
    Random(#[source] getrandom::Error),
    #[error("a stored secret does not open with {0}; was the key replaced?")]
    Open(PathBuf),
}

pub struct Secrets {
    cipher: Aes256Gcm,
    path: PathBuf,
}

/// The environment variable that may hold the key, base64 (instances that share no disk).
pub const KEY_ENV: &str = "FERRY_SECRETS_KEY";

impl Secrets {
    /// The key of `from_env` (`FERRY_SECRETS_KEY`'s value: base64 of 32 bytes), else of
    /// `key_file` (32 bytes, as `secrets.key` is), else `data_dir`'s, created on first start.
    pub fn open_from(
        data_dir: &Path,
        key_file: Option<&Path>,
        from_env: Option<&str>,
    ) -> Result<Secrets, SecretError> {
        if let Some(text) = from_env {
            use base64::Engine as _;
            let path = PathBuf::from(format!("${KEY_ENV}"));
            let key = base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .map_err(|_| SecretError::BadKey(path.clone()))?;
            return Secrets::with_key(&key, path);
        }
        if let Some(file) = key_file {
            let key = std::fs::read(file).map_err(|source| SecretError::Key {
                path: file.to_path_buf(),
                source,
            })?;
            return Secrets::with_key(&key, file.to_path_buf());
        }
        Secrets::open(data_dir)
    }

    fn with_key(key: &[u8], path: PathBuf) -> Result<Secrets, SecretError> {
        let cipher =
            Aes256Gcm::new_from_slice(key).map_err(|_| SecretError::BadKey(path.clone()))?;
        Ok(Secrets { cipher, path })
    }

    /// Opens the key in `data_dir`, creating it on first start.
    pub fn open(data_dir: &Path) -> Result<Secrets, SecretError> {
        let path = data_dir.join("secrets.key");
        let key_err = |source| SecretError::Key {
            path: path.clone(),
            source,
        };
        let key = match std::fs::read(&path) {
            Ok(k) => k,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut k = vec![0u8; 32];
                getrandom::fill(&mut k).map_err(SecretError::Random)?;
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .map_err(key_err)?;
                f.write_all(&k)
                    .and_then(|_| f.sync_all())
                    .map_err(key_err)?;
                k
            }
            Err(e) => return Err(key_err(e)),
        };
        let cipher =
            Aes256Gcm::new_from_slice(&key).map_err(|_| SecretError::BadKey(path.clone()))?;
        Ok(Secrets { cipher, path })
    }

    /// A random nonce, then the ciphertext with its tag.
    pub fn seal(&self, plaintext: &[u8]) -> Result<Vec<u8>, SecretError> {
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).map_err(SecretError::Random)?;
        let sealed = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), plaintext)
            .map_err(|_| SecretError::Open(self.path.clone()))?;
        Ok([nonce.as_slice(), &sealed].concat())
    }

    pub fn open_sealed(&self, sealed: &[u8]) -> Result<Vec<u8>, SecretError> {
        if sealed.len() < 12 {
            return Err(SecretError::Open(self.path.clone()));
        }
        let (nonce, body) = sealed.split_at(12);
        self.cipher
            .decrypt(Nonce::from_slice(nonce), body)
            .map_err(|_| SecretError::Open(self.path.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_with_the_same_key_only() {
        let dir = tempfile::tempdir().unwrap();
        let s = Secrets::open(dir.path()).unwrap();
        let sealed = s.seal(b"hunter2").unwrap();
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"));
        assert_ne!(
            sealed,
            s.seal(b"hunter2").unwrap(),
            "a fresh nonce each time"
        );
        // The key persists: opening again reads the same key.
        let again = Secrets::open(dir.path()).unwrap();
        assert_eq!(again.open_sealed(&sealed).unwrap(), b"hunter2");
        let mode = std::fs::metadata(dir.path().join("secrets.key"))
            .unwrap()
            .permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
        // Another key cannot open it, nor can a tampered box.
        let other = tempfile::tempdir().unwrap();
        assert!(Secrets::open(other.path())
            .unwrap()
            .open_sealed(&sealed)
            .is_err());
        let mut bad = sealed.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(again.open_sealed(&bad).is_err());
    }

    #[test]
    fn the_key_may_come_from_the_environment_or_a_file_instead_of_the_data_directory() {
        use base64::Engine as _;
        let dir = tempfile::tempdir().unwrap();
        let key = [7u8; 32];
        let file = dir.path().join("shared.key");
        std::fs::write(&file, key).unwrap();
        let from_file = Secrets::open_from(dir.path(), Some(&file), None).unwrap();
        let env = base64::engine::general_purpose::STANDARD.encode(key);
        let from_env = Secrets::open_from(dir.path(), None, Some(&env)).unwrap();
        // The same key either way, and no key file made in the data directory.
        let sealed = from_file.seal(b"broker password").unwrap();
        assert_eq!(from_env.open_sealed(&sealed).unwrap(), b"broker password");
        assert!(!dir.path().join("secrets.key").exists());
        // A key that is not 32 bytes, or not base64, is refused, naming where it came from.
        let short = Secrets::open_from(dir.path(), None, Some("c2hvcnQ="));
        assert!(
            matches!(short, Err(SecretError::BadKey(p)) if p.display().to_string() == "$FERRY_SECRETS_KEY")
        );
        assert!(Secrets::open_from(dir.path(), None, Some("not base64!")).is_err());
        std::fs::write(&file, b"short").unwrap();
        assert!(Secrets::open_from(dir.path(), Some(&file), None).is_err());
    }
}
