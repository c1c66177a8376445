//! Batch updates: many installs, one at a time per host, in order, followed to the end.

use std::fs;

use crate::util::World;

/// A world whose device manages two items, `web` and `api`.
fn two_items() -> World {
    let w = World::new();
    let mut cfg = fs::read_to_string(&w.agent_cfg).unwrap();
    cfg.push_str(&format!(
        "\n[[items]]\nname = \"api\"\nroot = \"{}\"\n",
        w.path("device/api").display()
    ));
    fs::write(&w.agent_cfg, cfg).unwrap();
    w
}

fn release_api(w: &World, version: &str, category: &str) {
    let src = w.payload(&format!("api-{version}"), None);
    let out = w.build_with(
        "api",
        version,
        &src,
        "keys/release.key",
        &["--category", category],
    );
    w.publish(&out);
}

#[test]
fn batch_host_installs_every_update_one_at_a_time() {
    let w = two_items();
    w.release("1.0.0", &["--category", "bugfix"]);
    w.release("1.1.0", &["--category", "security"]);
    release_api(&w, "2.0.0", "feature");
    w.agent("check").ok();

    let batch = w.ctl_json(&["update", "batch-host", "device-1"]);
    let entries = batch["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{batch}");
    let statuses: Vec<&str> = entries
        .iter()
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["dispatched", "queued"], "one at a time per host");

    // One run works through the queue: the second job is dispatched when the first reports.
    w.agent("once").ok();
    let id = batch["id"].as_str().unwrap();
    let shown = w.ctl_json(&["update-batches", "show", id]);
    assert_eq!(shown["status"], "completed", "{shown}");
    assert_eq!(shown["counts"]["installed"], 2);
    assert_eq!(w.current().as_deref(), Some("releases/1.1.0"));
    assert_eq!(
        fs::read_link(w.path("device/api/current"))
            .unwrap()
            .to_str(),
        Some("releases/2.0.0")
    );
    let listed = w.ctl_json(&["update-batches", "list", "--status", "completed"]);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(
        w.ctl_json(&["update-batches", "list", "--status", "running"]),
        serde_json::json!([])
    );
}

#[test]
fn batch_host_filters_by_category_and_soft_skips_active_items() {
    let w = two_items();
    w.release("1.0.0", &["--category", "security"]);
    release_api(&w, "2.0.0", "feature");
    w.agent("check").ok();
    let only_security = w.ctl_json(&["update", "batch-host", "device-1", "--category", "security"]);
    assert_eq!(only_security["entries"].as_array().unwrap().len(), 1);
    assert_eq!(only_security["entries"][0]["item"], "web");
    // web now has an active update: a second batch soft-skips it and lists it as skipped.
    let second = w.ctl_json(&["update", "batch-host", "device-1"]);
    let web = second["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["item"] == "web")
        .unwrap();
    assert_eq!(web["status"], "skipped", "{second}");
    assert!(web["message"].as_str().unwrap().contains("already active"));
    let excluded = w.ctl(&["update", "batch-host", "device-1", "--exclude", "web,api"]);
    assert_eq!(excluded.code, Some(1));
    assert!(excluded.stderr.contains("nothing to do"), "{excluded}");
}

#[test]
fn batch_item_follow_prints_progress_and_exits_with_the_outcome() {
    let w = World::new();
    w.release("1.0.0", &[]);
    w.release("1.1.0", &[]);
    w.agent("check").ok();
    w.trigger(Some("1.0.0"));
    w.agent("once").ok();

    let batch = w.ctl_json(&["update", "batch-item", "web", "--to-version", "1.1.0"]);
    let id = batch["id"].as_str().unwrap().to_string();
    // Follow while the device works.
    let follower = w
        .ctl_command(&["update-batches", "follow", &id, "--timeout-secs", "60"])
        .env(
            "FERRY_TOKEN",
            format!("@{}", w.server.data_dir.join("operator.token").display()),
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    w.agent("once").ok();
    let out = follower.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("device-1 web 1.1.0: installed"), "{text}");
    assert!(text.contains("completed"), "{text}");
    // A host already at the version is skipped by a second batch.
    let again = w.ctl_json(&["update", "batch-item", "web", "--to-version", "1.1.0"]);
    assert_eq!(again["entries"][0]["status"], "skipped");
    assert_eq!(again["status"], "completed");
}

#[test]
fn a_security_batch_installs_the_security_release_behind_a_newer_feature_release() {
    let w = World::new();
    w.release("1.0.0", &[]);
    w.agent("check").ok();
    w.trigger(Some("1.0.0"));
    w.agent("once").ok();
    w.release("1.1.0", &["--category", "security"]);
    w.release("1.2.0", &["--category", "feature"]);
    let batch = w.ctl_json(&["update", "batch-host", "device-1", "--category", "security"]);
    let entries = batch["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{batch}");
    assert_eq!(entries[0]["version"], "1.1.0", "{batch}");
    w.agent("once").ok();
    assert_eq!(w.current().as_deref(), Some("releases/1.1.0"));
}
