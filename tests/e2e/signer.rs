//! A release signed by an independent signer (tests/signer/ferry_sign.py, Python, written
//! from docs/release-format.md alone) publishes and installs with the real agent.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::util::{run, World};

#[test]
fn a_release_signed_from_the_specification_alone_installs() {
    let w = World::new();
    let src = w.payload("1.0.0", None);
    fs::write(src.join("static/data.bin"), [0u8, 1, 2, 255]).unwrap();
    let signer = Path::new(env!("CARGO_MANIFEST_DIR")).join("signer/ferry_sign.py");
    let out = w.path("py-out");
    let mut cmd = Command::new("python3");
    cmd.arg(&signer)
        .args([
            "--key",
            "keys/release.key",
            "--item",
            "web",
            "--version",
            "1.0.0",
        ])
        .arg("--from")
        .arg(&src)
        .arg("--out")
        .arg(&out)
        .current_dir(w.dir.path());
    run(cmd).ok();
    w.publish(&out);
    w.agent("check").ok();
    w.trigger(Some("1.0.0"));
    w.agent("once").ok();
    assert_eq!(w.current().as_deref(), Some("releases/1.0.0"));
    let bin = w.root.join("current/bin/web");
    assert_eq!(
        fs::metadata(&bin).unwrap().permissions().mode() & 0o7777,
        0o755
    );
    assert_eq!(
        fs::read(w.root.join("current/static/data.bin")).unwrap(),
        [0u8, 1, 2, 255]
    );
    let last = w.history().pop().unwrap();
    assert_eq!(last["status"], "installed", "{last}");
    assert!(
        last["output"]
            .as_str()
            .unwrap()
            .contains("signed elsewhere"),
        "{last}"
    );
}
