//! Artifacts and deltas in object storage: a real S3 implementation (s3s-fs, the `s3s`
//! project's S3 server over a directory, from crates.io; scripts/test installs it) and three
//! server instances on one PostgreSQL database with a data directory each, sharing no disk.
//! An artifact published through one is installed through another (fetched from the store
//! once, then served with Range as always) and, with presigned URLs, from the store itself;
//! a delta one instance built is taken by another, not built again; an instance killed while
//! a fleet downloads through a balancer costs no install.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::balancer::Balancer;
use crate::util::{eventually, free_port, http, new_postgres_database, Device, Server, World};

const ACCESS_KEY: &str = "ferrytest";
const SECRET_KEY: &str = "ferrytest-secret-key-0123456789";
const BUCKET: &str = "ferry-fleet";

/// The S3 server, on a free loopback port over `dir`; stopped with the test.
struct S3 {
    child: Child,
    port: u16,
    root: PathBuf,
}

impl S3 {
    fn start(dir: &Path) -> S3 {
        let root = dir.join("s3");
        fs::create_dir_all(root.join(BUCKET)).unwrap();
        let port = free_port();
        let child = Command::new(s3s_fs())
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(&root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(dir.join("s3.log")).unwrap())
            .spawn()
            .expect("s3s-fs is needed (scripts/test installs it: cargo install s3s-fs)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "s3s-fs never listened");
            std::thread::sleep(Duration::from_millis(50));
        }
        S3 { child, port, root }
    }

    /// The object `key` under the fleet's prefix, as the S3 server stores it.
    fn object(&self, key: &str) -> PathBuf {
        self.root.join(BUCKET).join("fleet").join(key)
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where scripts/test installs s3s-fs, or the PATH's.
fn s3s_fs() -> PathBuf {
    let installed = PathBuf::from("/opt/s3s-fs/bin/s3s-fs");
    if installed.exists() {
        installed
    } else {
        PathBuf::from("s3s-fs")
    }
}

/// The files every instance is given (no shared disk: configuration management would put
/// them on each), and the server.toml that names the store.
fn shared_config(dir: &Path, s3: &S3, seed: u64) -> String {
    let shared = dir.join("shared");
    fs::create_dir_all(&shared).unwrap();
    fs::write(
        shared.join("s3-credentials.toml"),
        format!("access_key_id = \"{ACCESS_KEY}\"\nsecret_access_key = \"{SECRET_KEY}\"\n"),
    )
    .unwrap();
    fs::write(shared.join("secrets.key"), crate::util::noise(seed, 32)).unwrap();
    format!(
        "artifact_store = \"s3://{BUCKET}/fleet\"\nsecrets_key_file = \"{}\"\n\n[s3]\nendpoint = \"http://127.0.0.1:{}\"\nregion = \"us-east-1\"\ncredentials_file = \"{}\"\n",
        shared.join("secrets.key").display(),
        s3.port,
        shared.join("s3-credentials.toml").display()
    )
}

fn point_at(w: &World, d: &Device, url: &str) {
    let text = fs::read_to_string(&d.cfg)
        .unwrap()
        .replace(&w.server.url(), url);
    fs::write(&d.cfg, text).unwrap();
}

/// `ferry_artifact_bytes_served_total{kind="artifact"}` of one instance.
fn bytes_served(w: &World, server: &Server) -> f64 {
    let token = fs::read_to_string(w.server.data_dir.join("operator.token")).unwrap();
    let text = http()
        .get(format!("{}/metrics", server.url()))
        .bearer_auth(token.trim())
        .send()
        .unwrap()
        .text()
        .unwrap();
    text.lines()
        .find_map(|l| {
            l.strip_prefix("ferry_artifact_bytes_served_total{kind=\"artifact\"} ")?
                .parse()
                .ok()
        })
        .unwrap_or(-1.0)
}

#[test]
fn instances_with_their_own_data_directories_share_artifacts_and_deltas_through_the_store() {
    let database = new_postgres_database();
    let dir = tempfile::tempdir().unwrap();
    let s3 = S3::start(dir.path());
    let a_toml = shared_config(dir.path(), &s3, 7);
    let w = World::with_database("", Some(&a_toml), Some(database.clone()));
    let instance = |name: &str, extra: &str| {
        let cfg = w.path(&format!("{name}.toml"));
        fs::write(&cfg, format!("{a_toml}{extra}")).unwrap();
        Server::start_instance(
            &w.path(&format!("data-{name}")),
            Some(cfg),
            Some(database.clone()),
            &w.path(&format!("{name}.log")),
        )
    };
    let b = instance("b", "");
    let c = instance("c", "presigned_url_secs = 300\n");

    // Published through the first: in the store.
    w.release("1.0.0", &[]);
    let artifact = s3.object("artifacts/web-1.0.0.tar.gz");
    assert!(
        artifact.exists(),
        "not in the store: {}",
        artifact.display()
    );
    assert!(!b.data_dir.join("artifacts/web-1.0.0.tar.gz").exists());

    // Installed through the second, which fetches it once and serves it.
    let d1 = w.device();
    point_at(&w, &d1, &b.url());
    d1.run("once").ok();
    w.trigger(Some("1.0.0"));
    d1.run("once").ok();
    assert_eq!(d1.current().as_deref(), Some("releases/1.0.0"));
    let cached = b.data_dir.join("artifacts/web-1.0.0.tar.gz");
    assert_eq!(
        fs::read(&cached).unwrap(),
        fs::read(&artifact).unwrap(),
        "the cache is the store's bytes"
    );
    assert!(bytes_served(&w, &b) >= fs::metadata(&artifact).unwrap().len() as f64);

    // Through the third with presigned URLs: from the store itself.
    let d2 = w.add_device("presigned", "");
    point_at(&w, &d2, &c.url());
    d2.run("once").ok();
    w.ctl(&[
        "update",
        "trigger",
        "--host",
        "presigned",
        "--item",
        "web",
        "--version",
        "1.0.0",
    ])
    .ok();
    d2.run("once").ok();
    assert_eq!(d2.current().as_deref(), Some("releases/1.0.0"));
    assert_eq!(
        bytes_served(&w, &c),
        0.0,
        "the third instance sent the artifact itself"
    );
    assert!(!c.data_dir.join("artifacts/web-1.0.0.tar.gz").exists());
    // What the device was told: a URL of the store, signed, without its credential, that
    // opens with no credential at all.
    let credential: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(w.path("state-presigned/device.json")).unwrap())
            .unwrap();
    let device_token = credential["device_token"].as_str().unwrap();
    let no_redirects = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let answer = no_redirects
        .get(format!("{}/api/v1/artifacts/web-1.0.0.tar.gz", c.url()))
        .bearer_auth(device_token)
        .send()
        .unwrap();
    assert_eq!(answer.status(), 307);
    let location = answer.headers()["location"].to_str().unwrap().to_string();
    assert!(
        location.starts_with(&format!("http://127.0.0.1:{}/", s3.port))
            && location.contains("X-Amz-Signature")
            && !location.contains(device_token),
        "{location}"
    );
    let direct = http().get(&location).send().unwrap();
    assert_eq!(direct.status(), 200);
    assert_eq!(
        direct.bytes().unwrap().len() as u64,
        fs::metadata(&artifact).unwrap().len()
    );

    // A delta built once: by the instance that took the release, taken by the others.
    w.release("1.1.0", &[]);
    eventually("the delta is in the store", Duration::from_secs(30), || {
        s3.object("deltas/web/1.0.0-1.1.0.json").exists()
    });
    w.trigger(Some("1.1.0"));
    d1.run("once").ok();
    assert_eq!(d1.current().as_deref(), Some("releases/1.1.0"));
    eventually(
        "the second instance took the delta from the store",
        Duration::from_secs(20),
        || {
            let log = fs::read_to_string(w.path("b.log")).unwrap_or_default();
            log.contains("delta taken from the artifact store")
        },
    );
    let log = fs::read_to_string(w.path("b.log")).unwrap();
    assert!(!log.contains("delta built"), "built twice:\n{log}");
    assert!(w.server.log_text().contains("delta built"));
    drop(c);
    drop(b);
    drop(s3);
}

#[test]
fn an_instance_killed_while_a_fleet_downloads_from_the_store_costs_no_install() {
    let database = new_postgres_database();
    let dir = tempfile::tempdir().unwrap();
    let s3 = S3::start(dir.path());
    let toml = shared_config(dir.path(), &s3, 9);
    let w = World::with_database("", Some(&toml), Some(database.clone()));
    let mut others: Vec<Server> = (0..2)
        .map(|i| {
            Server::start_instance(
                &w.path(&format!("data-{i}")),
                Some(w.path("server.toml")),
                Some(database.clone()),
                &w.path(&format!("instance-{i}.log")),
            )
        })
        .collect();
    let balancer = Balancer::start(vec![
        w.server.addr.clone(),
        others[0].addr.clone(),
        others[1].addr.clone(),
    ]);
    // A release with 24 MiB of incompressible data: downloads take a while.
    let src = w.payload("1.0.0", None);
    fs::write(src.join("static/blob.bin"), crate::util::noise(3, 24 << 20)).unwrap();
    let out = w.build("1.0.0", &src, &[]);
    w.publish(&out);
    let devices: Vec<_> = (0..6)
        .map(|i| {
            let d = w.add_device(&format!("fleet-{i}"), "");
            point_at(&w, &d, &balancer.url());
            d
        })
        .collect();
    crate::load::trigger_each(&w, &devices, "1.0.0");
    let running: Vec<_> = devices.iter().map(|d| d.spawn("once")).collect();
    // Killed while it fetches the artifact from the store for a device (or, on a fast
    // machine, as soon as it has it and starts sending it).
    let cache = others[0].data_dir.join("artifacts");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cache.join("web-1.0.0.tar.fetching").exists() && !cache.join("web-1.0.0.tar.gz").exists()
    {
        assert!(
            Instant::now() < deadline,
            "no device came through the instance"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    others[0].kill();
    for mut child in running {
        let _ = child.wait();
    }
    for d in &devices {
        d.run("once").ok();
        assert_eq!(d.current().as_deref(), Some("releases/1.0.0"), "{}", d.name);
    }
    crate::load::assert_each_installed_once(&w, &devices);
    drop(s3);
}
