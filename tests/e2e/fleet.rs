//! The fleet model: tags and friendly names from the device and from the operator (whose word
//! wins), and retiring a host.

use crate::util::World;

#[test]
fn tags_and_names_come_from_the_device_and_the_operator_wins() {
    let w = World::with_agent_extra("tags = [\"lab\", \"eu\"]\nfriendly_name = \"Kiosk 1\"");
    w.agent("check").ok();
    let host = &w.ctl_json(&["hosts", "list"])[0];
    assert_eq!(host["tags"], serde_json::json!(["lab", "eu"]));
    assert_eq!(host["friendly_name"], "Kiosk 1");

    let edited = w.ctl_json(&[
        "hosts",
        "edit",
        "device-1",
        "--tags",
        "prod,eu-west",
        "--friendly-name",
        "Front desk",
    ]);
    assert_eq!(edited["tags"], serde_json::json!(["prod", "eu-west"]));
    // The device checking in again does not undo the operator's labels.
    w.agent("check").ok();
    let host = &w.ctl_json(&["hosts", "list"])[0];
    assert_eq!(host["tags"], serde_json::json!(["prod", "eu-west"]));
    assert_eq!(host["friendly_name"], "Front desk");
    let table = w.ctl(&["hosts", "list"]).ok();
    assert!(
        table.stdout.contains("Front desk") && table.stdout.contains("prod,eu-west"),
        "{table}"
    );

    // Clearing the operator's tags shows the device's again.
    w.ctl_json(&["hosts", "edit", "device-1", "--tags", ""]);
    assert_eq!(
        w.ctl_json(&["hosts", "list"])[0]["tags"],
        serde_json::json!(["lab", "eu"])
    );

    let bad = w.ctl(&["hosts", "edit", "device-1", "--tags", "Has Space"]);
    assert_eq!(bad.code, Some(1), "{bad}");
    assert!(bad.stderr.contains("tag \"Has Space\""), "{bad}");
}

#[test]
fn a_removed_host_is_gone_and_its_credential_stops_working() {
    let w = World::new();
    w.agent("check").ok();
    w.ctl(&["hosts", "remove", "device-1"]).ok();
    assert_eq!(w.ctl_json(&["hosts", "list"]), serde_json::json!([]));
    let run = w.agent("check").code(5);
    assert!(run.stderr.contains("device.json"), "{run}");
    let unknown = w.ctl(&["hosts", "remove", "device-1"]);
    assert_eq!(unknown.code, Some(1));
    assert!(unknown.stderr.contains("no host"), "{unknown}");
}
