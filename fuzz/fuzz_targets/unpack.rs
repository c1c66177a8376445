//! Unpacking arbitrary tar bytes. The manifest lists every regular file the stream claims
//! (with its real hash), so the fuzzer reaches the write path; the oracle: nothing is ever
//! created outside the staging directory, and nothing in it is a symlink or special file.
#![no_main]
use std::io::Read;
use std::path::Path;

use ferry_agent::fsops::RealFs;
use ferry_agent::install::unpack::unpack_tar;
use ferry_manifests::FileEntry;
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};

fn listed(data: &[u8]) -> Vec<FileEntry> {
    let mut out = Vec::new();
    let mut archive = tar::Archive::new(data);
    let Ok(entries) = archive.entries() else {
        return out;
    };
    for entry in entries.take(64) {
        let Ok(mut entry) = entry else { break };
        let Ok(path) = entry.path().map(|p| p.to_string_lossy().trim_start_matches("./").to_string())
        else {
            continue;
        };
        let mut content = Vec::new();
        if entry.read_to_end(&mut content).is_err() {
            break;
        }
        out.push(FileEntry {
            path,
            sha256: hex::encode(Sha256::digest(&content)),
            mode: 0o644,
            size: content.len() as u64,
            config: false,
        });
    }
    out
}

fn check(dir: &Path, base: &Path) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let m = std::fs::symlink_metadata(e.path()).unwrap();
        assert!(e.path().starts_with(base));
        assert!(m.is_dir() || m.is_file(), "{} is special", e.path().display());
        if m.is_dir() {
            check(&e.path(), base);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let files = listed(data);
    let scratch = std::env::temp_dir().join(format!("ferry-fuzz-unpack-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let stage = scratch.join("stage");
    std::fs::create_dir_all(&stage).unwrap();
    let _ = unpack_tar(&RealFs, data, &files, &[], &stage);
    let outside: Vec<_> = std::fs::read_dir(&scratch).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(outside, vec![std::ffi::OsString::from("stage")], "created outside the staging dir");
    check(&stage, &stage);
    let _ = std::fs::remove_dir_all(&scratch);
});
