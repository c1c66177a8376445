//! Campaigns that watch each wave's health after its installs: a release that fails a while
//! after it starts is stopped after its first wave and rolled back; a healthy one goes
//! through every wave; a storm that hits every host does not count against the release; a
//! device restarted mid-window continues it. Real ferry-server, ferry-agent and ferryctl;
//! windows of seconds.

use std::fs;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::util::{run, Device, Run, World};

/// The release's "service" starts at its install and fails its health check `secs` after.
pub fn failing_after(w: &World, version: &str, secs: u64) {
    let src = w.payload(version, None);
    let out = w.build(
        version,
        &src,
        &[
            "--post-install",
            "date +%s > \"$FERRY_ROOT.started\"",
            "--health-check",
            &format!("test $(( $(date +%s) - $(cat \"$FERRY_ROOT.started\") )) -lt {secs}"),
        ],
    );
    w.publish(&out);
}

/// Three hosts on 1.0.0, each with a boot id file the test controls.
fn fleet(w: &World) -> Vec<Device> {
    w.release("1.0.0", &[]);
    let devices: Vec<Device> = ["h1", "h2", "h3"]
        .iter()
        .map(|n| w.add_device(n, ""))
        .collect();
    for d in &devices {
        fs::write(boot_file(w, d), "boot-1\n").unwrap();
        agent(w, d, "check").ok();
    }
    w.campaign("1.0.0", &["--all"]);
    for d in &devices {
        agent(w, d, "once").ok();
        assert_eq!(d.current().as_deref(), Some("releases/1.0.0"));
    }
    devices
}

fn boot_file(w: &World, d: &Device) -> std::path::PathBuf {
    w.path(&format!("{}.boot_id", d.name))
}

/// The agent in `mode`, reading its boot id from the test's file.
fn agent(w: &World, d: &Device, mode: &str) -> Run {
    let mut cmd: Command = d.mode(mode);
    cmd.env("FERRY_FAULT_BOOT_ID_FILE", boot_file(w, d));
    run(cmd)
}

pub fn show(w: &World, id: &str) -> serde_json::Value {
    w.ctl_json(&["campaigns", "show", id])
}

/// Runs every device's `mode` about once a second until `done` says so (at most `limit`).
pub fn rounds(
    w: &World,
    devices: &[Device],
    mode: &str,
    limit: Duration,
    mut done: impl FnMut() -> bool,
) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "not done within {limit:?}");
        for d in devices {
            // A run that rolled back exits 1; what counts is what the server and the
            // devices end with.
            let r = agent(w, d, mode);
            assert!(matches!(r.code, Some(0 | 1)), "{r}");
        }
        std::thread::sleep(Duration::from_millis(700));
    }
}

#[test]
fn a_release_that_fails_after_it_starts_stops_after_its_first_wave_and_is_rolled_back() {
    // The campaign's state reaches MQTT too.
    let dir = tempfile::tempdir().unwrap();
    let broker = crate::util::broker::Broker::start(dir.path());
    let w = World::with_server_config(&format!(
        "[[mqtt]]\nname = \"test\"\nurl = \"mqtt://127.0.0.1:{}\"\n",
        broker.port
    ));
    let watcher = crate::util::broker::Watcher::start(broker.port, "campaign-watcher");
    let devices = fleet(&w);
    failing_after(&w, "1.1.0", 3);
    let c = w.campaign(
        "1.1.0",
        &[
            "--all",
            "--waves",
            "1,50%,100%",
            "--observe",
            "10s",
            "--rollback-on-regression",
        ],
    );
    let id = c["id"].as_str().unwrap().to_string();
    assert_eq!(c["observe_secs"], 10);
    // Wave 1 (one host) installs; its health check passes at the install.
    rounds(&w, &devices, "once", Duration::from_secs(30), || {
        devices
            .iter()
            .any(|d| d.current().as_deref() == Some("releases/1.1.0"))
    });
    let updated: Vec<&Device> = devices
        .iter()
        .filter(|d| d.current().as_deref() == Some("releases/1.1.0"))
        .collect();
    assert_eq!(updated.len(), 1, "more than the first wave installed");
    let first = updated[0].name.clone();
    watcher.wait_for(&format!("ferry/campaigns/{id}/state"), "observing");
    // Three seconds later its service fails: the campaign stops and rolls the wave back.
    rounds(&w, &devices, "once", Duration::from_secs(40), || {
        show(&w, &id)["status"] == "paused"
    });
    let c = show(&w, &id);
    let reason = c["status_reason"].as_str().unwrap();
    assert!(reason.starts_with("regressed in wave 1"), "{c:#}");
    assert!(
        reason.contains("health") && reason.contains(&first),
        "{c:#}"
    );
    assert!(reason.contains("rolling back 1 host"), "{c:#}");
    watcher.wait_for(&format!("ferry/campaigns/{id}/state"), "regressed");
    assert_eq!(c["observation"]["verdict"], "regressed", "{c:#}");
    assert_eq!(c["observation"]["wave_share"], 1.0, "{c:#}");
    assert_eq!(c["observation"]["control_share"], 0.0, "{c:#}");
    assert!(
        c["observation"]["series"].as_array().unwrap().len() >= 2,
        "{c:#}"
    );
    // The rollback reaches the device: every host ends on the old release.
    rounds(&w, &devices, "once", Duration::from_secs(20), || {
        devices
            .iter()
            .all(|d| d.current().as_deref() == Some("releases/1.0.0"))
    });
    let history = w.history();
    let rollback = history
        .iter()
        .find(|h| h["hostname"] == first.as_str() && h["status"] == "rolled_back")
        .unwrap_or_else(|| panic!("no rollback in the history: {history:#?}"));
    assert_eq!(rollback["actor"], "campaign", "{rollback:#}");
    assert_eq!(rollback["version"], "1.0.0", "{rollback:#}");
    assert!(
        rollback["message"]
            .as_str()
            .unwrap()
            .contains("by the campaign: regressed in wave 1"),
        "{rollback:#}"
    );
    // Paused, it dispatches nothing more; the other hosts never saw 1.1.0.
    assert_eq!(
        history.iter().filter(|h| h["version"] == "1.1.0").count(),
        1,
        "{history:#?}"
    );
    let shown = w.ctl(&["campaigns", "show", &id]).ok();
    assert!(
        shown.stdout.contains("regressed") && shown.stdout.contains("control"),
        "{shown}"
    );
}

#[test]
fn a_healthy_release_goes_through_every_wave_after_each_window() {
    let w = World::new();
    let devices = fleet(&w);
    w.release("1.1.0", &["--health-check", "true"]);
    let c = w.campaign(
        "1.1.0",
        &["--all", "--waves", "1,50%,100%", "--observe", "3s"],
    );
    let id = c["id"].as_str().unwrap().to_string();
    rounds(&w, &devices, "once", Duration::from_secs(60), || {
        show(&w, &id)["status"] == "completed"
    });
    let c = show(&w, &id);
    assert_eq!(c["succeeded"], true, "{c:#}");
    for d in &devices {
        assert_eq!(d.current().as_deref(), Some("releases/1.1.0"), "{}", d.name);
    }
    // The waves opened one after another, each after its window.
    let history = w.history();
    let mut installed: Vec<&str> = history
        .iter()
        .filter(|h| h["version"] == "1.1.0")
        .map(|h| h["finished_at"].as_str().unwrap())
        .collect();
    installed.sort();
    assert_eq!(installed.len(), 3);
    let t = |s: &str| {
        time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap()
    };
    assert!(
        t(installed[1]) - t(installed[0]) >= time::Duration::seconds(3),
        "wave 2 opened before wave 1's window passed: {installed:?}"
    );
}

#[test]
fn a_reboot_storm_over_the_whole_fleet_does_not_stop_the_campaign() {
    let w = World::new();
    let devices = fleet(&w);
    w.release("1.1.0", &[]);
    let c = w.campaign("1.1.0", &["--all", "--waves", "1,100%", "--observe", "6s"]);
    let id = c["id"].as_str().unwrap().to_string();
    rounds(&w, &devices, "once", Duration::from_secs(30), || {
        show(&w, &id)["observation"]["verdict"] == "observing"
    });
    // Everyone has sampled once; then every host reboots, updated or not.
    rounds(&w, &devices, "check", Duration::from_secs(10), || {
        let o = &show(&w, &id)["observation"];
        o["wave_hosts"] == 1 && o["control_hosts"] == 2
    });
    for d in &devices {
        fs::write(boot_file(&w, d), "boot-2\n").unwrap();
    }
    rounds(&w, &devices, "once", Duration::from_secs(60), || {
        let c = show(&w, &id);
        assert_ne!(
            c["status"], "paused",
            "a fleet-wide storm stopped it: {c:#}"
        );
        c["status"] == "completed"
    });
    for d in &devices {
        assert_eq!(d.current().as_deref(), Some("releases/1.1.0"), "{}", d.name);
    }
}

#[test]
fn a_device_killed_mid_window_continues_its_window_when_it_starts_again() {
    let w = World::new();
    let devices = fleet(&w);
    w.release("1.1.0", &[]);
    let c = w.campaign("1.1.0", &["--all", "--waves", "1,100%", "--observe", "8s"]);
    let id = c["id"].as_str().unwrap().to_string();
    rounds(&w, &devices, "once", Duration::from_secs(30), || {
        show(&w, &id)["observation"]["verdict"] == "observing"
    });
    let first = devices
        .iter()
        .find(|d| d.current().as_deref() == Some("releases/1.1.0"))
        .unwrap();
    // The updated device runs as the service does, and is killed mid-window.
    let mut cmd = first.command(&["--running-mode=full"]);
    cmd.env("FERRY_FAULT_BOOT_ID_FILE", boot_file(&w, first));
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut service = cmd.spawn().unwrap();
    let state = w.path(&format!("state-{}/observe.json", first.name));
    crate::util::eventually("a sample taken", Duration::from_secs(15), || {
        fs::read_to_string(&state)
            .ok()
            .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
            .is_some_and(|v| v["watches"][0]["last_sample"].is_string())
    });
    service.kill().unwrap();
    service.wait().unwrap();
    let kept: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(kept["watches"][0]["campaign_id"], id.as_str(), "{kept:#}");
    assert_eq!(kept["watches"][0]["boot_id"], "boot-1", "{kept:#}");
    // Started again, it carries on with the same window: no reboot is counted, and the wave
    // passes.
    let mut cmd = first.command(&["--running-mode=full"]);
    cmd.env("FERRY_FAULT_BOOT_ID_FILE", boot_file(&w, first));
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut service = cmd.spawn().unwrap();
    let others: Vec<Device> = devices
        .iter()
        .filter(|d| d.name != first.name)
        .map(|d| Device {
            name: d.name.clone(),
            cfg: d.cfg.clone(),
            root: d.root.clone(),
        })
        .collect();
    let finished = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rounds(&w, &others, "once", Duration::from_secs(60), || {
            show(&w, &id)["status"] == "completed"
        })
    }));
    let _ = service.kill();
    let _ = service.wait();
    finished.unwrap();
    let c = show(&w, &id);
    assert_eq!(c["succeeded"], true, "{c:#}");
}
