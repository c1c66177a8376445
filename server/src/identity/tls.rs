//! The HTTPS listener's rustls configuration: the server's own certificate, client
//! certificates verified against the device CA and the factory CA (asked for, not required:
//! operators and browsers connect without one), and session resumption by tickets, so a
//! device reconnecting skips the full handshake and its signatures.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ServerSessionMemoryCache, WebPkiClientVerifier};
use rustls::RootCertStore;

use super::IdentityError;

/// Sessions remembered for resumption by id (clients that take no tickets).
const SESSION_CACHE: usize = 16 * 1024;

/// Every certificate in a PEM file.
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, IdentityError> {
    let bad = |message: String| IdentityError::BadCa {
        path: path.to_path_buf(),
        message,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("it holds no PEM certificate".into()));
    }
    Ok(certs)
}

/// A verifier of client certificates chaining to `roots`, which lets clients without one
/// connect (device routes then ask for a token or refuse).
pub fn verifier(
    roots: &[CertificateDer<'static>],
) -> Result<Arc<dyn ClientCertVerifier>, IdentityError> {
    let mut store = RootCertStore::empty();
    for r in roots {
        store
            .add(r.clone())
            .map_err(|e| IdentityError::Tls(format!("a CA certificate is not usable: {e}")))?;
    }
    WebPkiClientVerifier::builder(Arc::new(store))
        .allow_unauthenticated()
        .build()
        .map_err(|e| IdentityError::Tls(e.to_string()))
}

/// The listener's configuration: `cert`/`key` (PEM), client certificates from `roots` (none:
/// not asked for).
pub fn server_config(
    cert: &Path,
    key: &Path,
    roots: &[CertificateDer<'static>],
) -> Result<rustls::ServerConfig, IdentityError> {
    let chain = read_certificates(cert)?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| IdentityError::BadCa {
        path: key.to_path_buf(),
        message: e.to_string(),
    })?;
    let builder = rustls::ServerConfig::builder();
    let builder = if roots.is_empty() {
        builder.with_no_client_auth()
    } else {
        builder.with_client_cert_verifier(verifier(roots)?)
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| IdentityError::Tls(format!("the certificate and key do not fit: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE);
    config.ticketer =
        rustls::crypto::ring::Ticketer::new().map_err(|e| IdentityError::Tls(e.to_string()))?;
    Ok(config)
}

/// What the server reads of a device's certificate.
#[derive(Debug, Clone)]
pub struct Subject {
    pub common_name: Option<String>,
    /// Serial number, hex.
    pub serial: String,
    /// RFC 3339.
    pub not_after: String,
}

/// The subject's common name, serial and expiry of a certificate (DER).
pub fn subject(der: &[u8]) -> Result<Subject, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| format!("it is not a readable X.509 certificate ({e})"))?;
    let common_name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|c| c.as_str().ok())
        .map(str::to_string);
    let not_after =
        time::OffsetDateTime::from_unix_timestamp(cert.validity().not_after.timestamp())
            .map_err(|e| format!("its expiry is out of range ({e})"))?;
    Ok(Subject {
        common_name,
        serial: hex::encode(cert.raw_serial()),
        not_after: ferry_manifests::wire::timestamp(not_after),
    })
}
