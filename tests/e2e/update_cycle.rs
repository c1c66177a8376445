use std::fs;
use std::os::unix::fs::PermissionsExt;

use crate::util::World;

#[test]
fn publish_trigger_install_and_upgrade() {
    let w = World::new();
    let releases = publish_two_releases(&w);
    first_contact_installs_nothing(&w, &releases);
    install_of_1_0_0_by_version(&w);
    upgrade_to_the_newest(&w);
    history_and_status_after_the_upgrade(&w);
    // A host with nothing to do exits 0 and changes nothing.
    let before = World::tree(&w.root);
    w.agent("once").ok();
    assert_eq!(World::tree(&w.root), before);
}

/// 1.0.0 (with notes and a release URL) and 1.1.0 (with hooks), as the server lists them.
fn publish_two_releases(w: &World) -> serde_json::Value {
    w.release(
        "1.0.0",
        &[
            "--notes",
            "first",
            "--release-url",
            "https://example.org/web/1.0.0",
        ],
    );
    w.release(
        "1.1.0",
        &[
            "--post-install",
            "echo post-install saw $FERRY_VERSION from $FERRY_PREVIOUS_VERSION",
            "--health-check",
            "./bin/web",
        ],
    );
    let releases = w.ctl_json(&["releases", "list"]);
    let versions: Vec<&str> = releases
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["1.0.0", "1.1.0"]);
    assert_eq!(releases[0]["release_url"], "https://example.org/web/1.0.0");

    releases
}

fn first_contact_installs_nothing(w: &World, releases: &serde_json::Value) {
    // First contact enrols and reports; nothing is installed without an operator's word.
    w.agent("once").ok();
    assert!(!w.root.exists(), "installed without being asked");
    let hosts = w.ctl_json(&["hosts", "list"]);
    assert_eq!(hosts[0]["hostname"], "device-1");
    assert_eq!(hosts[0]["online"], true);
    assert_eq!(hosts[0]["arch"], std::env::consts::ARCH);
    assert_eq!(hosts[0]["agent_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(hosts[0]["installed"][0]["item"], "web");
    assert!(hosts[0]["installed"][0]["version"].is_null());
    assert_eq!(
        hosts[0]["available"][0]["version"], "1.1.0",
        "what is available to the host"
    );
    let status = w.agent("status").ok();
    assert!(status.stdout.contains("available: 1.1.0"), "{status}");
    // The device verified the offered manifest and reports, at its next contact, how fresh
    // the newest manifest it has seen is.
    assert!(hosts[0]["newest_manifest_at"].is_null());
    w.agent("check").ok();
    let hosts = w.ctl_json(&["hosts", "list"]);
    let released = releases[1]["released_at"].as_str().unwrap()[..19].to_string();
    let reported = hosts[0]["newest_manifest_at"].as_str().unwrap_or_default();
    assert!(reported.starts_with(&released), "{reported} vs {released}");
}

fn install_of_1_0_0_by_version(w: &World) {
    // Trigger the older release explicitly.
    let job = w.trigger(Some("1.0.0"));
    assert_eq!(job["status"], "pending");
    w.agent("once").ok();
    assert_eq!(w.current().as_deref(), Some("releases/1.0.0"));
    let bin = w.root.join("current/bin/web");
    assert_eq!(
        fs::read_to_string(&bin).unwrap(),
        "#!/bin/sh\necho web 1.0.0\n"
    );
    assert_eq!(
        fs::metadata(&bin).unwrap().permissions().mode() & 0o7777,
        0o755
    );
    assert_eq!(
        fs::read_to_string(w.root.join("current/static/index.html")).unwrap(),
        "<h1>1.0.0</h1>\n"
    );
}

fn upgrade_to_the_newest(w: &World) {
    // Trigger without a version: the newest. While pending, the history already says where
    // it starts from (the server knows what the host has).
    let job = w.trigger(None);
    assert_eq!(job["from_version"], "1.0.0", "{job}");
    w.agent("once").ok();
    assert_eq!(w.current().as_deref(), Some("releases/1.1.0"));
    assert!(
        w.root.join("releases/1.0.0/bin/web").exists(),
        "the previous release is the backup"
    );
    let out = std::process::Command::new(w.root.join("current/bin/web"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "web 1.1.0\n");
}

fn history_and_status_after_the_upgrade(w: &World) {
    let history = w.history();
    assert_eq!(history.len(), 2, "{history:?}");
    assert_eq!(history[0]["status"], "installed");
    assert_eq!(history[0]["version"], "1.0.0");
    // The operator, by the name of the token it used (the first one is `initial`).
    assert_eq!(history[0]["actor"], "user:admin");
    assert_eq!(history[1]["status"], "installed");
    assert_eq!(history[1]["from_version"], "1.0.0");
    let output = history[1]["output"].as_str().unwrap();
    assert!(
        output.contains("post-install saw 1.1.0 from 1.0.0"),
        "{output}"
    );
    assert!(
        output.contains("web 1.1.0"),
        "health check output missing: {output}"
    );

    let hosts = w.ctl_json(&["hosts", "list"]);
    assert_eq!(hosts[0]["installed"][0]["version"], "1.1.0");
    let status = w.agent("status").ok();
    assert!(status.stdout.contains("installed: 1.1.0"), "{status}");
    assert!(status.stdout.contains("previous:  1.0.0"), "{status}");
}

#[test]
fn a_failing_health_check_rolls_back() {
    let w = World::new();
    w.release("1.0.0", &[]);
    w.agent("check").ok(); // enrol
    w.trigger(Some("1.0.0"));
    w.agent("once").ok();
    let before = World::tree(&w.root);

    let src = w.payload(
        "1.1.0",
        Some("#!/bin/sh\necho 'database migration failed' >&2\nexit 7\n"),
    );
    let out = w.build(
        "1.1.0",
        &src,
        &[
            "--post-install",
            "echo migrating",
            "--health-check",
            "./bin/web",
        ],
    );
    w.publish(&out);
    w.trigger(Some("1.1.0"));
    let run = w.agent("once").code(1);
    assert!(run.stderr.contains("rolled back to 1.0.0"), "{run}");

    assert_eq!(w.current().as_deref(), Some("releases/1.0.0"));
    assert_eq!(
        World::tree(&w.root),
        before,
        "the device is not exactly at 1.0.0"
    );
    let history = w.history();
    let last = history.last().unwrap();
    assert_eq!(last["status"], "rolled_back", "{history:#?}");
    assert_eq!(last["version"], "1.1.0");
    let output = last["output"].as_str().unwrap();
    assert!(output.contains("migrating"), "{output}");
    assert!(output.contains("database migration failed"), "{output}");
    assert!(output.contains("exited with 7"), "{output}");
    let hosts = w.ctl_json(&["hosts", "list"]);
    assert_eq!(hosts[0]["installed"][0]["version"], "1.0.0");
}

#[test]
fn auto_install_takes_the_newest_release_without_a_trigger() {
    let w = World::with_agent_extra("auto_install = true");
    w.release("1.0.0", &[]);
    w.release("1.2.0", &[]);
    w.agent("once").ok();
    assert_eq!(w.current().as_deref(), Some("releases/1.2.0"));
    let history = w.history();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0]["actor"], "device");
    assert_eq!(history[0]["status"], "installed");
}

#[test]
fn staged_modes_and_reports_wait_for_a_server_that_is_down() {
    let mut w = World::new();
    w.release("1.0.0", &[]);
    w.agent("check").ok(); // enrol
    w.trigger(None);
    let check = w.agent("check").ok();
    assert!(
        check.stderr.contains("pending install")
            || w.agent("status")
                .ok()
                .stdout
                .contains("1.0.0 (not downloaded)"),
        "{check}"
    );
    w.agent("download").ok();
    assert!(w.agent("status").ok().stdout.contains("1.0.0 (downloaded)"));

    // Install needs no network; the report waits on disk for the server.
    w.server.kill();
    w.agent("install").ok();
    assert_eq!(w.current().as_deref(), Some("releases/1.0.0"));
    assert!(w.agent("status").ok().stdout.contains("queued reports: 1"));
    let offline = w.agent("check").code(3);
    assert_eq!(
        offline.stderr.trim().lines().count(),
        1,
        "one clear line expected:\n{offline}"
    );
    assert!(offline.stderr.contains("server unreachable"), "{offline}");

    let queued: Vec<_> = fs::read_dir(w.path("agent-state/reports"))
        .unwrap()
        .flatten()
        .map(|e| (e.path(), fs::read(e.path()).unwrap()))
        .collect();
    w.server.restart_same_port();
    w.agent("check").ok();
    assert!(w.agent("status").ok().stdout.contains("queued reports: 0"));
    let history = w.history();
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(history[0]["status"], "installed");

    // The server's answer was lost: the device sends the same report again. It is stored once.
    for (path, bytes) in queued {
        fs::write(path, bytes).unwrap();
    }
    w.agent("check").ok();
    assert!(w.agent("status").ok().stdout.contains("queued reports: 0"));
    assert_eq!(w.history().len(), 1, "a resent report was counted twice");
}

/// Path of the artifact's partial download in the agent's state directory.
fn part_path(w: &World, version: &str) -> (std::path::PathBuf, Vec<u8>) {
    let tarball = fs::read(w.path(&format!("out-{version}/web-{version}.tar.gz"))).unwrap();
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&tarball))
    };
    (
        w.path(&format!("agent-state/downloads/web-{sha}.part")),
        tarball,
    )
}

#[test]
fn an_interrupted_download_resumes_with_a_range_request() {
    let w = World::new();
    w.release("1.0.0", &[]);
    w.agent("check").ok();
    w.trigger(None);
    w.agent("check").ok();
    let (part, tarball) = part_path(&w, "1.0.0");
    fs::write(&part, &tarball[..tarball.len() / 2]).unwrap();
    w.agent("download").ok();
    assert!(
        w.server.log_text().contains("status=206"),
        "no partial-content answer in the server log"
    );
    assert!(!part.exists());
    w.agent("install").ok();
    assert_eq!(w.current().as_deref(), Some("releases/1.0.0"));
}

#[test]
fn a_corrupt_partial_download_is_discarded_and_fetched_again() {
    let w = World::new();
    w.release("1.0.0", &[]);
    w.agent("check").ok();
    w.trigger(None);
    w.agent("check").ok();
    let (part, tarball) = part_path(&w, "1.0.0");
    fs::write(&part, vec![0u8; tarball.len() / 2]).unwrap();
    w.agent("once").ok();
    assert_eq!(w.current().as_deref(), Some("releases/1.0.0"));
    assert_eq!(w.history().pop().unwrap()["status"], "installed");
}

#[test]
fn full_mode_installs_a_triggered_update_and_stops_on_sigterm() {
    let w = World::new();
    w.release("1.0.0", &[]);
    w.agent("check").ok();
    let mut child = w.device().spawn("full");
    w.trigger(None);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while w.current().is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let installed = w.current();
    crate::util::signal(child.id(), "TERM", false);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert_eq!(installed.as_deref(), Some("releases/1.0.0"), "{stderr}");
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "did not stop cleanly on SIGTERM:\n{stderr}"
    );
    assert!(stderr.contains("stopping on signal"), "{stderr}");
}

#[test]
fn rollback_by_hand_restores_the_previous_version_and_is_reported() {
    let w = World::new();
    w.release("1.0.0", &[]);
    w.release("1.1.0", &[]);
    w.agent("check").ok();
    w.trigger(Some("1.0.0"));
    w.agent("once").ok();
    let at_1_0 = World::tree(&w.root);
    w.trigger(Some("1.1.0"));
    w.agent("once").ok();
    assert_eq!(w.current().as_deref(), Some("releases/1.1.0"));

    let usage = w.agent("rollback").code(2);
    assert!(usage.stderr.contains("--item"), "{usage}");

    w.device()
        .run_args(&["--running-mode=rollback", "--item", "web"])
        .ok();
    assert_eq!(World::tree(&w.root), at_1_0);
    let status = w.agent("status").ok();
    assert!(status.stdout.contains("installed: 1.0.0"), "{status}");
    // A person's rollback is not a failure; it is held back from auto_install all the same.
    let s = w.device().status_json();
    assert_eq!(s["items"][0]["last_failed"], serde_json::Value::Null, "{s}");
    assert_eq!(s["items"][0]["rolled_back_by_hand"], "1.1.0", "{s}");

    let history = w.history();
    let last = history.last().unwrap();
    assert_eq!(last["status"], "rolled_back", "{history:#?}");
    // From the installed version back to the previous one.
    assert_eq!(last["from_version"], "1.1.0");
    assert_eq!(last["version"], "1.0.0");
    assert_eq!(last["actor"], "device");
    assert!(last["message"].as_str().unwrap().contains("by hand"));
    assert_eq!(
        w.ctl_json(&["hosts", "list"])[0]["installed"][0]["version"],
        "1.0.0"
    );

    // Nothing further back to go to.
    let nothing = w
        .device()
        .run_args(&["--running-mode=rollback", "--item", "web"])
        .code(5);
    assert!(nothing.stderr.contains("no previous version"), "{nothing}");
}

/// The overlay layout places files into existing paths, removes what a new version drops,
/// keeps backups, rolls back a failing version and rolls back by hand.
#[test]
fn overlay_installs_upgrades_rolls_back_and_rolls_back_by_hand() {
    let w = World::new();
    fs::create_dir_all(w.root.join("bin")).unwrap();
    fs::write(w.root.join("bin/web"), "pre-ferry\n").unwrap();
    fs::write(w.root.join("unmanaged.conf"), "mine\n").unwrap();
    let before_ferry = World::tree(&w.root);

    let src1 = w.payload("1.0.0", None);
    fs::write(src1.join("static/old.css"), "old\n").unwrap();
    let out1 = w.build("1.0.0", &src1, &["--layout", "overlay"]);
    w.publish(&out1);
    let src2 = w.payload("1.1.0", None);
    let out2 = w.build(
        "1.1.0",
        &src2,
        &["--layout", "overlay", "--health-check", "./bin/web"],
    );
    w.publish(&out2);

    w.agent("check").ok();
    w.trigger(Some("1.0.0"));
    w.agent("once").ok();
    assert_eq!(
        fs::read_to_string(w.root.join("bin/web")).unwrap(),
        "#!/bin/sh\necho web 1.0.0\n"
    );
    assert_eq!(
        fs::read_to_string(w.root.join("unmanaged.conf")).unwrap(),
        "mine\n"
    );
    assert!(w.root.join("static/old.css").exists());
    let work = fs::metadata(w.root.join(".ferry-web")).unwrap();
    assert_eq!(
        work.permissions().mode() & 0o777,
        0o700,
        "backups must be private"
    );
    let at_1_0: Vec<String> = World::tree(&w.root)
        .into_iter()
        .filter(|l| !l.starts_with(".ferry-web"))
        .collect();

    w.trigger(Some("1.1.0"));
    w.agent("once").ok();
    assert_eq!(
        fs::read_to_string(w.root.join("bin/web")).unwrap(),
        "#!/bin/sh\necho web 1.1.0\n"
    );
    assert!(
        !w.root.join("static/old.css").exists(),
        "a dropped file stays"
    );
    assert_eq!(
        fs::read_to_string(w.root.join("unmanaged.conf")).unwrap(),
        "mine\n"
    );

    // A failing release is rolled back to 1.1.0 exactly.
    let at_1_1 = World::tree(&w.root);
    let src3 = w.payload("1.2.0", Some("#!/bin/sh\nexit 9\n"));
    let out3 = w.build(
        "1.2.0",
        &src3,
        &["--layout", "overlay", "--health-check", "./bin/web"],
    );
    w.publish(&out3);
    w.trigger(Some("1.2.0"));
    w.agent("once").code(1);
    assert_eq!(World::tree(&w.root), at_1_1);
    assert_eq!(w.history().pop().unwrap()["status"], "rolled_back");

    // By hand back to 1.0.0, including the file 1.1.0 dropped.
    w.device()
        .run_args(&["--running-mode=rollback", "--item", "web"])
        .ok();
    let now: Vec<String> = World::tree(&w.root)
        .into_iter()
        .filter(|l| !l.starts_with(".ferry-web"))
        .collect();
    assert_eq!(now, at_1_0);
    assert!(w.agent("status").ok().stdout.contains("installed: 1.0.0"));
    // The pre-Ferry bin/web is kept in 1.0.0's backup (keep one backup by default) but not
    // restored by rolling 1.1.0 back.
    assert_ne!(now, before_ferry);
}

#[test]
fn a_zstd_tarball_installs_like_a_gzip_one() {
    let w = World::new();
    w.release("1.0.0", &["--compression", "zstd"]);
    assert!(w.path("out-1.0.0/web-1.0.0.tar.zst").exists());
    w.agent("check").ok();
    w.trigger(None);
    w.agent("once").ok();
    assert_eq!(w.current().as_deref(), Some("releases/1.0.0"));
    assert_eq!(
        fs::read_to_string(w.root.join("current/bin/web")).unwrap(),
        "#!/bin/sh\necho web 1.0.0\n"
    );
}
