//! This device's identity to its fleet server over https (docs/security.md): a key pair made
//! here at first start and never sent anywhere (`STATE_DIR/device.key`, mode 0600, or the
//! file `key` names), and a certificate for it: issued by the server's device CA at
//! enrolment and renewed before it expires, or put on the device in the factory
//! (`certificate`). The release signature stays what makes an install trustworthy; the
//! certificate decides who may talk to the fleet server.

mod token;

pub use crate::config::identity::{IdentityConfig, KeySource, KeyType};

use std::sync::Arc;

use rcgen::{CertificateParams, DnType, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::sign::{CertifiedKey, Signer, SigningKey};
use rustls::{SignatureAlgorithm, SignatureScheme};

use crate::error::Error;
use crate::state::StateDir;

/// The device's private key: a PEM key (the configured file, else `STATE_DIR/device.key`,
/// made on first use) or a key in a token.
#[derive(Clone)]
pub enum DeviceKey {
    Pem(String),
    Token(Arc<token::TokenKey>),
}

impl DeviceKey {
    /// Loads the configured key, making it on first use.
    pub fn load(cfg: &IdentityConfig, dir: &StateDir) -> Result<DeviceKey, Error> {
        match &cfg.key {
            Some(KeySource::Token(uri)) => token::TokenKey::open(uri)
                .map(|k| DeviceKey::Token(Arc::new(k)))
                .map_err(Error::Identity),
            Some(KeySource::File(path)) => std::fs::read_to_string(path)
                .map(DeviceKey::Pem)
                .map_err(|e| {
                    Error::Identity(format!("cannot read the key {}: {e}", path.display()))
                }),
            None => made_key(cfg, dir).map(DeviceKey::Pem),
        }
    }

    /// A certificate signing request for the key: its signature proves the device holds
    /// it. The subject is the server's to choose.
    pub fn csr(&self) -> Result<String, Error> {
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, "ferry-agent");
        let request = match self {
            DeviceKey::Pem(pem) => {
                let key = KeyPair::from_pem(pem).map_err(|e| {
                    Error::Identity(format!(
                        "the device key cannot sign a certificate request: {e}"
                    ))
                })?;
                params.serialize_request(&key)
            }
            DeviceKey::Token(key) => params.serialize_request(&RcgenKey(key.clone())),
        };
        request
            .and_then(|r| r.pem())
            .map_err(|e| Error::Identity(format!("cannot make a certificate request: {e}")))
    }
}

fn made_key(cfg: &IdentityConfig, dir: &StateDir) -> Result<String, Error> {
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

/// How the HTTP client presents a device certificate.
pub enum ClientAuth {
    /// The certificate followed by its key (PEM), for reqwest.
    Pem(Vec<u8>),
    /// A rustls configuration whose handshakes are signed in the token, given the server
    /// verifier to use.
    Token(Arc<CertifiedKey>),
}

impl ClientAuth {
    pub fn new(certificate: &str, key: &DeviceKey) -> Result<ClientAuth, Error> {
        match key {
            DeviceKey::Pem(pem) => {
                let mut both = certificate.trim_end().as_bytes().to_vec();
                both.push(b'\n');
                both.extend_from_slice(pem.as_bytes());
                Ok(ClientAuth::Pem(both))
            }
            DeviceKey::Token(key) => {
                let chain = CertificateDer::pem_slice_iter(certificate.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| {
                        Error::Identity(format!("the device certificate is not PEM: {e}"))
                    })?;
                if chain.is_empty() {
                    return Err(Error::Identity("the device certificate is empty".into()));
                }
                Ok(ClientAuth::Token(Arc::new(CertifiedKey::new(
                    chain,
                    Arc::new(TlsKey(key.clone())),
                ))))
            }
        }
    }
}

/// The token's key as rcgen signs a certificate request with it.
struct RcgenKey(Arc<token::TokenKey>);

impl rcgen::PublicKeyData for RcgenKey {
    fn der_bytes(&self) -> &[u8] {
        self.0.point()
    }
    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

impl rcgen::SigningKey for RcgenKey {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.0.sign(msg).map_err(|e| {
            tracing::warn!("{e}");
            rcgen::Error::RemoteKeyError
        })
    }
}

/// The token's key as rustls signs a handshake with it (ECDSA P-256, SHA-256).
#[derive(Debug)]
struct TlsKey(Arc<token::TokenKey>);

impl SigningKey for TlsKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        offered
            .contains(&SignatureScheme::ECDSA_NISTP256_SHA256)
            .then(|| Box::new(TlsSigner(self.0.clone())) as Box<dyn Signer>)
    }
    fn algorithm(&self) -> SignatureAlgorithm {
        SignatureAlgorithm::ECDSA
    }
}

#[derive(Debug)]
struct TlsSigner(Arc<token::TokenKey>);

impl Signer for TlsSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        self.0.sign(message).map_err(rustls::Error::General)
    }
    fn scheme(&self) -> SignatureScheme {
        SignatureScheme::ECDSA_NISTP256_SHA256
    }
}

/// Presents one certificate to every server that asks.
#[derive(Debug)]
pub struct Present(pub Arc<CertifiedKey>);

impl rustls::client::ResolvesClientCert for Present {
    fn resolve(&self, _: &[&[u8]], _: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
    fn has_certs(&self) -> bool {
        true
    }
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
