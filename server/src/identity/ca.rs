//! The fleet's device CA: certifies the keys devices make (their CSRs) with a certificate
//! bound to the host's id. Its key is `DATA_DIR/device-ca.key` (P-256, mode 0600, made at
//! first start) unless the operator gives an external CA (`device_ca_cert`, `device_ca_key`).

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SerialNumber,
};
use rustls::pki_types::CertificateDer;
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;

use super::IdentityError;

/// Largest CSR accepted (a P-256 or ed25519 one is under 1 KiB).
pub const MAX_CSR_BYTES: usize = 8 * 1024;

/// Certificates are valid from a little before they are issued, for devices whose clocks lag.
const BACKDATE: time::Duration = time::Duration::minutes(5);

pub struct DeviceCa {
    issuer: Issuer<'static, KeyPair>,
    /// The CA's certificate (DER), which client certificates are verified against.
    pub cert: CertificateDer<'static>,
}

/// A certificate issued to a device.
#[derive(Debug, Clone)]
pub struct Issued {
    pub pem: String,
    /// SHA-256 of the DER, hex: how the server knows it again.
    pub fingerprint: String,
    pub serial: String,
    pub not_after: OffsetDateTime,
}

/// The SHA-256 of a certificate's DER, hex.
pub fn fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

impl DeviceCa {
    /// The external CA's certificate and key, or the one in `data_dir` (made if missing).
    pub fn open(
        data_dir: &Path,
        external: Option<&(PathBuf, PathBuf)>,
    ) -> Result<Self, IdentityError> {
        let (cert_path, key_path) = match external {
            Some((c, k)) => (c.clone(), k.clone()),
            None => {
                let cert = data_dir.join("device-ca.pem");
                let key = data_dir.join("device-ca.key");
                if !key.exists() {
                    make(&cert, &key)?;
                }
                (cert, key)
            }
        };
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|source| IdentityError::Read {
                path: p.to_path_buf(),
                source,
            })
        };
        let key_pem = read(&key_path)?;
        let cert_pem = read(&cert_path)?;
        let bad = |what: &Path, e: rcgen::Error| IdentityError::BadCa {
            path: what.to_path_buf(),
            message: e.to_string(),
        };
        let key = KeyPair::from_pem(&key_pem).map_err(|e| bad(&key_path, e))?;
        let cert = {
            use rustls::pki_types::pem::PemObject as _;
            CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(|e| {
                IdentityError::BadCa {
                    path: cert_path.clone(),
                    message: e.to_string(),
                }
            })?
        };
        let issuer = Issuer::from_ca_cert_der(&cert, key).map_err(|e| bad(&cert_path, e))?;
        Ok(DeviceCa { issuer, cert })
    }

    /// Certifies the key of `csr_pem` (whose signature proves the device holds it) for host
    /// `host_id`, valid for `lifetime` from `now`. The subject is the server's choice, never
    /// the CSR's.
    pub fn issue(
        &self,
        csr_pem: &str,
        host_id: &str,
        now: OffsetDateTime,
        lifetime: time::Duration,
    ) -> Result<Issued, IdentityError> {
        if csr_pem.len() > MAX_CSR_BYTES {
            return Err(IdentityError::BadCsr(format!(
                "it is {} bytes; at most {MAX_CSR_BYTES}",
                csr_pem.len()
            )));
        }
        let csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| IdentityError::BadCsr(e.to_string()))?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, host_id);
        dn.push(DnType::OrganizationName, "Ferry device");
        params.distinguished_name = dn;
        let mut serial = [0u8; 16];
        getrandom::fill(&mut serial).map_err(|e| IdentityError::BadCsr(e.to_string()))?;
        serial[0] &= 0x7f; // positive
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        params.not_before = now - BACKDATE;
        params.not_after = now + lifetime;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        let cert = params
            .signed_by(&csr.public_key, &self.issuer)
            .map_err(|e| IdentityError::BadCsr(e.to_string()))?;
        Ok(Issued {
            pem: cert.pem(),
            fingerprint: fingerprint(cert.der()),
            serial: hex::encode(serial),
            not_after: params.not_after,
        })
    }
}

/// Makes the CA's key and self-signed certificate (20 years). The key is written first,
/// exclusively, so two instances starting at once on a shared directory keep one.
fn make(cert_path: &Path, key_path: &Path) -> Result<(), IdentityError> {
    let write_err = |path: &Path, source| IdentityError::Write {
        path: path.to_path_buf(),
        source,
    };
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| IdentityError::Generate(e.to_string()))?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "Ferry device CA");
    dn.push(DnType::OrganizationName, "Ferry");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(20 * 365);
    let cert = params
        .self_signed(&key)
        .map_err(|e| IdentityError::Generate(e.to_string()))?;
    let mut f = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(key_path)
    {
        Ok(f) => f,
        // Another instance made it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(write_err(key_path, e)),
    };
    f.write_all(key.serialize_pem().as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| write_err(key_path, e))?;
    let tmp = cert_path.with_extension("pem.tmp");
    std::fs::write(&tmp, cert.pem())
        .and_then(|_| std::fs::rename(&tmp, cert_path))
        .map_err(|e| write_err(cert_path, e))?;
    tracing::info!(cert = %cert_path.display(), "made the fleet's device CA; back up {} with the database", key_path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csr(alg: &'static rcgen::SignatureAlgorithm) -> (KeyPair, String) {
        let key = KeyPair::generate_for(alg).unwrap();
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, "i-want-to-be-admin");
        let csr = params.serialize_request(&key).unwrap().pem().unwrap();
        (key, csr)
    }

    #[test]
    fn issues_client_certificates_bound_to_the_host_whatever_the_csr_asks() {
        let dir = tempfile::tempdir().unwrap();
        let ca = DeviceCa::open(dir.path(), None).unwrap();
        // Opened again, it is the same CA.
        let again = DeviceCa::open(dir.path(), None).unwrap();
        assert_eq!(ca.cert, again.cert);
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.path().join("device-ca.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let now = OffsetDateTime::now_utc();
        for alg in [&rcgen::PKCS_ED25519, &rcgen::PKCS_ECDSA_P256_SHA256] {
            let (_, csr) = csr(alg);
            let issued = ca
                .issue(&csr, "host-1", now, time::Duration::days(30))
                .unwrap();
            let der = {
                use rustls::pki_types::pem::PemObject as _;
                CertificateDer::from_pem_slice(issued.pem.as_bytes()).unwrap()
            };
            assert_eq!(issued.fingerprint, fingerprint(&der));
            let (_, parsed) = x509_parser::parse_x509_certificate(&der).unwrap();
            let cn: Vec<_> = parsed
                .subject()
                .iter_common_name()
                .map(|c| c.as_str().unwrap().to_string())
                .collect();
            assert_eq!(cn, ["host-1"]);
            assert_eq!(
                parsed.validity().not_after.timestamp(),
                (now + time::Duration::days(30)).unix_timestamp()
            );
            assert!(!parsed.is_ca());
        }
    }

    #[test]
    fn refuses_a_csr_whose_signature_does_not_hold() {
        let dir = tempfile::tempdir().unwrap();
        let ca = DeviceCa::open(dir.path(), None).unwrap();
        let (_, good) = csr(&rcgen::PKCS_ECDSA_P256_SHA256);
        // Flip one character of the base64 body.
        let lines: Vec<&str> = good.lines().collect();
        let mut body = lines[1].as_bytes().to_vec();
        let i = body.len() / 2;
        body[i] = if body[i] == b'A' { b'B' } else { b'A' };
        let tampered = format!(
            "{}\n{}\n{}",
            lines[0],
            String::from_utf8(body).unwrap(),
            lines[2..].join("\n")
        );
        let now = OffsetDateTime::now_utc();
        assert!(ca
            .issue(&tampered, "h", now, time::Duration::days(1))
            .is_err());
        assert!(ca
            .issue("not a csr", "h", now, time::Duration::days(1))
            .is_err());
    }
}
