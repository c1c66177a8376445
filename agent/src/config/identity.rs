//! `key`, `key_type` and `certificate` of agent.toml, checked: where this device's key is
//! (docs/configuration.md). `crate::identity` makes and uses the key.

use std::fmt;
use std::path::{Path, PathBuf};

/// The kind of key the agent makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    Ed25519,
    P256,
}

/// Where the device key is, when not in the state directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A private key file (PEM).
    File(PathBuf),
    /// A key in a TPM or other PKCS#11 token.
    Token(KeyUri),
}

/// `key`, `key_type` and `certificate` of agent.toml, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityConfig {
    /// A key to use instead of making one in the state directory.
    pub key: Option<KeySource>,
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
        let key_type_given = key_type;
        let key_type = match key_type {
            None | Some("ed25519") => KeyType::Ed25519,
            Some("p256") => KeyType::P256,
            Some(other) => {
                return Err(format!(
                    "key `key_type` = {other:?}: use \"ed25519\" (the default) or \"p256\""
                ))
            }
        };
        let key = match key {
            None => None,
            Some(k) if k.starts_with("pkcs11:") => {
                if key_type_given == Some("ed25519") {
                    return Err("key `key_type` = \"ed25519\": a key in a token (`key` = \"pkcs11:…\") is P-256; leave `key_type` out or set \"p256\"".into());
                }
                Some(KeySource::Token(KeyUri::parse(k, resolve)?))
            }
            Some(k) => {
                let k = resolve(Path::new(k));
                let pem = std::fs::read(&k)
                    .map_err(|e| format!("key `key` = {}: cannot read it: {e}", k.display()))?;
                if !String::from_utf8_lossy(&pem).contains("PRIVATE KEY-----") {
                    return Err(format!(
                        "key `key` = {}: not a PEM private key",
                        k.display()
                    ));
                }
                Some(KeySource::File(k))
            }
        };
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

    pub fn describe(&self) -> String {
        format!(
            "key {:?} in token {:?} ({})",
            self.object,
            self.token.as_deref().unwrap_or("(the first)"),
            self.module.display()
        )
    }
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
}
