//! A device key held in a token: a TPM 2.0 through tpm2-pkcs11, or any PKCS#11 module. The
//! key is made inside the token on first use (P-256, not extractable) and every signature (the
//! certificate request, each TLS handshake) is made there; the private key never exists
//! outside it.
//!
//! The key is named by a PKCS#11 URI (RFC 7512) in agent.toml:
//! `pkcs11:token=ferry;object=device?module-path=/usr/lib/…/libtpm2_pkcs11.so&pin-source=/etc/ferry/pin`.

use std::fmt;
use std::sync::Mutex;

use crate::config::identity::{KeyUri, Pin};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;

/// DER of the named curve prime256v1 (1.2.840.10045.3.1.7), as `CKA_EC_PARAMS` holds it.
const P256: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// An open session on the token holding the device key, logged in.
pub struct TokenKey {
    session: Mutex<Session>,
    key: ObjectHandle,
    /// The public key: the uncompressed point 04‖X‖Y.
    point: Vec<u8>,
    what: String,
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenKey({})", self.what)
    }
}

impl TokenKey {
    /// Opens the token and finds the key, making it there if it is not.
    pub fn open(uri: &KeyUri) -> Result<TokenKey, String> {
        let what = uri.describe();
        let fail = |step: &str, e: cryptoki::error::Error| format!("{what}: {step}: {e}");
        let ctx = Pkcs11::new(&uri.module).map_err(|e| fail("cannot load the module", e))?;
        ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
            .map_err(|e| fail("cannot initialise the module", e))?;
        let slots = ctx
            .get_slots_with_token()
            .map_err(|e| fail("cannot list its tokens", e))?;
        let mut chosen = None;
        for slot in slots {
            let info = ctx
                .get_token_info(slot)
                .map_err(|e| fail("cannot read a token", e))?;
            let label_ok = uri
                .token
                .as_deref()
                .is_none_or(|t| info.label().trim_end() == t);
            let serial_ok = uri
                .serial
                .as_deref()
                .is_none_or(|s| info.serial_number().trim_end() == s);
            if label_ok && serial_ok && info.token_initialized() {
                chosen = Some(slot);
                break;
            }
        }
        let slot = chosen.ok_or_else(|| {
            format!("{what}: no such initialised token (make it with `tpm2_ptool addtoken` or `pkcs11-tool --init-token`; docs/install.md)")
        })?;
        let session = ctx
            .open_rw_session(slot)
            .map_err(|e| fail("cannot open a session", e))?;
        let pin = match &uri.pin {
            None => None,
            Some(Pin::Value(v)) => Some(v.clone()),
            Some(Pin::File(p)) => Some(
                std::fs::read_to_string(p)
                    .map_err(|e| format!("{what}: cannot read the PIN from {}: {e}", p.display()))?
                    .trim_end_matches(['\r', '\n'])
                    .to_string(),
            ),
        };
        let pin = pin.map(AuthPin::from);
        match session.login(UserType::User, pin.as_ref()) {
            Ok(())
            | Err(cryptoki::error::Error::Pkcs11(
                cryptoki::error::RvError::UserAlreadyLoggedIn,
                _,
            )) => {}
            Err(e) => return Err(fail("cannot log in (is the user PIN right?)", e)),
        }
        let label = Attribute::Label(uri.object.as_bytes().to_vec());
        let find = |class: ObjectClass| {
            let mut template = vec![Attribute::Class(class), label.clone()];
            template.extend(uri.id.clone().map(Attribute::Id));
            session
                .find_objects(&template)
                .map_err(|e| fail("cannot search the token", e))
        };
        let (key, public) = match (find(ObjectClass::PRIVATE_KEY)?.first(), find(ObjectClass::PUBLIC_KEY)?.first()) {
            (Some(k), Some(p)) => (*k, *p),
            (Some(_), None) => {
                return Err(format!(
                    "{what}: the token holds the private key but not its public key object; remove the key or put its public key beside it"
                ))
            }
            _ => {
                let mut public = vec![
                    Attribute::Token(true),
                    Attribute::Verify(true),
                    Attribute::EcParams(P256.to_vec()),
                    label.clone(),
                ];
                let mut private = vec![
                    Attribute::Token(true),
                    Attribute::Private(true),
                    Attribute::Sensitive(true),
                    Attribute::Extractable(false),
                    Attribute::Sign(true),
                    label.clone(),
                ];
                if let Some(id) = &uri.id {
                    public.push(Attribute::Id(id.clone()));
                    private.push(Attribute::Id(id.clone()));
                }
                let (p, k) = session
                    .generate_key_pair(&Mechanism::EccKeyPairGen, &public, &private)
                    .map_err(|e| fail("cannot make a key pair", e))?;
                tracing::info!(key = %what, "made this device's key pair in the token");
                (k, p)
            }
        };
        let attrs = session
            .get_attributes(
                public,
                &[
                    AttributeType::KeyType,
                    AttributeType::EcParams,
                    AttributeType::EcPoint,
                ],
            )
            .map_err(|e| fail("cannot read the public key", e))?;
        let mut point = None;
        for a in attrs {
            match a {
                Attribute::KeyType(t) if t != KeyType::EC => {
                    return Err(format!(
                        "{what}: not an EC key; the agent uses P-256 keys in a token"
                    ))
                }
                Attribute::EcParams(p) if p != P256 => {
                    return Err(format!(
                        "{what}: not a P-256 key; the agent uses P-256 keys in a token"
                    ))
                }
                Attribute::EcPoint(p) => point = Some(uncompressed_point(&p)),
                _ => {}
            }
        }
        let point = point.flatten().ok_or_else(|| {
            format!("{what}: the public key's EC point is not an uncompressed P-256 point")
        })?;
        Ok(TokenKey {
            session: Mutex::new(session),
            key,
            point,
            what,
        })
    }

    /// The public key as an uncompressed point.
    pub fn point(&self) -> &[u8] {
        &self.point
    }

    /// ECDSA P-256 with SHA-256 over `msg`, made in the token, DER-encoded (as X.509 and TLS
    /// carry it).
    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, String> {
        let session = self
            .session
            .lock()
            .map_err(|_| format!("{}: the session is poisoned", self.what))?;
        let raw = session
            .sign(&Mechanism::EcdsaSha256, self.key, msg)
            .map_err(|e| format!("{}: cannot sign: {e}", self.what))?;
        der_signature(&raw).ok_or_else(|| {
            format!(
                "{}: the token returned a signature of {} bytes, not 64",
                self.what,
                raw.len()
            )
        })
    }
}

/// `CKA_EC_POINT` is the point wrapped in a DER OCTET STRING (some modules give it bare).
fn uncompressed_point(attr: &[u8]) -> Option<Vec<u8>> {
    match attr {
        [0x04, 65, rest @ ..] if rest.len() == 65 && rest[0] == 0x04 => Some(rest.to_vec()),
        [0x04, ..] if attr.len() == 65 => Some(attr.to_vec()),
        _ => None,
    }
}

/// PKCS#11 gives r‖s; X.509 and TLS want SEQUENCE { INTEGER r, INTEGER s }.
fn der_signature(raw: &[u8]) -> Option<Vec<u8>> {
    if raw.len() != 64 {
        return None;
    }
    let (r, s) = raw.split_at(32);
    Some(yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_bigint_bytes(r, true);
            w.next().write_bigint_bytes(s, true);
        })
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_and_points_are_converted() {
        let mut raw = vec![0u8; 64];
        raw[0] = 0x80; // r needs a leading zero to stay positive
        raw[63] = 1;
        let der = der_signature(&raw).unwrap();
        assert_eq!(&der[..5], &[0x30, 38, 0x02, 33, 0x00]);
        assert_eq!(&der[der.len() - 3..], &[0x02, 1, 1]);
        assert_eq!(der_signature(&raw[..63]), None);
        let mut point = vec![0x04];
        point.extend([7u8; 64]);
        let mut wrapped = vec![0x04, 65];
        wrapped.extend(&point);
        assert_eq!(uncompressed_point(&wrapped), Some(point.clone()));
        assert_eq!(uncompressed_point(&point), Some(point));
        assert_eq!(uncompressed_point(&[0x04, 3, 1, 2, 3]), None);
    }
}
