//! Campaigns: targeting (all, tags, hosts, joining later), acceptance on the device, waves,
//! the failure threshold pausing a campaign by itself, and cancel reaching the device.

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use crate::util::{bin, Run, World};

/// A second device against the same server: its own config, state and root.
fn device(w: &World, name: &str, extra: &str) -> PathBuf {
    let cfg = w.path(&format!("{name}.toml"));
    fs::write(
        &cfg,
        format!(
            "server_url = \"{}\"\nenrol_token_file = \"server-data/enrol.token\"\nstate_dir = \"state-{name}\"\ntrusted_keys = [\"keys/release.pub\"]\nhostname = \"{name}\"\n{extra}\n\n[[items]]\nname = \"web\"\nroot = \"{}\"\n",
            w.server.url(),
            root(w, name).display()
        ),
    )
    .unwrap();
    cfg
}

fn root(w: &World, name: &str) -> PathBuf {
    w.path(&format!("device/{name}-web"))
}

fn agent(cfg: &PathBuf, args: &[&str]) -> Run {
    let mut cmd = Command::new(bin("ferry-agent"));
    cmd.arg("--config").arg(cfg).args(args);
    let text = format!("{cmd:?}");
    let out = cmd.output().unwrap();
    Run {
        cmd: text,
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn installed(w: &World, name: &str) -> Option<String> {
    fs::read_link(root(w, name).join("current"))
        .ok()
        .map(|p| p.display().to_string())
}

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
    let a = device(&w, "alpha", "");
    let b = device(&w, "beta", "");
    agent(&a, &["--running-mode=check"]).ok();
    agent(&b, &["--running-mode=check"]).ok();
    let c = w.ctl_json(&[
        "campaigns",
        "create",
        "--item",
        "web",
        "--version",
        "1.0.0",
        "--all",
        "--require-acceptance",
    ]);
    let id = c["id"].as_str().unwrap().to_string();
    assert_eq!(member(&c, "alpha")["status"], "awaiting_acceptance");

    let listed = agent(&a, &["--running-mode=campaign_check"]).ok();
    assert!(
        listed.stdout.contains(&id) && listed.stdout.contains("needs acceptance"),
        "{listed}"
    );
    agent(&a, &["--running-mode=once"]).ok();
    assert_eq!(installed(&w, "alpha"), None, "installed without acceptance");

    agent(
        &a,
        &["--running-mode=campaign_accept", "--campaign-id", &id],
    )
    .ok();
    agent(&a, &["--running-mode=once"]).ok();
    agent(&b, &["--running-mode=once"]).ok();
    assert_eq!(installed(&w, "alpha").as_deref(), Some("releases/1.0.0"));
    assert_eq!(installed(&w, "beta"), None);
    let c = w.ctl_json(&["campaigns", "show", &id]);
    assert_eq!(member(&c, "alpha")["status"], "installed");
    assert_eq!(member(&c, "beta")["status"], "awaiting_acceptance");
    assert_eq!(c["counts"]["installed"], 1);
    let history = w.history();
    assert_eq!(history[0]["actor"], "campaign");

    let missing = agent(&a, &["--running-mode=campaign_accept"]).code(2);
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
    let cfgs: Vec<PathBuf> = names.iter().map(|n| device(&w, n, "")).collect();
    for cfg in &cfgs {
        agent(cfg, &["--running-mode=check"]).ok();
    }
    fs::create_dir_all(w.path("device")).unwrap();
    for bad in ["h2", "h3"] {
        fs::write(w.path(&format!("device/{bad}-web.fail")), "").unwrap();
    }
    let c = w.ctl_json(&[
        "campaigns",
        "create",
        "--item",
        "web",
        "--version",
        "1.0.0",
        "--all",
        "--waves",
        "1",
        "--max-failure-rate",
        "0.4",
    ]);
    let id = c["id"].as_str().unwrap().to_string();
    assert_eq!(c["waves"], 2);
    assert_eq!(member(&c, "h1")["wave"], 0);
    assert_eq!(member(&c, "h2")["status"], "waiting", "{c}");

    // Wave 1 is h1 alone: until it has installed, the others get nothing.
    agent(&cfgs[3], &["--running-mode=once"]).ok();
    assert_eq!(
        installed(&w, "h4"),
        None,
        "wave 2 started before wave 1 succeeded"
    );
    agent(&cfgs[0], &["--running-mode=once"]).ok();
    assert_eq!(installed(&w, "h1").as_deref(), Some("releases/1.0.0"));
    // Wave 2 opens; two of its three hosts fail their health check.
    for cfg in &cfgs[1..] {
        let _ = agent(cfg, &["--running-mode=once"]);
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
    let late = device(&w, "h5", "");
    agent(&late, &["--running-mode=once"]).ok();
    assert_eq!(installed(&w, "h5"), None);
    let listed = w.ctl_json(&["campaigns", "list", "--status", "paused"]);
    assert_eq!(listed.as_array().unwrap().len(), 1);
}

#[test]
fn a_tag_campaign_is_joined_by_a_host_that_appears_later() {
    let w = World::new();
    w.release("1.0.0", &[]);
    let c = w.ctl_json(&[
        "campaigns",
        "create",
        "--item",
        "web",
        "--version",
        "1.0.0",
        "--tag",
        "kiosk",
    ]);
    assert_eq!(c["members"], serde_json::json!([]));
    let office = device(&w, "office", "tags = [\"office\"]");
    let kiosk = device(&w, "kiosk-1", "tags = [\"kiosk\"]");
    agent(&office, &["--running-mode=once"]).ok();
    agent(&kiosk, &["--running-mode=once"]).ok();
    assert_eq!(installed(&w, "kiosk-1").as_deref(), Some("releases/1.0.0"));
    assert_eq!(installed(&w, "office"), None);
}

#[test]
fn a_cancel_reaches_the_device_and_stops_the_install() {
    let w = World::new();
    w.release("1.0.0", &[]);
    let d = device(&w, "solo", "");
    agent(&d, &["--running-mode=check"]).ok();
    let c = w.ctl_json(&[
        "campaigns",
        "create",
        "--item",
        "web",
        "--version",
        "1.0.0",
        "--host",
        "solo",
    ]);
    let id = c["id"].as_str().unwrap().to_string();
    // The device takes the job but does not install yet.
    agent(&d, &["--running-mode=check"]).ok();
    assert!(agent(&d, &["--running-mode=status"])
        .ok()
        .stdout
        .contains("1.0.0 (not downloaded)"));
    let cancelled = w.ctl_json(&["campaigns", "cancel", &id]);
    assert_eq!(cancelled["status"], "cancelled");
    agent(&d, &["--running-mode=once"]).ok();
    assert_eq!(installed(&w, "solo"), None, "installed after the cancel");
    assert!(agent(&d, &["--running-mode=status"])
        .ok()
        .stdout
        .contains("pending:   -"));
    assert_eq!(w.history()[0]["status"], "cancelled");
    let again = w.ctl(&["campaigns", "resume", &id]);
    assert_eq!(again.code, Some(1), "{again}");
}
