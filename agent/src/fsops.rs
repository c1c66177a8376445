//! The narrow interface through which installs and state writes change the filesystem.
//!
//! Every operation that changes what is on disk goes through [`Fs`], so a test can stop an
//! install after operation 1, 2, … N in turn ([`CrashFs`]) and run recovery after each, and the
//! real agent can be killed with SIGKILL at a chosen operation or named step ([`fault`]).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{symlink, DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

pub trait Fs: Send + Sync {
    /// Creates a directory and its parents (mode 0755).
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Creates a directory only its owner may read (mode 0700, also when it was there
    /// already), and its parents (mode 0755).
    fn create_private_dir(&self, path: &Path) -> io::Result<()>;
    /// Creates a new file (`O_EXCL`, mode 0600) for the caller to fill.
    fn create_new(&self, path: &Path) -> io::Result<File>;
    /// Creates or truncates `path`, writes `bytes` and fsyncs the file.
    fn write_synced(&self, path: &Path, bytes: &[u8]) -> io::Result<()>;
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()>;
    /// Removes a file or symlink; a missing one is not an error.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Removes a directory tree; a missing one is not an error.
    fn remove_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Removes an empty directory; a missing or non-empty one is left alone.
    fn remove_dir(&self, path: &Path) -> io::Result<()>;
    /// Creates `link` as a second name of `original` (same filesystem).
    fn hard_link(&self, original: &Path, link: &Path) -> io::Result<()>;
    /// fsyncs a directory, making renames and creations in it durable.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
    /// Flushes the whole filesystem holding `path` (one call for a freshly unpacked tree).
    fn sync_fs(&self, path: &Path) -> io::Result<()>;
}

fn ignore_missing(r: io::Result<()>) -> io::Result<()> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// The real filesystem.
pub struct RealFs;

impl Fs for RealFs {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(path)
    }
    fn create_private_dir(&self, path: &Path) -> io::Result<()> {
        self.create_dir_all(path)?;
        fs::set_permissions(path, fs::Permissions::from_mode(0o700))
    }
    fn create_new(&self, path: &Path) -> io::Result<File> {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
    }
    fn write_synced(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)?;
        f.write_all(bytes)?;
        f.sync_all()
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }
    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()> {
        symlink(target, link)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        ignore_missing(fs::remove_file(path))
    }
    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        ignore_missing(fs::remove_dir_all(path))
    }
    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        match fs::remove_dir(path) {
            Err(e) if e.kind() == io::ErrorKind::DirectoryNotEmpty => Ok(()),
            other => ignore_missing(other),
        }
    }
    fn hard_link(&self, original: &Path, link: &Path) -> io::Result<()> {
        fs::hard_link(original, link)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        File::open(path)?.sync_all()
    }
    fn sync_fs(&self, path: &Path) -> io::Result<()> {
        let f = File::open(path)?;
        nix::unistd::syncfs(&f).map_err(io::Error::from)
    }
}

/// Bytes available to this process on the filesystem holding `path` (statvfs).
pub fn free_space(path: &Path) -> io::Result<u64> {
    let stat = nix::sys::statvfs::statvfs(path).map_err(io::Error::from)?;
    Ok(stat.blocks_available() as u64 * stat.fragment_size() as u64)
}

/// Write to a temporary file, fsync, rename over the target, fsync the directory: after a
/// crash at any point the target holds either the old or the new bytes.
pub fn write_atomic(fs: &dyn Fs, path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    fs.write_synced(&tmp, bytes)?;
    fs.rename(&tmp, path)?;
    fs.sync_dir(dir)
}

/// What a [`CrashFs`] does when it reaches its operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnCrash {
    /// Fail that operation and every later one without touching the disk, as if the
    /// process had died there (in-process crash enumeration).
    Fail,
    /// Kill the process with SIGKILL (the real binary, `FERRY_TEST_KILL_AT=op:N`).
    Kill,
}

/// The real filesystem that "crashes" at operation number `crash_at` (1-based). Test only.
pub struct CrashFs {
    crash_at: usize,
    on_crash: OnCrash,
    done: AtomicUsize,
}

impl CrashFs {
    pub fn new(crash_at: usize) -> CrashFs {
        CrashFs::with(crash_at, OnCrash::Fail)
    }

    pub fn with(crash_at: usize, on_crash: OnCrash) -> CrashFs {
        CrashFs {
            crash_at,
            on_crash,
            done: AtomicUsize::new(0),
        }
    }

    /// Operations attempted so far.
    pub fn ops(&self) -> usize {
        self.done.load(Ordering::SeqCst)
    }

    pub fn crashed(&self) -> bool {
        self.ops() >= self.crash_at
    }

    fn gate(&self) -> io::Result<()> {
        let n = self.done.fetch_add(1, Ordering::SeqCst) + 1;
        if n < self.crash_at {
            return Ok(());
        }
        match self.on_crash {
            OnCrash::Kill => fault::die(),
            OnCrash::Fail => Err(io::Error::other(format!(
                "simulated crash at operation {n}"
            ))),
        }
    }
}

impl Fs for CrashFs {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.gate()?;
        RealFs.create_dir_all(path)
    }
    fn create_private_dir(&self, path: &Path) -> io::Result<()> {
        self.gate()?;
        RealFs.create_private_dir(path)
    }
    fn create_new(&self, path: &Path) -> io::Result<File> {
        self.gate()?;
        RealFs.create_new(path)
    }
    fn write_synced(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        self.gate()?;
        RealFs.write_synced(path, bytes)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.gate()?;
        RealFs.rename(from, to)
    }
    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()> {
        self.gate()?;
        RealFs.symlink(target, link)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.gate()?;
        RealFs.remove_file(path)
    }
    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        self.gate()?;
        RealFs.remove_dir_all(path)
    }
    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        self.gate()?;
        RealFs.remove_dir(path)
    }
    fn hard_link(&self, original: &Path, link: &Path) -> io::Result<()> {
        self.gate()?;
        RealFs.hard_link(original, link)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.gate()?;
        RealFs.sync_dir(path)
    }
    fn sync_fs(&self, path: &Path) -> io::Result<()> {
        self.gate()?;
        RealFs.sync_fs(path)
    }
}

/// Fault injection for crash tests of the real binary, compiled in only with the
/// `fault-injection` cargo feature (the end-to-end tests enable it; release builds never
/// have it, which scripts/test checks). With it, when the environment variable
/// `FERRY_TEST_KILL_AT` names a step (see docs/crash-safety.md), the agent kills itself with
/// SIGKILL when it reaches that step; `FERRY_TEST_KILL_AT=op:N` kills it at filesystem
/// operation N of the install ([`CrashFs`] with [`OnCrash::Kill`]). Without it, every
/// function here does nothing and the variable is ignored.
pub mod fault {
    #[cfg(feature = "fault-injection")]
    fn target() -> Option<&'static str> {
        use std::sync::OnceLock;
        static TARGET: OnceLock<Option<String>> = OnceLock::new();
        TARGET
            .get_or_init(|| {
                std::env::var("FERRY_TEST_KILL_AT")
                    .ok()
                    .filter(|v| !v.is_empty())
            })
            .as_deref()
    }

    #[cfg(not(feature = "fault-injection"))]
    fn target() -> Option<&'static str> {
        None
    }

    /// Kills the process with SIGKILL if the test asked to die at `step`.
    #[inline]
    pub fn point(step: &str) {
        if target() == Some(step) {
            die();
        }
    }

    /// The operation number to die at, from `op:N`.
    pub fn op_target() -> Option<usize> {
        target()?.strip_prefix("op:")?.parse().ok()
    }

    pub fn die() -> ! {
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
        std::process::abort()
    }
}

/// The filesystem a run uses: the real one, or one that kills the process at operation N
/// when a crash test asks for it.
pub fn for_run() -> std::sync::Arc<dyn Fs> {
    match fault::op_target() {
        Some(n) => std::sync::Arc::new(CrashFs::with(n, OnCrash::Kill)),
        None => std::sync::Arc::new(RealFs),
    }
}
