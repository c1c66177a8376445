//! Device identity decisions: which proof a device's request is judged by under
//! `device_auth`, what a proxy's client-certificate header holds, and when two devices are
//! using one identity.

use std::net::IpAddr;

use base64::Engine as _;

/// How devices may prove who they are (`--device-auth`, `device_auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceAuth {
    /// A client certificate only: bearer tokens are refused.
    Certificate,
    /// Bearer tokens only: certificates are neither issued nor looked at.
    Token,
    /// Either; a certificate wins when both are presented.
    Both,
}

impl std::str::FromStr for DeviceAuth {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "certificate" => Ok(DeviceAuth::Certificate),
            "token" => Ok(DeviceAuth::Token),
            "both" => Ok(DeviceAuth::Both),
            other => Err(format!(
                "device_auth is {other:?}; it must be certificate, token or both"
            )),
        }
    }
}

impl std::fmt::Display for DeviceAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DeviceAuth::Certificate => "certificate",
            DeviceAuth::Token => "token",
            DeviceAuth::Both => "both",
        })
    }
}

/// What a device's request is judged by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proof {
    Certificate,
    Token,
}

/// Which of what a request presented counts under `mode`, or why it is refused.
pub fn proof(mode: DeviceAuth, certificate: bool, token: bool) -> Result<Proof, String> {
    match (mode, certificate, token) {
        (DeviceAuth::Token, _, true) => Ok(Proof::Token),
        (DeviceAuth::Token, _, false) => {
            Err("missing device credential (Authorization: Bearer ...)".into())
        }
        (_, true, _) => Ok(Proof::Certificate),
        (DeviceAuth::Both, false, true) => Ok(Proof::Token),
        (DeviceAuth::Certificate, false, true) => Err(
            "this server accepts devices by client certificate only (device_auth = certificate); \
             the device's bearer token no longer counts: give it a certificate (docs/security.md)"
                .into(),
        ),
        (_, false, false) => Err(
            "missing device credential: a client certificate or Authorization: Bearer ...".into(),
        ),
    }
}

/// The certificate (DER) in a TLS-terminating proxy's header: PEM, URL-escaped or not
/// (nginx's `$ssl_client_escaped_cert`, its older `$ssl_client_cert` with tabs for
/// newlines), or base64 DER (HAProxy's `%[ssl_c_der,base64]`, Traefik).
pub fn decode_header_certificate(value: &str) -> Result<Vec<u8>, String> {
    let text = percent_encoding::percent_decode_str(value.trim())
        .decode_utf8()
        .map_err(|_| "it is not UTF-8 after URL-unescaping".to_string())?;
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let body = match text.find(BEGIN) {
        Some(start) => {
            let rest = &text[start + BEGIN.len()..];
            let end = rest
                .find(END)
                .ok_or_else(|| "its PEM has no END CERTIFICATE line".to_string())?;
            &rest[..end]
        }
        None => &text[..],
    };
    let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map_err(|e| format!("it is neither PEM nor base64 DER ({e})"))?;
    // A DER certificate is a SEQUENCE.
    if der.first() != Some(&0x30) {
        return Err("it does not decode to a DER certificate".into());
    }
    Ok(der)
}

/// A long-poll from `new` while the same identity holds one from `held`: the address of
/// another device using this identity, if it is one (the same address may be the device
/// reconnecting before its old connection timed out).
pub fn clone_at(held: &[IpAddr], new: IpAddr) -> Option<IpAddr> {
    let new = new.to_canonical();
    held.iter().map(|a| a.to_canonical()).find(|a| *a != new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mode_decides_which_proof_counts() {
        use DeviceAuth::*;
        use Proof as P;
        let table: &[(DeviceAuth, bool, bool, Option<Proof>)] = &[
            (Both, true, true, Some(P::Certificate)),
            (Both, true, false, Some(P::Certificate)),
            (Both, false, true, Some(P::Token)),
            (Both, false, false, None),
            (Certificate, true, false, Some(P::Certificate)),
            (Certificate, true, true, Some(P::Certificate)),
            (Certificate, false, true, None),
            (Certificate, false, false, None),
            (Token, true, true, Some(P::Token)),
            (Token, false, true, Some(P::Token)),
            (Token, true, false, None),
        ];
        for (mode, cert, token, want) in table {
            assert_eq!(
                proof(*mode, *cert, *token).ok(),
                *want,
                "{mode} cert={cert} token={token}"
            );
        }
        assert!(proof(Certificate, false, true)
            .unwrap_err()
            .contains("certificate only"));
        assert_eq!("both".parse::<DeviceAuth>(), Ok(Both));
        assert!("mtls".parse::<DeviceAuth>().is_err());
    }

    #[test]
    fn proxy_headers_in_each_proxys_encoding_decode_to_the_same_der() {
        let der: Vec<u8> = [0x30, 0x82, 0x01, 0x0a]
            .into_iter()
            .chain((0..200u8).map(|i| i.wrapping_mul(7)))
            .collect();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
        let lines: Vec<String> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| String::from_utf8(c.to_vec()).unwrap())
            .collect();
        let pem = format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            lines.join("\n")
        );
        let nginx_escaped: String =
            percent_encoding::utf8_percent_encode(&pem, percent_encoding::NON_ALPHANUMERIC)
                .to_string();
        let nginx_tabs = pem.replace('\n', "\t");
        for value in [&b64, &pem, &nginx_escaped, &nginx_tabs] {
            assert_eq!(decode_header_certificate(value).unwrap(), der, "{value}");
        }
        for bad in ["(null)", "-----BEGIN CERTIFICATE-----abc", "aGVsbG8="] {
            assert!(decode_header_certificate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_second_address_holding_the_same_identity_is_a_clone() {
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "198.51.100.7".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(clone_at(&[], a), None);
        assert_eq!(clone_at(&[a], a), None);
        assert_eq!(clone_at(&[mapped], a), None);
        assert_eq!(clone_at(&[a], b), Some(a));
    }
}
