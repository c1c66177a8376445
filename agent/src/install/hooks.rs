//! Running post-install and health-check commands with a timeout, capturing their output
//! (stdout and stderr merged, in order) for the report.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Output kept per command; the tail is kept when a command prints more.
pub const MAX_OUTPUT: usize = 256 * 1024;
/// How often a running command is polled for exit.
const POLL: Duration = Duration::from_millis(20);

#[derive(Debug, Clone)]
pub struct HookResult {
    pub success: bool,
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
}

/// Runs `command` with `sh -c` in `env.release_dir`; kills it after `timeout`.
pub fn run(command: &str, env: &HookEnv<'_>, timeout: Duration) -> HookResult {
    // `exec 2>&1` merges stderr into stdout inside the shell, so the output keeps its order
    // without a second pipe and a second reader thread.
    let script = format!("exec 2>&1\n{command}");
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(script)
        .current_dir(env.release_dir)
        .env("FERRY_ITEM", env.item)
        .env("FERRY_VERSION", env.version)
        .env("FERRY_PREVIOUS_VERSION", env.previous_version.unwrap_or(""))
        .env("FERRY_ROOT", env.root)
        .env("FERRY_RELEASE_DIR", env.release_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return HookResult {
                success: false,
                status: format!("could not start /bin/sh: {e}"),
                output: String::new(),
            }
        }
    };
    let reader = child.stdout.take().map(|mut out| {
        std::thread::spawn(move || {
            let mut kept: Vec<u8> = Vec::new();
            let mut buf = [0u8; 8192];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                kept.extend_from_slice(&buf[..n]);
                if kept.len() > 2 * MAX_OUTPUT {
                    kept.drain(..kept.len() - MAX_OUTPUT);
                }
            }
            if kept.len() > MAX_OUTPUT {
                kept.drain(..kept.len() - MAX_OUTPUT);
            }
            String::from_utf8_lossy(&kept).into_owned()
        })
    });
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ok(status),
            Ok(None) if started.elapsed() >= timeout => {
                let _ = child.kill();
                let _ = child.wait();
                break Err(format!(
                    "timed out after {} s and was killed",
                    timeout.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(POLL),
            Err(e) => break Err(format!("could not wait for it: {e}")),
        }
    };
    // A background process that inherited the pipe could keep the reader waiting; the
    // command itself has exited, so give the reader a bounded time to finish.
    let output = reader
        .and_then(|r| {
            let deadline = Instant::now() + Duration::from_secs(5);
            while !r.is_finished() && Instant::now() < deadline {
                std::thread::sleep(POLL);
            }
            if r.is_finished() {
                r.join().ok()
            } else {
                Some("(output still open by a background process; not collected)\n".into())
            }
        })
        .unwrap_or_default();
    match status {
        Ok(s) if s.success() => HookResult {
            success: true,
            status: "exited with 0".into(),
            output,
        },
        Ok(s) => HookResult {
            success: false,
            status: match s.code() {
                Some(code) => format!("exited with {code}"),
                None => "was killed by a signal".into(),
            },
            output,
        },
        Err(status) => HookResult {
            success: false,
            status,
            output,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(dir: &Path) -> HookEnv<'_> {
        HookEnv {
            item: "web",
            version: "1.1.0",
            previous_version: Some("1.0.0"),
            root: dir,
            release_dir: dir,
        }
    }

    #[test]
    fn output_is_merged_and_the_environment_is_set() {
        let dir = tempfile::tempdir().unwrap();
        let r = run(
            "echo out $FERRY_VERSION; echo err $FERRY_PREVIOUS_VERSION >&2",
            &env(dir.path()),
            Duration::from_secs(10),
        );
        assert!(r.success, "{r:?}");
        assert_eq!(r.output, "out 1.1.0\nerr 1.0.0\n");
    }

    #[test]
    fn failure_and_timeout_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let r = run(
            "echo broken; exit 3",
            &env(dir.path()),
            Duration::from_secs(10),
        );
        assert!(!r.success);
        assert_eq!(r.status, "exited with 3");
        assert_eq!(r.output, "broken\n");
        let r = run("sleep 5", &env(dir.path()), Duration::from_millis(200));
        assert!(!r.success);
        assert!(r.status.contains("timed out"), "{}", r.status);
    }
}
