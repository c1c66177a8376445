//! Withdrawing a bad release: it is no longer offered or counted, installs of it not yet
//! started and its campaigns are cancelled, and nothing can start it again; devices that
//! installed it keep it.

use crate::util::World;

#[test]
fn a_withdrawn_release_is_not_offered_and_what_was_queued_for_it_is_cancelled() {
    let w = World::new();
    w.release("1.0.0", &[]);
    let one = w.device();
    let two = w.add_device("two", "");
    for d in [&one, &two] {
        d.run("check").ok();
    }
    w.ctl_json(&["update", "batch-item", "web", "--to-version", "1.0.0"]);
    one.run("once").ok();
    two.run("once").ok();
    w.release("1.1.0", &[]);
    // Queued for device-1, and a campaign for `two`, neither started.
    w.trigger(Some("1.1.0"));
    let c = w.campaign("1.1.0", &["--host", "two", "--require-acceptance"]);
    let hosts = w.ctl_json(&["hosts", "list"]);
    assert!(
        hosts.to_string().contains("1.1.0"),
        "offered before: {hosts}"
    );

    let out = w
        .ctl(&[
            "releases",
            "withdraw",
            "web",
            "1.1.0",
            "--reason",
            "crashes on start",
        ])
        .ok();
    assert!(out.stdout.contains("withdrew web 1.1.0"), "{out}");

    // Not offered, and what was queued is cancelled with the reason.
    let hosts = w.ctl_json(&["hosts", "list"]);
    for h in hosts.as_array().unwrap() {
        assert_eq!(h["available"], serde_json::json!([]), "{h}");
    }
    let history = w.history();
    let queued = history
        .iter()
        .find(|e| e["version"] == "1.1.0")
        .unwrap_or_else(|| panic!("{history:#?}"));
    assert_eq!(queued["status"], "cancelled", "{queued}");
    assert!(
        queued["message"]
            .as_str()
            .unwrap()
            .contains("crashes on start"),
        "{queued}"
    );
    let id = c["id"].as_str().unwrap();
    let campaign = w.ctl_json(&["campaigns", "show", id]);
    assert_eq!(campaign["status"], "cancelled", "{campaign}");
    one.run("once").ok();
    two.run("once").ok();
    assert_eq!(one.current().as_deref(), Some("releases/1.0.0"));
    assert_eq!(two.current().as_deref(), Some("releases/1.0.0"));

    // Nothing starts it again; the list says why it is gone.
    let refused = w.ctl(&[
        "update",
        "trigger",
        "--host",
        "device-1",
        "--item",
        "web",
        "--version",
        "1.1.0",
    ]);
    assert_eq!(refused.code, Some(1), "{refused}");
    assert!(refused.stderr.contains("withdrawn"), "{refused}");
    let refused = w.ctl(&[
        "campaigns",
        "create",
        "--item",
        "web",
        "--version",
        "1.1.0",
        "--all",
    ]);
    assert_eq!(refused.code, Some(1), "{refused}");
    assert!(refused.stderr.contains("withdrawn"), "{refused}");
    let again = w.ctl(&["releases", "withdraw", "web", "1.1.0"]);
    assert_eq!(again.code, Some(1), "{again}");
    let list = w.ctl(&["releases", "list"]).ok();
    assert!(list.stdout.contains("WITHDRAWN"), "{list}");
    assert!(list.stdout.contains("crashes on start"), "{list}");
    // The newest live release is what a plain trigger takes.
    let fallback = w.ctl(&["update", "trigger", "--host", "device-1", "--item", "web"]);
    assert_eq!(fallback.code, Some(1), "{fallback}");
    assert!(
        fallback.stderr.contains("already has web 1.0.0"),
        "{fallback}"
    );
}

/// One queued install is cancelled by its id: the device drops it, and a finished one cannot
/// be cancelled.
#[test]
fn a_single_queued_update_is_cancelled_and_the_device_drops_it() {
    let w = World::new();
    w.release("1.0.0", &[]);
    let d = w.device();
    d.run("check").ok();
    let queued = w.trigger(Some("1.0.0"));
    let id = queued["id"].as_str().unwrap().to_string();
    let out = w.ctl(&["update", "cancel", &id[..8]]).ok();
    assert!(out.stdout.contains("cancelled"), "{out}");
    d.run("once").ok();
    assert_eq!(d.current(), None, "the cancelled install ran");
    let entry = &w.history()[0];
    assert_eq!(entry["status"], "cancelled", "{entry}");
    assert_eq!(entry["message"], "cancelled by an operator", "{entry}");
    let again = w.ctl(&["update", "cancel", &id]);
    assert_eq!(again.code, Some(1), "{again}");
    assert!(again.stderr.contains("only a pending update"), "{again}");
}
