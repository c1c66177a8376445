//! Devices: the real ferry-agent with a config of its own, started only through here.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use super::{bin, run, Run};

/// One device: its agent config (with its own state directory and item root), run with the
/// real ferry-agent. A world has one ([`World::device`]); [`World::add_device`] makes more.
/// Tests start the agent only through here, so every run can be shown when a test fails.
pub struct Device {
    pub name: String,
    pub cfg: PathBuf,
    pub root: PathBuf,
}

impl Device {
    /// The agent with `args` (e.g. `--running-mode=once`), for a test that spawns, signals
    /// or sets the environment of it. Logs at info; stdin is closed.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin("ferry-agent"));
        cmd.arg("--config")
            .arg(&self.cfg)
            .args(args)
            .env("FERRY_LOG", "info")
            .stdin(Stdio::null());
        cmd
    }

    /// The agent in running mode `mode`.
    pub fn mode(&self, mode: &str) -> Command {
        self.command(&[&format!("--running-mode={mode}")])
    }

    /// Runs the agent in `mode` to its end.
    pub fn run(&self, mode: &str) -> Run {
        self.run_args(&[&format!("--running-mode={mode}")])
    }

    /// Runs the agent in `mode` with its clock moved by `offset` (`faketime -f`, e.g. `+2d`,
    /// `-730d`).
    pub fn run_at(&self, offset: &str, mode: &str) -> Run {
        let agent = self.command(&[&format!("--running-mode={mode}")]);
        let mut cmd = Command::new("faketime");
        cmd.args(["-f", offset])
            .arg(agent.get_program())
            .args(agent.get_args())
            .env("FERRY_LOG", "info")
            .stdin(Stdio::null());
        let mut done = run(cmd);
        done.cmd = format!("[{}] {}", self.name, done.cmd);
        done
    }

    /// `--running-mode=status --json`, parsed.
    pub fn status_json(&self) -> serde_json::Value {
        let run = self.run_args(&["--running-mode=status", "--json"]).ok();
        serde_json::from_str(&run.stdout)
            .unwrap_or_else(|e| panic!("status --json is not JSON: {e}\n{run}"))
    }

    pub fn run_args(&self, args: &[&str]) -> Run {
        let mut done = run(self.command(args));
        done.cmd = format!("[{}] {}", self.name, done.cmd);
        done
    }

    /// Starts the agent in `mode` in the background, its stderr piped for the test to read.
    /// It leads a process group of its own, as a shell job or a systemd service does, so a
    /// test can signal the group (`signal(pid, .., true)`) as Ctrl-C or `kill -TERM -PGID` do.
    pub fn spawn(&self, mode: &str) -> Child {
        let mut cmd = self.mode(mode);
        let text = format!("{cmd:?}");
        cmd.process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {text}: {e}"))
    }

    /// Target of the item's `current` link.
    pub fn current(&self) -> Option<String> {
        fs::read_link(self.root.join("current"))
            .ok()
            .map(|p| p.to_string_lossy().into_owned())
    }
}

/// Sends `signal` (e.g. "TERM", "KILL") to a process, or with `group` to its process group.
pub fn signal(pid: u32, signal: &str, group: bool) {
    let target = if group {
        format!("-{pid}")
    } else {
        pid.to_string()
    };
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg("--")
        .arg(&target)
        .status()
        .unwrap_or_else(|e| panic!("cannot run kill: {e}"));
    assert!(status.success(), "kill -{signal} {target} failed");
}
