//! File-level deltas, the server's side: built when a release is published (from the item's
//! previous releases), offered to a device that has exactly the older version, served with
//! Range, and holding only what changed (a rename costs nothing).

use std::fs;
use std::io::Read;
use std::time::{Duration, Instant};

use crate::util::{http, World};

fn operator_token(w: &World) -> String {
    fs::read_to_string(w.server.data_dir.join("operator.token"))
        .unwrap()
        .trim()
        .to_string()
}

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
        let mut x = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut content: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        if changed.contains(&i) {
            content.extend_from_slice(format!("file {i} of {version}\n").as_bytes());
        }
        let name = match renamed {
            Some(r) if r == i => format!("files/moved-{i}"),
            _ => format!("files/f{i}"),
        };
        fs::write(dir.join(name), content).unwrap();
    }
    dir
}

fn wait_for_delta(w: &World, path: &str) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let resp = http()
            .get(format!("{}/{path}", w.server.url()))
            .bearer_auth(operator_token(w))
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

    // 1.1.0: one file of 100 changed, one moved (same content, new path).
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
        ["files/f7"],
        "only the changed file is carried"
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
        .bearer_auth(operator_token(&w))
        .header("Range", "bytes=10-")
        .send()
        .unwrap();
    assert_eq!(part.status().as_u16(), 206);
    assert_eq!(part.bytes().unwrap().as_ref(), &delta[10..]);

    // A device on another version gets no delta for a version it does not have.
    let none = http()
        .get(format!("{}/api/v1/deltas/web/0.9.0/1.1.0", w.server.url()))
        .bearer_auth(operator_token(&w))
        .send()
        .unwrap();
    assert_eq!(none.status().as_u16(), 404);
}
