//! Faults made by the tests themselves: a PostgreSQL the test stops and starts again, an
//! upload over the server's limit, device clocks days ahead and years behind (faketime).
//! Each checks what a user would: reports delivered, the words of a refusal, the device's
//! tree, the history.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{bin, http, run, World};

/// A PostgreSQL server of this test's own (`scripts/postgres`), so stopping it harms no
/// other test; stopped and removed on drop.
struct PrivatePostgres {
    dir: PathBuf,
    url: String,
}

impl PrivatePostgres {
    fn start() -> PrivatePostgres {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        // Under /tmp: the postgres user must reach it.
        let dir = PathBuf::from(format!(
            "/tmp/ferry-fault-pg-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        let out = Self::script("start", &dir);
        let base = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let created = Command::new("psql")
            .arg(format!("{base}/postgres"))
            .args(["-v", "ON_ERROR_STOP=1", "-q", "-c", "CREATE DATABASE ferry"])
            .output()
            .expect("psql (from postgresql-client)");
        assert!(created.status.success(), "{created:?}");
        PrivatePostgres {
            dir,
            url: format!("{base}/ferry"),
        }
    }

    fn script(what: &str, dir: &std::path::Path) -> std::process::Output {
        let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/postgres"))
            .arg(what)
            .arg(dir)
            .stdin(Stdio::null())
            .output()
            .expect("scripts/postgres");
        assert!(
            out.status.success(),
            "scripts/postgres {what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Stops it as a crash would.
    fn pause(&self) {
        Self::script("pause", &self.dir);
    }

    fn resume(&self) {
        Self::script("resume", &self.dir);
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/postgres"))
            .arg("stop")
            .arg(&self.dir)
            .output();
    }
}

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "{what} within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// PostgreSQL goes away while a `full`-mode device installs (default-like poll interval of
/// an hour): the server says 503 within seconds (readiness too), the device keeps its
/// report and delivers it seconds after the database is back, not an hour later.
#[test]
fn a_database_outage_delays_reports_by_seconds_not_a_poll_interval() {
    let pg = PrivatePostgres::start();
    let w = World::with_database("", None, Some(pg.url.clone()));
    let marker = w.path("installing");
    w.release(
        "1.0.0",
        &[
            "--post-install",
            &format!("touch {}; sleep 3", marker.display()),
        ],
    );
    let d = w.add_device("d1", "poll_interval_secs = 3600");
    d.run("check").ok();
    let mut agent = d.spawn("full");

    w.ctl_json(&[
        "update",
        "trigger",
        "--host",
        "d1",
        "--item",
        "web",
        "--version",
        "1.0.0",
    ]);
    wait_until("the install started", Duration::from_secs(30), || {
        marker.exists()
    });
    pg.pause();
    let down = Instant::now();

    // The server answers at once, and says why; readiness says so too.
    let started = Instant::now();
    let listed = w.ctl(&["hosts", "list"]).code(1);
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "an operator request hung for {:?}",
        started.elapsed()
    );
    assert!(
        listed.stderr.contains("database is unavailable"),
        "{listed}"
    );
    let ready = http()
        .get(format!("{}/readyz", w.server.url()))
        .send()
        .unwrap();
    assert_eq!(ready.status().as_u16(), 503);
    let health = http()
        .get(format!("{}/healthz", w.server.url()))
        .send()
        .unwrap();
    assert_eq!(health.status().as_u16(), 200, "liveness is the process's");

    // The install finishes while the database is away; its report waits on the device.
    wait_until("the install finished", Duration::from_secs(30), || {
        d.current().as_deref() == Some("releases/1.0.0")
    });
    std::thread::sleep(Duration::from_secs(10).saturating_sub(down.elapsed()));
    pg.resume();
    let back = Instant::now();
    wait_until(
        "the report delivered after the database came back (not a poll interval later)",
        Duration::from_secs(120),
        || {
            w.ctl(&["history", "list", "--json"]).code == Some(0)
                && w.history()
                    .iter()
                    .any(|e| e["status"] == "installed" && e["version"] == "1.0.0")
        },
    );
    eprintln!(
        "report delivered {:?} after the database came back",
        back.elapsed()
    );
    assert_eq!(
        http()
            .get(format!("{}/readyz", w.server.url()))
            .send()
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    crate::util::signal(agent.id(), "TERM", false);
    let _ = agent.wait();
}

/// An upload the server refuses before reading it (over `max_artifact_bytes`): ferryctl says
/// the server's words, not "cannot reach the server".
#[test]
fn an_upload_over_the_limit_is_refused_in_the_servers_words() {
    let w = World::with_server_config("max_artifact_bytes = 100000\n");
    let src = w.payload("1.0.0", None);
    let noise = crate::util::noise(0x2545_F491_4F6C_DD1D, 600_000);
    std::fs::write(src.join("static/noise.bin"), noise).unwrap();
    let out = w.build("1.0.0", &src, &[]);
    let refused = w
        .ctl(&["release", "publish", out.to_str().unwrap()])
        .code(1);
    assert!(
        refused.stderr.contains("max_artifact_bytes") && refused.stderr.contains("413"),
        "{refused}"
    );
    assert!(!refused.stderr.contains("cannot reach"), "{refused}");
}

/// Clocks: a release that expired is refused at publish; a device two days ahead refuses a
/// release expiring tomorrow and says its clock is off, and installs it once the clock is
/// right (not remembered as failed); a device two years behind installs a valid release and
/// the history reads in the server's time, the device's own reading beside it.
#[test]
fn wrong_clocks_are_named_and_do_not_stick() {
    let w = World::new();
    // Signed three days ago to expire a day later: expired now.
    let src = w.payload("0.9.0", None);
    let mut cmd = Command::new("faketime");
    cmd.args(["-f", "-3d"])
        .arg(bin("ferryctl"))
        .args(["release", "build", "--item", "web", "--version", "0.9.0"])
        .arg("--from")
        .arg(&src)
        .args(["--key", "keys/release.key", "--out", "out-expired"])
        .args(["--expires-in-days", "1"])
        .current_dir(w.dir.path())
        .stdin(Stdio::null());
    run(cmd).ok();
    let refused = w.ctl(&["release", "publish", "out-expired"]).code(1);
    assert!(refused.stderr.contains("expired"), "{refused}");

    w.release("1.0.0", &["--expires-in-days", "1"]);
    let d = w.add_device("ahead", "auto_install = true");
    let run = d.run_at("+2d", "once");
    assert!(
        run.stderr.contains("expired") && run.stderr.contains("2 days ahead of the server's"),
        "{run}"
    );
    assert_eq!(d.current(), None);
    // The clock set right: the same release installs; it was not remembered as failed.
    d.run("once").ok();
    assert_eq!(d.current().as_deref(), Some("releases/1.0.0"));

    let behind = w.add_device("behind", "auto_install = true");
    behind.run_at("-730d", "once").ok();
    assert_eq!(behind.current().as_deref(), Some("releases/1.0.0"));
    let history = w.history();
    let entry = history
        .iter()
        .find(|e| e["hostname"] == "behind")
        .unwrap_or_else(|| panic!("{history:#?}"));
    let year = |v: &serde_json::Value| v.as_str().unwrap_or_default()[..4].to_string();
    let this_year = ferry_manifests::wire::now()[..4].to_string();
    assert_eq!(year(&entry["finished_at"]), this_year, "{entry}");
    assert_ne!(year(&entry["device_finished_at"]), this_year, "{entry}");
}

/// A tmpfs mounted for one test (the server's data directory on a small disk); unmounted on
/// drop. Mounting needs root, as the rest of the suite does (the package tests).
struct SmallDisk {
    path: PathBuf,
}

impl SmallDisk {
    fn mount(path: PathBuf, size: &str) -> SmallDisk {
        std::fs::create_dir_all(&path).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .output()
            .expect("mount");
        assert!(
            out.status.success(),
            "mounting a tmpfs for the full-disk test needs root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallDisk { path }
    }

    /// Writes a file until the disk is full, to the last byte.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let filler = self.path.join("filler");
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0x5au8; 64 * 1024];
        for _ in 0..10_000 {
            if f.write_all(&chunk).is_err() {
                break;
            }
        }
        // The last partial chunk, byte by byte in halves.
        let mut size = 32 * 1024;
        while size > 0 {
            if f.write_all(&chunk[..size]).is_err() {
                size /= 2;
            }
        }
        let _ = f.sync_all();
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// The server's disk full to the last byte: an upload is refused in words (507, naming the
/// directory and the free space) before it is stored, one without a declared length fails
/// with "disk is full" rather than a bare 500 or a reset connection, and once space is
/// freed the same release publishes.
#[test]
fn a_full_server_disk_is_named_and_passes() {
    let tmp = tempfile::tempdir().unwrap();
    let disk = SmallDisk::mount(tmp.path().join("disk"), "24m");
    let config = tmp.path().join("server.toml");
    std::fs::write(&config, "min_free_disk_mb = 4\n").unwrap();
    let data = disk.path.join("data");
    let server = crate::util::Server::start_instance(
        &data,
        Some(config),
        None,
        &tmp.path().join("server.log"),
    );
    let ctl = |args: &[&str]| {
        let mut cmd = Command::new(bin("ferryctl"));
        cmd.args(args)
            .current_dir(tmp.path())
            .env("FERRY_SERVER", server.url())
            .env(
                "FERRY_TOKEN",
                format!("@{}", data.join("operator.token").display()),
            )
            .stdin(Stdio::null());
        run(cmd)
    };
    ctl(&["keygen", "--out", "keys/release"]).ok();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(src.join("bin")).unwrap();
    std::fs::write(src.join("bin/web"), "#!/bin/sh\necho web\n").unwrap();
    ctl(&[
        "release",
        "build",
        "--item",
        "web",
        "--version",
        "1.0.0",
        "--from",
        "src",
        "--key",
        "keys/release.key",
        "--out",
        "out",
    ])
    .ok();

    let filler = disk.fill();
    let refused = ctl(&["release", "publish", "out"]).code(1);
    assert!(
        refused.stderr.contains("no room") && refused.stderr.contains("507"),
        "{refused}"
    );
    assert!(!refused.stderr.contains("cannot reach"), "{refused}");

    // No declared length: stored until the disk says no.
    let token = std::fs::read_to_string(data.join("operator.token")).unwrap();
    let body = std::io::Cursor::new(vec![7u8; 200 * 1024]);
    let answer = http()
        .put(format!("{}/api/v1/artifacts/blob.tar.gz", server.url()))
        .bearer_auth(token.trim())
        .body(reqwest::blocking::Body::new(body))
        .send()
        .unwrap();
    assert_eq!(answer.status().as_u16(), 507);
    let text = answer.text().unwrap();
    assert!(text.contains("disk is full"), "{text}");

    std::fs::remove_file(filler).unwrap();
    ctl(&["release", "publish", "out"]).ok();
    assert!(!server.log_text().contains("panicked"));
}
