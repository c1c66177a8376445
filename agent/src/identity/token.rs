//! A device key held in a token: a TPM 2.0 through tpm2-pkcs11, or any PKCS#11 module. The
//! key is made inside the token on first use (P-256, not extractable) and every signature (the
//! certificate request, each TLS handshake) is made there; the private key never exists
//! outside it.
//!
//! The key is named by a PKCS#11 URI (RFC 7512) in agent.toml:
//! `pkcs11:token=ferry;object=device?module-path=/usr/lib/…/libtpm2_pkcs11.so&pin-source=/etc/ferry/pin`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;

/// DER of the named curve prime256v1 (1.2.840.10045.3.1.7), as `CKA_EC_PARAMS` holds it.
const P256: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// Where tpm2-pkcs11 is installed by Debian and by Yocto's meta-security.
const DEFAULT_MODULES: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu/pkcs11/libtpm2_pkcs11.so",
    "/usr/lib/aarch64-linux-gnu/pkcs11/libtpm2_pkcs11.so",
    "/usr/lib/arm-linux-gnueabihf/pkcs11/libtpm2_pkcs11.so",
    "/usr/lib/pkcs11/libtpm2_pkcs11.so",
    "/usr/lib/libtpm2_pkcs11.so",
];

/// A PKCS#11 URI naming the device key, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyUri {
    /// The PKCS#11 module (`module-path`, else tpm2-pkcs11 where it is installed).
    pub module: PathBuf,
    /// The token's label (`token`), else the first token there is.
    pub token: Option<String>,
    /// The token's serial number (`serial`).
    pub serial: Option<String>,
    /// The key's label (`object`): found, or made on first use.
    pub object: String,
    /// The key's id (`id`), set on a key the agent makes.
    pub id: Option<Vec<u8>>,
    /// The user PIN: given (`pin-value`) or read from a file (`pin-source`) when the token is
    /// opened.
    pub pin: Option<Pin>,
}

#[derive(Clone, PartialEq, Eq)]
pub enum Pin {
    Value(String),
    File(PathBuf),
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pin::Value(_) => f.write_str("Pin::Value(…)"),
            Pin::File(p) => write!(f, "Pin::File({})", p.display()),
        }
    }
}

impl KeyUri {
    /// Parses `pkcs11:…`; relative paths (`pin-source`, `module-path`) are resolved by
    /// `resolve`.
    pub fn parse(text: &str, resolve: &dyn Fn(&Path) -> PathBuf) -> Result<KeyUri, String> {
        let bad = |why: String| format!("key `key` = {text:?}: {why}");
        let rest = text
            .strip_prefix("pkcs11:")
            .ok_or_else(|| bad("a PKCS#11 URI starts with \"pkcs11:\"".into()))?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let decode = |v: &str| -> Result<Vec<u8>, String> {
            Ok(percent_encoding::percent_decode_str(v).collect())
        };
        let text_of = |k: &str, v: &str| -> Result<String, String> {
            String::from_utf8(decode(v)?).map_err(|_| bad(format!("`{k}` is not UTF-8")))
        };
        let mut uri = KeyUri {
            module: PathBuf::new(),
            token: None,
            serial: None,
            object: String::new(),
            id: None,
            pin: None,
        };
        let mut module = None;
        for (sep, part) in [(';', path), ('&', query)] {
            for attr in part.split(sep).filter(|a| !a.is_empty()) {
                let (k, v) = attr
                    .split_once('=')
                    .ok_or_else(|| bad(format!("{attr:?} is not NAME=VALUE")))?;
                match (sep, k) {
                    (';', "token") => uri.token = Some(text_of(k, v)?),
                    (';', "serial") => uri.serial = Some(text_of(k, v)?),
                    (';', "object") => uri.object = text_of(k, v)?,
                    (';', "id") => uri.id = Some(decode(v)?),
                    (';', "type") if v == "private" => {}
                    ('&', "pin-value") => uri.pin = Some(Pin::Value(text_of(k, v)?)),
                    ('&', "pin-source") => {
                        let v = text_of(k, v)?;
                        let p = v.strip_prefix("file:").unwrap_or(&v);
                        uri.pin = Some(Pin::File(resolve(Path::new(p))));
                    }
                    ('&', "module-path") => module = Some(resolve(Path::new(&text_of(k, v)?))),
                    _ => {
                        return Err(bad(format!(
                            "`{k}` is not understood here; use token, serial, object, id (and type=private) before `?`, module-path, pin-value or pin-source after it"
                        )))
                    }
                }
            }
        }
        if uri.object.is_empty() {
            return Err(bad(
                "name the key with `object=LABEL` (the agent makes it in the token if it is not there)".into(),
            ));
        }
        uri.module = match module {
            Some(m) => m,
            None => DEFAULT_MODULES
                .iter()
                .map(PathBuf::from)
                .find(|p| p.exists())
                .ok_or_else(|| {
                    bad("no `module-path`, and tpm2-pkcs11 (libtpm2_pkcs11.so) is not installed where it is looked for; install it or give `module-path=`".into())
                })?,
        };
        if !uri.module.exists() {
            return Err(bad(format!(
                "the PKCS#11 module {} does not exist",
                uri.module.display()
            )));
        }
        Ok(uri)
    }

    fn describe(&self) -> String {
        format!(
            "key {:?} in token {:?} ({})",
            self.object,
            self.token.as_deref().unwrap_or("(the first)"),
            self.module.display()
        )
    }
}

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

    fn parse(text: &str) -> Result<KeyUri, String> {
        KeyUri::parse(text, &|p| Path::new("/etc/ferry").join(p))
    }

    #[test]
    fn a_uri_names_module_token_key_and_pin() {
        let uri = parse("pkcs11:token=my%20fleet;object=device;id=%01%02;type=private?module-path=/bin/sh&pin-source=file:pin").unwrap();
        assert_eq!(uri.module, PathBuf::from("/bin/sh"));
        assert_eq!(uri.token.as_deref(), Some("my fleet"));
        assert_eq!(uri.object, "device");
        assert_eq!(uri.id, Some(vec![1, 2]));
        assert_eq!(uri.pin, Some(Pin::File("/etc/ferry/pin".into())));
        let uri = parse("pkcs11:object=k?module-path=/bin/sh&pin-value=1234").unwrap();
        assert_eq!(uri.pin, Some(Pin::Value("1234".into())));
        assert!(
            !format!("{uri:?}").contains("1234"),
            "a PIN is never printed"
        );
    }

    #[test]
    fn bad_uris_say_what_is_wrong() {
        for (text, says) in [
            ("pkcs11:token=a?module-path=/bin/sh", "object=LABEL"),
            (
                "pkcs11:object=a;slot-id=3?module-path=/bin/sh",
                "`slot-id` is not understood",
            ),
            (
                "pkcs11:object=a;token?module-path=/bin/sh",
                "is not NAME=VALUE",
            ),
            (
                "pkcs11:object=a?module-path=/nonexistent/p11.so",
                "does not exist",
            ),
            ("pkcs11:object=%ff?module-path=/bin/sh", "not UTF-8"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(says), "{text}: {e}");
        }
    }

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
