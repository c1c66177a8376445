//! The agent's error type. Each variant says what failed and names the path or URL, keeps the
//! underlying error as its source, and maps to a documented exit code: [`exit`] and
//! [`Error::exit_code`] are the one place exit codes are decided.

use std::path::{Path, PathBuf};

use ferry_manifests::root::RootError as TrustRootError;
use ferry_manifests::wire::Outcome;

use crate::config::ConfigError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Usage(String),
    #[error("{holder} holds the lock {path}; {advice}")]
    Locked {
        path: PathBuf,
        holder: String,
        advice: String,
    },
    /// `what` is `server` or `repository` (a static release repository).
    #[error("{what} unreachable at {url}: {message}")]
    Unreachable {
        what: &'static str,
        url: String,
        message: String,
    },
    #[error("server answered {status} for {url}: {message}")]
    Server {
        url: String,
        status: u16,
        message: String,
    },
    #[error(transparent)]
    Io(#[from] PathIo),
    #[error("state file {path} is unreadable: {message}; move it aside to start over")]
    CorruptState { path: PathBuf, message: String },
    #[error("stopped by a signal; what was done is saved and the next run continues")]
    Interrupted,
    #[error("this device is not enrolled: set `enrol_token` or `enrol_token_file` in {config}")]
    NotEnrolled { config: PathBuf },
    #[error("this device is not enrolled yet and {reason} (`enrol_token_file` in {config}): put the fleet's enrolment token there")]
    EnrolTokenUnreadable { reason: String, config: PathBuf },
    #[error("the server at {url} refused the enrolment token: {message}; check `enrol_token` or `enrol_token_file` in {config}")]
    EnrolRefused {
        url: String,
        message: String,
        config: PathBuf,
    },
    #[error("the server at {url} does not know this device's credential (was the host removed?); set `enrol_token` or `enrol_token_file` in {config} and it enrols again")]
    CredentialRefused { url: String, config: PathBuf },
    /// This device's key or certificate (device identity) could not be made, read or used.
    #[error("device identity: {0}")]
    Identity(String),
    #[error("server_ca is not a PEM certificate: {0}")]
    ServerCa(#[source] reqwest::Error),
    #[error("cannot build the HTTP client: {0}; without `server_ca` the system's CA certificates are used: install them (ca-certificates) or set `server_ca`")]
    HttpClient(#[source] reqwest::Error),
    #[error("bad URL {url:?}: {source}")]
    BadUrl {
        url: String,
        #[source]
        source: url::ParseError,
    },
    #[error("the manifest lists no artifact URL")]
    NoArtifactUrl,
    #[error("release repository {url}: {problem}")]
    Repository {
        url: String,
        #[source]
        problem: RepoProblem,
    },
    #[error("{what} needs a ferry-server: set `server_url` in {config}")]
    NeedsServer { what: &'static str, config: PathBuf },
    /// A `[[sources]]` entry could not say what is installed.
    #[error("[[sources]] {name:?}: {why}")]
    Source { name: String, why: String },
    #[error("not enough space in {path} to download: {needed} bytes needed, {free} free")]
    NoSpace {
        path: PathBuf,
        needed: u64,
        free: u64,
    },
    #[error("cannot share artifacts with peers on {listen} (share_listen): {message}; free the port or change share_listen")]
    ShareListen {
        listen: std::net::SocketAddr,
        message: String,
    },
    #[error("the link is metered ({how}); the download waits for an unmetered link, or for an install an operator allows on one (ferryctl update trigger --metered-allowed)")]
    Metered { how: &'static str },
    #[error("outside the download window {window} (local time; it opens in {opens_in_min} min); the download waits for it (download_window in the agent's config)")]
    DownloadWindow { window: String, opens_in_min: u16 },
    #[error("{url}: {reason}; the download will start over")]
    DownloadRestarted { url: String, reason: &'static str },
    #[error("trust root {path}: {source}")]
    TrustRoot {
        path: PathBuf,
        #[source]
        source: TrustRootError,
    },
    #[error("refusing trust root update: {0}")]
    TrustRootUpdate(#[source] TrustRootError),
    #[error("item {0:?} is not configured on this device (see [[items]] in the agent config)")]
    NotConfigured(String),
    #[error(
        "{item} has no previous version to roll back to (installed: {installed}, previous: none)"
    )]
    NothingToRollBack { item: String, installed: String },
    #[error("cannot roll {item} back to {version}: {path} is missing")]
    BackupMissing {
        item: String,
        version: semver::Version,
        path: PathBuf,
    },
    #[error("{path} does not point at the installed {version}; refusing to guess")]
    CurrentMoved {
        path: PathBuf,
        version: semver::Version,
    },
    #[error(transparent)]
    Root(#[from] RootError),
    #[error("not enough space under {path} to install {item} {version}: {needed} bytes needed (the release's files plus 1 MiB and 4 KiB a file of headroom), {free} free; it stays pending with its verified download and the next run installs it once space is freed")]
    NoSpaceToInstall {
        item: String,
        version: semver::Version,
        path: PathBuf,
        needed: u64,
        free: u64,
    },
    #[error("{path} is not writable for this run ({source}); under systemd the agent's units allow writes only to their ReadWritePaths (ProtectSystem=strict): add it in a drop-in, `systemctl edit ferry-agent.service` and `systemctl edit ferry-agent-once.service` with [Service] ReadWritePaths={path} (docs/operations.md); {item} {version} stays pending and the next run installs it")]
    RootNotWritable {
        item: String,
        version: semver::Version,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Why an item's root cannot take an install as it is.
#[derive(Debug, thiserror::Error)]
pub enum RootError {
    #[error("{path} exists and is not a symlink; move it aside so Ferry can manage this root")]
    NotASymlink { path: PathBuf },
    #[error("{path} is a symlink; an overlay release may not write through it")]
    ThroughSymlink { path: PathBuf },
    #[error("{path} is a directory; the release has a file there")]
    DirectoryInTheWay { path: PathBuf },
    #[error("cannot inspect {path}: {source}")]
    Inspect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// An I/O error and the path it happened at. Every error type of the agent that can carry one
/// converts from it, so [`io_err`] is the one way a path gets attached.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct PathIo {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// `.map_err(io_err(path))?`: attaches `path` to an I/O error.
pub fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> PathIo + '_ {
    move |source| PathIo {
        path: path.to_path_buf(),
        source,
    }
}

/// Exit codes, documented in docs/operations.md for cron and scripts.
/// Why an item's release index was not used.
#[derive(Debug, thiserror::Error)]
pub enum RepoProblem {
    #[error("no release index here ({0}); add the item's releases with `ferryctl release publish --to-dir`")]
    Missing(String),
    #[error("not a signed release index: {0}")]
    Unusable(String),
    #[error(transparent)]
    Index(#[from] ferry_manifests::index::IndexError),
    #[error("the index is for item {found:?}, not {expected:?}")]
    WrongItem { expected: String, found: String },
    #[error(
        "the index was signed at {issued_at}, before the index this device already took (signed \
         {seen}): the repository serves an old index (a stale mirror or a replay); refused"
    )]
    Replayed { issued_at: String, seen: String },
}

pub mod exit {
    use super::Outcome;

    /// Success: the run did what it was asked (possibly nothing).
    pub const OK: i32 = 0;
    /// An update failed, was refused or was rolled back.
    pub const UPDATE_FAILED: i32 = 1;
    /// Bad command line or configuration.
    pub const BAD_CONFIG: i32 = 2;
    /// The server could not be reached, cut the transfer off or is unavailable for now
    /// (5xx, 429); nothing was lost, retry later.
    pub const UNREACHABLE: i32 = 3;
    /// Another run holds the state-directory lock.
    pub const LOCKED: i32 = 4;
    /// Any other error (I/O, corrupt state, unexpected server answer).
    pub const ERROR: i32 = 5;
    /// Stopped by SIGTERM/SIGINT before finishing; the state is consistent and the next run
    /// continues (a partial download resumes).
    pub const INTERRUPTED: i32 = 6;

    /// The exit code of a run that ended with these install outcomes.
    pub fn for_outcomes(outcomes: &[Outcome]) -> i32 {
        if outcomes.iter().any(|o| *o != Outcome::Installed) {
            UPDATE_FAILED
        } else {
            OK
        }
    }
}

impl Error {
    /// Trouble that passes by itself: the server or repository cannot be reached, cut a
    /// transfer off, or says it is unavailable for now (5xx, 429, 408). Retried soon, exit 3.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Unreachable { .. } | Error::DownloadRestarted { .. } => true,
            Error::Server { status, .. } => *status >= 500 || *status == 429 || *status == 408,
            _ => false,
        }
    }

    pub fn exit_code(&self) -> i32 {
        if self.is_transient() {
            return exit::UNREACHABLE;
        }
        match self {
            Error::Config(_)
            | Error::Usage(_)
            | Error::EnrolRefused { .. }
            | Error::CredentialRefused { .. }
            | Error::NotConfigured(_)
            | Error::NeedsServer { .. }
            | Error::EnrolTokenUnreadable { .. }
            | Error::Identity(_)
            | Error::ShareListen { .. } => exit::BAD_CONFIG,
            Error::Repository { .. } => exit::UPDATE_FAILED,
            Error::Locked { .. } => exit::LOCKED,
            Error::Unreachable { .. } => exit::UNREACHABLE,
            Error::Interrupted => exit::INTERRUPTED,
            _ => exit::ERROR,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_documented_table() {
        assert_eq!(Error::Usage("x".into()).exit_code(), exit::BAD_CONFIG);
        let locked = Error::Locked {
            path: "l".into(),
            holder: "h".into(),
            advice: "a".into(),
        };
        assert_eq!(locked.exit_code(), exit::LOCKED);
        assert_eq!(Error::Interrupted.exit_code(), exit::INTERRUPTED);
        assert_eq!(Error::NoArtifactUrl.exit_code(), exit::ERROR);
        let server = |status| Error::Server {
            url: "u".into(),
            status,
            message: "m".into(),
        };
        // A database outage behind the server, a budget: retry. A refusal: investigate.
        assert_eq!(server(503).exit_code(), exit::UNREACHABLE);
        assert_eq!(server(500).exit_code(), exit::UNREACHABLE);
        assert_eq!(server(429).exit_code(), exit::UNREACHABLE);
        assert_eq!(server(400).exit_code(), exit::ERROR);
        assert_eq!(server(200).exit_code(), exit::ERROR);
        assert_eq!(exit::for_outcomes(&[]), exit::OK);
        assert_eq!(
            exit::for_outcomes(&[Outcome::Installed, Outcome::RolledBack]),
            exit::UPDATE_FAILED
        );
    }

    #[test]
    fn an_io_error_keeps_its_path_and_source() {
        let e: Error = io_err(Path::new("/x/y"))(std::io::ErrorKind::NotFound.into()).into();
        assert!(e.to_string().starts_with("/x/y: "), "{e}");
        assert!(std::error::Error::source(&e).is_some());
    }
}
