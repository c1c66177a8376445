//! Device identity (docs/security.md): how devices prove who they are. A device makes its own
//! key and the fleet's device CA ([`ca`]) certifies it at enrolment; or it arrives from the
//! factory with a certificate from a CA the operator trusts (`device_ca_file`). With TLS on,
//! the handshake verifies the certificate it presents ([`tls`]); behind a TLS-terminating
//! proxy, the proxy passes it in a header, believed from the configured addresses only.
//! Bearer tokens keep working where `device_auth` allows them.

pub mod ca;
pub mod tls;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::ClientCertVerifier;
use serde::Deserialize;

pub use crate::policy::identity::DeviceAuth;

/// What a factory device (a certificate from `device_ca_file`) gets on first contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FactoryDevices {
    /// Accepted at once (pre-authorised).
    Accept,
    /// Held for an operator (`ferryctl hosts accept`).
    Hold,
}

/// Device identity settings (server.toml and flags; docs/configuration.md).
#[derive(Debug, Clone)]
pub struct IdentityConfig {
    pub device_auth: DeviceAuth,
    /// A factory CA (PEM, one or more certificates) whose device certificates are accepted.
    pub device_ca_file: Option<PathBuf>,
    pub factory_devices: FactoryDevices,
    /// An external CA (certificate, key) issuing devices' certificates, instead of the one
    /// made in the data directory.
    pub issuing_ca: Option<(PathBuf, PathBuf)>,
    /// How long an issued certificate is valid.
    pub certificate_lifetime: time::Duration,
    /// The header a TLS-terminating proxy passes the client certificate in.
    pub client_cert_header: Option<axum::http::HeaderName>,
    /// The proxies' addresses: the header is believed from these only.
    pub trusted_proxies: Vec<IpAddr>,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig {
            device_auth: DeviceAuth::Both,
            device_ca_file: None,
            factory_devices: FactoryDevices::Accept,
            issuing_ca: None,
            certificate_lifetime: time::Duration::days(DEFAULT_LIFETIME_DAYS),
            client_cert_header: None,
            trusted_proxies: Vec::new(),
        }
    }
}

/// Issued certificates are valid this long; devices renew them after two thirds.
pub const DEFAULT_LIFETIME_DAYS: i64 = 90;

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a usable CA certificate or key: {message}")]
    BadCa { path: PathBuf, message: String },
    #[error("cannot make the device CA: {0}")]
    Generate(String),
    #[error("the certificate signing request is not usable: {0}")]
    BadCsr(String),
    #[error("cannot set up TLS: {0}")]
    Tls(String),
}

/// How a request's client certificate reached the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// Verified in this server's TLS handshake.
    Handshake,
    /// Passed by a trusted proxy that verified it.
    Proxy,
}

/// The certificate a device presented.
#[derive(Debug, Clone)]
pub struct Presented {
    pub der: Vec<u8>,
    pub intermediates: Vec<Vec<u8>>,
    pub via: Via,
}

/// Device identity as the server runs it.
pub struct Identity {
    pub config: IdentityConfig,
    /// The CA issuing devices' certificates: present where certificates can reach the server
    /// (TLS on, or a proxy header configured) and `device_auth` is not `token`.
    pub ca: Option<ca::DeviceCa>,
    /// Verifies factory certificates (`device_ca_file`).
    factory: Option<Arc<dyn ClientCertVerifier>>,
    factory_roots: Vec<CertificateDer<'static>>,
}

impl Identity {
    /// Opens (or makes) the device CA and reads the factory CA.
    pub fn open(
        config: IdentityConfig,
        data_dir: &std::path::Path,
        tls: bool,
    ) -> Result<Identity, IdentityError> {
        let reachable = tls || config.client_cert_header.is_some();
        let ca = (reachable && config.device_auth != DeviceAuth::Token)
            .then(|| ca::DeviceCa::open(data_dir, config.issuing_ca.as_ref()))
            .transpose()?;
        let factory_roots = match &config.device_ca_file {
            Some(path) => tls::read_certificates(path)?,
            None => Vec::new(),
        };
        let factory = (!factory_roots.is_empty())
            .then(|| tls::verifier(&factory_roots))
            .transpose()?;
        Ok(Identity {
            config,
            ca,
            factory,
            factory_roots,
        })
    }

    /// Every CA whose certificates the TLS handshake accepts: the device CA and the factory's.
    pub fn client_roots(&self) -> Vec<CertificateDer<'static>> {
        let mut roots = self.factory_roots.clone();
        if let Some(ca) = &self.ca {
            roots.push(ca.cert.clone());
        }
        roots
    }

    /// Whether `der` chains to the factory CA (and is valid now).
    pub fn verify_factory(&self, p: &Presented) -> Result<(), String> {
        let Some(v) = &self.factory else {
            return Err("this server trusts no factory CA (device_ca_file)".into());
        };
        let end = CertificateDer::from(p.der.as_slice());
        let inter: Vec<CertificateDer<'_>> = p
            .intermediates
            .iter()
            .map(|c| CertificateDer::from(c.as_slice()))
            .collect();
        v.verify_client_cert(&end, &inter, UnixTime::now())
            .map(|_| ())
            .map_err(|e| format!("it is not from the factory CA in device_ca_file ({e})"))
    }

    /// The client certificate of a request: from this server's TLS handshake, or from the
    /// proxy header when the request came from a trusted proxy. The header from anyone
    /// else is refused, in words.
    pub fn presented(
        &self,
        parts: &axum::http::request::Parts,
    ) -> Result<Option<Presented>, String> {
        if let Some(info) = parts.extensions.get::<Arc<axum_server::tls::TlsInfo>>() {
            if let Some((end, rest)) = info.peer_certificates.split_first() {
                return Ok(Some(Presented {
                    der: end.clone(),
                    intermediates: rest.to_vec(),
                    via: Via::Handshake,
                }));
            }
        }
        let Some(header) = &self.config.client_cert_header else {
            return Ok(None);
        };
        let Some(value) = parts.headers.get(header) else {
            return Ok(None);
        };
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip());
        let trusted = peer.is_some_and(|ip| {
            let ip = ip.to_canonical();
            self.config
                .trusted_proxies
                .iter()
                .any(|t| t.to_canonical() == ip)
        });
        if !trusted {
            return Err(format!(
                "a client certificate header ({header}) came from {}, which is not in trusted_proxies; only the TLS-terminating proxy may send it",
                peer.map(|p| p.to_string()).unwrap_or_else(|| "an unknown address".into())
            ));
        }
        let text = value
            .to_str()
            .map_err(|_| format!("the {header} header is not text"))?;
        if text.trim().is_empty() {
            // The proxy passes an empty value when the client sent no certificate.
            return Ok(None);
        }
        let der = crate::policy::identity::decode_header_certificate(text)
            .map_err(|e| format!("the {header} header holds no certificate: {e}"))?;
        Ok(Some(Presented {
            der,
            intermediates: Vec::new(),
            via: Via::Proxy,
        }))
    }
}
