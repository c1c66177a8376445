//! ferryctl's errors name what was wrong and what to do: connection settings, key files.

use std::fs;

use crate::util::World;

#[test]
fn connection_mistakes_are_named_with_the_fix() {
    let w = World::new();
    let url = w.server.url();
    let port = url.rsplit(':').next().unwrap().trim_end_matches('/');
    let with_server = |server: &str| {
        let mut cmd = w.ctl_command(&["hosts", "list"]);
        cmd.env("FERRY_SERVER", server);
        crate::util::run(cmd).code(1)
    };
    let no_scheme = with_server(&format!("localhost:{port}"));
    assert!(no_scheme.stderr.contains("FERRY_SERVER"), "{no_scheme}");
    assert!(no_scheme.stderr.contains("such as http://"), "{no_scheme}");
    let tls = with_server(&format!("https://127.0.0.1:{port}"));
    assert!(tls.stderr.contains("does not speak TLS"), "{tls}");
    let base = with_server(&format!("{url}/ferry"));
    assert!(
        base.stderr
            .contains(&format!("{url}/ferry/api/v1/hosts does not exist")),
        "{base}"
    );
    assert!(base.stderr.contains("base URL"), "{base}");
}

#[test]
fn key_file_mistakes_are_said_once_and_plainly() {
    let w = World::new();
    let src = w.payload("1.0.0", None);
    let build = |key: &str| release_build(&w, &src, key, &[]).code(1);
    let missing = build("keys/missing.key");
    assert_eq!(
        missing.stderr.matches("No such file or directory").count(),
        1,
        "{missing}"
    );
    let public = build("keys/release.pub");
    assert!(public.stderr.contains("this is the public key"), "{public}");
}

/// A release page that is not an http(s) link (`javascript:`, `data:`) would run in an
/// operator's browser from the items page: ferryctl refuses to sign it, naming the rule.
#[test]
fn a_release_url_that_is_not_an_http_link_is_refused_at_build() {
    let w = World::new();
    let src = w.payload("1.0.0", None);
    let url = ["--release-url", "javascript:fetch('/settings')"];
    let run = release_build(&w, &src, "keys/release.key", &url).code(1);
    assert!(run.stderr.contains("http:// or https://"), "{run}");
    assert!(
        !w.path("out").exists(),
        "nothing is written for a refused release"
    );
}

/// A symlink that leaves the release (absolute, or up past its root) would point at whatever
/// the device has there: refused at build, naming the link; one inside it is signed.
#[test]
fn release_build_signs_links_inside_the_release_and_refuses_the_rest() {
    let w = World::new();
    for (target, why) in [
        ("/etc/passwd", "the target is absolute"),
        ("../../../etc", "leaves the release's root"),
    ] {
        let src = w.payload("1.0.0", None);
        let _ = fs::remove_file(src.join("bin/escape"));
        std::os::unix::fs::symlink(target, src.join("bin/escape")).unwrap();
        let run = release_build(&w, &src, "keys/release.key", &[]).code(1);
        assert!(
            run.stderr.contains("bin/escape") && run.stderr.contains(why),
            "{run}"
        );
        assert!(!w.path("out").exists(), "nothing is written: {run}");
    }
    let src = w.payload("1.0.0", None);
    fs::remove_file(src.join("bin/escape")).unwrap();
    std::os::unix::fs::symlink("../bin", src.join("bin/up")).unwrap();
    let run = release_build(&w, &src, "keys/release.key", &[]).ok();
    assert!(run.stdout.contains("1 link"), "{run}");
    let envelope: ferry_manifests::Envelope =
        serde_json::from_slice(&fs::read(w.path("out/web-1.0.0.manifest.json")).unwrap()).unwrap();
    let manifest = ferry_manifests::Manifest::parse_unverified(&envelope).unwrap();
    assert_eq!(manifest.links.len(), 1);
    assert_eq!(
        (
            manifest.links[0].path.as_str(),
            manifest.links[0].target.as_str()
        ),
        ("bin/up", "../bin")
    );
}

/// `ferryctl release build` of web 1.0.0 from `src` with `key` into `out`, and `extra`.
fn release_build(w: &World, src: &std::path::Path, key: &str, extra: &[&str]) -> crate::util::Run {
    let mut args = vec![
        "release",
        "build",
        "--item",
        "web",
        "--version",
        "1.0.0",
        "--from",
        src.to_str().unwrap(),
        "--key",
        key,
        "--out",
        "out",
    ];
    args.extend_from_slice(extra);
    w.ctl(&args)
}
