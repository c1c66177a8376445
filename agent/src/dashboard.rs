//! What a local dashboard reads (`--running-mode=status --json`, docs/dashboard.md) beside the
//! state the agent runs on: the last check's result, each item's last install outcome with
//! its log, and the progress of the stage under way. These files are for display only:
//! written atomically (a temporary file renamed over the old one) with plain file calls, and
//! a failure to write one is logged and never stops an install.

use std::path::Path;

use ferry_manifests::wire::Report;
use serde::{Deserialize, Serialize};

use crate::now_rfc3339;
use crate::state::StateDir;

/// How much of an install's log the last-outcome file keeps (its tail).
pub const LOG_TAIL: usize = 64 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LastCheck {
    pub at: String,
    pub ok: bool,
    /// Why the check failed (`None` when it worked).
    pub error: Option<String>,
}

/// The stage under way and how far it is.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Progress {
    pub item: String,
    pub version: String,
    /// `downloading` or `installing`.
    pub stage: String,
    pub bytes_done: u64,
    pub bytes_total: u64,
    pub pid: u32,
    pub updated_at: String,
}

fn write<T: Serialize>(path: &Path, value: &T) {
    let tmp = path.with_extension("json.tmp");
    let result = (|| -> std::io::Result<()> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&tmp, serde_json::to_vec_pretty(value)?)?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        tracing::warn!(path = %path.display(), "cannot write the dashboard file: {e}");
    }
}

pub fn last_check_path(dir: &StateDir) -> std::path::PathBuf {
    dir.root().join("last-check.json")
}

pub fn last_outcome_path(dir: &StateDir, item: &str) -> std::path::PathBuf {
    dir.root().join("last-outcome").join(format!("{item}.json"))
}

pub fn progress_path(dir: &StateDir) -> std::path::PathBuf {
    dir.root().join("progress.json")
}

pub fn record_check(dir: &StateDir, error: Option<String>) {
    write(
        &last_check_path(dir),
        &LastCheck {
            at: now_rfc3339(),
            ok: error.is_none(),
            error,
        },
    );
}

/// Keeps an outcome (its log cut to the last [`LOG_TAIL`] bytes) as the item's last one.
pub fn record_outcome(dir: &StateDir, report: &Report) {
    let mut r = report.clone();
    if r.output.len() > LOG_TAIL {
        let mut cut = r.output.len() - LOG_TAIL;
        while !r.output.is_char_boundary(cut) {
            cut += 1;
        }
        r.output = format!("[… earlier output cut]\n{}", &r.output[cut..]);
    }
    write(&last_outcome_path(dir, &r.item), &r);
}

pub fn record_progress(dir: &StateDir, p: &Progress) {
    write(&progress_path(dir), p);
}

pub fn clear_progress(dir: &StateDir) {
    let _ = std::fs::remove_file(progress_path(dir));
}

/// The progress file, if the run that wrote it is still alive.
pub fn current_progress(dir: &StateDir) -> Option<Progress> {
    let p: Progress = crate::state::read_json(&progress_path(dir)).ok()??;
    let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(p.pid as i32), None).is_ok();
    alive.then_some(p)
}

/// Throttles progress writes to a few a second (and always writes the last).
pub struct Throttle {
    last: Option<std::time::Instant>,
}

impl Throttle {
    pub fn new() -> Throttle {
        Throttle { last: None }
    }

    pub fn due(&mut self, done: bool) -> bool {
        let due = done
            || self
                .last
                .is_none_or(|t| t.elapsed() >= std::time::Duration::from_millis(250));
        if due {
            self.last = Some(std::time::Instant::now());
        }
        due
    }
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_log_keeps_its_tail_on_a_character_boundary() {
        let dir = tempfile::tempdir().unwrap();
        let sd = StateDir::open(dir.path(), crate::fsops::for_run()).unwrap();
        let report = Report {
            report_id: "r".into(),
            job_id: None,
            item: "web".into(),
            version: "1.0.0".parse().unwrap(),
            from_version: None,
            outcome: ferry_manifests::wire::Outcome::Installed,
            message: "installed".into(),
            output: format!("{}é{}", "a".repeat(LOG_TAIL), "z".repeat(LOG_TAIL - 1)),
            started_at: now_rfc3339(),
            finished_at: now_rfc3339(),
        };
        record_outcome(&sd, &report);
        let back: Report = crate::state::read_json(&last_outcome_path(&sd, "web"))
            .unwrap()
            .unwrap();
        assert!(back.output.starts_with("[… earlier output cut]\n"));
        assert!(back.output.ends_with('z'));
        assert!(back.output.len() <= LOG_TAIL + 40);
        record_check(&sd, Some("server down".into()));
        let c: LastCheck = crate::state::read_json(&last_check_path(&sd))
            .unwrap()
            .unwrap();
        assert!(!c.ok);
        assert_eq!(c.error.as_deref(), Some("server down"));
        let mut t = Throttle::new();
        assert!(t.due(false));
        assert!(!t.due(false));
        assert!(t.due(true));
    }
}
