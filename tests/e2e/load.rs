//! Concurrency: many devices reporting at the same moment, and a server killed with SIGKILL
//! while a fleet installs. No 5xx for concurrency; every install reported exactly once.

use std::sync::{Arc, Barrier};

use crate::util::{http, Device, World};

/// The facts of a device `hostname` with `web` not installed.
pub(crate) fn facts(hostname: &str) -> serde_json::Value {
    serde_json::json!({
        "hostname": hostname, "os": "linux", "os_version": "1",
        "arch": "x86_64", "agent_version": "0", "device_class": null,
        "installed": [{"item": "web", "version": null}]
    })
}

/// Enrols a device over HTTP with the fleet's enrolment token: its device token, or the
/// refusal (status and body).
pub(crate) fn enrol_by_hand(w: &World, hostname: &str) -> Result<String, (u16, String)> {
    let enrol = std::fs::read_to_string(w.server.data_dir.join("enrol.token")).unwrap();
    let resp = http()
        .post(format!("{}/api/v1/enrol", w.server.url()))
        .json(&serde_json::json!({"enrol_token": enrol.trim(), "facts": facts(hostname)}))
        .send()
        .unwrap();
    let status = resp.status().as_u16();
    if status != 200 {
        return Err((status, resp.text().unwrap_or_default()));
    }
    let body: serde_json::Value = resp.json().unwrap();
    Ok(body["device_token"].as_str().unwrap().to_string())
}

#[test]
fn fifty_devices_reporting_at_once_are_all_stored_without_a_5xx() {
    let w = World::new();
    let url = w.server.url();
    let devices: Vec<String> = (0..50)
        .map(|i| enrol_by_hand(&w, &format!("load-{i}")).unwrap())
        .collect();
    let start = Arc::new(Barrier::new(devices.len()));
    let threads: Vec<_> = devices
        .into_iter()
        .enumerate()
        .map(|(i, token)| {
            let start = Arc::clone(&start);
            let url = url.clone();
            std::thread::spawn(move || {
                let report = serde_json::json!({"reports": [{
                    "report_id": format!("00000000-0000-4000-8000-{i:012}"),
                    "job_id": null, "item": "web", "version": "1.0.0", "from_version": null,
                    "outcome": "installed", "message": "installed 1.0.0", "output": "",
                    "started_at": "2026-01-01T00:00:00.000Z", "finished_at": "2026-01-01T00:00:01.000Z"
                }]});
                start.wait();
                let resp = http()
                    .post(format!("{url}/api/v1/device/reports"))
                    .bearer_auth(token)
                    .json(&report)
                    .send()
                    .unwrap();
                resp.status().as_u16()
            })
        })
        .collect();
    let statuses: Vec<u16> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let history = w.history();
    assert_eq!(history.len(), 50, "{history:#?}");
    assert!(!w.server.log_text().contains("database is locked"));
}

#[test]
fn a_server_killed_while_a_fleet_installs_hears_of_every_install_exactly_once() {
    let mut w = World::new();
    w.release("1.0.0", &[]);
    let devices: Vec<_> = (0..8)
        .map(|i| w.add_device(&format!("fleet-{i}"), ""))
        .collect();
    trigger_each(&w, &devices, "1.0.0");
    // The whole fleet installs at once; the server dies in the middle of it.
    let running: Vec<_> = devices.iter().map(|d| d.spawn("once")).collect();
    std::thread::sleep(std::time::Duration::from_millis(150));
    w.server.kill();
    for mut child in running {
        let _ = child.wait();
    }
    w.server.restart_same_port();
    // Each device delivers what it queued at its next run (a resend is harmless).
    for d in &devices {
        d.run("once").ok();
        assert_eq!(d.current().as_deref(), Some("releases/1.0.0"), "{}", d.name);
    }
    assert_each_installed_once(&w, &devices);
}

/// Each device checks in (it is known) and gets an install of `version`.
pub(crate) fn trigger_each(w: &World, devices: &[Device], version: &str) {
    for d in devices {
        d.run("check").ok();
        w.ctl_json(&[
            "update",
            "trigger",
            "--host",
            &d.name,
            "--item",
            "web",
            "--version",
            version,
        ]);
    }
}

/// The history holds exactly one entry per device, installed: no report lost, none twice.
pub(crate) fn assert_each_installed_once(w: &World, devices: &[Device]) {
    let history = w.history();
    for d in devices {
        let entries: Vec<_> = history
            .iter()
            .filter(|h| h["hostname"] == d.name.as_str())
            .collect();
        assert_eq!(entries.len(), 1, "{}: {entries:#?}", d.name);
        assert_eq!(entries[0]["status"], "installed", "{}", d.name);
    }
}
