//! Downloads and disk space: items with byte-identical artifacts, and a root without room.

use std::fs;
use std::process::Command;

use crate::util::World;

/// Adds a second item, `api`, rooted at `device/api`.
fn with_api_item(w: &World) {
    let mut cfg = fs::read_to_string(&w.agent_cfg).unwrap();
    cfg.push_str(&format!(
        "\n[[items]]\nname = \"api\"\nroot = \"{}\"\n",
        w.path("device/api").display()
    ));
    fs::write(&w.agent_cfg, cfg).unwrap();
}

#[test]
fn two_items_with_byte_identical_artifacts_both_install() {
    let w = World::new();
    with_api_item(&w);
    let src = w.payload("1.0.0", None);
    let web = w.build("1.0.0", &src, &[]);
    let api = w.build_with("api", "1.0.0", &src, "keys/release.key", &[]);
    w.publish(&web);
    w.publish(&api);
    let releases = w.ctl_json(&["releases", "list"]);
    let shas: Vec<&str> = releases
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["artifact_sha256"].as_str())
        .collect();
    assert_eq!(shas.len(), 2, "{releases}");
    assert_eq!(shas[0], shas[1], "the test needs identical artifacts");
    w.agent("check").ok();
    w.trigger(Some("1.0.0"));
    w.ctl_json(&[
        "update",
        "trigger",
        "--host",
        "device-1",
        "--item",
        "api",
        "--version",
        "1.0.0",
    ]);
    let run = w.agent("once").ok();
    assert_eq!(w.current().as_deref(), Some("releases/1.0.0"), "{run}");
    assert_eq!(
        fs::read_link(w.path("device/api/current"))
            .unwrap()
            .display()
            .to_string(),
        "releases/1.0.0",
        "{run}"
    );
    let history = w.history();
    assert!(
        history.iter().all(|h| h["status"] == "installed"),
        "{history:#?}"
    );
}

/// A small tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(at: std::path::PathBuf, size: &str) -> Tmpfs {
        fs::create_dir_all(&at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&at)
            .status()
            .unwrap();
        assert!(
            ok.success(),
            "mounting a tmpfs failed: this test needs root (as the test command runs)"
        );
        Tmpfs(at)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn no_room_to_unpack_keeps_the_update_pending_and_the_next_run_installs_it() {
    let w = World::new();
    let small = Tmpfs::mount(w.path("device"), "1m");
    let src = w.payload("1.0.0", None);
    // 1.5 MiB that does not compress away.
    let mut bytes = Vec::with_capacity(1536 * 1024);
    let mut x: u32 = 12345;
    while bytes.len() < 1536 * 1024 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    fs::write(src.join("static/big.bin"), &bytes).unwrap();
    let out = w.build("1.0.0", &src, &[]);
    w.publish(&out);
    w.agent("check").ok();
    w.trigger(Some("1.0.0"));

    let full = w.agent("once").code(5);
    assert!(full.stderr.contains("not enough space"), "{full}");
    assert!(full.stderr.contains("stays pending"), "{full}");
    assert!(full.stderr.contains("headroom"), "{full}");
    assert_eq!(w.current(), None);
    let status = w.agent("status").ok();
    assert!(status.stdout.contains("1.0.0 (downloaded)"), "{status}");
    let history = w.history();
    assert_eq!(history[0]["status"], "pending", "{history:#?}");
    // The operator reads what it waits for: the space needed and free.
    let message = history[0]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("waiting: not enough space"),
        "{message}"
    );
    assert!(message.contains("bytes needed"), "{message}");

    // Space freed: the next run installs it from the kept download, without the network.
    drop(small);
    w.agent("install").ok();
    assert_eq!(w.current().as_deref(), Some("releases/1.0.0"));
}

/// A root this run may not write (a read-only mount, as systemd's ProtectSystem=strict makes
/// of a path missing from ReadWritePaths): the install does not start, the run names the
/// drop-in to add, nothing is reported as failed, and the next run with the root writable
/// installs it.
#[test]
fn a_read_only_root_keeps_the_update_pending_and_names_the_unit_setting() {
    let w = World::new();
    w.release("1.0.0", &[]);
    let d = w.device();
    d.run("check").ok();
    w.trigger(Some("1.0.0"));
    std::fs::create_dir_all(&w.root).unwrap();
    let inner = d.mode("once");
    let root = w.root.display().to_string();
    let mut cmd = std::process::Command::new("unshare");
    cmd.args([
        "--mount",
        "sh",
        "-c",
        "mount --bind \"$1\" \"$1\" && mount -o remount,bind,ro \"$1\" && shift && exec \"$@\"",
        "sh",
        &root,
    ])
    .arg(inner.get_program())
    .args(inner.get_args())
    .envs(inner.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))));
    if let Some(dir) = inner.get_current_dir() {
        cmd.current_dir(dir);
    }
    let run = crate::util::run(cmd);
    assert_eq!(run.code, Some(5), "{run}");
    assert!(run.stderr.contains("ReadWritePaths="), "{run}");
    assert!(run.stderr.contains("stays pending"), "{run}");
    assert_eq!(w.current(), None);
    let entry = &w.history()[0];
    assert_eq!(entry["status"], "pending", "reported as failed: {entry}");
    // The operator reads why it waits.
    let message = entry["message"].as_str().unwrap_or_default();
    assert!(message.starts_with("waiting: "), "{entry}");
    assert!(message.contains("ReadWritePaths="), "{entry}");
    let s = d.status_json();
    assert_eq!(s["items"][0]["last_failed"], serde_json::Value::Null, "{s}");

    d.run("once").ok();
    assert_eq!(w.current().as_deref(), Some("releases/1.0.0"));
}
