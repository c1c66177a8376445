use std::fs;
use std::os::unix::fs::PermissionsExt;

use crate::util::World;

#[test]
fn publish_trigger_install_and_upgrade() {
    let w = World::new();
    w.release("1.0.0", &["--notes", "first"]);
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
    let status = w.agent("status").ok();
    assert!(status.stdout.contains("available: 1.1.0"), "{status}");

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

    // Trigger without a version: the newest.
    w.trigger(None);
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

    let history = w.history();
    assert_eq!(history.len(), 2, "{history:?}");
    assert_eq!(history[0]["status"], "installed");
    assert_eq!(history[0]["version"], "1.0.0");
    assert_eq!(history[0]["actor"], "user");
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

    // A host with nothing to do exits 0 and changes nothing.
    let before = World::tree(&w.root);
    w.agent("once").ok();
    assert_eq!(World::tree(&w.root), before);
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
    let last = w.history().pop().unwrap();
    assert_eq!(last["status"], "rolled_back");
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

    w.server.restart_same_port();
    w.agent("check").ok();
    assert!(w.agent("status").ok().stdout.contains("queued reports: 0"));
    let history = w.history();
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(history[0]["status"], "installed");
}
