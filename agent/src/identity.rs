//! This device's identity to its fleet server over https (docs/security.md): a key pair made
//! here at first start and never sent anywhere (`STATE_DIR/device.key`, mode 0600, or the
//! file `key` names), and a certificate for it: issued by the server's device CA at
//! enrolment and renewed before it expires, or put on the device in the factory
//! (`certificate`). The release signature stays what makes an install trustworthy; the
//! certificate decides who may talk to the fleet server.

use std::path::{Path, PathBuf};

use rcgen::{CertificateParams, DnType, KeyPair};

use crate::error::Error;
use crate::state::StateDir;

/// The kind of key the agent makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    Ed25519,
    P256,
}

/// `key`, `key_type` and `certificate` of agent.toml, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityConfig {
    /// A private key file (PEM) to use instead of making one.
    pub key: Option<PathBuf>,
    pub key_type: KeyType,
    /// A factory certificate (PEM) for `key`.
    pub certificate: Option<PathBuf>,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig {
            key: None,
            key_type: KeyType::Ed25519,
            certificate: None,
        }
    }
}

impl IdentityConfig {
    pub fn check(
        key: Option<&str>,
        key_type: Option<&str>,
        certificate: Option<&Path>,
        resolve: &dyn Fn(&Path) -> PathBuf,
    ) -> Result<IdentityConfig, String> {
        let key_type = match key_type {
            None | Some("ed25519") => KeyType::Ed25519,
            Some("p256") => KeyType::P256,
            Some(other) => {
                return Err(format!(
                    "key `key_type` = {other:?}: use \"ed25519\" (the default) or \"p256\""
                ))
            }
        };
        if key.is_some_and(|k| k.starts_with("pkcs11:")) {
            return Err(
                "key `key` = \"pkcs11:…\": keys held in a TPM or HSM through PKCS#11 are not supported by this agent; leave `key` out (the agent keeps its key in the state directory, mode 0600) or give a key file"
                    .into(),
            );
        }
        let key = key.map(|k| resolve(Path::new(k)));
        if let Some(k) = &key {
            let pem = std::fs::read(k)
                .map_err(|e| format!("key `key` = {}: cannot read it: {e}", k.display()))?;
            if !String::from_utf8_lossy(&pem).contains("PRIVATE KEY-----") {
                return Err(format!(
                    "key `key` = {}: not a PEM private key",
                    k.display()
                ));
            }
        }
        let certificate = certificate.map(resolve);
        if let Some(c) = &certificate {
            if key.is_none() {
                return Err(format!(
                    "key `certificate` = {} needs `key`: the factory certificate's private key",
                    c.display()
                ));
            }
            let pem = std::fs::read(c)
                .map_err(|e| format!("key `certificate` = {}: cannot read it: {e}", c.display()))?;
            reqwest::Certificate::from_pem(&pem).map_err(|e| {
                format!(
                    "key `certificate` = {}: not a PEM certificate: {e}",
                    c.display()
                )
            })?;
        }
        Ok(IdentityConfig {
            key,
            key_type,
            certificate,
        })
    }
}

/// The device's private key (PEM): the configured file, else `STATE_DIR/device.key`, made
/// on first use.
pub fn key_pem(cfg: &IdentityConfig, dir: &StateDir) -> Result<String, Error> {
    if let Some(path) = &cfg.key {
        return std::fs::read_to_string(path)
            .map_err(|e| Error::Identity(format!("cannot read the key {}: {e}", path.display())));
    }
    let path = dir.root().join("device.key");
    match std::fs::read_to_string(&path) {
        Ok(pem) => Ok(pem),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let alg = match cfg.key_type {
                KeyType::Ed25519 => &rcgen::PKCS_ED25519,
                KeyType::P256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            };
            let key = KeyPair::generate_for(alg)
                .map_err(|e| Error::Identity(format!("cannot make a key pair: {e}")))?;
            let pem = key.serialize_pem();
            // Written atomically, mode 0600, like the rest of the state directory.
            dir.write_atomic(&path, pem.as_bytes())?;
            tracing::info!(key = %path.display(), "made this device's key pair");
            Ok(pem)
        }
        Err(e) => Err(Error::Identity(format!(
            "cannot read the key {}: {e}",
            path.display()
        ))),
    }
}

/// A certificate signing request for the key: its signature proves the device holds it. The
/// subject is the server's to choose.
pub fn csr(key_pem: &str) -> Result<String, Error> {
    let key = KeyPair::from_pem(key_pem).map_err(|e| {
        Error::Identity(format!(
            "the device key cannot sign a certificate request: {e}"
        ))
    })?;
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, "ferry-agent");
    params
        .serialize_request(&key)
        .and_then(|r| r.pem())
        .map_err(|e| Error::Identity(format!("cannot make a certificate request: {e}")))
}

/// A client identity for TLS: the certificate followed by its key (PEM).
pub fn client_pem(certificate: &str, key_pem: &str) -> Vec<u8> {
    let mut pem = certificate.trim_end().as_bytes().to_vec();
    pem.push(b'\n');
    pem.extend_from_slice(key_pem.as_bytes());
    pem
}

/// A factory certificate's PEM.
pub fn factory_certificate(cfg: &IdentityConfig) -> Result<Option<String>, Error> {
    cfg.certificate
        .as_ref()
        .map(|p| {
            std::fs::read_to_string(p).map_err(|e| {
                Error::Identity(format!("cannot read the certificate {}: {e}", p.display()))
            })
        })
        .transpose()
}
