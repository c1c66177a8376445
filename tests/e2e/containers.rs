//! The `containers` source with a real Podman (Debian's package) and a real registry
//! (Debian's `docker-registry`, the CNCF distribution server) on loopback: a container's tag
//! and the newer tag its registry offers reach the server; `batch-host` pulls the new tag and
//! recreates the container from its own settings; a removed container leaves the fleet.
//! Podman runs as `util::podman` says this machine needs it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::podman::{path_with, podman, podman_wrapper};
use crate::util::{run, World};

/// A registry on loopback, stopped with the test.
struct Registry {
    addr: String,
    child: Child,
}

impl Registry {
    fn start(dir: &Path) -> Registry {
        let port = crate::util::free_port();
        let addr = format!("127.0.0.1:{port}");
        // Open to anyone on loopback (Debian's own config asks for a password file).
        let config = dir.join("registry.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
                dir.join("registry").display()
            ),
        )
        .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry (Debian's package; scripts/test installs it)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(Instant::now() < deadline, "the registry never listened");
            std::thread::sleep(Duration::from_millis(50));
        }
        Registry { addr, child }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The command of an image that runs until stopped.
const SLEEPS: Option<&str> = Some("trap 'exit 0' TERM; /bin/busybox sleep 3600 & wait");

/// An image of the static busybox that runs `script`, tagged `tag`, with `/version` saying
/// it; without a script, an image with no program at all (its containers cannot start).
fn image(dir: &Path, bin: &Path, name: &str, tag: &str, script: Option<&str>) {
    let tree = dir.join(format!("image-{}-{tag}", name.replace(['/', ':'], "_")));
    std::fs::create_dir_all(tree.join("bin")).unwrap();
    if script.is_some() {
        std::fs::copy("/bin/busybox", tree.join("bin/busybox"))
            .expect("/bin/busybox (busybox-static; scripts/test installs it)");
    }
    let script = script.unwrap_or("exit 3");
    std::fs::write(tree.join("version"), tag).unwrap();
    let tar = tree.with_extension("tar");
    run({
        let mut c = Command::new("tar");
        c.arg("-C").arg(&tree).arg("-cf").arg(&tar).arg(".");
        c
    })
    .ok();
    podman(
        bin,
        &[
            "import",
            "--change",
            &format!("CMD [\"/bin/busybox\", \"sh\", \"-c\", {script:?}]"),
            tar.to_str().unwrap(),
            &format!("{name}:{tag}"),
        ],
    );
    podman(
        bin,
        &["push", "--tls-verify=false", &format!("{name}:{tag}")],
    );
    // Pulled from the registry when it is wanted, as on a real host.
    podman(bin, &["rmi", &format!("{name}:{tag}")]);
}

/// The image the container `name` runs.
fn running_image(bin: &Path, name: &str) -> String {
    podman(bin, &["inspect", "--format", "{{.ImageName}}", name])
        .trim()
        .to_string()
}

#[test]
fn a_containers_newer_tag_is_reported_and_batch_host_recreates_it() {
    let w = World::new();
    let bin = podman_wrapper(w.dir.path());
    let registry = Registry::start(w.dir.path());
    // Names of their own: the machine's Podman is shared with whatever else runs.
    let suffix = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    let repo = format!("{}/ferry-test-app-{suffix}", registry.addr);
    let container = format!("ferry-web-{suffix}");
    image(w.dir.path(), &bin, &repo, "1.0", SLEEPS);
    image(w.dir.path(), &bin, &repo, "1.1", SLEEPS);
    image(w.dir.path(), &bin, &repo, "1.1-debug", SLEEPS);
    // A second application whose 1.1 lacks its program.
    let broken = format!("{}/ferry-test-broken-{suffix}", registry.addr);
    image(w.dir.path(), &bin, &broken, "1.0", SLEEPS);
    image(w.dir.path(), &bin, &broken, "1.1", None);
    let start = |name: &str, repo: &str, extra: &[&str]| {
        let image = format!("{repo}:1.0");
        let mut args = vec!["run", "-d", "--tls-verify=false", "--name", name];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--label", "owner=ferry-test", &image]);
        podman(&bin, &args);
    };
    start(
        &container,
        &repo,
        &["-e", "GREETING=hello", "-p", "127.0.0.1::8080"],
    );
    let isolated = format!("ferry-broken-{suffix}");
    start(&isolated, &broken, &[]);
    let cleanup = Cleanup {
        bin: bin.to_path_buf(),
        names: vec![
            container.clone(),
            format!("{container}-ferry-previous"),
            isolated.clone(),
            format!("{isolated}-ferry-previous"),
        ],
    };

    let d = w.add_device(
        "pod-host",
        &format!(
            "[[sources]]\nkind = \"containers\"\ninsecure_registries = [\"{}\"]\n",
            registry.addr
        ),
    );
    let agent = |mode: &str| {
        let mut c = d.mode(mode);
        c.env("PATH", path_with(&bin));
        run(c)
    };
    let checked = agent("check");
    assert_eq!(checked.code, Some(0), "{checked}");
    let hits = w.ctl_json(&["packages", "search", &container]);
    assert_eq!(hits[0]["source"], "containers", "{hits}");
    assert_eq!(hits[0]["version"], "1.0", "{hits}");
    assert_eq!(hits[0]["latest"], "1.1", "same shape only: {hits}");

    w.ctl(&["update", "batch-host", "pod-host", "--exclude", &isolated])
        .ok();
    let ran = agent("once");
    assert_eq!(ran.code, Some(0), "{ran}");
    assert_eq!(running_image(&bin, &container), format!("{repo}:1.1"));
    // Recreated from its own settings: its environment and published port are there, the
    // old container is gone.
    let settings = podman(
        &bin,
        &[
            "inspect",
            "--format",
            "{{.Config.Env}} {{.HostConfig.PortBindings}} {{.State.Status}}",
            &container,
        ],
    );
    assert!(settings.contains("GREETING=hello"), "{settings}");
    assert!(settings.contains("8080/tcp"), "{settings}");
    assert!(settings.contains("running"), "{settings}");
    let gone = run({
        let mut c = Command::new(bin.join("podman"));
        c.args([
            "container",
            "exists",
            &format!("{container}-ferry-previous"),
        ]);
        c
    });
    assert_ne!(gone.code, Some(0), "the previous container was removed");
    let history = w.ctl_json(&["history", "list", "--host", "pod-host"]);
    assert_eq!(history[0]["item"], "containers packages", "{history}");
    assert_eq!(history[0]["status"], "installed", "{history}");
    let shown = w.ctl_json(&["history", "show", history[0]["id"].as_str().unwrap()]);
    assert_eq!(
        shown["packages"],
        serde_json::json!([{"name": container, "from": "1.0", "to": "1.1"}]),
        "{shown}"
    );
    assert!(
        shown["output"].as_str().unwrap().contains("now runs"),
        "{shown}"
    );
    // The second round of the run sent the new list: nothing pending.
    let hits = w.ctl_json(&["packages", "search", &container]);
    assert_eq!(hits[0]["version"], "1.1", "{hits}");
    assert_eq!(hits[0].get("latest"), None, "{hits}");

    // The broken release cannot start: the previous container is put back as it was and the
    // history says why.
    w.ctl(&["update", "batch-host", "pod-host"]).ok();
    let refused = agent("once");
    let history = w.ctl_json(&["history", "list", "--host", "pod-host"]);
    let last = history.as_array().unwrap().last().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(
        refused.code,
        Some(0),
        "{refused}\n{}",
        w.ctl_json(&["history", "show", &last])["output"]
    );
    assert_eq!(running_image(&bin, &isolated), format!("{broken}:1.0"));
    let state = podman(
        &bin,
        &["inspect", "--format", "{{.State.Status}}", &isolated],
    );
    assert_eq!(state.trim(), "running", "{state}");
    let shown = w.ctl_json(&["history", "show", &last]);
    assert_eq!(shown["status"], "failed", "{shown}");
    let output = shown["output"].as_str().unwrap();
    assert!(
        output.contains("did not start") && output.contains("previous container runs again"),
        "{output}"
    );

    // Removed on the host: gone from the fleet at the next check.
    podman(&bin, &["rm", "-f", &container]);
    assert_eq!(agent("check").code, Some(0));
    assert_eq!(
        w.ctl_json(&["packages", "search", &container]),
        serde_json::json!([])
    );
    drop(cleanup);
}

/// Removes the test's containers whatever happens.
struct Cleanup {
    bin: PathBuf,
    names: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = Command::new(self.bin.join("podman"))
                .args(["rm", "-f", n])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}
