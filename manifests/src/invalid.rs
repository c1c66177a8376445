//! Ferry's field rules (names, hashes, paths inside a release) and what a field check refuses,
//! as data: the server answers it as a 400, the agent names it with the config key or manifest
//! it came from, ferryctl with the file.

use std::fmt;
use std::path::{Component, Path};

/// A value that breaks one of Ferry's format rules. The message says what the rule is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("unit {0:?} must be a systemd unit name (letters, digits, ':', '_', '.', '@', '-', with a suffix such as .service), at most 256 characters; at most 16 units")]
    Unit(String),
    #[error("tag {0:?} must be 1-64 characters of a-z, 0-9, '.', '_', '-', ':'")]
    Tag(String),
    #[error("{0} tags; at most 32")]
    TooManyTags(usize),
    #[error("friendly name must be at most 128 characters, without control characters")]
    FriendlyName,
    #[error("site {0:?} must be 1-64 characters of letters, digits, '.', '_', ':', '-', starting with a letter or digit")]
    Site(String),
    #[error("share address {0:?} must be http://IP:PORT (an IP address and a port, no path)")]
    ShareUrl(String),
    #[error("{0} shared artifacts listed; at most 64")]
    TooManyHeld(usize),
    #[error("icon URL is {0} characters; at most 2048")]
    IconUrlLength(usize),
    #[error("icon URL {0:?} must start with https://")]
    IconUrlScheme(String),
    #[error("icon URL {0:?} is not a valid https URL")]
    IconUrl(String),
    #[error("release URL {0:?} must be an http:// or https:// URL of at most 2048 characters, without spaces or control characters")]
    ReleaseUrl(String),
    #[error("item name {0:?} must be 1-64 characters of a-z, 0-9, '.', '_', '-', starting with a letter or digit")]
    ItemName(String),
    #[error(
        "artifact name {0:?} must be letters, digits, '.', '_', '+', '-' and not start with '.'"
    )]
    ArtifactName(String),
    #[error("artifact.sha256 {0:?} is not 64 lowercase hex digits")]
    ArtifactSha256(String),
    #[error("artifact.urls is empty")]
    NoArtifactUrls,
    #[error("a bundle release lists no files, links, hooks or units, and its artifact is named ITEM-VERSION.{0}")]
    Bundle(&'static str),
    #[error("artifact {0:?} is named as an installer's bundle (.swu, .raucb) but the manifest does not say it is one; build it with `ferryctl release build --artifact`")]
    NotBundle(String),
    #[error("lists {count} files, more than {max}")]
    TooManyFiles { count: usize, max: usize },
    #[error("file path {path:?}: {problem}")]
    FilePath { path: String, problem: PathProblem },
    #[error("file {0:?} is listed twice")]
    FileTwice(String),
    #[error("file {0:?} has a malformed sha256")]
    FileSha256(String),
    #[error("file {path:?} has mode {mode:o} > 7777")]
    FileMode { path: String, mode: u32 },
    #[error("link {path:?} -> {target:?}: {problem}")]
    LinkTarget {
        path: String,
        target: String,
        problem: LinkProblem,
    },
    #[error("{0:?} is listed twice (as a file and a link, or as two links)")]
    LinkTwice(String),
    #[error("{path:?} lies under the link {link:?}; nothing is installed through a link")]
    UnderLink { path: String, link: String },
    #[error("key {keyid}: {problem}")]
    Key { keyid: String, problem: KeyProblem },
    #[error("{role} key {keyid} is listed twice")]
    KeyTwice { role: &'static str, keyid: String },
    #[error("{role}_threshold {threshold} must be between 1 and the {keys} {role} keys")]
    Threshold {
        role: &'static str,
        threshold: usize,
        keys: usize,
    },
    #[error("version must be at least 1")]
    RootVersion,
}

/// Why a path inside a release is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathProblem {
    Empty,
    Nul,
    Absolute,
    DotComponent,
    NotPlain,
}

impl fmt::Display for PathProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathProblem::Empty => "is empty",
            PathProblem::Nul => "contains a NUL byte",
            PathProblem::Absolute => "is absolute",
            PathProblem::DotComponent => "has an empty, '.' or '..' component",
            PathProblem::NotPlain => "is not a plain relative path",
        })
    }
}

impl std::error::Error for PathProblem {}

/// Why a symlink's target is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkProblem {
    Empty,
    TooLong,
    Nul,
    Absolute,
    /// `.`, an empty component, or `..` after a named one.
    NotPlain,
    /// More `..` than the link's directory is deep: it leaves the release.
    Escapes,
}

impl fmt::Display for LinkProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LinkProblem::Empty => "the target is empty",
            LinkProblem::TooLong => "the target is longer than 1024 bytes",
            LinkProblem::Nul => "the target contains a NUL byte",
            LinkProblem::Absolute => "the target is absolute; make it relative to the link's directory",
            LinkProblem::NotPlain => "the target may only start with '..' components, then names (no '.', empty or later '..' components)",
            LinkProblem::Escapes => "the target leaves the release's root",
        })
    }
}

impl std::error::Error for LinkProblem {}

/// A symlink's target, relative to the directory of the link at `path` (a checked relative
/// path): leading `..` components only, then plain names, and never above the release's root.
/// Since no entry of a release lies under a link, resolving such a target stays inside the
/// root however the release's links chain.
pub fn check_link_target(path: &str, target: &str) -> Result<(), LinkProblem> {
    if target.is_empty() {
        return Err(LinkProblem::Empty);
    }
    if target.len() > 1024 {
        return Err(LinkProblem::TooLong);
    }
    if target.contains('\0') {
        return Err(LinkProblem::Nul);
    }
    if target.starts_with('/') {
        return Err(LinkProblem::Absolute);
    }
    let depth = path.split('/').count() - 1;
    let mut ups = 0;
    let mut named = false;
    for part in target.split('/') {
        match part {
            ".." if !named => ups += 1,
            "" | "." | ".." => return Err(LinkProblem::NotPlain),
            _ => named = true,
        }
    }
    if ups > depth {
        return Err(LinkProblem::Escapes);
    }
    Ok(())
}

/// Why a trust root's key entry is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyProblem {
    NotBase64(String),
    Not32Bytes,
    NotEd25519(String),
    WrongId(String),
}

impl fmt::Display for KeyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyProblem::NotBase64(e) => write!(f, "not base64: {e}"),
            KeyProblem::Not32Bytes => f.write_str("not 32 bytes"),
            KeyProblem::NotEd25519(e) => write!(f, "not an ed25519 key: {e}"),
            KeyProblem::WrongId(id) => write!(f, "has id {id}"),
        }
    }
}

/// A release's page (`release_url`): shown to operators as a link, so only http(s) — never
/// `javascript:` or `data:` — at most 2048 characters, with a host, without spaces or control
/// characters.
pub fn validate_release_url(url: &str) -> Result<(), Invalid> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    let ok = url.chars().count() <= 2048
        && rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/'))
        && !url
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '\u{feff}');
    if ok {
        Ok(())
    } else {
        Err(Invalid::ReleaseUrl(url.to_string()))
    }
}

/// Item names are used in paths and URLs: lowercase letters, digits, `.`, `_`, `-`.
pub fn validate_item_name(name: &str) -> Result<(), Invalid> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        && name.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(Invalid::ItemName(name.to_string()))
    }
}

/// Artifact names become file names on the server: no separators, no leading dot.
pub fn validate_artifact_name(name: &str) -> Result<(), Invalid> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Invalid::ArtifactName(name.to_string()))
    }
}

pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A path inside a release: relative, non-empty, only normal components, no `.`/`..`.
pub fn check_relative_path(path: &str) -> Result<(), PathProblem> {
    if path.is_empty() {
        return Err(PathProblem::Empty);
    }
    if path.contains('\0') {
        return Err(PathProblem::Nul);
    }
    if path.starts_with('/') {
        return Err(PathProblem::Absolute);
    }
    for part in path.split('/') {
        if part.is_empty() || part == "." || part == ".." {
            return Err(PathProblem::DotComponent);
        }
    }
    for component in Path::new(path).components() {
        if !matches!(component, Component::Normal(_)) {
            return Err(PathProblem::NotPlain);
        }
    }
    Ok(())
}
