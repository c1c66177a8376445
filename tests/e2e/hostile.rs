//! A hostile or broken server, as in python-tuf's repository simulator: a small HTTP server on
//! 127.0.0.1 that speaks Ferry's device protocol but serves whatever a test tells it to, so
//! each attack of the TUF/Uptane list has its own test. For every one the agent must refuse
//! with a clear message, send a report, and leave the device exactly as it was.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferry_manifests::envelope::MANIFEST_PAYLOAD_TYPE;
use ferry_manifests::manifest::{Artifact, Compression, FileEntry, Install};
use ferry_manifests::wire::Report;
use ferry_manifests::{Envelope, Manifest, SigningKeyFile};
use sha2::{Digest, Sha256};

use crate::util::{bin, Run};

/// How the artifact is served.
#[derive(Clone)]
enum Body {
    Bytes(Vec<u8>),
    /// The bytes, then garbage without end (until the client hangs up or 256 MiB).
    Endless(Vec<u8>),
    /// The bytes, one every `gap`.
    Trickle(Vec<u8>, Duration),
}

#[derive(Clone)]
struct Offer {
    version: String,
    envelope: Body,
    artifact: Body,
}

#[derive(Default)]
struct Behaviour {
    /// The job offered at check-in, if any.
    job: Option<Offer>,
    reports: Vec<Report>,
}

struct Hostile {
    addr: String,
    behaviour: Arc<Mutex<Behaviour>>,
}

/// Longest any served response may run; bounds every loop of the simulator.
const MAX_RESPONSE_TIME: Duration = Duration::from_secs(30);

impl Hostile {
    fn start() -> Hostile {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let behaviour = Arc::new(Mutex::new(Behaviour::default()));
        let shared = Arc::clone(&behaviour);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let shared = Arc::clone(&shared);
                std::thread::spawn(move || {
                    let _ = serve(stream, &shared);
                });
            }
        });
        Hostile { addr, behaviour }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn offer(&self, offer: Offer) {
        self.behaviour.lock().unwrap().job = Some(offer);
    }

    fn reports(&self) -> Vec<Report> {
        self.behaviour.lock().unwrap().reports.clone()
    }
}

fn respond(stream: &mut TcpStream, status: &str, body: &[u8]) -> std::io::Result<()> {
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    stream.write_all(body)
}

fn serve_body(stream: &mut TcpStream, body: &Body) -> std::io::Result<()> {
    let started = Instant::now();
    match body {
        Body::Bytes(b) => respond(stream, "200 OK", b),
        Body::Endless(prefix) => {
            write!(stream, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")?;
            stream.write_all(prefix)?;
            let junk = vec![b'x'; 64 * 1024];
            for _ in 0..4096 {
                if started.elapsed() > MAX_RESPONSE_TIME {
                    break;
                }
                stream.write_all(&junk)?;
            }
            Ok(())
        }
        Body::Trickle(bytes, gap) => {
            write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                bytes.len()
            )?;
            for b in bytes {
                if started.elapsed() > MAX_RESPONSE_TIME {
                    break;
                }
                stream.write_all(&[*b])?;
                stream.flush()?;
                std::thread::sleep(*gap);
            }
            Ok(())
        }
    }
}

fn serve(mut stream: TcpStream, shared: &Mutex<Behaviour>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; length.min(16 * 1024 * 1024)];
    reader.read_exact(&mut body)?;
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .to_string();
    let job = shared.lock().unwrap().job.clone();
    if path == "/api/v1/enrol" {
        return respond(
            &mut stream,
            "200 OK",
            br#"{"host_id":"h1","device_token":"fdv_test"}"#,
        );
    }
    if path == "/api/v1/device/checkin" {
        let jobs = match &job {
            Some(o) => format!(
                r#"[{{"job_id":"job-{v}","item":"web","version":"{v}","manifest_path":"api/v1/releases/web/{v}/manifest"}}]"#,
                v = o.version
            ),
            None => "[]".into(),
        };
        let body = format!(r#"{{"host_id":"h1","available":[],"jobs":{jobs},"acked_reports":[]}}"#);
        return respond(&mut stream, "200 OK", body.as_bytes());
    }
    if path == "/api/v1/device/reports" {
        let batch: ferry_manifests::wire::ReportBatch = serde_json::from_slice(&body).unwrap();
        let ids: Vec<String> = batch.reports.iter().map(|r| r.report_id.clone()).collect();
        shared.lock().unwrap().reports.extend(batch.reports);
        return respond(
            &mut stream,
            "200 OK",
            serde_json::json!({ "acked": ids }).to_string().as_bytes(),
        );
    }
    if let Some(o) = job {
        if path.ends_with("/manifest") {
            return serve_body(&mut stream, &o.envelope);
        }
        if path.contains("/artifacts/") || path.starts_with("/slow/") {
            return serve_body(&mut stream, &o.artifact);
        }
    }
    respond(
        &mut stream,
        "404 Not Found",
        br#"{"code":"not_found","message":"no"}"#,
    )
}

/// The device side: keys, config, install root.
struct Device {
    dir: tempfile::TempDir,
    key: SigningKeyFile,
    other: SigningKeyFile,
    server: Hostile,
}

fn tarball(files: &[(&str, &[u8])]) -> (Vec<u8>, Vec<FileEntry>) {
    let mut tar = tar::Builder::new(Vec::new());
    let mut entries = Vec::new();
    for (path, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut h, path, *data).unwrap();
        entries.push(FileEntry {
            path: path.to_string(),
            sha256: hex::encode(Sha256::digest(data)),
            mode: 0o644,
            size: data.len() as u64,
        });
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar.into_inner().unwrap()).unwrap();
    (gz.finish().unwrap(), entries)
}

/// A valid release of `web` at `version`: (manifest, artifact bytes).
fn release(version: &str) -> (Manifest, Vec<u8>) {
    let content = format!("web {version}\n");
    let (bytes, files) = tarball(&[("bin/web", content.as_bytes())]);
    let now = time::OffsetDateTime::now_utc();
    let manifest = Manifest {
        item: "web".into(),
        version: version.parse().unwrap(),
        category: Default::default(),
        released_at: now,
        expires_at: now + time::Duration::days(30),
        notes: String::new(),
        release_url: None,
        compatible: vec![],
        allow_downgrade: false,
        artifact: Artifact {
            name: format!("web-{version}.tar.gz"),
            size: bytes.len() as u64,
            sha256: hex::encode(Sha256::digest(&bytes)),
            urls: vec![format!("web-{version}.tar.gz")],
            compression: Compression::Gzip,
        },
        files,
        install: Install::default(),
    };
    (manifest, bytes)
}

impl Device {
    fn new(extra: &str) -> Device {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKeyFile::from_seed([1; 32]);
        let other = SigningKeyFile::from_seed([2; 32]);
        fs::write(dir.path().join("a.pub"), key.public().to_file_string()).unwrap();
        fs::write(dir.path().join("b.pub"), other.public().to_file_string()).unwrap();
        let server = Hostile::start();
        fs::write(
            dir.path().join("agent.toml"),
            format!(
                "server_url = \"{}\"\nenrol_token = \"fen_x\"\nstate_dir = \"state\"\ntrusted_keys = [\"a.pub\"]\nread_timeout_secs = 2\ndownload_retries = 0\n{extra}\n\n[[items]]\nname = \"web\"\nroot = \"{}\"\n",
                server.url(),
                dir.path().join("root").display()
            ),
        )
        .unwrap();
        Device {
            dir,
            key,
            other,
            server,
        }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn agent(&self) -> Run {
        let mut cmd = Command::new(bin("ferry-agent"));
        cmd.arg("--config")
            .arg(self.dir.path().join("agent.toml"))
            .arg("--running-mode=once")
            .stdin(Stdio::null());
        let text = format!("{cmd:?}");
        let out = cmd.output().unwrap();
        Run {
            cmd: text,
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Installs a good 1.0.0 so there is something to protect.
    fn install_v1(&self) -> Vec<String> {
        let (m, bytes) = release("1.0.0");
        self.server.offer(Offer {
            version: "1.0.0".into(),
            envelope: Body::Bytes(m.sign(&[&self.key]).to_json().into_bytes()),
            artifact: Body::Bytes(bytes),
        });
        self.agent().ok();
        assert_eq!(
            fs::read_link(self.root().join("current")).unwrap(),
            Path::new("releases/1.0.0")
        );
        crate::util::World::tree(&self.root())
    }

    /// Offers `offer`, runs the agent, and checks the refusal end to end.
    fn assert_refused(&self, offer: Offer, why: &str) {
        let before = self.install_v1();
        let version = offer.version.clone();
        self.server.offer(offer);
        let run = self.agent().code(1);
        assert!(
            run.stderr.contains(why),
            "expected {why:?} in the log:\n{run}"
        );
        assert_eq!(
            crate::util::World::tree(&self.root()),
            before,
            "the device changed:\n{run}"
        );
        let downloads: Vec<_> = fs::read_dir(self.dir.path().join("state/downloads"))
            .unwrap()
            .flatten()
            .collect();
        assert!(downloads.is_empty(), "left in downloads: {downloads:?}");
        let reports = self.server.reports();
        let report = reports
            .iter()
            .find(|r| r.version.to_string() == version)
            .unwrap_or_else(|| panic!("no report of {version}: {reports:?}\n{run}"));
        assert_eq!(report.outcome.as_str(), "refused", "{report:?}");
        assert!(report.message.contains(why), "{report:?}");
        assert_eq!(
            report.job_id.as_deref(),
            Some(format!("job-{version}").as_str())
        );
    }
}

fn signed(device: &Device, m: &Manifest) -> Body {
    Body::Bytes(m.sign(&[&device.key]).to_json().into_bytes())
}

#[test]
fn missing_signatures_are_refused() {
    let d = Device::new("");
    let (m, bytes) = release("1.1.0");
    let mut env = m.sign(&[&d.key]);
    env.signatures.clear();
    d.assert_refused(
        Offer {
            version: "1.1.0".into(),
            envelope: Body::Bytes(env.to_json().into_bytes()),
            artifact: Body::Bytes(bytes),
        },
        "no signatures",
    );
}

#[test]
fn an_invalid_signature_by_a_trusted_key_is_refused() {
    let d = Device::new("");
    let (m, bytes) = release("1.1.0");
    let mut env = m.sign(&[&d.key]);
    // Sign other bytes with the right key: a valid signature, over the wrong payload.
    let forged = Envelope::sign(MANIFEST_PAYLOAD_TYPE, b"{}", &[&d.key]);
    env.signatures = forged.signatures;
    d.assert_refused(
        Offer {
            version: "1.1.0".into(),
            envelope: Body::Bytes(env.to_json().into_bytes()),
            artifact: Body::Bytes(bytes),
        },
        "invalid signatures by trusted keys",
    );
}

#[test]
fn a_signature_by_an_unknown_key_is_refused() {
    let d = Device::new("");
    let (m, bytes) = release("1.1.0");
    d.assert_refused(
        Offer {
            version: "1.1.0".into(),
            envelope: Body::Bytes(m.sign(&[&d.other]).to_json().into_bytes()),
            artifact: Body::Bytes(bytes),
        },
        &d.other.id.0,
    );
}

#[test]
fn another_payload_type_inside_the_signature_is_refused() {
    let d = Device::new("");
    let (m, bytes) = release("1.1.0");
    let env = Envelope::sign(
        "application/vnd.other.document+json",
        &m.to_payload(),
        &[&d.key],
    );
    d.assert_refused(
        Offer {
            version: "1.1.0".into(),
            envelope: Body::Bytes(env.to_json().into_bytes()),
            artifact: Body::Bytes(bytes),
        },
        "payload type",
    );
}

#[test]
fn one_key_repeated_does_not_meet_a_threshold_of_two() {
    let d = Device::new("");
    // Trust both keys and require two of them.
    let cfg = d.dir.path().join("agent.toml");
    let text = fs::read_to_string(&cfg).unwrap().replace(
        "trusted_keys = [\"a.pub\"]",
        "trusted_keys = [\"a.pub\", \"b.pub\"]\nsignature_threshold = 2",
    );
    fs::write(&cfg, text).unwrap();
    // install_v1 needs two signatures now.
    let (m1, b1) = release("1.0.0");
    d.server.offer(Offer {
        version: "1.0.0".into(),
        envelope: Body::Bytes(m1.sign(&[&d.key, &d.other]).to_json().into_bytes()),
        artifact: Body::Bytes(b1),
    });
    d.agent().ok();
    let before = crate::util::World::tree(&d.root());
    let (m, bytes) = release("1.1.0");
    let mut env = m.sign(&[&d.key]);
    env.signatures.push(env.signatures[0].clone());
    d.server.offer(Offer {
        version: "1.1.0".into(),
        envelope: Body::Bytes(env.to_json().into_bytes()),
        artifact: Body::Bytes(bytes),
    });
    let run = d.agent().code(1);
    assert!(
        run.stderr
            .contains("1 valid signature(s) from trusted keys, 2 required"),
        "{run}"
    );
    assert_eq!(crate::util::World::tree(&d.root()), before);
    assert!(d
        .server
        .reports()
        .iter()
        .any(|r| r.outcome.as_str() == "refused"));
}

#[test]
fn an_older_validly_signed_release_is_refused() {
    let d = Device::new("");
    let (m, bytes) = release("0.9.0");
    d.assert_refused(
        Offer {
            version: "0.9.0".into(),
            envelope: signed(&d, &m),
            artifact: Body::Bytes(bytes),
        },
        "rollback refused",
    );
}

#[test]
fn an_expired_manifest_is_refused() {
    let d = Device::new("");
    let (mut m, bytes) = release("1.1.0");
    m.expires_at = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    d.assert_refused(
        Offer {
            version: "1.1.0".into(),
            envelope: signed(&d, &m),
            artifact: Body::Bytes(bytes),
        },
        "expired",
    );
}

#[test]
fn an_endless_manifest_is_cut_off_before_parsing() {
    let d = Device::new("");
    let (_, bytes) = release("1.1.0");
    d.assert_refused(
        Offer {
            version: "1.1.0".into(),
            envelope: Body::Endless(b"{\"payloadType\":\"".to_vec()),
            artifact: Body::Bytes(bytes),
        },
        "more than the 4194304 allowed",
    );
}

#[test]
fn an_endless_artifact_is_cut_off_at_the_signed_size() {
    let d = Device::new("");
    let (m, bytes) = release("1.1.0");
    d.assert_refused(
        Offer {
            version: "1.1.0".into(),
            envelope: signed(&d, &m),
            artifact: Body::Endless(bytes),
        },
        "more than the",
    );
}

#[test]
fn a_release_for_another_device_class_is_refused() {
    let d = Device::new("device_class = \"kiosk-x86\"");
    let (mut m, bytes) = release("1.1.0");
    m.compatible = vec!["rpi4".into()];
    d.assert_refused(
        Offer {
            version: "1.1.0".into(),
            envelope: signed(&d, &m),
            artifact: Body::Bytes(bytes),
        },
        "device classes",
    );
}

#[test]
fn a_manifest_for_another_item_is_refused() {
    let d = Device::new("");
    let (mut m, bytes) = release("1.1.0");
    m.item = "api".into();
    d.assert_refused(
        Offer {
            version: "1.1.0".into(),
            envelope: signed(&d, &m),
            artifact: Body::Bytes(bytes),
        },
        "manifest is for item",
    );
}

#[test]
fn a_tarball_with_a_file_not_in_the_manifest_is_refused() {
    let d = Device::new("");
    let (mut m, _) = release("1.1.0");
    let (bytes, _) = tarball(&[("bin/web", b"web 1.1.0\n"), ("bin/extra", b"surprise")]);
    m.artifact.size = bytes.len() as u64;
    m.artifact.sha256 = hex::encode(Sha256::digest(&bytes));
    m.files = tarball(&[("bin/web", b"web 1.1.0\n")]).1;
    d.assert_refused(
        Offer {
            version: "1.1.0".into(),
            envelope: signed(&d, &m),
            artifact: Body::Bytes(bytes),
        },
        "not listed in the signed manifest",
    );
}

/// Slow retrieval: the first mirror trickles bytes below the minimum rate; the agent gives
/// it up and installs from the next one.
#[test]
fn a_slow_mirror_is_abandoned_for_the_next() {
    let d = Device::new("min_download_rate = 100000");
    d.install_v1();
    let (mut m, bytes) = release("1.1.0");
    m.artifact.urls = vec![
        format!("{}/slow/web-1.1.0.tar.gz", d.server.url()),
        format!("{}/api/v1/artifacts/web-1.1.0.tar.gz", d.server.url()),
    ];
    // Both URLs hit the same simulator; the trickle ends after the first connection.
    d.server.offer(Offer {
        version: "1.1.0".into(),
        envelope: signed(&d, &m),
        artifact: Body::Trickle(bytes.clone(), Duration::from_millis(50)),
    });
    let behaviour = Arc::clone(&d.server.behaviour);
    let fast = bytes.clone();
    // Switch the simulator to fast serving once the slow transfer has started.
    let switcher = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        if let Some(job) = behaviour.lock().unwrap().job.as_mut() {
            job.artifact = Body::Bytes(fast);
        }
    });
    let run = d.agent().ok();
    switcher.join().unwrap();
    assert!(run.stderr.contains("too slow"), "{run}");
    assert_eq!(
        fs::read_link(d.root().join("current")).unwrap(),
        Path::new("releases/1.1.0")
    );
    assert!(d
        .server
        .reports()
        .iter()
        .any(|r| r.version.to_string() == "1.1.0" && r.outcome.as_str() == "installed"));
}

/// SIGTERM during a download stops it at once, keeps the partial file, exits 6; the next run
/// finishes the job.
#[test]
fn sigterm_during_a_download_stops_cleanly_and_the_next_run_finishes() {
    let d = Device::new("min_download_rate = 0");
    d.install_v1();
    let (m, bytes) = release("1.1.0");
    d.server.offer(Offer {
        version: "1.1.0".into(),
        envelope: signed(&d, &m),
        artifact: Body::Trickle(bytes.clone(), Duration::from_millis(20)),
    });
    let mut child = Command::new(bin("ferry-agent"))
        .arg("--config")
        .arg(d.dir.path().join("agent.toml"))
        .arg("--running-mode=once")
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let part_exists = || {
        fs::read_dir(d.dir.path().join("state/downloads"))
            .unwrap()
            .flatten()
            .any(|e| {
                e.file_name().to_string_lossy().ends_with(".part")
                    && e.metadata().unwrap().len() > 0
            })
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !part_exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let signalled = Instant::now();
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(10),
            "did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(6), "{stderr}");
    assert!(stderr.contains("stopped by a signal"), "{stderr}");
    assert!(part_exists(), "the partial download was not kept");
    assert_eq!(
        fs::read_link(d.root().join("current")).unwrap(),
        Path::new("releases/1.0.0")
    );

    d.server
        .behaviour
        .lock()
        .unwrap()
        .job
        .as_mut()
        .unwrap()
        .artifact = Body::Bytes(bytes);
    d.agent().ok();
    assert_eq!(
        fs::read_link(d.root().join("current")).unwrap(),
        Path::new("releases/1.1.0")
    );
}
