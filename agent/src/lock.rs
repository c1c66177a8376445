//! The run lock (`STATE_DIR/lock`): one run at a time changes the state directory and the
//! install roots. A run holds it only while it works: `full` mode takes it for each cycle and
//! lets go while it waits for the next, and `status` never takes it (every state file is
//! written atomically, so reading is safe at any time).
//!
//! The holder writes its pid and running mode into the lock file, so a run that finds the
//! lock taken can say who holds it, and name the systemd unit it runs in.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use fs2::FileExt;

use crate::error::{io_err, Error};

/// How often a waiting run tries the lock again.
const RETRY: Duration = Duration::from_millis(100);

/// The lock, held until this value is dropped.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

/// Who holds the lock, as its lock file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub pid: u32,
    pub mode: String,
    /// The systemd unit the holder runs in, if any (`ferry-agent.service`).
    pub unit: Option<String>,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.unit {
            Some(unit) => write!(f, "{unit} (pid {}, running mode {})", self.pid, self.mode),
            None => write!(
                f,
                "another ferry-agent run (pid {}, running mode {})",
                self.pid, self.mode
            ),
        }
    }
}

/// Parses what a holder wrote: `PID MODE`.
pub fn parse_holder(text: &str) -> Option<(u32, String)> {
    let mut words = text.split_whitespace();
    let pid = words.next()?.parse().ok()?;
    let mode = words.next()?.to_string();
    Some((pid, mode))
}

/// The systemd unit a process runs in, from the text of `/proc/PID/cgroup`.
pub fn unit_of(cgroup: &str) -> Option<String> {
    cgroup.lines().find_map(|line| {
        let path = line.rsplit(':').next()?;
        path.split('/')
            .rev()
            .find(|part| part.ends_with(".service") || part.ends_with(".scope"))
            .filter(|part| part.ends_with(".service"))
            .map(str::to_string)
    })
}

/// What the message for a lock that stayed taken says to do.
pub fn advice(holder: Option<&Holder>) -> String {
    match holder {
        Some(h) if h.mode == "full" => format!(
            "it lets go between cycles, so try again in a moment; to run staged commands by hand for a while, stop it first{}",
            h.unit
                .as_ref()
                .map(|u| format!(" (`systemctl stop {u}`)"))
                .unwrap_or_default()
        ),
        _ => "try again when it has finished".to_string(),
    }
}

fn holder(file: &mut File) -> Option<Holder> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.read_to_string(&mut text).ok()?;
    let (pid, mode) = parse_holder(&text)?;
    let unit = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .ok()
        .and_then(|c| unit_of(&c));
    Some(Holder { pid, mode, unit })
}

/// Takes the lock at `path` for a run in `mode`, waiting up to `wait` for another run to let
/// go of it (a stop ends the wait). Says once, through `waiting`, that it waits.
pub fn take(
    path: &Path,
    mode: &str,
    wait: Duration,
    stop: &AtomicBool,
    waiting: &mut dyn FnMut(&str),
) -> Result<RunLock, Error> {
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err(path))?;
    let deadline = Instant::now() + wait;
    let mut said = false;
    while file.try_lock_exclusive().is_err() {
        let who = holder(&mut file);
        if Instant::now() >= deadline || stop.load(Ordering::SeqCst) {
            if stop.load(Ordering::SeqCst) {
                return Err(Error::Interrupted);
            }
            return Err(locked(path, who.as_ref()));
        }
        if !said {
            said = true;
            let who = who.map_or("another ferry-agent run".to_string(), |h| h.to_string());
            waiting(&format!(
                "{who} holds {}; waiting up to {} s for it to let go",
                path.display(),
                wait.as_secs()
            ));
        }
        std::thread::sleep(RETRY);
    }
    // Who holds it now, for the next run that finds it taken.
    let note = format!("{} {mode}\n", std::process::id());
    let _ = file
        .set_len(0)
        .and_then(|_| file.seek(SeekFrom::Start(0)))
        .and_then(|_| file.write_all(note.as_bytes()));
    Ok(RunLock { _file: file })
}

fn locked(path: &Path, who: Option<&Holder>) -> Error {
    Error::Locked {
        path: PathBuf::from(path),
        holder: who.map_or("another ferry-agent run".to_string(), |h| h.to_string()),
        advice: advice(who),
    }
}

/// Who holds the lock at `path` right now, if anyone (for `status`).
pub fn current_holder(path: &Path) -> Option<Holder> {
    let mut file = OpenOptions::new().read(true).write(true).open(path).ok()?;
    if file.try_lock_exclusive().is_ok() {
        let _ = FileExt::unlock(&file);
        return None;
    }
    holder(&mut file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_holder_and_its_unit_are_read_back() {
        assert_eq!(parse_holder("1234 full\n"), Some((1234, "full".into())));
        assert_eq!(parse_holder(""), None);
        assert_eq!(parse_holder("x full"), None);
        assert_eq!(
            unit_of("0::/system.slice/ferry-agent.service\n").as_deref(),
            Some("ferry-agent.service")
        );
        assert_eq!(
            unit_of("0::/user.slice/user-1000.slice/session-2.scope\n"),
            None
        );
        assert_eq!(
            unit_of("12:pids:/system.slice/ferry-agent-once.service\n").as_deref(),
            Some("ferry-agent-once.service")
        );
    }

    #[test]
    fn the_advice_names_the_service_to_stop() {
        let service = Holder {
            pid: 7,
            mode: "full".into(),
            unit: Some("ferry-agent.service".into()),
        };
        assert!(advice(Some(&service)).contains("systemctl stop ferry-agent.service"));
        assert!(service
            .to_string()
            .starts_with("ferry-agent.service (pid 7"));
        let once = Holder {
            pid: 8,
            mode: "once".into(),
            unit: None,
        };
        assert_eq!(advice(Some(&once)), "try again when it has finished");
    }

    #[test]
    fn a_second_taker_waits_then_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let stop = AtomicBool::new(false);
        let held = take(&path, "full", Duration::ZERO, &stop, &mut |_| {}).unwrap();
        let mut said = Vec::new();
        let err = take(
            &path,
            "check",
            Duration::from_millis(300),
            &stop,
            &mut |m| said.push(m.to_string()),
        )
        .unwrap_err();
        assert_eq!(said.len(), 1, "{said:?}");
        let text = err.to_string();
        assert!(
            text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
        assert!(text.contains("running mode full"), "{text}");
        assert!(current_holder(&path).is_some());
        drop(held);
        assert!(current_holder(&path).is_none());
        take(&path, "check", Duration::ZERO, &stop, &mut |_| {}).unwrap();
    }
}
