//! Device identity: devices hold their own key and authenticate to the server with a client
//! certificate (mutual TLS), issued by the server's device CA at enrolment and renewed
//! before it expires, or made in a factory by a CA the operator trusts. Real ferry-server,
//! ferry-agent and ferryctl processes; CAs made with openssl.

use std::fs;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{bin, free_port, run, Device, Run};

/// A ferry-server over HTTPS in a directory of its own, started and restarted with flags.
struct Fleet {
    dir: tempfile::TempDir,
    addr: String,
    server: Option<Child>,
    /// Whether the server itself speaks TLS (else a proxy in front does).
    tls: bool,
    /// Where devices reach the server: the server, or the proxy in front of it.
    device_url: String,
}

impl Fleet {
    fn new() -> Fleet {
        let dir = tempfile::tempdir().unwrap();
        crate::util::certs::issue(dir.path());
        let addr = format!("127.0.0.1:{}", free_port());
        Fleet {
            device_url: format!("https://{addr}"),
            addr,
            dir,
            server: None,
            tls: true,
        }
    }

    fn d(&self) -> &Path {
        self.dir.path()
    }

    /// Starts the server with `args` and server.toml `toml`.
    fn start(&mut self, args: &[&str], toml: &str) {
        self.stop();
        let d = self.d().to_path_buf();
        fs::write(d.join("server.toml"), toml).unwrap();
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(d.join("server.log"))
            .unwrap();
        let child = Command::new(bin("ferry-server"))
            .args(["--listen", &self.addr, "--data-dir"])
            .arg(d.join("data"))
            .arg("--config")
            .arg(d.join("server.toml"))
            .args(if self.tls {
                vec![
                    "--tls-cert".into(),
                    d.join("server.pem").into_os_string(),
                    "--tls-key".into(),
                    d.join("server.key").into_os_string(),
                ]
            } else {
                vec![]
            })
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.server = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(&self.addr).is_err() || !d.join("data/enrol.token").exists() {
            assert!(
                Instant::now() < deadline,
                "the server did not start:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.server.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn log(&self) -> String {
        fs::read_to_string(self.d().join("server.log")).unwrap_or_default()
    }

    /// A device whose agent talks https to the server, pinning the test CA; `extra` is more
    /// agent.toml.
    fn device(&self, name: &str, extra: &str) -> Device {
        let d = self.d();
        let key = ferry_manifests::SigningKeyFile::from_seed([5; 32]);
        fs::write(d.join("release.pub"), key.public().to_file_string()).unwrap();
        let cfg = d.join(format!("{name}.toml"));
        fs::write(
            &cfg,
            format!(
                "server_url = \"{}\"\nstate_dir = \"state-{name}\"\ntrusted_keys = [\"release.pub\"]\nserver_ca = \"ca.pem\"\nhostname = \"{name}\"\ndownload_retries = 0\nconnect_timeout_secs = 5\n{extra}\n[[items]]\nname = \"web\"\nroot = \"{}\"\n",
                self.device_url,
                d.join(format!("root-{name}")).display()
            ),
        )
        .unwrap();
        Device {
            name: name.to_string(),
            cfg,
            root: d.join(format!("root-{name}")),
        }
    }

    fn ctl(&self, args: &[&str]) -> Run {
        let mut ctl = Command::new(bin("ferryctl"));
        ctl.args(args);
        if self.tls {
            ctl.args(["--server", &format!("https://{}", self.addr)])
                .arg("--ca-cert")
                .arg(self.d().join("ca.pem"));
        } else {
            ctl.args(["--server", &format!("http://{}", self.addr)]);
        }
        ctl.env(
            "FERRY_TOKEN",
            format!("@{}", self.d().join("data/operator.token").display()),
        );
        run(ctl)
    }

    fn hosts(&self) -> Vec<serde_json::Value> {
        let out = self.ctl(&["hosts", "list", "--json"]).ok();
        serde_json::from_str::<serde_json::Value>(&out.stdout)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }

    fn host(&self, hostname: &str) -> serde_json::Value {
        self.hosts()
            .into_iter()
            .find(|h| h["hostname"] == hostname)
            .unwrap_or_else(|| panic!("no host {hostname}:\n{:#?}", self.hosts()))
    }

    fn credential(&self, name: &str) -> serde_json::Value {
        let text = fs::read_to_string(self.d().join(format!("state-{name}/device.json"))).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    /// An HTTPS client pinning the test CA, presenting `identity` (certificate and key PEM).
    fn client(&self, identity: Option<Vec<u8>>) -> reqwest::blocking::Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let ca =
            reqwest::Certificate::from_pem(&fs::read(self.d().join("ca.pem")).unwrap()).unwrap();
        let mut b = reqwest::blocking::Client::builder()
            .tls_certs_only([ca])
            .timeout(Duration::from_secs(60));
        if let Some(pem) = identity {
            b = b.identity(reqwest::Identity::from_pem(&pem).unwrap());
        }
        b.build().unwrap()
    }

    /// A device's certificate and key, as it presents them.
    fn identity_of(&self, name: &str) -> Vec<u8> {
        let cred = self.credential(name);
        let mut pem = cred["certificate"].as_str().unwrap().as_bytes().to_vec();
        pem.extend(fs::read(self.d().join(format!("state-{name}/device.key"))).unwrap());
        pem
    }

    fn checkin(
        &self,
        client: &reqwest::blocking::Client,
        token: Option<&str>,
        wait: u64,
    ) -> reqwest::blocking::Response {
        let mut req = client
            .post(format!("{}/api/v1/device/checkin", self.device_url))
            .json(&serde_json::json!({
                "facts": {"hostname": "probe", "os": "linux", "os_version": "", "arch": "x86_64",
                          "agent_version": "0", "installed": []},
                "wait_secs": wait,
            }));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().unwrap()
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.stop();
    }
}

fn enrol_token(d: &Path) -> String {
    format!(
        "enrol_token_file = \"{}\"\n",
        d.join("data/enrol.token").display()
    )
}

#[test]
fn a_device_enrols_with_its_own_key_authenticates_by_certificate_and_renews_it_before_expiry() {
    let mut f = Fleet::new();
    // Certificates live 12 s here, so renewal (after 8 s) and expiry are seen in a test.
    f.start(&[], "device_certificate_lifetime_secs = 12\n");
    let device = f.device("cert-1", &enrol_token(f.d()));
    device.run("check").ok();

    // The key was made on the device, private to the agent; the credential is a certificate.
    let key = f.d().join("state-cert-1/device.key");
    let mode = fs::metadata(&key).unwrap().permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );
    let key_text = fs::read_to_string(&key).unwrap();
    let cred = f.credential("cert-1");
    assert_eq!(cred["device_token"], "", "{cred:#}");
    let first = cred["certificate"].as_str().unwrap().to_string();
    assert!(first.contains("BEGIN CERTIFICATE"));
    assert!(
        !f.log().contains(key_text.lines().nth(1).unwrap()),
        "the private key reached the server's log"
    );
    let host = f.host("cert-1");
    assert_eq!(host["auth"], "certificate", "{host:#}");

    // Without the certificate, a device route is refused; with it, answered.
    let anonymous = f.checkin(&f.client(None), None, 0);
    assert_eq!(anonymous.status(), 401);
    let ok = f.checkin(&f.client(Some(f.identity_of("cert-1"))), None, 0);
    assert_eq!(ok.status(), 200);
    let body: serde_json::Value = ok.json().unwrap();
    assert_eq!(body["host_id"], host["id"]);
    assert_eq!(body["issues_certificates"], true);

    // Two thirds into its life, the next check renews it over the same identity.
    std::thread::sleep(Duration::from_millis(8_500));
    let renewing = device.run("check").ok();
    let second = f.credential("cert-1")["certificate"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(first, second, "not renewed:\n{renewing}");
    assert!(
        renewing
            .stderr
            .contains("renewed this device's certificate"),
        "{renewing}"
    );
    // Past the first certificate's expiry, the device carries on with the new one. Validity
    // is in whole seconds and its last second still counts, so wait until 14 s after issue.
    std::thread::sleep(Duration::from_millis(5_500));
    device.run("check").ok();
    let old = {
        let mut pem = first.into_bytes();
        pem.extend(key_text.as_bytes());
        pem
    };
    let expired = f
        .client(Some(old))
        .post(format!("https://{}/api/v1/device/checkin", f.addr))
        .json(&serde_json::json!({}))
        .send();
    assert!(
        expired.is_err() || expired.as_ref().is_ok_and(|r| r.status() == 401),
        "an expired certificate was accepted: {expired:?}"
    );
    assert_eq!(f.hosts().len(), 1, "renewal made another host");
}

#[test]
fn token_devices_move_to_certificates_in_place_then_tokens_other_cas_and_removed_hosts_are_refused()
{
    let mut f = Fleet::new();
    let d = f.d().to_path_buf();
    crate::util::certs::ca(&d, "factory-ca");
    crate::util::certs::client(&d, "factory-ca", "made-1", "line-7-unit-0042");
    crate::util::certs::ca(&d, "rogue-ca");
    crate::util::certs::client(&d, "rogue-ca", "rogue-1", "rogue");

    // A fleet of bearer-token devices.
    f.start(&["--device-auth", "token"], "");
    let old = f.device("old-1", &enrol_token(&d));
    old.run("check").ok();
    let token = f.credential("old-1")["device_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!token.is_empty());
    assert_eq!(f.host("old-1")["auth"], "token");
    assert!(f.credential("old-1")["certificate"].is_null());

    // The operator allows certificates: at its next check the device takes one, in place.
    f.start(&["--device-auth", "both"], "");
    let moved = old.run("check").ok();
    assert!(
        moved
            .stderr
            .contains("this device now authenticates with a certificate"),
        "{moved}"
    );
    assert_eq!(f.host("old-1")["auth"], "certificate");
    assert_eq!(f.hosts().len(), 1);

    // Certificates only, and a factory CA trusted.
    let factory = d.join("factory-ca.pem");
    f.start(
        &[
            "--device-auth",
            "certificate",
            "--device-ca-file",
            factory.to_str().unwrap(),
        ],
        "",
    );
    old.run("check").ok();
    let replayed = f.checkin(&f.client(None), Some(&token), 0);
    assert_eq!(replayed.status(), 401);
    let why = replayed.text().unwrap();
    assert!(why.contains("certificate only"), "{why}");

    // A device made in the factory joins on first contact, without a token, named by its
    // certificate's subject.
    let made = f.device(
        "made-1",
        &format!(
            "key = \"{}\"\ncertificate = \"{}\"\n",
            d.join("made-1.key").display(),
            d.join("made-1.pem").display()
        ),
    );
    made.run("check").ok();
    let joined = f.host("line-7-unit-0042");
    assert_eq!(joined["auth"], "certificate");
    assert_eq!(joined["accepted"], true);
    assert!(f.credential("made-1")["device_token"]
        .as_str()
        .unwrap()
        .is_empty());

    // A certificate from another CA does not get through the handshake, and the agent says
    // why.
    let rogue = f.device(
        "rogue-1",
        &format!(
            "key = \"{}\"\ncertificate = \"{}\"\n",
            d.join("rogue-1.key").display(),
            d.join("rogue-1.pem").display()
        ),
    );
    let refused = rogue.run("check");
    assert_ne!(refused.code, Some(0), "{refused}");
    assert!(
        refused.stderr.contains("refused this device's certificate"),
        "{refused}"
    );
    assert_eq!(f.hosts().len(), 2);

    // The device's certificate and key copied to a second device: both hold long-polls at
    // once, from two addresses, and the server says so.
    let hold = |from: &str| {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let ca = reqwest::Certificate::from_pem(&fs::read(d.join("ca.pem")).unwrap()).unwrap();
        let client = reqwest::blocking::Client::builder()
            .tls_certs_only([ca])
            .identity(reqwest::Identity::from_pem(&f.identity_of("old-1")).unwrap())
            .local_address(Some(from.parse().unwrap()))
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let addr = f.addr.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            let resp = client
                .post(format!("https://{addr}/api/v1/device/checkin"))
                .json(&serde_json::json!({
                    "facts": {"hostname": "old-1", "os": "linux", "os_version": "", "arch": "x86_64",
                              "agent_version": "0", "installed": []},
                    "wait_secs": 50,
                }))
                .send()
                .unwrap();
            (
                resp.status().as_u16(),
                resp.text().unwrap(),
                started.elapsed(),
            )
        })
    };
    let real = hold("127.0.0.1");
    let deadline = Instant::now() + Duration::from_secs(10);
    while f.host("old-1")["long_polling"] != true {
        assert!(Instant::now() < deadline, "the long-poll was not held");
        std::thread::sleep(Duration::from_millis(100));
    }
    let cloned = hold("127.0.0.2");
    let deadline = Instant::now() + Duration::from_secs(10);
    let shown = loop {
        let shown = f.ctl(&["hosts", "show", "old-1", "--json"]).ok();
        let v: serde_json::Value = serde_json::from_str(&shown.stdout).unwrap();
        if !v["clone_seen"].is_null() {
            break v;
        }
        assert!(Instant::now() < deadline, "no clone seen:\n{v:#}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let clone = shown["clone_seen"].as_str().unwrap();
    assert!(
        clone.contains("127.0.0.1") && clone.contains("127.0.0.2"),
        "{clone}"
    );
    assert_eq!(shown["certificates"][0]["source"], "issued", "{shown:#}");
    let text = f.ctl(&["hosts", "show", "old-1"]).ok().stdout;
    assert!(text.contains("CLONE"), "{text}");
    let audit = f.ctl(&["audit", "list", "--json"]).ok().stdout;
    assert!(audit.contains("suspected_clone"), "{audit}");

    // A removed host is refused in the middle of its long-polls, and its certificate for
    // good: the factory device cannot join again with it.
    f.ctl(&["hosts", "remove", "old-1"]).ok();
    for held in [real, cloned] {
        let (status, body, took) = held.join().unwrap();
        assert_eq!(status, 401, "{body}");
        assert!(body.contains("removed"), "{body}");
        assert!(took < Duration::from_secs(20), "answered after {took:?}");
    }
    f.ctl(&["hosts", "remove", "line-7-unit-0042"]).ok();
    fs::remove_file(d.join("state-made-1/device.json")).unwrap();
    let again = made.run("check");
    assert_ne!(again.code, Some(0), "{again}");
    assert!(again.stderr.contains("revoked"), "{again}");
    assert!(f.hosts().is_empty(), "{:#?}", f.hosts());
}

/// nginx terminating TLS in front of the server, verifying device certificates against the
/// server's device CA and passing them on in `X-Client-Cert`, from 127.0.0.2.
struct Nginx {
    child: Child,
}

impl Nginx {
    fn start(d: &Path, port: u16, upstream: &str) -> Nginx {
        let dir = d.join("nginx");
        fs::create_dir_all(&dir).unwrap();
        let p = |name: &str| dir.join(name).display().to_string();
        let conf = format!(
            "daemon off;\nuser root;\npid {pid};\nerror_log {err} info;\nevents {{ worker_connections 64; }}\nhttp {{\n  access_log off;\n  client_body_temp_path {t}/body;\n  proxy_temp_path {t}/proxy;\n  fastcgi_temp_path {t}/fastcgi;\n  uwsgi_temp_path {t}/uwsgi;\n  scgi_temp_path {t}/scgi;\n  server {{\n    listen 127.0.0.1:{port} ssl;\n    ssl_certificate {cert};\n    ssl_certificate_key {key};\n    ssl_client_certificate {ca};\n    ssl_verify_client optional;\n    location / {{\n      proxy_pass http://{upstream};\n      proxy_bind 127.0.0.2;\n      proxy_http_version 1.1;\n      proxy_read_timeout 120s;\n      proxy_set_header X-Client-Cert $ssl_client_escaped_cert;\n    }}\n  }}\n}}\n",
            pid = p("nginx.pid"),
            err = p("error.log"),
            t = dir.display(),
            cert = d.join("server.pem").display(),
            key = d.join("server.key").display(),
            ca = d.join("data/device-ca.pem").display(),
        );
        fs::write(dir.join("nginx.conf"), conf).unwrap();
        let child = Command::new("nginx")
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx is needed for the proxy test (apt-get install nginx-light)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nginx did not start:\n{}",
                fs::read_to_string(dir.join("error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Nginx { child }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM: the master stops its workers, then itself (SIGKILL would leave them).
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn behind_a_tls_terminating_proxy_the_certificate_header_counts_from_the_proxy_only() {
    let mut f = Fleet::new();
    f.tls = false;
    let nginx_port = free_port();
    f.device_url = format!("https://127.0.0.1:{nginx_port}");
    f.start(
        &[],
        "client_cert_header = \"X-Client-Cert\"\ntrusted_proxies = [\"127.0.0.2\"]\n",
    );
    let d = f.d().to_path_buf();
    assert!(
        d.join("data/device-ca.pem").exists(),
        "the device CA was not made"
    );
    let _nginx = Nginx::start(&d, nginx_port, &f.addr);

    let device = f.device("proxied-1", &enrol_token(&d));
    device.run("check").ok();
    device.run("check").ok();
    let host = f.host("proxied-1");
    assert_eq!(host["auth"], "certificate", "{host:#}");
    assert_eq!(f.credential("proxied-1")["device_token"], "");

    // Through the proxy: with the certificate answered, without refused.
    let through = f.checkin(&f.client(Some(f.identity_of("proxied-1"))), None, 0);
    assert_eq!(through.status(), 200);
    assert_eq!(
        through.json::<serde_json::Value>().unwrap()["host_id"],
        host["id"]
    );
    assert_eq!(f.checkin(&f.client(None), None, 0).status(), 401);

    // The header straight to the server, from an address that is not the proxy's: refused,
    // in words, whatever certificate it names.
    let cert = f.credential("proxied-1")["certificate"]
        .as_str()
        .unwrap()
        .to_string();
    let forged = reqwest::blocking::Client::new()
        .post(format!("http://{}/api/v1/device/checkin", f.addr))
        .header("X-Client-Cert", cert.replace('\n', "\t"))
        .json(&serde_json::json!({
            "facts": {"hostname": "forged", "os": "linux", "os_version": "", "arch": "x86_64",
                      "agent_version": "0", "installed": []},
            "wait_secs": 0,
        }))
        .send()
        .unwrap();
    assert_eq!(forged.status(), 403);
    let why = forged.text().unwrap();
    assert!(why.contains("trusted_proxies"), "{why}");

    // Removed, its certificate is refused through the proxy too.
    // (The probe check-ins renamed it: by id.)
    f.ctl(&["hosts", "remove", host["id"].as_str().unwrap()])
        .ok();
    let gone = f.checkin(&f.client(Some(f.identity_of("proxied-1"))), None, 0);
    assert_eq!(gone.status(), 401);
    assert!(gone.text().unwrap().contains("revoked"));
}

/// A TPM 2.0 simulated by swtpm, reached by tpm2-pkcs11 through its swtpm TCTI, with one
/// initialised token (`ferry`, user PIN 1234) and no key yet.
struct Tpm {
    child: Child,
    env: Vec<(String, String)>,
}

const TPM2_PKCS11: &str = "/usr/lib/x86_64-linux-gnu/pkcs11/libtpm2_pkcs11.so";

impl Tpm {
    fn start(d: &Path) -> Tpm {
        let state = d.join("tpm-state");
        let store = d.join("tpm-store");
        fs::create_dir_all(&state).unwrap();
        fs::create_dir_all(&store).unwrap();
        // The swtpm TCTI finds the control channel at the next port.
        let (port, ctrl) = (0..100)
            .map(|_| free_port())
            .find(|p| std::net::TcpListener::bind(("127.0.0.1", p + 1)).is_ok())
            .map(|p| (p, p + 1))
            .expect("no two free ports in a row");
        let child = Command::new("swtpm")
            .args(["socket", "--tpm2", "--flags", "not-need-init,startup-clear"])
            .arg("--server")
            .arg(format!("type=tcp,port={port},bindaddr=127.0.0.1"))
            .arg("--ctrl")
            .arg(format!("type=tcp,port={ctrl},bindaddr=127.0.0.1"))
            .arg("--tpmstate")
            .arg(format!("dir={}", state.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("swtpm is needed for the TPM test (apt-get install swtpm)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "swtpm did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        let tpm = Tpm {
            child,
            env: vec![
                (
                    "TPM2_PKCS11_TCTI".into(),
                    format!("swtpm:host=127.0.0.1,port={port}"),
                ),
                ("TPM2_PKCS11_STORE".into(), store.display().to_string()),
            ],
        };
        tpm.tool(&["--init-token", "--label", "ferry", "--so-pin", "12345678"])
            .ok();
        tpm.tool(&[
            "--token-label",
            "ferry",
            "--login",
            "--login-type",
            "so",
            "--so-pin",
            "12345678",
            "--init-pin",
            "--pin",
            "1234",
        ])
        .ok();
        tpm
    }

    /// pkcs11-tool on the token.
    fn tool(&self, args: &[&str]) -> Run {
        let mut cmd = Command::new("pkcs11-tool");
        cmd.args(["--module", TPM2_PKCS11]).args(args);
        cmd.envs(self.env.iter().cloned());
        run(cmd)
    }
}

impl Drop for Tpm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_key_made_in_a_tpm_signs_the_request_and_every_handshake_and_never_leaves_it() {
    let mut f = Fleet::new();
    f.start(&[], "device_certificate_lifetime_secs = 12\n");
    let tpm = Tpm::start(f.d());
    let pin = f.d().join("tpm.pin");
    fs::write(&pin, "1234\n").unwrap();
    let device = f.device(
        "tpm-1",
        &format!(
            "{}key = \"pkcs11:token=ferry;object=device?module-path={TPM2_PKCS11}&pin-source={}\"\n",
            enrol_token(f.d()),
            pin.display()
        ),
    );
    let agent = |mode: &str| {
        let mut cmd = device.mode(mode);
        cmd.envs(tpm.env.iter().cloned());
        run(cmd)
    };
    let first = agent("check").ok();
    assert!(
        first
            .stderr
            .contains("made this device's key pair in the token"),
        "{first}"
    );
    // The key is in the token, not the state directory, and the token will not give it out.
    assert!(!f.d().join("state-tpm-1/device.key").exists());
    let objects = tpm
        .tool(&["--token-label", "ferry", "--login", "--pin", "1234", "-O"])
        .ok();
    assert!(
        objects.stdout.contains("Private Key Object; EC"),
        "{objects}"
    );
    let private = objects
        .stdout
        .split("Private Key Object")
        .nth(1)
        .unwrap_or_default();
    assert!(
        private.contains("sensitive") && private.contains("never extractable"),
        "{objects}"
    );

    // The server certified the token's key and the device authenticates with it.
    let host = f.host("tpm-1");
    assert_eq!(host["auth"], "certificate", "{host:#}");
    assert_eq!(f.credential("tpm-1")["device_token"], "");
    agent("check").ok();

    // Renewal: a new request signed in the token, then handshakes with the new certificate.
    let before = f.credential("tpm-1")["certificate"].clone();
    std::thread::sleep(Duration::from_millis(8_500));
    let renewing = agent("check").ok();
    assert!(
        renewing
            .stderr
            .contains("renewed this device's certificate"),
        "{renewing}"
    );
    assert_ne!(f.credential("tpm-1")["certificate"], before);
    agent("check").ok();
    assert_eq!(f.hosts().len(), 1, "{:#?}", f.hosts());

    // A wrong PIN is a clear configuration error, not a network one.
    fs::write(&pin, "9999\n").unwrap();
    let wrong = agent("check");
    assert_eq!(wrong.code, Some(2), "{wrong}");
    assert!(
        wrong
            .stderr
            .contains("cannot log in (is the user PIN right?)"),
        "{wrong}"
    );
}
