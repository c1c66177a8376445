//! The harness: real ferry-server, ferry-agent and ferryctl processes in a temporary
//! directory. On failure it prints what is needed to see why without a rerun: the command,
//! its output, the server log and the directory tree.

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Bound on waiting for the server to answer /healthz.
const SERVER_START_TIMEOUT: Duration = Duration::from_secs(20);

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

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

/// A raw GET over loopback; the harness needs nothing more to poll /healthz.
fn http_get_status(addr: &str, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    buf.split_whitespace().nth(1)?.parse().ok()
}

pub struct Server {
    child: Option<Child>,
    pub addr: String,
    pub data_dir: PathBuf,
    log: PathBuf,
}

impl Server {
    pub fn start(data_dir: &Path) -> Server {
        let mut server = Server {
            child: None,
            addr: String::new(),
            data_dir: data_dir.to_path_buf(),
            log: data_dir.with_extension("log"),
        };
        server.launch();
        server
    }

    /// Starts the server on `addr`; true once it answers /healthz, false if it exited
    /// (the port was taken) or did not answer in time.
    fn spawn_on(&mut self, addr: &str) -> bool {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("server log");
        let child = Command::new(bin("ferry-server"))
            .arg("--listen")
            .arg(addr)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .env("FERRY_LOG", "info,tower_http=debug")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start ferry-server");
        self.child = Some(child);
        self.addr = addr.to_string();
        let deadline = Instant::now() + SERVER_START_TIMEOUT;
        while Instant::now() < deadline {
            if http_get_status(addr, "/healthz") == Some(200) {
                return true;
            }
            if let Some(Ok(Some(_))) = self.child.as_mut().map(|c| c.try_wait()) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    fn launch(&mut self) {
        for _attempt in 0..5 {
            if self.spawn_on(&format!("127.0.0.1:{}", free_port())) {
                return;
            }
            self.kill();
        }
        panic!(
            "ferry-server did not become ready; log:\n{}",
            self.log_text()
        );
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts again on the same address and data.
    pub fn restart_same_port(&mut self) {
        let addr = self.addr.clone();
        if !self.spawn_on(&addr) {
            panic!("ferry-server did not restart; log:\n{}", self.log_text());
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
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
        let dir = tempfile::tempdir().expect("tempdir");
        let server = Server::start(&dir.path().join("server-data"));
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
        let text = format!(
            r#"server_url = "{url}"
enrol_token_file = "server-data/enrol.token"
state_dir = "agent-state"
trusted_keys = ["keys/release.pub"]
poll_interval_secs = 1
hostname = "device-1"
{extra}

[[items]]
name = "web"
root = "{root}"
"#,
            url = self.server.url(),
            root = self.root.display(),
        );
        fs::write(&self.agent_cfg, text).expect("write agent config");
    }

    pub fn ctl(&self, args: &[&str]) -> Run {
        let mut cmd = Command::new(bin("ferryctl"));
        cmd.args(args)
            .current_dir(self.dir.path())
            .env("FERRY_SERVER", self.server.url())
            .env(
                "FERRY_TOKEN",
                fs::read_to_string(self.server.data_dir.join("operator.token"))
                    .unwrap_or_default()
                    .trim(),
            );
        run(cmd)
    }

    pub fn ctl_json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.push("--json");
        let r = self.ctl(&all).ok();
        serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{r}"))
    }

    pub fn agent(&self, mode: &str) -> Run {
        let mut cmd = Command::new(bin("ferry-agent"));
        cmd.arg("--config")
            .arg(&self.agent_cfg)
            .arg(format!("--running-mode={mode}"))
            .env("FERRY_LOG", "info");
        run(cmd)
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
