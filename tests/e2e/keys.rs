//! Key rotation without reflashing: a device that trusts a signed trust root follows new
//! root versions published on the server, trusts release keys as they are added, and stops
//! trusting retired ones.

use std::fs;

use crate::util::World;

fn key_id(w: &World, pub_file: &str) -> String {
    let text = fs::read_to_string(w.path(pub_file)).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("keyid = "))
        .unwrap()
        .trim_matches('"')
        .to_string()
}

#[test]
fn release_and_root_keys_rotate_through_the_server() {
    let w = World::new();
    w.ctl(&["keygen", "--out", "keys/root1"]).ok();
    w.ctl(&[
        "root",
        "init",
        "--root-key",
        "keys/root1.key",
        "--release-key",
        "keys/release.pub",
        "--out",
        "root-1.json",
    ])
    .ok();
    let cfg = fs::read_to_string(&w.agent_cfg).unwrap().replace(
        r#"trusted_keys = ["keys/release.pub"]"#,
        r#"trust_root = "root-1.json""#,
    );
    fs::write(&w.agent_cfg, cfg).unwrap();
    w.ctl(&["root", "publish", "root-1.json"]).ok();

    // Version 1 trusts the first release key.
    w.release("1.0.0", &[]);
    w.agent("check").ok();
    w.trigger(Some("1.0.0"));
    w.agent("once").ok();
    assert_eq!(w.current().as_deref(), Some("releases/1.0.0"));

    // Version 2 adds a new release key and retires the old one.
    w.ctl(&["keygen", "--out", "keys/release2"]).ok();
    let old_release = key_id(&w, "keys/release.pub");
    w.ctl(&[
        "root",
        "update",
        "--from",
        "root-1.json",
        "--sign-with",
        "keys/root1.key",
        "--add-release-key",
        "keys/release2.pub",
        "--remove-release-key",
        &old_release,
        "--out",
        "root-2.json",
    ])
    .ok();
    w.ctl(&["root", "publish", "root-2.json"]).ok();

    let src = w.payload("1.1.0", None);
    let out = w.build_with("web", "1.1.0", &src, "keys/release2.key", &[]);
    w.publish(&out);
    w.trigger(Some("1.1.0"));
    w.agent("once").ok();
    assert_eq!(w.current().as_deref(), Some("releases/1.1.0"));
    let status = w.agent("status").ok();
    assert!(status.stdout.contains("trust root:  version 2"), "{status}");

    // A release signed with the retired key is refused at publish: no device following the
    // root could install it. (Devices refuse such a manifest too: tests/e2e/hostile.)
    let src = w.payload("1.2.0", None);
    let out = w.build("1.2.0", &src, &[]);
    let refused = w
        .ctl(&["release", "publish", out.to_str().unwrap()])
        .code(1);
    assert!(refused.stderr.contains("trust root 2"), "{refused}");
    assert!(refused.stderr.contains(&old_release), "{refused}");
    let listed = w.ctl(&["releases", "list"]).ok();
    assert!(!listed.stdout.contains("1.2.0"), "{listed}");
    assert_eq!(w.current().as_deref(), Some("releases/1.1.0"));

    root_key_rotates_and_the_retired_one_moves_nothing(&w);
}

/// Rotating the root key itself: version 3 is signed by the old and the new root key; the
/// retired root key can no longer move the root forward, and a skipped version is refused.
fn root_key_rotates_and_the_retired_one_moves_nothing(w: &World) {
    // Rotating the root key itself: version 3 is signed by the old and the new root key.
    w.ctl(&["keygen", "--out", "keys/root2"]).ok();
    let root1 = key_id(w, "keys/root1.pub");
    w.ctl(&[
        "root",
        "update",
        "--from",
        "root-2.json",
        "--sign-with",
        "keys/root1.key",
        "--sign-with",
        "keys/root2.key",
        "--add-root-key",
        "keys/root2.pub",
        "--remove-root-key",
        &root1,
        "--out",
        "root-3.json",
    ])
    .ok();
    w.ctl(&["root", "publish", "root-3.json"]).ok();
    w.agent("check").ok();
    assert!(w
        .agent("status")
        .ok()
        .stdout
        .contains("trust root:  version 3"));

    // The retired root key can no longer move the root forward, locally or on the server.
    let refused = w.ctl(&[
        "root",
        "update",
        "--from",
        "root-3.json",
        "--sign-with",
        "keys/root1.key",
        "--out",
        "root-4.json",
    ]);
    assert_eq!(refused.code, Some(1), "{refused}");
    assert!(
        refused.stderr.contains("devices would refuse this root"),
        "{refused}"
    );
    // Skipping a version is refused by the server too.
    let skip = w.ctl(&["root", "publish", "root-2.json"]);
    assert_eq!(skip.code, Some(1), "{skip}");
}
