//! A device with no ferry-server: releases come from a static release repository
//! (`ferryctl release publish --to-dir`) served by a plain static web server on loopback
//! (`python3 -m http.server`), with the same verification, rollback and status as a fleet
//! device; and a device with both keys, whose releases come from the repository while its
//! reports still go to the server.

use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{free_port, Device, World};

/// `python3 -m http.server` serving `dir` on 127.0.0.1; killed on drop.
pub(crate) struct StaticHost {
    child: Child,
    pub(crate) url: String,
}

impl StaticHost {
    /// Serves `dir`; `url` is its `releases/` directory.
    pub(crate) fn start(dir: &Path) -> StaticHost {
        fs::create_dir_all(dir).unwrap();
        let port = free_port();
        let child = Command::new("python3")
            .args(["-m", "http.server", "--bind", "127.0.0.1"])
            .arg(port.to_string())
            .arg("--directory")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 -m http.server (install python3)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the static web server did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        StaticHost {
            child,
            url: format!("http://127.0.0.1:{port}/releases"),
        }
    }
}

impl Drop for StaticHost {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A world (for its release key and ferryctl) with a repository at `site/releases` served
/// over loopback, and a device that knows only the repository.
fn standalone(extra: &str) -> (World, StaticHost, Device, PathBuf) {
    let w = World::new();
    let repo = w.path("site/releases");
    fs::create_dir_all(&repo).unwrap();
    let host = StaticHost::start(&w.path("site"));
    let device = Device {
        name: "pi".into(),
        cfg: w.path("pi.toml"),
        root: w.path("device/pi-web"),
    };
    fs::write(
        &device.cfg,
        format!(
            "repository_url = \"{}\"\nstate_dir = \"state-pi\"\ntrusted_keys = [\"keys/release.pub\"]\nauto_install = true\n{extra}\n[[items]]\nname = \"web\"\nroot = \"{}\"\n",
            host.url,
            device.root.display()
        ),
    )
    .unwrap();
    (w, host, device, repo)
}

/// Builds `version` (with `extra` build flags) and adds it to the repository.
fn publish(w: &World, repo: &Path, version: &str, extra: &[&str]) {
    let src = w.payload(version, None);
    let out = w.build(version, &src, extra);
    add_to_repository(w, repo, &out);
}

/// `ferryctl release publish --to-dir`, signing the index with the world's key.
fn add_to_repository(w: &World, repo: &Path, out: &Path) {
    try_adding(w, repo, out).ok();
}

/// As [`add_to_repository`], for a test that expects a refusal.
fn try_adding(w: &World, repo: &Path, out: &Path) -> crate::util::Run {
    w.ctl(&[
        "release",
        "publish",
        "--to-dir",
        repo.to_str().unwrap(),
        "--key",
        "keys/release.key",
        out.to_str().unwrap(),
    ])
}

fn web_output(d: &Device) -> String {
    let out = Command::new(d.root.join("current/bin/web"))
        .output()
        .expect("run the installed bin/web");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `publish --to-dir` writes deltas from earlier releases; a device takes the one from its
/// installed version. `python3 -m http.server` ignores Range: a resumed download starts over,
/// and the agent says why.
#[test]
fn a_repository_serves_deltas_and_a_host_ignoring_range_is_named() {
    let (w, _host, pi, repo) = standalone("");
    // 256 KiB that do not compress and do not change between versions.
    let big = crate::util::noise(0x9E37_79B9_7F4A_7C15, 256 * 1024);
    for version in ["1.0.0", "1.1.0"] {
        let src = w.payload(version, None);
        fs::write(src.join("static/big.bin"), &big).unwrap();
        let out = w.build(version, &src, &[]);
        let run = try_adding(&w, &repo, &out).ok();
        if version == "1.1.0" {
            assert!(run.stdout.contains("delta from 1.0.0 to 1.1.0"), "{run}");
        } else {
            pi.run("once").ok();
            assert_eq!(web_output(&pi), "web 1.0.0");
        }
    }
    let delta = fs::read(repo.join("web-1.0.0-1.1.0.delta.tar.gz")).unwrap();
    let artifact = fs::metadata(repo.join("web-1.1.0.tar.gz")).unwrap().len();
    assert!(
        (delta.len() as u64) * 10 < artifact,
        "{} of {artifact}",
        delta.len()
    );
    // An interrupted earlier run left the start of the delta.
    use sha2::Digest;
    let sha = hex::encode(sha2::Sha256::digest(&delta));
    let downloads = w.path("state-pi/downloads");
    fs::create_dir_all(&downloads).unwrap();
    fs::write(downloads.join(format!("web-{sha}.part")), &delta[..100]).unwrap();

    let run = pi.run("once").ok();
    assert!(run.stderr.contains("downloaded a delta"), "{run}");
    assert!(run.stderr.contains("ignored the Range request"), "{run}");
    assert_eq!(web_output(&pi), "web 1.1.0");
    assert_eq!(
        fs::read(pi.root.join("current/static/big.bin")).unwrap(),
        big
    );
}

#[test]
fn a_device_with_no_server_installs_upgrades_and_rolls_back_from_a_static_host() {
    let (w, _host, pi, repo) = standalone("");
    publish(&w, &repo, "1.0.0", &[]);
    assert!(repo.join("web.index.json").is_file());

    // Nothing installed yet: auto_install takes the newest release.
    pi.run("once").ok();
    assert_eq!(web_output(&pi), "web 1.0.0");

    publish(&w, &repo, "1.1.0", &["--notes", "Faster."]);
    let checked = pi.run("check").ok();
    assert!(checked.stderr.contains("1.1.0"), "{checked}");
    let s = pi.status_json();
    assert_eq!(s["items"][0]["available"]["version"], "1.1.0", "{s}");
    assert_eq!(s["items"][0]["available"]["notes"], "Faster.", "{s}");
    pi.run("once").ok();
    assert_eq!(web_output(&pi), "web 1.1.0");

    // A release whose health check fails rolls back by itself.
    publish(&w, &repo, "1.2.0", &["--health-check", "exit 3"]);
    pi.run("once").code(1);
    assert_eq!(web_output(&pi), "web 1.1.0");
    let s = pi.status_json();
    assert_eq!(s["items"][0]["installed"], "1.1.0", "{s}");
    assert_eq!(
        s["items"][0]["last_install"]["outcome"], "rolled_back",
        "{s}"
    );
    assert_eq!(s["server_url"], serde_json::Value::Null, "{s}");
    // The outcomes stay on the device, newest first.
    assert_eq!(s["history"][0]["version"], "1.2.0", "{s}");
    assert_eq!(s["history"][0]["outcome"], "rolled_back", "{s}");
    assert_eq!(s["history"][1]["version"], "1.1.0", "{s}");
    assert_eq!(s["history"][1]["outcome"], "installed", "{s}");
    // The failed version is not retried by itself.
    pi.run("once").ok();
    assert_eq!(web_output(&pi), "web 1.1.0");

    // Rollback by hand, as a dashboard's button runs it.
    pi.run_args(&["--running-mode=rollback", "--item", "web"])
        .ok();
    assert_eq!(web_output(&pi), "web 1.0.0");
    let text = pi.run("status").ok();
    assert!(text.stdout.contains("repository:"), "{text}");
    assert!(text.stdout.contains("rolled_back"), "{text}");
    assert!(
        !pi.cfg
            .parent()
            .unwrap()
            .join("state-pi/reports")
            .read_dir()
            .unwrap()
            .any(|_| true),
        "no server: nothing waits to be sent"
    );
}

#[test]
fn an_expired_or_replayed_index_and_a_tampered_artifact_are_refused() {
    let (w, _host, pi, repo) = standalone("");
    publish(&w, &repo, "1.0.0", &[]);
    pi.run("check").ok();
    let old_index = fs::read(repo.join("web.index.json")).unwrap();

    // An index signed to expire at once: refused, and the check says why and what to do.
    let sign_index = |days: &str| {
        w.ctl(&[
            "release",
            "index",
            "--dir",
            repo.to_str().unwrap(),
            "--key",
            "keys/release.key",
            "--index-expires-in-days",
            days,
        ])
    };
    let reindex = |days: &str| {
        sign_index(days).ok();
    };
    // A zero-day expiry is refused at signing: it would sign an index already expired.
    let zero = sign_index("0").code(2);
    assert!(zero.stderr.contains("index-expires-in-days"), "{zero}");
    // An index that expired a minute ago, signed with the release key, as a stale mirror
    // would serve it.
    let envelope = ferry_manifests::Envelope::parse(&old_index).unwrap();
    let mut index: ferry_manifests::ReleaseIndex =
        serde_json::from_slice(&envelope.unverified_payload().unwrap()).unwrap();
    let now = time::OffsetDateTime::now_utc();
    index.issued_at = now - time::Duration::minutes(2);
    index.expires_at = now - time::Duration::minutes(1);
    let key = ferry_manifests::SigningKeyFile::load(&w.path("keys/release.key")).unwrap();
    fs::write(repo.join("web.index.json"), index.sign(&[&key]).to_json()).unwrap();
    let run = pi.run("check").code(1);
    assert!(run.stderr.contains("expired"), "{run}");
    assert!(run.stderr.contains("ferryctl release"), "{run}");
    // The text status says the check failed and why, as --json does; no server, no host id.
    let text = pi.run("status").ok();
    assert!(text.stdout.contains("last check:  FAILED"), "{text}");
    assert!(text.stdout.contains("expired"), "{text}");
    assert!(text.stdout.contains("last good:"), "{text}");
    assert!(!text.stdout.contains("not enrolled"), "{text}");
    let s = pi.status_json();
    assert_eq!(s["last_check"]["ok"], false, "{s}");
    assert!(
        s["last_check"]["error"]
            .as_str()
            .unwrap_or("")
            .contains("expired"),
        "{s}"
    );

    // A fresh index (signed a second later), then the old one served again: a replay.
    std::thread::sleep(Duration::from_millis(1100));
    reindex("7");
    pi.run("check").ok();
    fs::write(repo.join("web.index.json"), &old_index).unwrap();
    let run = pi.run("check").code(1);
    assert!(run.stderr.contains("old index"), "{run}");
    assert_eq!(pi.current(), None, "nothing was installed meanwhile");

    // A fresh index again; the artifact on the host altered by one byte: refused.
    std::thread::sleep(Duration::from_millis(1100));
    reindex("7");
    let artifact = repo.join("web-1.0.0.tar.gz");
    let mut bytes = fs::read(&artifact).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    fs::write(&artifact, bytes).unwrap();
    let run = pi.run("once").code(1);
    assert!(run.stderr.contains("sha256"), "{run}");
    assert_eq!(pi.current(), None, "{run}");
    let s = pi.status_json();
    assert_eq!(s["items"][0]["last_install"]["outcome"], "refused", "{s}");
}

/// Without a server: the installed version is not offered again; a version that failed is
/// not retried by `once` (a rollback is not a retryable cause), but a person's explicit
/// `--running-mode=install` (the dashboard's button) tries it again.
#[test]
fn a_failed_version_is_retried_when_a_person_asks_and_the_newest_is_not_offered_again() {
    let (w, _host, pi, repo) = standalone("");
    publish(&w, &repo, "1.0.0", &[]);
    pi.run("once").ok();
    let s = pi.status_json();
    assert_eq!(s["items"][0]["installed"], "1.0.0", "{s}");
    assert_eq!(s["items"][0]["available"], serde_json::Value::Null, "{s}");
    let again = pi.run("once").ok();
    assert!(!again.stderr.contains("newly available"), "{again}");

    // 1.1.0 fails its health check while a marker exists.
    let marker = format!("{}.fail", pi.root.display());
    fs::write(&marker, "").unwrap();
    publish(
        &w,
        &repo,
        "1.1.0",
        &["--health-check", "test ! -e \"$FERRY_ROOT.fail\""],
    );
    pi.run("once").code(1);
    assert_eq!(pi.current().as_deref(), Some("releases/1.0.0"));
    let s = pi.status_json();
    assert_eq!(s["items"][0]["last_failed"], "1.1.0", "{s}");
    // Not retried by itself.
    pi.run("once").ok();
    assert_eq!(pi.current().as_deref(), Some("releases/1.0.0"));

    // The cause is fixed; a person asks: it installs.
    fs::remove_file(&marker).unwrap();
    let run = pi.run("install").ok();
    assert!(run.stderr.contains("trying again"), "{run}");
    assert_eq!(pi.current().as_deref(), Some("releases/1.1.0"), "{run}");
    let s = pi.status_json();
    assert_eq!(s["items"][0]["installed"], "1.1.0", "{s}");
    assert_eq!(s["items"][0]["last_failed"], serde_json::Value::Null, "{s}");
    assert_eq!(s["items"][0]["available"], serde_json::Value::Null, "{s}");
}

/// A release whose tarball escapes the root: `ferryctl` will not add it to a repository, and a
/// device that finds it there anyway (copied by hand and indexed) refuses it.
#[test]
fn a_tarball_entry_escaping_the_root_is_refused_by_ferryctl_and_the_device() {
    let (w, _host, pi, repo) = standalone("");
    publish(&w, &repo, "1.0.0", &[]);
    pi.run("once").ok();
    let installed = pi.current();
    assert!(installed.is_some());
    let out = crate::refusals::escaping_release(&w, "out-evil");
    let run = try_adding(&w, &repo, &out).code(1);
    assert!(run.stderr.contains("every device would refuse it"), "{run}");
    assert!(!repo.join("web-1.1.0.manifest.json").exists());

    for name in ["web-1.1.0.tar.gz", "web-1.1.0.manifest.json"] {
        fs::copy(out.join(name), repo.join(name)).unwrap();
    }
    w.ctl(&[
        "release",
        "index",
        "--dir",
        repo.to_str().unwrap(),
        "--key",
        "keys/release.key",
    ])
    .ok();
    let run = pi.run("once").code(1);
    assert!(run.stderr.contains("unsafe tarball"), "{run}");
    assert_eq!(pi.current(), installed, "{run}");
    assert!(!w.path("escaped").exists());
    assert!(!w.path("device/escaped").exists());
    assert!(!pi.root.join("escaped").exists());
    let s = pi.status_json();
    assert_eq!(s["items"][0]["last_install"]["outcome"], "refused", "{s}");
}

#[test]
fn with_a_server_too_releases_come_from_the_repository_and_reports_go_to_the_server() {
    let (w, _host, pi, repo) = standalone("");
    let text = fs::read_to_string(&pi.cfg).unwrap();
    fs::write(
        &pi.cfg,
        format!(
            "server_url = \"{}\"\nenrol_token_file = \"server-data/enrol.token\"\nhostname = \"pi\"\n{text}",
            w.server.url()
        ),
    )
    .unwrap();
    publish(&w, &repo, "1.0.0", &[]);
    pi.run("once").ok();
    assert_eq!(web_output(&pi), "web 1.0.0");
    // The server holds no release, yet its history has the device's install.
    assert_eq!(w.ctl_json(&["releases", "list"]), serde_json::json!([]));
    let history = w.history();
    assert!(
        history
            .iter()
            .any(|h| h["version"] == "1.0.0" && h["status"] == "installed"),
        "{history:?}"
    );
}

/// Builds `version` with `etc/app.conf` and `etc/other.conf` (both configuration files) and
/// adds it to the repository.
fn publish_with_configs(w: &World, repo: &Path, version: &str, layout: &str) {
    let src = w.payload(&format!("{layout}-{version}"), None);
    fs::write(
        src.join("bin/web"),
        format!("#!/bin/sh\necho web {version}\n"),
    )
    .unwrap();
    fs::create_dir_all(src.join("etc")).unwrap();
    fs::write(src.join("etc/app.conf"), format!("port = 80 # {version}\n")).unwrap();
    fs::write(
        src.join("etc/other.conf"),
        format!("level = 1 # {version}\n"),
    )
    .unwrap();
    let out = w.build(
        version,
        &src,
        &["--layout", layout, "--config-file", "etc/*.conf"],
    );
    add_to_repository(w, repo, &out);
}

fn edited_config_survives_an_upgrade(layout: &str) {
    let (w, _host, pi, repo) = standalone("");
    publish_with_configs(&w, &repo, "1.0.0", layout);
    pi.run("once").ok();
    // Where the live files are: through `current` for the symlink layout, in ROOT itself
    // for the overlay layout.
    let live = if layout == "symlink" {
        pi.root.join("current")
    } else {
        pi.root.clone()
    };
    assert_eq!(
        fs::read_to_string(live.join("etc/app.conf")).unwrap(),
        "port = 80 # 1.0.0\n"
    );
    fs::write(live.join("etc/app.conf"), "port = 8080 # edited by hand\n").unwrap();

    publish_with_configs(&w, &repo, "1.1.0", layout);
    let run = pi.run("once").ok();
    assert_eq!(web_output_at(&live), "web 1.1.0", "{run}");
    assert_eq!(
        fs::read_to_string(live.join("etc/app.conf")).unwrap(),
        "port = 8080 # edited by hand\n",
        "the edited file is kept"
    );
    assert_eq!(
        fs::read_to_string(live.join("etc/app.conf.ferry-new")).unwrap(),
        "port = 80 # 1.1.0\n",
        "the new version is beside it"
    );
    assert_eq!(
        fs::read_to_string(live.join("etc/other.conf")).unwrap(),
        "level = 1 # 1.1.0\n",
        "an unedited configuration file is replaced"
    );
    assert!(!live.join("etc/other.conf.ferry-new").exists());
    let s = pi.status_json();
    assert_eq!(
        s["items"][0]["kept_configs"][0]["path"], "etc/app.conf",
        "{s}"
    );
    assert!(
        s["items"][0]["last_install"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("etc/app.conf"),
        "{s}"
    );

    // Rolling back leaves the person's edit in place.
    pi.run_args(&["--running-mode=rollback", "--item", "web"])
        .ok();
    assert_eq!(web_output_at(&live), "web 1.0.0");
    assert_eq!(
        fs::read_to_string(live.join("etc/app.conf")).unwrap(),
        "port = 8080 # edited by hand\n"
    );
    assert_eq!(
        fs::read_to_string(live.join("etc/other.conf")).unwrap(),
        "level = 1 # 1.0.0\n"
    );
    assert!(
        !live.join("etc/app.conf.ferry-new").exists(),
        "the rolled-back release's .ferry-new is gone with it"
    );
}

fn web_output_at(live: &Path) -> String {
    let out = Command::new(live.join("bin/web"))
        .output()
        .expect("run the installed bin/web");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn an_edited_config_file_survives_an_upgrade_in_the_symlink_layout() {
    edited_config_survives_an_upgrade("symlink");
}

#[test]
fn an_edited_config_file_survives_an_upgrade_in_the_overlay_layout() {
    edited_config_survives_an_upgrade("overlay");
}

#[test]
fn publishing_to_a_repository_says_what_is_missing_and_refuses_a_broken_build() {
    let w = World::new();
    let repo = w.path("site/releases");
    let src = w.payload("1.0.0", None);
    let out = w.build("1.0.0", &src, &[]);
    let out = out.to_str().unwrap();
    let dir = repo.to_str().unwrap();
    let run = w.ctl(&["release", "publish", "--to-dir", dir, out]).code(1);
    assert!(run.stderr.contains("--key"), "{run}");
    let run = w
        .ctl(&["release", "publish", "--key", "keys/release.key", out])
        .code(1);
    assert!(run.stderr.contains("--to-dir"), "{run}");
    fs::create_dir_all(&repo).unwrap();
    let run = w
        .ctl(&[
            "release",
            "index",
            "--dir",
            dir,
            "--key",
            "keys/release.key",
        ])
        .code(1);
    assert!(
        run.stderr.contains("ferryctl release publish --to-dir"),
        "{run}"
    );

    // A tarball changed after it was signed is not published.
    let tarball = w.path("out-1.0.0/web-1.0.0.tar.gz");
    let mut bytes = fs::read(&tarball).unwrap();
    bytes.push(0);
    fs::write(&tarball, bytes).unwrap();
    let run = w
        .ctl(&[
            "release",
            "publish",
            "--to-dir",
            dir,
            "--key",
            "keys/release.key",
            out,
        ])
        .code(1);
    assert!(run.stderr.contains("build the release again"), "{run}");
    assert!(!repo.join("web.index.json").exists(), "{run}");
}
