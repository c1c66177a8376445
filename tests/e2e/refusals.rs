//! Releases the agent must refuse: each is refused with a clear message, reported to the
//! server, and nothing on the device changes.

use std::fs;

use ferry_manifests::manifest::{Artifact, Compression, FileEntry, Install};
use ferry_manifests::{Manifest, SigningKeyFile};
use sha2::{Digest, Sha256};

use crate::util::World;

/// Installs 1.0.0, then returns the device tree to compare against.
fn installed_world() -> (World, Vec<String>) {
    // No deltas: the refusals under test are of what the device downloads in full.
    let w = World::with_server_config("delta_from_releases = 0\n");
    w.release("1.0.0", &[]);
    w.agent("check").ok(); // enrol
    w.trigger(Some("1.0.0"));
    w.agent("once").ok();
    assert_eq!(w.current().as_deref(), Some("releases/1.0.0"));
    let tree = World::tree(&w.root);
    (w, tree)
}

/// Runs the agent on a triggered hostile release and checks the refusal end to end.
fn assert_refused(w: &World, before: &[String], version: &str, why: &str) {
    let run = w.agent("once").code(1);
    assert!(
        run.stderr.contains(why),
        "expected {why:?} in the agent's log:\n{run}"
    );
    assert_eq!(World::tree(&w.root), before, "the device changed");
    let last = w.history().pop().unwrap();
    assert_eq!(last["version"], version);
    assert_eq!(last["status"], "refused", "{last}");
    let message = last["message"].as_str().unwrap();
    assert!(
        message.contains(why),
        "expected {why:?} in the report: {message}"
    );
    let leftovers: Vec<_> = fs::read_dir(w.path("agent-state/downloads"))
        .unwrap()
        .flatten()
        .collect();
    assert!(
        leftovers.is_empty(),
        "download area not cleaned: {leftovers:?}"
    );
    // Not retried: a second run has nothing to do.
    w.agent("once").ok();
    assert_eq!(World::tree(&w.root), before);
}

#[test]
fn a_tampered_artifact_is_refused() {
    let (w, before) = installed_world();
    w.release("1.1.0", &[]);
    // The server's copy is altered after publishing (same size, one byte flipped).
    let stored = w.server.data_dir.join("artifacts/web-1.1.0.tar.gz");
    let mut bytes = fs::read(&stored).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    fs::write(&stored, bytes).unwrap();
    w.trigger(Some("1.1.0"));
    assert_refused(&w, &before, "1.1.0", "sha256");
}

#[test]
fn a_manifest_signed_by_an_unknown_key_is_refused() {
    let (w, before) = installed_world();
    w.ctl(&["keygen", "--out", "keys/rogue"]).ok();
    let src = w.payload("1.1.0", None);
    let out = w.build_with("web", "1.1.0", &src, "keys/rogue.key", &[]);
    w.publish(&out);
    w.trigger(Some("1.1.0"));
    let rogue = SigningKeyFile::load(&w.path("keys/rogue.key")).unwrap();
    assert_refused(&w, &before, "1.1.0", &rogue.id.0);
}

#[test]
fn an_expired_manifest_is_refused() {
    // ferryctl will not sign a release that is expired already; the server will not
    // publish one (tests/e2e/faults.rs); a device refuses one a hostile server serves
    // (tests/e2e/hostile/).
    let w = World::new();
    let src = w.payload("1.1.0", None);
    let run = w
        .ctl(&[
            "release",
            "build",
            "--item",
            "web",
            "--version",
            "1.1.0",
            "--from",
            src.to_str().unwrap(),
            "--key",
            "keys/release.key",
            "--out",
            "out-expired",
            "--expires-in-days",
            "0",
        ])
        .code(2);
    assert!(run.stderr.contains("expires-in-days"), "{run}");
}

#[test]
fn an_older_release_is_refused_as_a_rollback() {
    let w = World::new();
    w.release("1.0.0", &[]);
    w.release("1.1.0", &[]);
    w.agent("check").ok(); // enrol
    w.trigger(Some("1.1.0"));
    w.agent("once").ok();
    let before = World::tree(&w.root);
    w.trigger(Some("1.0.0"));
    assert_refused(&w, &before, "1.0.0", "rollback refused");
}

/// Writes a validly signed release `web 1.1.0` into `w.path(dir)` whose tarball tries to
/// write outside the staging root (`../../escaped`).
pub(crate) fn escaping_release(w: &World, dir: &str) -> std::path::PathBuf {
    let evil = b"owned\n";
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    let name = b"../../escaped";
    header.as_old_mut().name[..name.len()].copy_from_slice(name);
    header.set_size(evil.len() as u64);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    tar.append(&header, &evil[..]).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &tar.into_inner().unwrap()).unwrap();
    let tarball = gz.finish().unwrap();

    let out = w.path(dir);
    fs::create_dir_all(&out).unwrap();
    fs::write(out.join("web-1.1.0.tar.gz"), &tarball).unwrap();
    let now = time::OffsetDateTime::now_utc();
    let manifest = Manifest {
        item: "web".into(),
        version: "1.1.0".parse().unwrap(),
        category: Default::default(),
        released_at: now,
        expires_at: now + time::Duration::days(1),
        notes: String::new(),
        release_url: None,
        compatible: vec![],
        allow_downgrade: false,
        artifact: Artifact {
            name: "web-1.1.0.tar.gz".into(),
            size: tarball.len() as u64,
            sha256: hex::encode(Sha256::digest(&tarball)),
            urls: vec!["web-1.1.0.tar.gz".into()],
            compression: Compression::Gzip,
            bundle: None,
        },
        files: vec![FileEntry {
            path: "escaped".into(),
            sha256: hex::encode(Sha256::digest(evil)),
            mode: 0o644,
            size: evil.len() as u64,
            config: false,
        }],
        links: vec![],
        install: Install::default(),
    };
    let key = SigningKeyFile::load(&w.path("keys/release.key")).unwrap();
    fs::write(
        out.join("web-1.1.0.manifest.json"),
        manifest.sign(&[&key]).to_json(),
    )
    .unwrap();
    out
}

/// The server refuses to publish what every device would refuse: a tarball whose entry
/// escapes the root. Devices refusing it themselves: `standalone.rs`.
#[test]
fn a_tarball_entry_escaping_the_root_is_refused_at_publish() {
    let (w, before) = installed_world();
    let out = escaping_release(&w, "out-evil");
    let run = w
        .ctl(&["release", "publish", out.to_str().unwrap()])
        .code(1);
    assert!(run.stderr.contains("every device would refuse it"), "{run}");
    assert!(run.stderr.contains("../../escaped"), "{run}");
    let releases = w.ctl_json(&["releases", "list"]);
    assert!(
        !releases.to_string().contains("1.1.0"),
        "the refused release is listed: {releases}"
    );
    w.agent("once").ok();
    assert_eq!(World::tree(&w.root), before, "the device changed");
    assert!(!w.root.parent().unwrap().join("escaped").exists());
}
