//! Campaigns: targeting (all, tags, hosts, joining later), acceptance on the device, waves,
//! the failure threshold pausing a campaign by itself, and cancel reaching the device.

use std::fs;

use crate::util::{Device, World};

fn member<'a>(c: &'a serde_json::Value, host: &str) -> &'a serde_json::Value {
    c["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["hostname"] == host)
        .unwrap_or_else(|| panic!("{host} is not a member: {c}"))
}

#[test]
fn a_campaign_needing_acceptance_installs_only_where_the_device_accepted() {
    let w = World::new();
    w.release("1.0.0", &[]);
    let a = w.add_device("alpha", "");
    let b = w.add_device("beta", "");
    a.run("check").ok();
    b.run("check").ok();
    let c = w.campaign("1.0.0", &["--all", "--require-acceptance"]);
    let id = c["id"].as_str().unwrap().to_string();
    assert_eq!(member(&c, "alpha")["status"], "awaiting_acceptance");

    let listed = a.run("campaign_check").ok();
    assert!(
        listed.stdout.contains(&id) && listed.stdout.contains("needs acceptance"),
        "{listed}"
    );
    a.run("once").ok();
    assert_eq!(a.current(), None, "installed without acceptance");

    // A device names the campaign by its full id, never a prefix of one.
    let prefix = a.run_args(&["--running-mode=campaign_accept", "--campaign-id", &id[..8]]);
    assert_ne!(prefix.code, Some(0), "accepted by an id prefix: {prefix}");
    a.run_args(&["--running-mode=campaign_accept", "--campaign-id", &id])
        .ok();
    a.run("once").ok();
    b.run("once").ok();
    assert_eq!(a.current().as_deref(), Some("releases/1.0.0"));
    assert_eq!(b.current(), None);
    let c = w.ctl_json(&["campaigns", "show", &id]);
    assert_eq!(member(&c, "alpha")["status"], "installed");
    assert_eq!(member(&c, "beta")["status"], "awaiting_acceptance");
    assert_eq!(c["counts"]["installed"], 1);
    let history = w.history();
    assert_eq!(history[0]["actor"], "campaign");
    assert_eq!(
        history[0]["campaign"],
        id.as_str(),
        "the install names its campaign"
    );

    let missing = a.run("campaign_accept").code(2);
    assert!(missing.stderr.contains("--campaign-id"), "{missing}");
}

#[test]
fn waves_open_on_success_and_failures_pause_the_campaign() {
    let w = World::new();
    let src = w.payload("1.0.0", None);
    // Fails its health check on hosts that have a ROOT.fail marker.
    let out = w.build(
        "1.0.0",
        &src,
        &["--health-check", "test ! -e \"$FERRY_ROOT.fail\""],
    );
    w.publish(&out);
    let names = ["h1", "h2", "h3", "h4"];
    let devices: Vec<Device> = names.iter().map(|n| w.add_device(n, "")).collect();
    for d in &devices {
        d.run("check").ok();
    }
    fs::create_dir_all(w.path("device")).unwrap();
    for bad in ["h2", "h3"] {
        fs::write(w.path(&format!("device/{bad}-web.fail")), "").unwrap();
    }
    let c = w.campaign(
        "1.0.0",
        &["--all", "--waves", "1", "--max-failure-rate", "0.4"],
    );
    let id = c["id"].as_str().unwrap().to_string();
    assert_eq!(c["waves"], 2);
    assert_eq!(member(&c, "h1")["wave"], 0);
    assert_eq!(member(&c, "h2")["status"], "waiting", "{c}");

    // Wave 1 is h1 alone: until it has installed, the others get nothing.
    devices[3].run("once").ok();
    assert_eq!(
        devices[3].current(),
        None,
        "wave 2 started before wave 1 succeeded"
    );
    devices[0].run("once").ok();
    assert_eq!(devices[0].current().as_deref(), Some("releases/1.0.0"));
    // Wave 2 opens; two of its three hosts fail their health check.
    for d in &devices[1..] {
        let _ = d.run("once");
    }
    let c = w.ctl_json(&["campaigns", "show", &id]);
    assert_eq!(c["status"], "paused", "{c}");
    assert!(
        c["status_reason"]
            .as_str()
            .unwrap()
            .contains("paused itself"),
        "{c}"
    );
    assert!(c["counts"]["rolled_back"].as_u64().unwrap() >= 1, "{c}");

    // Paused: a host that joins now is not dispatched.
    let late = w.add_device("h5", "");
    late.run("once").ok();
    assert_eq!(late.current(), None);
    let listed = w.ctl_json(&["campaigns", "list", "--status", "paused"]);
    assert_eq!(listed.as_array().unwrap().len(), 1);
}

#[test]
fn a_tag_campaign_is_joined_by_a_host_the_operator_tags_later_never_by_one_tagging_itself() {
    let w = World::new();
    w.release("1.0.0", &[]);
    // No host matches yet: refused, unless it is meant to wait for hosts.
    let refused = w.ctl(&[
        "campaigns",
        "create",
        "--item",
        "web",
        "--version",
        "1.0.0",
        "--tag",
        "kiosk",
    ]);
    assert_eq!(refused.code, Some(1), "{refused}");
    assert!(refused.stderr.contains("no host matches"), "{refused}");
    assert!(refused.stderr.contains("--allow-empty"), "{refused}");
    let c = w.campaign("1.0.0", &["--tag", "kiosk", "--allow-empty"]);
    assert_eq!(c["members"], serde_json::json!([]));
    // A rogue device claims the tag in its own config; the real kiosk reports none.
    let rogue = w.add_device("rogue", "tags = [\"kiosk\"]");
    let kiosk = w.add_device("kiosk-1", "");
    rogue.run("check").ok();
    kiosk.run("check").ok();
    w.ctl_json(&["hosts", "edit", "kiosk-1", "--tag", "kiosk"]);
    rogue.run("once").ok();
    kiosk.run("once").ok();
    assert_eq!(kiosk.current().as_deref(), Some("releases/1.0.0"));
    assert_eq!(rogue.current(), None, "a device's own tags select nothing");
    let id = c["id"].as_str().unwrap();
    let shown = w.ctl_json(&["campaigns", "show", id]);
    let members = shown["members"].as_array().unwrap();
    assert_eq!(members.len(), 1, "{shown}");
    assert_eq!(members[0]["hostname"], "kiosk-1", "{shown}");
}

#[test]
fn a_cancel_reaches_the_device_and_stops_the_install() {
    let w = World::new();
    w.release("1.0.0", &[]);
    let d = w.add_device("solo", "");
    d.run("check").ok();
    let c = w.campaign("1.0.0", &["--host", "solo"]);
    let id = c["id"].as_str().unwrap().to_string();
    // The device takes the job but does not install yet.
    d.run("check").ok();
    assert!(d
        .run("status")
        .ok()
        .stdout
        .contains("1.0.0 (not downloaded)"));
    let cancelled = w.ctl_json(&["campaigns", "cancel", &id]);
    assert_eq!(cancelled["status"], "cancelled");
    d.run("once").ok();
    assert_eq!(d.current(), None, "installed after the cancel");
    assert!(d.run("status").ok().stdout.contains("pending:   -"));
    assert_eq!(w.history()[0]["status"], "cancelled");
    let again = w.ctl(&["campaigns", "resume", &id]);
    assert_eq!(again.code, Some(1), "{again}");
}

#[test]
fn a_campaign_that_paused_itself_can_be_edited_resumed_and_completes() {
    let w = World::new();
    let src = w.payload("1.0.0", None);
    let out = w.build(
        "1.0.0",
        &src,
        &["--health-check", "test ! -e \"$FERRY_ROOT.fail\""],
    );
    w.publish(&out);
    let devices: Vec<Device> = ["h1", "h2", "h3", "h4"]
        .iter()
        .map(|n| w.add_device(n, ""))
        .collect();
    for d in &devices {
        d.run("check").ok();
    }
    fs::create_dir_all(w.path("device")).unwrap();
    fs::write(w.path("device/h2-web.fail"), "").unwrap();
    let c = w.campaign(
        "1.0.0",
        &["--all", "--waves", "2", "--max-failure-rate", "0.4"],
    );
    let id = c["id"].as_str().unwrap().to_string();
    devices[0].run("once").ok();
    let _ = devices[1].run("once");
    let c = w.ctl_json(&["campaigns", "show", &id]);
    assert_eq!(c["status"], "paused", "{c}");

    // Waves that have opened cannot change; thresholds can.
    let refused = w
        .ctl(&["campaigns", "edit", &id, "--waves", "3,100%"])
        .code(1);
    assert!(refused.stderr.contains("opened"), "{refused}");
    let c = w.ctl_json(&["campaigns", "edit", &id, "--max-failure-rate", "0.45"]);
    assert_eq!(c["max_failure_rate"], 0.45);
    assert_eq!(c["status"], "paused", "an edit does not resume: {c}");

    // Resumed, it judges only what finishes from now on: it does not pause again at once.
    let c = w.ctl_json(&["campaigns", "resume", &id]);
    assert_eq!(c["status"], "running", "{c}");
    devices[2].run("once").ok();
    devices[3].run("once").ok();
    let c = w.ctl_json(&["campaigns", "show", &id]);
    assert_eq!(c["status"], "completed", "{c}");
    assert_eq!(c["succeeded"], true, "{c}");
    assert!(
        c["status_reason"].as_str().unwrap().contains("3 of 4"),
        "{c}"
    );
    let done = w.ctl_json(&["campaigns", "list", "--status", "completed"]);
    assert_eq!(done.as_array().unwrap().len(), 1);
    // Completed: no longer evaluated, so a late host does not join.
    let late = w.add_device("h5", "");
    late.run("once").ok();
    assert_eq!(late.current(), None);
    let c = w.ctl_json(&["campaigns", "show", &id]);
    assert_eq!(c["members"].as_array().unwrap().len(), 4);
}

/// Without `--waves`, a campaign reaching more than five hosts starts with one of them.
#[test]
fn a_campaign_for_more_than_a_few_hosts_starts_with_one_by_default() {
    let w = World::new();
    w.release("1.0.0", &[]);
    for i in 0..6 {
        crate::load::enrol_by_hand(&w, &format!("fleet-{i}")).unwrap();
    }
    let c = w.campaign("1.0.0", &["--all"]);
    assert_eq!(c["waves"], 4, "{c}");
    let members = c["members"].as_array().unwrap();
    assert_eq!(members.len(), 6, "{c}");
    let first: Vec<_> = members.iter().filter(|m| m["wave"] == 0).collect();
    assert_eq!(first.len(), 1, "{c}");
    // Asked for, one wave it is.
    let one = w.campaign("1.0.0", &["--all", "--waves", "100%"]);
    assert_eq!(one["waves"], 1, "{one}");
}
