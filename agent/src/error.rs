//! The agent's error type. Each variant says what failed and names the path or URL, and maps
//! to a documented exit code (see `exit_code`).

use std::path::{Path, PathBuf};

use crate::config::ConfigError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Usage(String),
    #[error("another ferry-agent run holds the lock {path}; try again when it has finished")]
    Locked { path: PathBuf },
    #[error("server unreachable at {url}: {message}")]
    Unreachable { url: String, message: String },
    #[error("server answered {status} for {url}: {message}")]
    Server {
        url: String,
        status: u16,
        message: String,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("state file {path} is unreadable: {message}; move it aside to start over")]
    CorruptState { path: PathBuf, message: String },
    #[error("stopped by a signal; what was done is saved and the next run continues")]
    Interrupted,
    #[error(transparent)]
    Root(#[from] crate::install::layout::RootError),
    #[error("{0}")]
    Other(String),
}

/// Exit codes, documented in docs/operations.md for cron and scripts.
pub mod exit {
    /// Success: the run did what it was asked (possibly nothing).
    pub const OK: i32 = 0;
    /// An update failed, was refused or was rolled back.
    pub const UPDATE_FAILED: i32 = 1;
    /// Bad command line or configuration.
    pub const BAD_CONFIG: i32 = 2;
    /// The server could not be reached; nothing was lost, retry later.
    pub const UNREACHABLE: i32 = 3;
    /// Another run holds the state-directory lock.
    pub const LOCKED: i32 = 4;
    /// Any other error (I/O, corrupt state, unexpected server answer).
    pub const ERROR: i32 = 5;
    /// Stopped by SIGTERM/SIGINT before finishing; the state is consistent and the next run
    /// continues (a partial download resumes).
    pub const INTERRUPTED: i32 = 6;
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config(_) | Error::Usage(_) => exit::BAD_CONFIG,
            Error::Locked { .. } => exit::LOCKED,
            Error::Unreachable { .. } => exit::UNREACHABLE,
            Error::Interrupted => exit::INTERRUPTED,
            _ => exit::ERROR,
        }
    }
}

pub fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}
