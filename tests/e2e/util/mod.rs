//! The harness: real ferry-server, ferry-agent and ferryctl processes in a temporary
//! directory. On failure it prints what is needed to see why without a rerun: the command,
//! its output, the server log and the directory tree.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub mod balancer;
pub mod broker;
pub mod browser;
pub mod certs;
pub mod debian;
mod device;
pub mod oidc;
pub mod podman;
pub mod receiver;
mod server;

pub use device::{signal, Device};
pub use server::{free_port, new_postgres_database, Server};

pub fn bin(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let path = target.join("debug").join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` before the e2e tests (the README's test command does)",
        path.display()
    );
    path
}

/// A finished command with everything needed to explain a failure.
pub struct Run {
    pub cmd: String,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "$ {}\nexit: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.cmd, self.code, self.stdout, self.stderr
        )
    }
}

impl Run {
    fn from(cmd: String, out: Output) -> Run {
        Run {
            cmd,
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    #[track_caller]
    pub fn ok(self) -> Run {
        assert_eq!(self.code, Some(0), "command failed:\n{self}");
        self
    }

    #[track_caller]
    pub fn code(self, code: i32) -> Run {
        assert_eq!(self.code, Some(code), "unexpected exit code:\n{self}");
        self
    }
}

pub fn run(mut cmd: Command) -> Run {
    let text = format!("{cmd:?}");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {text}: {e}"));
    Run::from(text, out)
}

/// One test's world: a server, a release key, an agent config, all in a temp dir.
pub struct World {
    pub dir: tempfile::TempDir,
    pub server: Server,
    pub key: PathBuf,
    pub agent_cfg: PathBuf,
    pub root: PathBuf,
}

impl World {
    pub fn new() -> World {
        Self::with_agent_extra("")
    }

    /// `extra` is appended to the agent config's top-level keys.
    pub fn with_agent_extra(extra: &str) -> World {
        World::with_configs(extra, None)
    }

    /// A world whose server reads `server_toml` (`--config`).
    pub fn with_server_config(server_toml: &str) -> World {
        World::with_configs("", Some(server_toml))
    }

    fn with_configs(extra: &str, server_toml: Option<&str>) -> World {
        let database = server::suite_on_postgres().then(new_postgres_database);
        World::with_database(extra, server_toml, database)
    }

    /// A world whose server keeps its state in `database` (PostgreSQL) if given, whatever
    /// the suite runs on: where several instances share one.
    pub fn with_database(
        extra: &str,
        server_toml: Option<&str>,
        database: Option<String>,
    ) -> World {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = server_toml.map(|text| {
            let path = dir.path().join("server.toml");
            fs::write(&path, text).expect("write server.toml");
            path
        });
        let server = Server::start_on(&dir.path().join("server-data"), config, database);
        let mut world = World {
            key: dir.path().join("keys/release"),
            agent_cfg: dir.path().join("agent.toml"),
            root: dir.path().join("device/web"),
            dir,
            server,
        };
        world
            .ctl(&["keygen", "--out", world.key.to_str().unwrap_or_default()])
            .ok();
        world.write_agent_config(extra);
        world
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write_agent_config(&mut self, extra: &str) {
        let text = self.agent_toml(
            "agent-state",
            "device-1",
            &format!("poll_interval_secs = 1\n{extra}"),
            &self.root,
        );
        fs::write(&self.agent_cfg, text).expect("write agent config");
    }

    /// An agent config against this world's server, trusting its release key, managing `web`
    /// at `root`; `extra` goes among the top-level keys.
    fn agent_toml(&self, state_dir: &str, hostname: &str, extra: &str, root: &Path) -> String {
        format!(
            r#"server_url = "{url}"
enrol_token_file = "server-data/enrol.token"
state_dir = "{state_dir}"
trusted_keys = ["keys/release.pub"]
hostname = "{hostname}"
{extra}

[[items]]
name = "web"
root = "{root}"
"#,
            url = self.server.url(),
            root = root.display(),
        )
    }

    /// ferryctl with `args`, pointed at this world's server with the operator token, for a
    /// test that spawns it or changes its environment.
    pub fn ctl_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin("ferryctl"));
        cmd.args(args)
            .current_dir(self.dir.path())
            .env("FERRY_SERVER", self.server.url())
            .env(
                "FERRY_TOKEN",
                fs::read_to_string(self.server.data_dir.join("operator.token"))
                    .unwrap_or_default()
                    .trim(),
            )
            .stdin(Stdio::null());
        cmd
    }

    pub fn ctl(&self, args: &[&str]) -> Run {
        run(self.ctl_command(args))
    }

    pub fn ctl_json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.push("--json");
        let r = self.ctl(&all).ok();
        serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{r}"))
    }

    /// The world's own device, `device-1`.
    pub fn device(&self) -> Device {
        Device {
            name: "device-1".into(),
            cfg: self.agent_cfg.clone(),
            root: self.root.clone(),
        }
    }

    /// Another device against the same server: its own config, state directory and root
    /// (`device/NAME-web`). `extra` is appended to its top-level keys.
    pub fn add_device(&self, name: &str, extra: &str) -> Device {
        let device = Device {
            name: name.to_string(),
            cfg: self.path(&format!("{name}.toml")),
            root: self.path(&format!("device/{name}-web")),
        };
        let text = self.agent_toml(&format!("state-{name}"), name, extra, &device.root);
        fs::write(&device.cfg, text).expect("write device config");
        device
    }

    /// Another tenant, `tenant`, with its admin `admin` (whose operator token,
    /// `ADMIN-laptop`, comes back) and a device `hostname` enrolled into it with the tenant's
    /// own enrolment token (`TENANT-fleet`), checked in once.
    pub fn second_tenant(&self, tenant: &str, admin: &str, hostname: &str) -> (String, Device) {
        self.ctl(&["tenants", "add", tenant]).ok();
        self.ctl(&["users", "add", admin, "--role", "admin", "--tenant", tenant])
            .ok();
        let token = self
            .ctl(&[
                "tokens",
                "create",
                "--user",
                admin,
                "--name",
                &format!("{admin}-laptop"),
            ])
            .ok()
            .stdout
            .trim()
            .to_string();
        let mut cmd = self.ctl_command(&[
            "tokens",
            "create",
            "--kind",
            "enrol",
            "--name",
            &format!("{tenant}-fleet"),
        ]);
        cmd.env("FERRY_TOKEN", &token);
        let enrol = run(cmd).ok();
        let file = format!("{tenant}.token");
        fs::write(self.path(&file), enrol.stdout.trim()).expect("write the enrolment token");
        let device = self.add_device(hostname, "");
        let cfg = fs::read_to_string(&device.cfg)
            .expect("device config")
            .replace("server-data/enrol.token", &file);
        fs::write(&device.cfg, cfg).expect("write device config");
        device.run("check").ok();
        (token, device)
    }

    pub fn agent(&self, mode: &str) -> Run {
        self.device().run(mode)
    }

    /// Writes a payload tree for `version`: `bin/web` prints the version; `static/index.html`.
    pub fn payload(&self, version: &str, web_script: Option<&str>) -> PathBuf {
        let dir = self.path(&format!("src-{version}"));
        fs::create_dir_all(dir.join("bin")).expect("mkdir");
        fs::create_dir_all(dir.join("static")).expect("mkdir");
        let script = web_script
            .map(str::to_string)
            .unwrap_or_else(|| format!("#!/bin/sh\necho web {version}\n"));
        fs::write(dir.join("bin/web"), script).expect("write");
        fs::set_permissions(dir.join("bin/web"), fs::Permissions::from_mode(0o755)).expect("chmod");
        fs::write(
            dir.join("static/index.html"),
            format!("<h1>{version}</h1>\n"),
        )
        .expect("write");
        dir
    }

    /// Builds and signs a release of `web` with the world's key; returns the out dir.
    pub fn build(&self, version: &str, src: &Path, extra: &[&str]) -> PathBuf {
        self.build_with("web", version, src, "keys/release.key", extra)
    }

    /// Builds and signs a release of `item` with the key file `key` (relative to the world);
    /// returns the out dir, `out-[ITEM-]VERSION`.
    pub fn build_with(
        &self,
        item: &str,
        version: &str,
        src: &Path,
        key: &str,
        extra: &[&str],
    ) -> PathBuf {
        let name = if item == "web" && key == "keys/release.key" {
            format!("out-{version}")
        } else {
            format!("out-{item}-{version}-{}", key.replace(['/', '.'], "_"))
        };
        let out = self.path(&name);
        let mut args = vec![
            "release",
            "build",
            "--item",
            item,
            "--version",
            version,
            "--from",
            src.to_str().unwrap_or_default(),
            "--key",
            key,
            "--out",
            out.to_str().unwrap_or_default(),
        ];
        args.extend_from_slice(extra);
        self.ctl(&args).ok();
        out
    }

    pub fn publish(&self, out: &Path) {
        self.ctl(&["release", "publish", out.to_str().unwrap_or_default()])
            .ok();
    }

    /// Builds and publishes a plain release.
    pub fn release(&self, version: &str, extra: &[&str]) {
        let src = self.payload(version, None);
        let out = self.build(version, &src, extra);
        self.publish(&out);
    }

    pub fn trigger(&self, version: Option<&str>) -> serde_json::Value {
        let mut args = vec!["update", "trigger", "--host", "device-1", "--item", "web"];
        if let Some(v) = version {
            args.extend_from_slice(&["--version", v]);
        }
        self.ctl_json(&args)
    }

    pub fn history(&self) -> Vec<serde_json::Value> {
        self.ctl_json(&["history", "list"])
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    pub fn current(&self) -> Option<String> {
        fs::read_link(self.root.join("current"))
            .ok()
            .map(|p| p.to_string_lossy().into_owned())
    }

    /// Every path under `dir` with its kind and content, for comparing trees.
    /// The first operator token, as the server wrote it into its data directory.
    pub fn operator_token(&self) -> String {
        fs::read_to_string(self.server.data_dir.join("operator.token"))
            .unwrap()
            .trim()
            .to_string()
    }

    /// Signs in to the web UI over plain HTTP and returns the session cookie
    /// (`ferry_session=…`).
    pub fn session_cookie(&self) -> String {
        let _ = http(); // installs the TLS crypto provider reqwest needs
        let client = reqwest::blocking::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let r = client
            .post(format!("{}/login", self.server.url()))
            .form(&[("token", self.operator_token().as_str()), ("next", "/")])
            .send()
            .unwrap();
        r.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string()
    }

    /// One sample of the server's metrics as it is exposed (`name{labels}`); -1 when absent.
    pub fn metric(&self, sample: &str) -> f64 {
        let text = http()
            .get(format!("{}/metrics", self.server.url()))
            .bearer_auth(self.operator_token())
            .send()
            .and_then(|r| r.text())
            .unwrap_or_default();
        text.lines()
            .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(-1.0)
    }

    /// `ferryctl campaigns create --item web --version VERSION ARGS…`: the new campaign.
    pub fn campaign(&self, version: &str, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["campaigns", "create", "--item", "web", "--version", version];
        all.extend_from_slice(args);
        self.ctl_json(&all)
    }

    pub fn tree(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
            let Ok(rd) = fs::read_dir(dir) else { return };
            let mut entries: Vec<_> = rd.flatten().collect();
            entries.sort_by_key(|e| e.file_name());
            for e in entries {
                let p = e.path();
                let rel = p.strip_prefix(base).unwrap_or(&p).display().to_string();
                let Ok(meta) = fs::symlink_metadata(&p) else {
                    continue;
                };
                if meta.file_type().is_symlink() {
                    out.push(format!(
                        "{rel} -> {}",
                        fs::read_link(&p)
                            .map(|t| t.display().to_string())
                            .unwrap_or_default()
                    ));
                } else if meta.is_dir() {
                    out.push(format!("{rel}/"));
                    walk(base, &p, out);
                } else {
                    let content = fs::read(&p).unwrap_or_default();
                    out.push(format!(
                        "{rel} {:o} {}",
                        meta.permissions().mode() & 0o7777,
                        String::from_utf8_lossy(&content).trim_end()
                    ));
                }
            }
        }
        walk(dir, dir, &mut out);
        out
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- server log ---\n{}", self.server.log_text());
            eprintln!("--- files ---");
            for line in World::tree(self.dir.path()) {
                if !line.contains("server-data/ferry.db") {
                    eprintln!("{}", line.chars().take(200).collect::<String>());
                }
            }
        }
    }
}

/// A blocking HTTP client for tests that call the API directly.
/// Waits (bounded by `limit`) until `done` holds; fails naming `what` otherwise.
pub fn eventually(what: &str, limit: std::time::Duration, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

pub fn http() -> reqwest::blocking::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::blocking::Client::new()
}

/// `len` bytes that do not compress (xorshift64 from `seed`): the same for the same seed.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.max(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
