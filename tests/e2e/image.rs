//! The container image (`scripts/image`) with a real Podman (Debian's package): built from
//! the binary under test, it runs as a user other than root with its data in a volume, says
//! it is healthy, and a device enrols with it and installs a release published to it.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::util::podman::{path_with, podman, podman_wrapper};
use crate::util::{bin, free_port, http, run, World};

/// Removes the test's container, volume and image, whatever happens.
struct Cleanup<'a> {
    bin: &'a Path,
    container: String,
    volume: String,
    image: String,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for args in [
            vec!["rm", "-f", "-t", "0", self.container.as_str()],
            vec!["volume", "rm", "-f", self.volume.as_str()],
            vec!["rmi", "-f", self.image.as_str()],
        ] {
            let _ = Command::new(self.bin.join("podman"))
                .args(&args)
                .env("PATH", path_with(self.bin))
                .output();
        }
    }
}

#[test]
fn the_image_runs_as_a_user_keeps_its_data_in_a_volume_is_healthy_and_serves_an_update() {
    let w = World::new();
    let podman_bin = podman_wrapper(w.dir.path());
    let suffix = format!("{}", std::process::id());
    let image = format!("localhost/ferry-server-test:{suffix}");
    let _cleanup = Cleanup {
        bin: &podman_bin,
        container: format!("ferry-server-test-{suffix}"),
        volume: format!("ferry-server-test-{suffix}"),
        image: image.clone(),
    };
    let built = run({
        let mut c = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/image"));
        c.args([
            "--binary",
            bin("ferry-server").to_str().unwrap(),
            "--tag",
            &image,
        ])
        .env("PODMAN", podman_bin.join("podman"))
        .env("PATH", path_with(&podman_bin));
        c
    });
    assert_eq!(built.code, Some(0), "scripts/image: {built}");
    let config = podman(
        &podman_bin,
        &[
            "image",
            "inspect",
            "--format",
            "{{.Config.User}} {{json .Config.Volumes}}",
            &image,
        ],
    );
    assert!(config.starts_with("10001:10001 "), "{config}");
    assert!(config.contains("/var/lib/ferry-server"), "{config}");

    let port = free_port();
    let container = format!("ferry-server-test-{suffix}");
    podman(
        &podman_bin,
        &[
            "run",
            "-d",
            "--name",
            &container,
            "-p",
            &format!("127.0.0.1:{port}:8080"),
            "-v",
            &format!("ferry-server-test-{suffix}:/var/lib/ferry-server"),
            &image,
        ],
    );
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while http()
        .get(format!("{url}/readyz"))
        .send()
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
        != 200
    {
        assert!(
            Instant::now() < deadline,
            "the container never got ready: {}",
            podman(&podman_bin, &["logs", &container])
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Its HEALTHCHECK, as the engine runs it.
    podman(&podman_bin, &["healthcheck", "run", &container]);
    // Not root: the process's user, as the kernel sees it.
    let pid = podman(
        &podman_bin,
        &["inspect", "--format", "{{.State.Pid}}", &container],
    );
    let status = fs::read_to_string(format!("/proc/{}/status", pid.trim())).unwrap();
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    assert_eq!(uid, "10001", "{status}");

    // The first tokens are in the volume, as they are in a data directory.
    let tokens = w.path("container-tokens");
    fs::create_dir_all(&tokens).unwrap();
    for name in ["operator.token", "enrol.token"] {
        podman(
            &podman_bin,
            &[
                "cp",
                &format!("{container}:/var/lib/ferry-server/{name}"),
                tokens.join(name).to_str().unwrap(),
            ],
        );
    }
    let operator = fs::read_to_string(tokens.join("operator.token")).unwrap();
    let ctl = |args: &[&str]| {
        let mut c = w.ctl_command(args);
        c.env("FERRY_SERVER", &url)
            .env("FERRY_TOKEN", operator.trim());
        let r = run(c);
        assert_eq!(r.code, Some(0), "ferryctl {args:?}: {r}");
        r
    };
    let src = w.payload("1.0.0", None);
    let out = w.path("image-out-1.0.0");
    ctl(&[
        "release",
        "build",
        "--item",
        "web",
        "--version",
        "1.0.0",
        "--from",
        src.to_str().unwrap(),
        "--key",
        "keys/release.key",
        "--out",
        out.to_str().unwrap(),
    ]);
    ctl(&["release", "publish", out.to_str().unwrap()]);
    let root = w.path("image-device/web");
    let agent_cfg = w.path("image-agent.toml");
    fs::write(
        &agent_cfg,
        format!(
            "server_url = \"{url}\"\nenrol_token_file = \"{}\"\nstate_dir = \"image-agent-state\"\ntrusted_keys = [\"keys/release.pub\"]\nhostname = \"in-image\"\n\n[[items]]\nname = \"web\"\nroot = \"{}\"\n",
            tokens.join("enrol.token").display(),
            root.display()
        ),
    )
    .unwrap();
    let agent = || {
        let mut c = Command::new(bin("ferry-agent"));
        c.arg("--config")
            .arg(&agent_cfg)
            .arg("--running-mode=once")
            .current_dir(w.dir.path());
        let r = run(c);
        assert_eq!(r.code, Some(0), "ferry-agent: {r}");
    };
    agent();
    ctl(&[
        "update",
        "trigger",
        "--host",
        "in-image",
        "--item",
        "web",
        "--version",
        "1.0.0",
    ]);
    agent();
    assert_eq!(
        fs::read_to_string(root.join("current/static/index.html"))
            .unwrap_or_default()
            .trim(),
        "<h1>1.0.0</h1>"
    );
    let history = ctl(&["history", "list", "--json"]);
    assert!(history.stdout.contains("\"installed\""), "{history}");

    // Stopped and started again: the volume kept the fleet.
    podman(&podman_bin, &["restart", "-t", "10", &container]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = run({
            let mut c = w.ctl_command(&["hosts", "list", "--json"]);
            c.env("FERRY_SERVER", &url)
                .env("FERRY_TOKEN", operator.trim());
            c
        });
        if r.code == Some(0) {
            assert!(r.stdout.contains("in-image"), "{r}");
            break;
        }
        assert!(Instant::now() < deadline, "not back after a restart: {r}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
