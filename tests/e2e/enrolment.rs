//! Enrolment tokens an operator limits: in uses, in time, revoked, or requiring that each
//! host they enrol be accepted before it is given anything (`ferryctl hosts accept`).

use std::fs;

use crate::util::{Device, World};

/// Creates an enrolment token with `args` and returns the file it is written to.
fn enrol_token(w: &World, name: &str, args: &[&str]) -> String {
    let mut all = vec!["tokens", "create", "--kind", "enrol", "--name", name];
    all.extend_from_slice(args);
    let created = w.ctl(&all).ok();
    let file = format!("{name}.token");
    fs::write(w.path(&file), created.stdout.trim()).unwrap();
    file
}

/// A device that enrols with the token in `token_file`.
fn device_with(w: &World, name: &str, token_file: &str) -> Device {
    let d = w.add_device(name, "");
    let cfg = fs::read_to_string(&d.cfg)
        .unwrap()
        .replace("server-data/enrol.token", token_file);
    fs::write(&d.cfg, cfg).unwrap();
    d
}

fn host<'a>(hosts: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    hosts
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["hostname"] == name)
        .unwrap_or_else(|| panic!("{name} not in {hosts}"))
}

#[test]
fn hosts_of_a_token_requiring_acceptance_get_nothing_until_accepted_and_the_token_runs_out() {
    let w = World::new();
    w.release("1.0.0", &[]);
    let token = enrol_token(&w, "factory", &["--uses", "2", "--require-acceptance"]);
    let a = device_with(&w, "line-a", &token);
    let b = device_with(&w, "line-b", &token);
    let c = device_with(&w, "line-c", &token);

    // Enrolled, listed as waiting, offered nothing, and no update, batch or campaign reaches it.
    let first = a.run("check").ok();
    assert!(
        first.stderr.contains("waits for an operator's acceptance"),
        "{first}"
    );
    let hosts = w.ctl_json(&["hosts", "list"]);
    assert_eq!(host(&hosts, "line-a")["accepted"], false, "{hosts}");
    let table = w.ctl(&["hosts", "list"]).ok();
    assert!(table.stdout.contains("awaiting acceptance"), "{table}");
    let refused = w.ctl(&["update", "trigger", "--host", "line-a", "--item", "web"]);
    assert_eq!(refused.code, Some(1), "{refused}");
    assert!(
        refused.stderr.contains("ferryctl hosts accept"),
        "{refused}"
    );
    let campaign = w.campaign("1.0.0", &["--all", "--allow-empty"]);
    assert_eq!(campaign["members"], serde_json::json!([]), "{campaign}");
    a.run("once").ok();
    assert_eq!(a.current(), None, "a waiting host installed something");
    let status = a.status_json();
    assert_eq!(status["items"][0]["name"], "web", "{status}");
    assert_eq!(
        status["items"][0]["available"],
        serde_json::json!(null),
        "{status}"
    );

    // Accepted: from its next check-in it joins the campaign and installs.
    let accepted = w.ctl(&["hosts", "accept", "line-a"]).ok();
    assert!(accepted.stdout.contains("accepted line-a"), "{accepted}");
    a.run("once").ok();
    assert_eq!(a.current().as_deref(), Some("releases/1.0.0"));
    let again = w.ctl(&["hosts", "accept", "line-a"]);
    assert_eq!(again.code, Some(1), "{again}");
    assert!(again.stderr.contains("accepted already"), "{again}");

    // Two uses: the second device enrols, the third is refused with the reason.
    b.run("check").ok();
    let third = c.run("check");
    assert_ne!(third.code, Some(0), "{third}");
    assert!(third.stderr.contains("used up"), "{third}");
    let tokens = w.ctl_json(&["tokens", "list"]);
    let factory = tokens
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "factory")
        .unwrap();
    assert_eq!(factory["uses_left"], 0, "{tokens}");
    assert_eq!(factory["needs_acceptance"], true, "{tokens}");
    assert_eq!(w.ctl_json(&["hosts", "list"]).as_array().unwrap().len(), 2);
}

#[test]
fn a_revoked_enrolment_token_enrols_no_one_and_an_expiring_one_says_when() {
    let w = World::new();
    let token = enrol_token(&w, "batch-7", &["--expires-in-days", "2"]);
    let tokens = w.ctl_json(&["tokens", "list"]);
    let listed = tokens
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "batch-7")
        .unwrap();
    let expires = listed["expires_at"].as_str().unwrap();
    let in_two_days = time::OffsetDateTime::now_utc() + time::Duration::days(2);
    assert_eq!(
        &expires[..10],
        &ferry_manifests::wire::timestamp(in_two_days)[..10]
    );
    let id = listed["id"].as_str().unwrap();
    w.ctl(&["tokens", "revoke", id]).ok();
    let d = device_with(&w, "late", &token);
    let run = d.run("check");
    assert_ne!(run.code, Some(0), "{run}");
    assert!(run.stderr.contains("revoked"), "{run}");
    assert_eq!(w.ctl_json(&["hosts", "list"]), serde_json::json!([]));
    // Limits are for enrolment tokens: an operator token refuses them with the reason.
    let bad = w.ctl(&["tokens", "create", "--name", "ci", "--uses", "3"]);
    assert_eq!(bad.code, Some(1), "{bad}");
    assert!(bad.stderr.contains("enrolment tokens"), "{bad}");
}
