//! What a local dashboard reads (`--running-mode=status --json`, docs/dashboard.md) beside the
//! state the agent runs on: the last check's result, each item's last install outcome with
//! its log, and the progress of the stage under way. These files are for display only:
//! written atomically (a temporary file renamed over the old one) with plain file calls, and
//! a failure to write one is logged and never stops an install.

use std::path::Path;

use ferry_manifests::wire::Report;
use serde::{Deserialize, Serialize};

use crate::state::StateDir;
use ferry_manifests::wire::now;

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
    /// While installing: files unpacked so far, of the release's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files_done: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files_total: Option<u64>,
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
            at: now(),
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
    // EPERM: alive, but another user's (a dashboard reading a root agent's progress).
    let alive = matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(p.pid as i32), None),
        Ok(()) | Err(nix::errno::Errno::EPERM)
    );
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

/// The filesystem an install stages through, counting the files it creates (one per
/// unpacked file) into the progress file, a few times a second. Every call goes on to the
/// real filesystem unchanged, so staging (and the crash tests around it) behaves the same.
pub struct UnpackCount {
    inner: std::sync::Arc<dyn crate::fsops::Fs>,
    path: std::path::PathBuf,
    /// Each file's size by its path in the release.
    sizes: std::collections::HashMap<String, u64>,
    state: std::sync::Mutex<(Progress, Throttle)>,
}

impl UnpackCount {
    pub fn new(
        inner: std::sync::Arc<dyn crate::fsops::Fs>,
        dir: &StateDir,
        mut progress: Progress,
        files: &[ferry_manifests::FileEntry],
    ) -> UnpackCount {
        progress.files_done = Some(0);
        progress.files_total = Some(files.len() as u64);
        UnpackCount {
            inner,
            path: progress_path(dir),
            sizes: files.iter().map(|f| (f.path.clone(), f.size)).collect(),
            state: std::sync::Mutex::new((progress, Throttle::new())),
        }
    }

    /// The size of the release file `path` is staged as (its release path is a suffix).
    fn size_of(&self, path: &Path) -> u64 {
        let parts: Vec<String> = path
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        (0..parts.len())
            .rev()
            .find_map(|i| self.sizes.get(&parts[i..].join("/")))
            .copied()
            .unwrap_or(0)
    }

    fn counted(&self, path: &Path) {
        let size = self.size_of(path);
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        let (progress, throttle) = &mut *state;
        progress.files_done = progress.files_done.map(|n| n + 1);
        progress.bytes_done = (progress.bytes_done + size).min(progress.bytes_total);
        let done = progress.files_done == progress.files_total;
        if throttle.due(done) {
            progress.updated_at = now();
            write(&self.path, progress);
        }
    }
}

impl crate::fsops::Fs for UnpackCount {
    fn create_dir_all(&self, path: &Path) -> std::io::Result<()> {
        self.inner.create_dir_all(path)
    }
    fn create_private_dir(&self, path: &Path) -> std::io::Result<()> {
        self.inner.create_private_dir(path)
    }
    fn create_new(&self, path: &Path) -> std::io::Result<std::fs::File> {
        let file = self.inner.create_new(path)?;
        self.counted(path);
        Ok(file)
    }
    fn write_synced(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        self.inner.write_synced(path, bytes)
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        self.inner.rename(from, to)
    }
    fn symlink(&self, target: &Path, link: &Path) -> std::io::Result<()> {
        self.inner.symlink(target, link)
    }
    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        self.inner.remove_file(path)
    }
    fn remove_dir_all(&self, path: &Path) -> std::io::Result<()> {
        self.inner.remove_dir_all(path)
    }
    fn remove_dir(&self, path: &Path) -> std::io::Result<()> {
        self.inner.remove_dir(path)
    }
    fn hard_link(&self, original: &Path, link: &Path) -> std::io::Result<()> {
        self.inner.hard_link(original, link)
    }
    fn sync_dir(&self, path: &Path) -> std::io::Result<()> {
        self.inner.sync_dir(path)
    }
    fn sync_fs(&self, path: &Path) -> std::io::Result<()> {
        self.inner.sync_fs(path)
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
            started_at: now(),
            finished_at: now(),
            fetched: None,
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

    #[test]
    fn staging_counts_unpacked_files_and_their_bytes_into_the_progress() {
        use crate::fsops::Fs as _;
        let dir = tempfile::tempdir().unwrap();
        let sd = StateDir::open(&dir.path().join("state"), crate::fsops::for_run()).unwrap();
        let entry = |path: &str, size: u64| ferry_manifests::FileEntry {
            path: path.into(),
            sha256: "0".repeat(64),
            mode: 0o644,
            size,
            config: false,
        };
        let files = [entry("bin/web", 100), entry("static/index.html", 20)];
        let start = Progress {
            item: "web".into(),
            version: "1.0.0".into(),
            stage: "installing".into(),
            bytes_done: 0,
            bytes_total: 120,
            files_done: None,
            files_total: None,
            pid: std::process::id(),
            updated_at: now(),
        };
        let counting = UnpackCount::new(crate::fsops::for_run(), &sd, start, &files);
        let staging = dir.path().join("root/releases/.staging-1.0.0");
        counting.create_dir_all(&staging.join("bin")).unwrap();
        counting.create_dir_all(&staging.join("static")).unwrap();
        counting.create_new(&staging.join("bin/web")).unwrap();
        // The first file is written at once (nothing shown yet); the last always.
        let p = current_progress(&sd).unwrap();
        assert_eq!(
            (p.files_done, p.files_total, p.bytes_done),
            (Some(1), Some(2), 100)
        );
        counting
            .create_new(&staging.join("static/index.html"))
            .unwrap();
        let p = current_progress(&sd).unwrap();
        assert_eq!((p.files_done, p.bytes_done), (Some(2), 120));
        assert!(
            staging.join("static/index.html").is_file(),
            "the file was created"
        );
    }
}
