//! File-level deltas, the server's side: built when a release is published (from the item's
//! previous releases), offered to a device that has exactly the older version, served with
//! Range, and holding only what changed (a rename costs nothing).

use std::fs;
use std::io::Read;
use std::time::{Duration, Instant};

use crate::util::{http, World};

/// A payload of `n` files, each with its own content; `changed` of them differ by version.
fn payload(
    w: &World,
    version: &str,
    n: usize,
    changed: &[usize],
    renamed: Option<usize>,
) -> std::path::PathBuf {
    let dir = w.path(&format!("delta-src-{version}"));
    fs::create_dir_all(dir.join("files")).unwrap();
    for i in 0..n {
        // 4 KiB that do not compress, the same in every version unless changed.
        let mut content =
            crate::util::noise((i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15), 4096);
        if changed.contains(&i) {
            content.extend_from_slice(format!("file {i} of {version}\n").as_bytes());
        }
        let name = match renamed {
            Some(r) if r == i => format!("files/moved-{i}"),
            _ => format!("files/f{i}"),
        };
        fs::write(dir.join(name), content).unwrap();
    }
    // A library behind a link that moves with the version, and one that stays.
    fs::create_dir_all(dir.join("lib")).unwrap();
    fs::write(dir.join(format!("lib/libweb.so.{version}")), version).unwrap();
    std::os::unix::fs::symlink(format!("libweb.so.{version}"), dir.join("lib/libweb.so")).unwrap();
    std::os::unix::fs::symlink("files/f0", dir.join("first")).unwrap();
    dir
}

/// The links of `version`'s payload under `dir`.
fn assert_links(dir: &std::path::Path, version: &str) {
    assert_eq!(
        fs::read_link(dir.join("lib/libweb.so")).unwrap(),
        std::path::Path::new(&format!("libweb.so.{version}"))
    );
    assert_eq!(
        fs::read_to_string(dir.join("lib/libweb.so")).unwrap(),
        version
    );
    assert_eq!(
        fs::read_link(dir.join("first")).unwrap(),
        std::path::Path::new("files/f0")
    );
}

fn wait_for_delta(w: &World, path: &str) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let resp = http()
            .get(format!("{}/{path}", w.server.url()))
            .bearer_auth(w.operator_token())
            .send()
            .unwrap();
        if resp.status().is_success() {
            return resp.bytes().unwrap().to_vec();
        }
        assert!(
            Instant::now() < deadline,
            "the delta {path} was never built"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_published_release_gets_a_delta_holding_only_what_changed() {
    let w = World::new();
    let v1 = payload(&w, "1.0.0", 100, &[], None);
    w.publish(&w.build("1.0.0", &v1, &[]));
    w.agent("check").ok();
    w.trigger(Some("1.0.0"));
    w.agent("once").ok();

    // 1.1.0: one file of 100 changed, one moved (same content, new path), and the library
    // its link points at renamed.
    let v2 = payload(&w, "1.1.0", 100, &[7], Some(42));
    let out = w.build("1.1.0", &v2, &[]);
    w.publish(&out);
    let delta = wait_for_delta(&w, "api/v1/deltas/web/1.0.0/1.1.0");

    let mut names = Vec::new();
    let mut meta = String::new();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(delta.as_slice()));
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        if name == "ferry-delta.json" {
            entry.read_to_string(&mut meta).unwrap();
        }
        names.push(name);
    }
    assert_eq!(names[0], "ferry-delta.json", "the metadata comes first");
    assert_eq!(
        &names[1..],
        ["files/f7", "lib/libweb.so.1.1.0"],
        "only the changed files are carried; links never are (the manifest signs them)"
    );
    let meta: serde_json::Value = serde_json::from_str(&meta).unwrap();
    assert!(
        meta["copy"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["path"] == "files/moved-42" && c["from"] == "files/f42"),
        "the moved file comes from its old path: {meta}"
    );
    let full = fs::metadata(out.join("web-1.1.0.tar.gz")).unwrap().len();
    assert!(
        (delta.len() as u64) * 10 < full,
        "the delta ({} bytes) is a small part of the artifact ({full} bytes)",
        delta.len()
    );

    // The device at 1.0.0 is offered it, with its size and hash.
    w.agent("check").ok();
    let state: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(w.path("agent-state/state.json")).unwrap())
            .unwrap();
    let offer = &state["items"]["web"]["offered"]["delta"];
    assert_eq!(offer["from_version"], "1.0.0", "{state}");
    assert_eq!(offer["size"], delta.len() as u64);
    assert_eq!(offer["path"], "api/v1/deltas/web/1.0.0/1.1.0");

    // Range works, so a device resumes it.
    let part = http()
        .get(format!("{}/api/v1/deltas/web/1.0.0/1.1.0", w.server.url()))
        .bearer_auth(w.operator_token())
        .header("Range", "bytes=10-")
        .send()
        .unwrap();
    assert_eq!(part.status().as_u16(), 206);
    assert_eq!(part.bytes().unwrap().as_ref(), &delta[10..]);

    // A device on another version gets no delta for a version it does not have.
    let none = http()
        .get(format!("{}/api/v1/deltas/web/0.9.0/1.1.0", w.server.url()))
        .bearer_auth(w.operator_token())
        .send()
        .unwrap();
    assert_eq!(none.status().as_u16(), 404);
}

/// A device at 1.0.0 (100 files) and a published 1.1.0 with one file changed and one moved,
/// its delta built; returns the world and the 1.1.0 payload directory.
fn device_with_a_delta_waiting() -> (World, std::path::PathBuf) {
    device_with_a_delta_waiting_in(&[])
}

fn device_with_a_delta_waiting_in(build_args: &[&str]) -> (World, std::path::PathBuf) {
    let w = World::new();
    let v1 = payload(&w, "1.0.0", 100, &[], None);
    w.publish(&w.build("1.0.0", &v1, build_args));
    w.agent("check").ok();
    w.trigger(Some("1.0.0"));
    w.agent("once").ok();
    let v2 = payload(&w, "1.1.0", 100, &[7], Some(42));
    w.publish(&w.build("1.1.0", &v2, build_args));
    wait_for_delta(&w, "api/v1/deltas/web/1.0.0/1.1.0");
    (w, v2)
}

/// Every file of `src` is in the installed 1.1.0 with the same content.
fn assert_installed_as(w: &World, src: &std::path::Path) {
    assert_eq!(w.current().as_deref(), Some("releases/1.1.0"));
    let installed = w.root.join("releases/1.1.0/files");
    let mut count = 0;
    for e in fs::read_dir(src.join("files")).unwrap().flatten() {
        let got = fs::read(installed.join(e.file_name())).unwrap_or_default();
        assert_eq!(got, fs::read(e.path()).unwrap(), "{:?}", e.file_name());
        count += 1;
    }
    assert_eq!(count, 100);
    assert_eq!(
        fs::read_dir(&installed).unwrap().count(),
        100,
        "nothing extra"
    );
    assert_links(&w.root.join("releases/1.1.0"), "1.1.0");
}

#[test]
fn a_one_percent_change_installs_from_the_delta() {
    let (w, v2) = device_with_a_delta_waiting();
    w.trigger(Some("1.1.0"));
    let run = w.agent("once").ok();
    assert!(run.stderr.contains("downloaded a delta"), "{run}");
    assert!(!run.stderr.contains("cannot be used"), "{run}");
    assert_installed_as(&w, &v2);
    // The history says what was fetched, and from what.
    let h = w.history();
    let e = h.iter().find(|e| e["version"] == "1.1.0").unwrap();
    assert_eq!(e["fetched"]["delta_from"], "1.0.0", "{h:?}");
    let bytes = e["fetched"]["bytes"].as_u64().unwrap();
    let full = fs::metadata(w.path("out-1.1.0/web-1.1.0.tar.gz"))
        .unwrap()
        .len();
    assert!(bytes * 10 < full, "{bytes} of {full}");
}

#[test]
fn a_locally_changed_file_makes_the_agent_fetch_the_full_artifact() {
    let (w, v2) = device_with_a_delta_waiting();
    // A file the delta would copy from the installed release was changed on the device.
    fs::write(w.root.join("releases/1.0.0/files/f3"), "changed by hand").unwrap();
    w.trigger(Some("1.1.0"));
    let run = w.agent("once").ok();
    assert!(run.stderr.contains("downloaded a delta"), "{run}");
    assert!(
        run.stderr.contains("cannot be used") && run.stderr.contains("files/f3"),
        "{run}"
    );
    assert_installed_as(&w, &v2);
    let h = w.history();
    let e = h.iter().find(|e| e["version"] == "1.1.0").unwrap();
    assert_eq!(
        e["status"], "installed",
        "never a failed install because of a delta"
    );
    assert_eq!(e["fetched"]["fell_back"], true, "{h:?}");
    assert_eq!(e["fetched"].get("delta_from"), None, "{h:?}");
}

#[test]
fn a_delta_with_a_changed_byte_falls_back_to_the_full_artifact() {
    let (mut w, v2) = device_with_a_delta_waiting();
    // The server serves a delta whose carried file has one byte changed (its offer's size
    // and hash updated to match, so only the signed manifest can tell).
    let dir = w.server.data_dir.join("deltas/web");
    let file = dir.join("1.0.0-1.1.0.tar.gz");
    let mut archive =
        tar::Archive::new(flate2::read::GzDecoder::new(fs::File::open(&file).unwrap()));
    let mut out = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        if name == "files/f7" {
            data[0] ^= 1;
        }
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        out.append_data(&mut h, &name, data.as_slice()).unwrap();
    }
    let bytes = out.into_inner().unwrap().finish().unwrap();
    fs::write(&file, &bytes).unwrap();
    use sha2::Digest;
    fs::write(
        dir.join("1.0.0-1.1.0.json"),
        serde_json::json!({"size": bytes.len(), "sha256": hex::encode(sha2::Sha256::digest(&bytes))}).to_string(),
    )
    .unwrap();
    w.server.kill();
    w.server.restart_same_port();
    w.trigger(Some("1.1.0"));
    let run = w.agent("once").ok();
    assert!(run.stderr.contains("downloaded a delta"), "{run}");
    assert!(run.stderr.contains("cannot be used"), "{run}");
    assert_installed_as(&w, &v2);
}

#[test]
fn the_overlay_layout_writes_only_what_a_delta_changed() {
    use std::os::unix::fs::MetadataExt;
    let (w, v2) = device_with_a_delta_waiting_in(&["--layout", "overlay"]);
    let inode = |rel: &str| fs::metadata(w.root.join(rel)).unwrap().ino();
    let (same, changed) = (inode("files/f5"), inode("files/f7"));
    w.trigger(Some("1.1.0"));
    let run = w.agent("once").ok();
    assert!(run.stderr.contains("downloaded a delta"), "{run}");
    assert_eq!(inode("files/f5"), same, "an unchanged file is left alone");
    assert_ne!(inode("files/f7"), changed, "the changed file is replaced");
    for e in fs::read_dir(v2.join("files")).unwrap().flatten() {
        assert_eq!(
            fs::read(w.root.join("files").join(e.file_name())).unwrap(),
            fs::read(e.path()).unwrap(),
            "{:?}",
            e.file_name()
        );
    }
    assert!(
        !w.root.join("files/f42").exists(),
        "the moved file left its old path"
    );
    assert_links(&w.root, "1.1.0");
    // A rollback by hand puts 1.0.0 back, the untouched file included.
    w.device()
        .run_args(&["--running-mode=rollback", "--item", "web"])
        .ok();
    assert!(w.root.join("files/f42").exists());
    assert!(!w.root.join("files/moved-42").exists());
    assert_eq!(inode("files/f5"), same);
    assert_links(&w.root, "1.0.0");
    assert!(!w.root.join("lib/libweb.so.1.1.0").exists());
}
