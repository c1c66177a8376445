//! A throw-away certificate authority and a server certificate for 127.0.0.1 (openssl).

use std::fs;
use std::path::Path;
use std::process::Command;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is needed for the TLS test (apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Writes `ca.pem`/`ca.key` and `server.pem`/`server.key` (for IP 127.0.0.1, signed by the
/// CA) into `d`.
pub fn issue(d: &Path) {
    ca(d, "ca");
    signed(
        d,
        "ca",
        "server",
        "127.0.0.1",
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    );
}

/// Writes a certificate authority `NAME.pem`/`NAME.key` into `d` (a factory's CA, or a
/// rogue one).
pub fn ca(d: &Path, name: &str) {
    openssl(
        d,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
        ],
    );
}

/// Writes a device's key `NAME.key` and client certificate `NAME.pem` (subject CN `cn`),
/// signed by the CA `ca` in `d`: what a factory puts on a device.
pub fn client(d: &Path, ca: &str, name: &str, cn: &str) {
    signed(
        d,
        ca,
        name,
        cn,
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n",
    );
}

/// A new P-256 key `NAME.key` and its certificate `NAME.pem` (subject CN `cn`, extensions
/// `ext`), signed by the CA `ca` in `d`.
fn signed(d: &Path, ca: &str, name: &str, cn: &str, ext: &str) {
    openssl(
        d,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={cn}"),
        ],
    );
    fs::write(d.join(format!("{name}.cnf")), ext).unwrap();
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-extfile",
            &format!("{name}.cnf"),
        ],
    );
}
