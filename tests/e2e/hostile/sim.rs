//! The simulator: a small HTTP server on 127.0.0.1 that speaks Ferry's device protocol but
//! serves whatever a test tells it to, and the device that runs the real agent against it.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferry_manifests::manifest::{Artifact, Compression, FileEntry, Install};
use ferry_manifests::wire::Report;
use ferry_manifests::{Manifest, SigningKeyFile};
use sha2::{Digest, Sha256};

use crate::util::Run;

/// How the artifact is served.
#[derive(Clone)]
pub(super) enum Body {
    Bytes(Vec<u8>),
    /// The bytes, then garbage without end (until the client hangs up or 256 MiB).
    Endless(Vec<u8>),
    /// The bytes, one every `gap`.
    Trickle(Vec<u8>, Duration),
}

#[derive(Clone)]
pub(super) struct Offer {
    pub(super) version: String,
    pub(super) envelope: Body,
    pub(super) artifact: Body,
}

#[derive(Default)]
pub(super) struct Behaviour {
    /// The job offered at check-in, if any.
    pub(super) job: Option<Offer>,
    pub(super) reports: Vec<Report>,
    /// Answer this many report batches with 500 (the server failing to store them).
    pub(super) fail_reports: usize,
    /// Check-ins answered so far.
    pub(super) checkins: usize,
    /// Cut this many check-in answers off halfway through their body (a flaky link).
    pub(super) cut_checkins: usize,
}

pub(super) struct Hostile {
    pub(super) addr: String,
    pub(super) behaviour: Arc<Mutex<Behaviour>>,
}

/// Longest any served response may run; bounds every loop of the simulator.
pub(super) const MAX_RESPONSE_TIME: Duration = Duration::from_secs(30);

impl Hostile {
    pub(super) fn start() -> Hostile {
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

    pub(super) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub(super) fn offer(&self, offer: Offer) {
        self.behaviour.lock().unwrap().job = Some(offer);
    }

    pub(super) fn reports(&self) -> Vec<Report> {
        self.behaviour.lock().unwrap().reports.clone()
    }
}

pub(super) fn respond(stream: &mut TcpStream, status: &str, body: &[u8]) -> std::io::Result<()> {
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    stream.write_all(body)
}

pub(super) fn serve_body(stream: &mut TcpStream, body: &Body) -> std::io::Result<()> {
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

pub(super) fn serve(mut stream: TcpStream, shared: &Mutex<Behaviour>) -> std::io::Result<()> {
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
        shared.lock().unwrap().checkins += 1;
        let jobs = match &job {
            Some(o) => format!(
                r#"[{{"job_id":"job-{v}","item":"web","version":"{v}","manifest_path":"api/v1/releases/web/{v}/manifest"}}]"#,
                v = o.version
            ),
            None => "[]".into(),
        };
        let body = format!(r#"{{"host_id":"h1","available":[],"jobs":{jobs},"acked_reports":[]}}"#);
        let cut = {
            let mut b = shared.lock().unwrap();
            let cut = b.cut_checkins > 0;
            b.cut_checkins = b.cut_checkins.saturating_sub(1);
            cut
        };
        if cut {
            // The whole length announced, half of it sent, the connection closed.
            write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )?;
            return stream.write_all(&body.as_bytes()[..body.len() / 2]);
        }
        return respond(&mut stream, "200 OK", body.as_bytes());
    }
    if path == "/api/v1/device/reports" {
        {
            let mut b = shared.lock().unwrap();
            if b.fail_reports > 0 {
                b.fail_reports -= 1;
                drop(b);
                return respond(
                    &mut stream,
                    "500 Internal Server Error",
                    br#"{"code":"internal","message":"internal server error; see the server log"}"#,
                );
            }
        }
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
pub(super) struct Device {
    pub(super) dir: tempfile::TempDir,
    pub(super) key: SigningKeyFile,
    pub(super) other: SigningKeyFile,
    pub(super) server: Hostile,
}

pub(super) fn tarball(files: &[(&str, &[u8])]) -> (Vec<u8>, Vec<FileEntry>) {
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
            config: false,
        });
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar.into_inner().unwrap()).unwrap();
    (gz.finish().unwrap(), entries)
}

/// A valid release of `web` at `version`: (manifest, artifact bytes).
pub(super) fn release(version: &str) -> (Manifest, Vec<u8>) {
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
            bundle: None,
        },
        files,
        links: vec![],
        install: Install::default(),
    };
    (manifest, bytes)
}

impl Device {
    pub(super) fn new(extra: &str) -> Device {
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

    pub(super) fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// The device as the harness runs it.
    pub(super) fn device(&self) -> crate::util::Device {
        crate::util::Device {
            name: "hostile-victim".into(),
            cfg: self.dir.path().join("agent.toml"),
            root: self.root(),
        }
    }

    /// One `once` run of the real agent.
    pub(super) fn agent(&self) -> Run {
        self.device().run("once")
    }

    /// Installs a good 1.0.0 so there is something to protect.
    pub(super) fn install_v1(&self) -> Vec<String> {
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
    pub(super) fn assert_refused(&self, offer: Offer, why: &str) {
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

pub(super) fn signed(device: &Device, m: &Manifest) -> Body {
    Body::Bytes(m.sign(&[&device.key]).to_json().into_bytes())
}
