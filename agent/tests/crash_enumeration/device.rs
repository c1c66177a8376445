//! The devices the crash enumeration installs on: signed releases staged as pending installs
//! in a state directory with no server, and the trees an install root may end in.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ferry_agent::config::Config;
use ferry_agent::fsops::{Fs, RealFs};
use ferry_agent::state::Pending;
use ferry_agent::{install, Agent};
use ferry_manifests::manifest::{Artifact, Compression, FileEntry, Install, LinkEntry};
use ferry_manifests::wire::Report;
use ferry_manifests::{Manifest, SigningKeyFile};
use sha2::{Digest, Sha256};

pub struct Release {
    pub layout: ferry_manifests::Layout,
    pub version: &'static str,
    pub files: Vec<(String, String, u32)>,
    /// Signed symlinks: path and target.
    pub links: Vec<(String, String)>,
    pub health_check: Option<&'static str>,
    /// Installed from a delta against the release before it, not from its artifact.
    pub via_delta: bool,
}

pub fn release(
    layout: ferry_manifests::Layout,
    version: &'static str,
    health_check: Option<&'static str>,
) -> Release {
    let mut files = vec![
        (
            "bin/web".into(),
            format!("#!/bin/sh\necho {version}\n"),
            0o755,
        ),
        (
            "static/index.html".into(),
            format!("<h1>{version}</h1>\n"),
            0o644,
        ),
    ];
    // A configuration file, edited on the device after the first install (`device_at`):
    // every upgrade keeps the edit and puts its own version beside it.
    files.push((
        "etc/app.conf".into(),
        format!("port = 80 # {version}\n"),
        0o644,
    ));
    if version == "1.0.0" {
        files.push(("only-in-1".into(), "old\n".into(), 0o600));
    } else {
        files.push(("assets/css/new.css".into(), "body{}\n".into(), 0o644));
    }
    // The same in every version: a delta takes it from the installed release.
    files.push(("static/logo.svg".into(), "<svg/>\n".into(), 0o644));
    // A library with its versioned name behind a link that moves, a link that stays, and
    // one only the first version has.
    files.push((
        format!("lib/libweb.so.{version}"),
        format!("elf {version}\n"),
        0o755,
    ));
    let mut links = vec![
        ("lib/libweb.so".to_string(), format!("libweb.so.{version}")),
        ("bin/start".to_string(), "web".to_string()),
    ];
    if version == "1.0.0" {
        links.push(("static/old".into(), "../only-in-1".into()));
    }
    Release {
        layout,
        version,
        files,
        links,
        health_check,
        via_delta: false,
    }
}

/// A device with the agent's config and state, but no server: installs run from staged
/// artifacts, as `--running-mode=install` does.
pub struct Device {
    pub dir: tempfile::TempDir,
    pub key: SigningKeyFile,
}

impl Device {
    pub fn new() -> Device {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKeyFile::from_seed([42; 32]);
        fs::write(
            dir.path().join("release.pub"),
            key.public().to_file_string(),
        )
        .unwrap();
        fs::write(
            dir.path().join("agent.toml"),
            format!(
                "server_url = \"http://127.0.0.1:9\"\nenrol_token = \"unused\"\nstate_dir = \"state\"\ntrusted_keys = [\"release.pub\"]\n\n[[items]]\nname = \"web\"\nroot = \"{}\"\n",
                dir.path().join("root").display()
            ),
        )
        .unwrap();
        Device { dir, key }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    pub fn config(&self) -> Config {
        Config::load(&self.dir.path().join("agent.toml")).unwrap()
    }

    pub fn open(&self, fs: Arc<dyn Fs>) -> Result<Agent, ferry_agent::error::Error> {
        // Tests run in parallel threads of one process: a hook forked by another test holds a
        // copy of every open descriptor (this test's lock too) until it execs, so a lock just
        // released can look held for a moment. A real agent is one process; wait it out here.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            match ferry_agent::run::open_with(self.config(), false, fs.clone()) {
                Err(ferry_agent::error::Error::Locked { .. })
                    if std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(5))
                }
                other => return other,
            }
        }
    }

    /// Puts a signed, downloaded release in the state directory as a pending install.
    pub fn stage(&self, r: &Release) {
        let mut tar = tar::Builder::new(Vec::new());
        let mut entries = Vec::new();
        for (path, content, mode) in &r.files {
            let mut h = tar::Header::new_gnu();
            h.set_size(content.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            tar.append_data(&mut h, path, content.as_bytes()).unwrap();
            entries.push(FileEntry {
                path: path.to_string(),
                sha256: hex::encode(Sha256::digest(content.as_bytes())),
                mode: *mode,
                size: content.len() as u64,
                config: path.ends_with(".conf"),
            });
        }
        for (path, target) in &r.links {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            tar.append_link(&mut h, path, target).unwrap();
        }
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &tar.into_inner().unwrap()).unwrap();
        let tarball = gz.finish().unwrap();
        let sha = hex::encode(Sha256::digest(&tarball));
        let now = time::OffsetDateTime::now_utc();
        let manifest = Manifest {
            item: "web".into(),
            version: r.version.parse().unwrap(),
            category: Default::default(),
            released_at: now,
            expires_at: now + time::Duration::days(1),
            notes: String::new(),
            release_url: None,
            compatible: vec![],
            allow_downgrade: false,
            artifact: Artifact {
                name: format!("web-{}.tar.gz", r.version),
                size: tarball.len() as u64,
                sha256: sha.clone(),
                urls: vec!["x".into()],
                compression: Compression::Gzip,
                bundle: None,
            },
            files: entries,
            links: r
                .links
                .iter()
                .map(|(path, target)| LinkEntry {
                    path: path.clone(),
                    target: target.clone(),
                })
                .collect(),
            install: Install {
                post_install: vec!["echo post-install".into()],
                health_check: r.health_check.map(str::to_string),
                units: vec![],
                layout: r.layout,
            },
        };
        let mut agent = self.open(Arc::new(RealFs)).unwrap();
        let envelope = format!("web-{}.json", r.version);
        fs::write(
            agent.dir.manifests().join(&envelope),
            manifest.sign(&[&self.key]).to_json(),
        )
        .unwrap();
        let mut delta = None;
        if r.via_delta {
            // A delta from the installed release (its manifest kept at its install).
            let kept = fs::read(agent.dir.installed_manifest("web")).unwrap();
            let a = Manifest::parse_unverified(&ferry_manifests::Envelope::parse(&kept).unwrap())
                .unwrap();
            let meta = ferry_manifests::delta::plan(&a, &manifest);
            assert!(!meta.copy.is_empty(), "the delta copies something");
            let mut t = tar::Builder::new(Vec::new());
            let mut add = |name: &str, data: &[u8]| {
                let mut h = tar::Header::new_gnu();
                h.set_size(data.len() as u64);
                h.set_mode(0o644);
                h.set_entry_type(tar::EntryType::Regular);
                t.append_data(&mut h, name, data).unwrap();
            };
            add("ferry-delta.json", &serde_json::to_vec(&meta).unwrap());
            for (path, content, _) in &r.files {
                if meta.carried.contains(path) {
                    add(path, content.as_bytes());
                }
            }
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut gz, &t.into_inner().unwrap()).unwrap();
            let bytes = gz.finish().unwrap();
            let dsha = hex::encode(Sha256::digest(&bytes));
            fs::write(agent.dir.artifact_path("web", &dsha), &bytes).unwrap();
            delta = Some(ferry_manifests::wire::DeltaOffer {
                from_version: a.version.clone(),
                path: "x".into(),
                size: bytes.len() as u64,
                sha256: dsha,
            });
        } else {
            fs::write(agent.dir.artifact_path("web", &sha), &tarball).unwrap();
        }
        agent.state.items.entry("web".into()).or_default().pending = Some(Pending {
            version: r.version.parse().unwrap(),
            job_id: Some(format!("job-{}", r.version)),
            envelope,
            downloaded: true,
            source: None,
            interactive: false,
            delta,
            mirrors: vec![],
            fetched: None,
            metered_allowed: false,
            peers: vec![],
            waiting: None,
        });
        agent.dir.save_state(&agent.state).unwrap();
    }

    pub fn install(&self, fs: Arc<dyn Fs>) -> Result<(), ferry_agent::error::Error> {
        let mut agent = self.open(fs)?;
        install::run(&mut agent).map(|_| ())
    }

    pub fn reports(&self) -> Vec<Report> {
        let mut out = Vec::new();
        for e in fs::read_dir(self.dir.path().join("state/reports"))
            .unwrap()
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".json") && !name.starts_with('.') {
                out.push(serde_json::from_slice(&fs::read(e.path()).unwrap()).unwrap());
            }
        }
        out
    }

    pub fn clear_reports(&self) {
        for e in fs::read_dir(self.dir.path().join("state/reports"))
            .unwrap()
            .flatten()
        {
            fs::remove_file(e.path()).unwrap();
        }
    }
}

/// Every path under `dir`: kind, mode, content or link target. The overlay layout's work
/// directory (`.ferry-web`, backups) is left out: what counts is what the item looks like.
pub fn tree(dir: &Path) -> Vec<String> {
    pub fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let mut entries: Vec<_> = fs::read_dir(dir).unwrap().flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            if e.file_name() == ".ferry-web" {
                continue;
            }
            let p = e.path();
            let rel = p.strip_prefix(base).unwrap().display().to_string();
            let m = fs::symlink_metadata(&p).unwrap();
            if m.file_type().is_symlink() {
                out.push(format!("{rel} -> {}", fs::read_link(&p).unwrap().display()));
            } else if m.is_dir() {
                out.push(format!("{rel}/ {:o}", m.permissions().mode() & 0o7777));
                walk(base, &p, out);
            } else {
                out.push(format!(
                    "{rel} {:o} {:?}",
                    m.permissions().mode() & 0o7777,
                    fs::read_to_string(&p).unwrap()
                ));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out
}

/// A device at 1.0.0 with `next` staged as a pending install. For the overlay layout the root
/// already holds files Ferry does not manage, and one it will replace.
pub fn device_at_v1(next: &Release) -> Device {
    device_at(&release(next.layout, "1.0.0", None), next)
}

pub fn device_at(first: &Release, next: &Release) -> Device {
    let d = Device::new();
    if next.layout == ferry_manifests::Layout::Overlay {
        fs::create_dir_all(d.root().join("etc")).unwrap();
        fs::write(d.root().join("etc/unmanaged.conf"), "keep me\n").unwrap();
        fs::create_dir_all(d.root().join("bin")).unwrap();
        fs::write(d.root().join("bin/web"), "#!/bin/sh\necho pre-ferry\n").unwrap();
    }
    d.stage(first);
    d.install(Arc::new(RealFs)).unwrap();
    let live = match next.layout {
        ferry_manifests::Layout::Symlink => d.root().join("current/etc/app.conf"),
        ferry_manifests::Layout::Overlay => d.root().join("etc/app.conf"),
    };
    if live.exists() {
        fs::write(&live, "port = 8080 # edited by hand\n").unwrap();
    }
    d.clear_reports();
    d.stage(next);
    d
}

/// The trees the root may end in: before and after a clean install of `next`.
pub fn expected_trees(next: &Release) -> (Vec<String>, Vec<String>) {
    let d = device_at_v1(next);
    let old = tree(&d.root());
    d.install(Arc::new(RealFs)).unwrap();
    let new = tree(&d.root());
    (old, new)
}
