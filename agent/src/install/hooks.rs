//! Running post-install and health-check commands with a timeout, capturing their output
//! (stdout and stderr merged, in order) for the report, and passing it on as it arrives so
//! the server can stream it live.

use std::cell::Cell;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ferry_manifests::VerifiedManifest;

/// Output kept per command; the tail is kept when a command prints more.
pub const MAX_OUTPUT: usize = 256 * 1024;
/// How often a running command is polled for exit and its new output passed on.
const POLL: Duration = Duration::from_millis(20);
/// After the command exits, how long a background process holding its output open may delay
/// us.
const DRAIN: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct HookResult {
    pub success: bool,
    /// Killed because a stop was asked for and its grace time ran out: not the release's
    /// fault.
    pub interrupted: bool,
    /// A one-line description: "exited with 0", "timed out after 300 s", …
    pub status: String,
    pub output: String,
}

/// Environment a hook sees, so scripts need not parse paths.
pub struct HookEnv<'a> {
    pub item: &'a str,
    pub version: &'a str,
    pub previous_version: Option<&'a str>,
    pub root: &'a Path,
    pub release_dir: &'a Path,
    /// An interactive install: the hooks run on a pseudo-terminal the operator types into.
    /// Without one, their stdin is empty (a read gets end-of-file at once).
    pub terminal: Option<&'a super::terminal::Terminal>,
}

/// Receives output as it arrives (for live streaming); may ignore it.
pub type Sink<'a> = &'a mut dyn FnMut(&str);

/// How hooks react to SIGTERM/SIGINT (the agent's stop flag): they run on, since an install
/// under way should finish, until `grace` after the first stop seen; then they are killed.
pub struct Stop<'a> {
    pub flag: &'a AtomicBool,
    pub grace: Duration,
    /// When the stop was first seen, shared by all the hooks of one install.
    pub since: Cell<Option<Instant>>,
}

impl Stop<'_> {
    /// Whether the grace time has run out; tells `sink` once when the stop is first seen.
    fn expired(&self, sink: Sink<'_>) -> bool {
        if !self.flag.load(Ordering::SeqCst) {
            return false;
        }
        let since = match self.since.get() {
            Some(t) => t,
            None => {
                let now = Instant::now();
                self.since.set(Some(now));
                tracing::warn!(
                    "stop asked: waiting up to {} s (stop_grace_secs) for the install's hooks to finish; if they do not, the previous version is restored and the install is retried at the next run",
                    self.grace.as_secs()
                );
                sink(&format!(
                    "\n[ferry-agent: stop asked; the install may finish for up to {} s]\n",
                    self.grace.as_secs()
                ));
                now
            }
        };
        since.elapsed() >= self.grace
    }
}

/// Applies what the operator's terminal sent to the hook's pseudo-terminal.
fn operate(
    event: &ferry_manifests::wire::TerminalEvent,
    master: &mut std::fs::File,
    child: &Child,
) {
    use std::io::Write as _;
    for action in super::terminal::actions(event) {
        match action {
            super::terminal::Action::Write(bytes) => {
                let _ = master.write_all(&bytes);
            }
            super::terminal::Action::Interrupt => {
                if let Ok(pid) = i32::try_from(child.id()) {
                    let _ = nix::sys::signal::killpg(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGINT,
                    );
                }
            }
            super::terminal::Action::Resize(cols, rows) => {
                let _ = rustix::termios::tcsetwinsize(
                    &*master,
                    rustix::termios::Winsize {
                        ws_row: rows,
                        ws_col: cols,
                        ws_xpixel: 0,
                        ws_ypixel: 0,
                    },
                );
            }
        }
    }
}

/// Kills a hook and everything it started (it leads its own process group).
fn kill_group(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// `setsid(1)`, where the system has it (util-linux, busybox).
fn setsid_binary() -> Option<&'static Path> {
    ["/usr/bin/setsid", "/bin/setsid"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.exists())
}

/// Runs `command` with `sh -c` in `env.release_dir`, in a session of its own (`setsid`, or
/// without it a process group of its own), so a signal to the agent's group, Ctrl-C in a
/// terminal, does not reach it, and it never reads from (or stops on) the terminal the agent
/// was started from; an interactive hook's pseudo-terminal becomes its controlling terminal
/// (`/dev/tty` works, Ctrl-C interrupts it). Kills the group after `timeout`, or once
/// `stop`'s grace time has run out.
pub fn run(
    command: &str,
    env: &HookEnv<'_>,
    timeout: Duration,
    stop: Option<&Stop<'_>>,
    sink: Sink<'_>,
) -> HookResult {
    let failed = |status: String| HookResult {
        success: false,
        interrupted: false,
        status,
        output: String::new(),
    };
    let mut cmd = shell(command, env);
    // Interactive: stdin and stdout on a pseudo-terminal; the agent keeps its master side.
    let mut pty_master = match connect(&mut cmd, env) {
        Ok(master) => master,
        Err(e) => return failed(e),
    };
    let spawned = cmd.spawn();
    // The hook holds the terminal's slave side now; ours must close, or the master never
    // sees the end of its output.
    drop(cmd);
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => return failed(format!("could not start /bin/sh: {e}")),
    };
    let rx = read_output(&mut child, pty_master.as_ref());
    let mut kept = Kept::default();
    let (status, interrupted) = wait(
        &mut child,
        env,
        pty_master.as_mut(),
        &rx,
        Limits { timeout, stop },
        &mut kept,
        sink,
    );
    kept.drain(&rx, sink);
    let output = kept.into_text();
    match status {
        Ok(s) if s.success() => HookResult {
            success: true,
            interrupted,
            status: "exited with 0".into(),
            output,
        },
        Ok(s) => HookResult {
            success: false,
            interrupted,
            status: match s.code() {
                Some(code) => format!("exited with {code}"),
                None => "was killed by a signal".into(),
            },
            output,
        },
        Err(status) => HookResult {
            success: false,
            interrupted,
            status,
            output,
        },
    }
}

/// `/bin/sh -c COMMAND` in its own session (so a timeout kills the whole group), in the
/// release's directory, with the install's environment.
fn shell(command: &str, env: &HookEnv<'_>) -> Command {
    // `exec 2>&1` merges stderr into stdout inside the shell, so the output keeps its order
    // without a second pipe and a second reader thread.
    let script = format!("exec 2>&1\n{command}");
    let mut cmd = match setsid_binary() {
        // Not a process group leader, so setsid(1) does not fork: the hook keeps its pid,
        // which is its process group's id too.
        Some(setsid) => {
            let mut c = Command::new(setsid);
            if env.terminal.is_some() {
                c.arg("-c");
            }
            c.arg("/bin/sh");
            c
        }
        None => {
            let mut c = Command::new("/bin/sh");
            c.process_group(0);
            c
        }
    };
    cmd.arg("-c")
        .arg(script)
        .current_dir(env.release_dir)
        .env("FERRY_ITEM", env.item)
        .env("FERRY_VERSION", env.version)
        .env("FERRY_PREVIOUS_VERSION", env.previous_version.unwrap_or(""))
        .env("FERRY_ROOT", env.root)
        .env("FERRY_RELEASE_DIR", env.release_dir)
        .stderr(Stdio::null());
    cmd
}

/// The command's stdin and stdout: a pseudo-terminal for an interactive install (its master
/// side returned), else no input and a pipe.
fn connect(cmd: &mut Command, env: &HookEnv<'_>) -> Result<Option<std::fs::File>, String> {
    if env.terminal.is_none() {
        cmd.stdin(Stdio::null()).stdout(Stdio::piped());
        return Ok(None);
    }
    let pty = super::terminal::Pty::open(super::terminal::DEFAULT_SIZE)
        .and_then(|p| Ok((p.slave.try_clone()?, p)))
        .map_err(|e| format!("could not open a pseudo-terminal: {e}"))?;
    let (stdin, pty) = pty;
    cmd.stdin(Stdio::from(stdin))
        .stdout(Stdio::from(pty.slave))
        .env("TERM", "xterm-256color");
    Ok(Some(pty.master))
}

/// Reads the command's output on a thread of its own, chunk by chunk.
fn read_output(child: &mut Child, pty_master: Option<&std::fs::File>) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let reader: Option<Box<dyn Read + Send>> = match (pty_master, child.stdout.take()) {
        (Some(master), _) => master
            .try_clone()
            .ok()
            .map(|m| Box::new(m) as Box<dyn Read + Send>),
        (None, Some(out)) => Some(Box::new(out)),
        (None, None) => None,
    };
    if let Some(mut out) = reader {
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            // A pseudo-terminal's master reads EIO once the hook and its children closed it.
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
    }
    rx
}

/// The output kept for the report: the tail, at most [`MAX_OUTPUT`] bytes.
#[derive(Default)]
struct Kept(Vec<u8>);

impl Kept {
    /// Passes a chunk on to the sink and keeps it.
    fn pass_on(&mut self, chunk: &[u8], sink: Sink<'_>) {
        sink(&String::from_utf8_lossy(chunk));
        self.0.extend_from_slice(chunk);
        if self.0.len() > 2 * MAX_OUTPUT {
            self.0.drain(..self.0.len() - MAX_OUTPUT);
        }
    }

    /// The command has exited; collects what is left, but a background process that
    /// inherited the pipe must not hold us for long.
    fn drain(&mut self, rx: &mpsc::Receiver<Vec<u8>>, sink: Sink<'_>) {
        let deadline = Instant::now() + DRAIN;
        loop {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(chunk) => self.pass_on(&chunk, sink),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    self.pass_on(
                        b"(output still open by a background process; not collected)\n",
                        sink,
                    );
                    break;
                }
            }
        }
    }

    fn into_text(mut self) -> String {
        if self.0.len() > MAX_OUTPUT {
            self.0.drain(..self.0.len() - MAX_OUTPUT);
        }
        String::from_utf8_lossy(&self.0).into_owned()
    }
}

/// How long a command may run, and the stop that may cut it short.
struct Limits<'a> {
    timeout: Duration,
    stop: Option<&'a Stop<'a>>,
}

/// Passes the output on while the command runs (and an operator's keystrokes in, for an
/// interactive install) until it exits, times out, is left without an operator or is stopped.
/// The exit status or why it was killed, and whether a stop killed it.
fn wait(
    child: &mut Child,
    env: &HookEnv<'_>,
    mut pty_master: Option<&mut std::fs::File>,
    rx: &mpsc::Receiver<Vec<u8>>,
    limits: Limits<'_>,
    kept: &mut Kept,
    sink: Sink<'_>,
) -> (Result<std::process::ExitStatus, String>, bool) {
    let mut last_attached = Instant::now();
    let started = Instant::now();
    loop {
        while let Ok(chunk) = rx.try_recv() {
            kept.pass_on(&chunk, sink);
        }
        if let (Some(terminal), Some(master)) = (env.terminal, pty_master.as_deref_mut()) {
            if terminal.attached.load(Ordering::SeqCst) {
                last_attached = Instant::now();
            }
            while let Ok(event) = terminal.events.try_recv() {
                operate(&event, master, child);
            }
            if super::terminal::unattended_too_long(
                last_attached,
                Instant::now(),
                terminal.unattended,
            ) {
                kill_group(child);
                let why = format!(
                    "had no operator at its terminal for {} s and was killed",
                    terminal.unattended.as_secs()
                );
                return (Err(why), false);
            }
        }
        match child.try_wait() {
            Ok(Some(status)) => return (Ok(status), false),
            Ok(None) if started.elapsed() >= limits.timeout => {
                kill_group(child);
                let why = format!(
                    "timed out after {} s and was killed",
                    limits.timeout.as_secs()
                );
                return (Err(why), false);
            }
            Ok(None) if limits.stop.is_some_and(|s| s.expired(sink)) => {
                kill_group(child);
                let why = "was stopped: the agent was asked to stop and its grace time ran out";
                return (Err(why.into()), true);
            }
            Ok(None) => {
                // Lets a live sink send what it holds back while the hook is quiet.
                sink("");
                std::thread::sleep(POLL);
            }
            Err(e) => return (Err(format!("could not wait for it: {e}")), false),
        }
    }
}

/// How an install's hooks went, with everything they printed.
pub struct HookOutcome {
    pub ok: bool,
    /// Stopped by a signal past its grace time: the release is not at fault.
    pub interrupted: bool,
    pub message: String,
    pub output: String,
}

/// An install's hooks: post-install commands in order, then the health check; stops at the first failure.
pub fn run_install_hooks(
    env: &HookEnv<'_>,
    manifest: &VerifiedManifest,
    timeout: Duration,
    stop: &Stop<'_>,
    sink: Sink<'_>,
) -> HookOutcome {
    let mut output = String::new();
    let commands = manifest
        .install
        .post_install
        .iter()
        .map(|c| ("post-install", c))
        .chain(
            manifest
                .install
                .health_check
                .iter()
                .map(|c| ("health check", c)),
        );
    for (what, command) in commands {
        sink(&format!("$ {command}\n"));
        let result = run(command, env, timeout, Some(stop), sink);
        output.push_str(&format!("$ {command}\n{}", result.output));
        let mut trailer = String::new();
        if !result.output.is_empty() && !result.output.ends_with('\n') {
            trailer.push('\n');
        }
        trailer.push_str(&format!("[{what} {}]\n", result.status));
        sink(&trailer);
        output.push_str(&trailer);
        if !result.success {
            return HookOutcome {
                ok: false,
                interrupted: result.interrupted,
                message: format!("{what} `{command}` {}", result.status),
                output,
            };
        }
    }
    HookOutcome {
        ok: true,
        interrupted: false,
        message: match env.previous_version {
            Some(p) => format!("installed {} (was {p})", env.version),
            None => format!("installed {}", env.version),
        },
        output,
    }
}

#[cfg(test)]
mod tests;
