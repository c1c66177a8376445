//! What a release's tarball may hold, checked the same way wherever one is read: by the agent
//! as it unpacks, and by the server before it publishes a release or builds a delta from it.
//!
//! Every tar entry is checked by hand rather than trusting `unpack_in`: plain relative paths
//! only, regular files, directories and the manifest's signed symlinks only, each file listed
//! in the manifest exactly once, with the listed size and sha256. Where the checked entries go
//! is the caller's [`Sink`]: the agent writes them to a staging directory, the server only
//! reads them. Symlinks never reach a sink: a symlink entry must be one the manifest lists,
//! with the same target, and the agent creates the manifest's links itself once every file is
//! in place ([`LinkEntry`]), so nothing is ever written through one.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::path::PathBuf;

use sha2::{Digest, Sha256};

use crate::invalid::check_relative_path;
use crate::manifest::{FileEntry, LinkEntry};

/// Directories a tarball may carry beyond the files it lists; bounds the entry count.
pub const MAX_EXTRA_DIRS: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum TarballError {
    #[error("unsafe tarball: entry {entry:?} {reason}")]
    Unsafe { entry: String, reason: String },
    #[error("tarball does not match the manifest: {0}")]
    Mismatch(String),
    #[error("cannot read the tarball: {0}")]
    Corrupt(String),
    /// The sink could not store a checked entry (the reader's fault, not the release's).
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl TarballError {
    /// Whether this is the release's fault (refused) rather than the reader's (failed).
    pub fn is_refusal(&self) -> bool {
        !matches!(self, TarballError::Write { .. })
    }

    fn unsafe_entry(entry: &str, reason: impl Into<String>) -> TarballError {
        TarballError::Unsafe {
            entry: entry.to_string(),
            reason: reason.into(),
        }
    }
}

/// Where checked entries go.
pub trait Sink {
    /// A directory entry at `rel`, a checked relative path.
    fn dir(&mut self, rel: &str) -> Result<(), TarballError>;
    /// A regular file the manifest lists as `listed`. Its `content` must go through
    /// [`copy_checked`], which refuses anything but the listed bytes.
    fn file(&mut self, listed: &FileEntry, content: &mut dyn Read) -> Result<(), TarballError>;
}

/// A sink that keeps nothing: checks a tarball without unpacking it.
pub struct Discard;

impl Sink for Discard {
    fn dir(&mut self, _rel: &str) -> Result<(), TarballError> {
        Ok(())
    }

    fn file(&mut self, listed: &FileEntry, content: &mut dyn Read) -> Result<(), TarballError> {
        let mut buf = vec![0u8; 128 * 1024];
        copy_checked(content, listed, &mut io::sink(), &mut buf, |source| {
            TarballError::Write {
                path: PathBuf::from(&listed.path),
                source,
            }
        })
    }
}

/// Walks the tar stream `reader`, checking each entry against `files` and `links` (the signed
/// manifest's lists, or the part of them a delta carries), and hands each checked file and
/// directory to `sink`.
pub fn check_tar(
    reader: impl Read,
    files: &[FileEntry],
    links: &[LinkEntry],
    sink: &mut dyn Sink,
) -> Result<(), TarballError> {
    let mut expected: HashMap<&str, &FileEntry> =
        files.iter().map(|f| (f.path.as_str(), f)).collect();
    let mut expected_links: HashMap<&str, &LinkEntry> =
        links.iter().map(|l| (l.path.as_str(), l)).collect();
    let max_entries = files.len() + links.len() + MAX_EXTRA_DIRS;
    let mut archive = tar::Archive::new(reader);
    let entries = archive
        .entries()
        .map_err(|e| TarballError::Corrupt(e.to_string()))?;
    for (count, entry) in entries.enumerate() {
        let mut entry = entry.map_err(|e| TarballError::Corrupt(e.to_string()))?;
        if count >= max_entries {
            return Err(TarballError::Mismatch(format!(
                "more than {max_entries} entries"
            )));
        }
        let raw_path = entry
            .path()
            .map_err(|e| TarballError::Corrupt(format!("entry path: {e}")))?
            .to_string_lossy()
            .into_owned();
        // `tar -C dir .` writes "./x" and a "./" root entry.
        let rel = raw_path.trim_start_matches("./").trim_end_matches('/');
        let kind = entry.header().entry_type();
        if rel.is_empty() || rel == "." {
            if kind.is_dir() {
                continue;
            }
            return Err(TarballError::unsafe_entry(&raw_path, "has an empty path"));
        }
        check_relative_path(rel)
            .map_err(|e| TarballError::unsafe_entry(&raw_path, e.to_string()))?;
        if let Some(link) = links
            .iter()
            .find(|l| rel == l.path || rel.starts_with(&format!("{}/", l.path)))
            .filter(|l| rel != l.path || kind != tar::EntryType::Symlink)
        {
            return Err(TarballError::unsafe_entry(
                &raw_path,
                format!("is in the place of the signed link {:?}", link.path),
            ));
        }
        match kind {
            tar::EntryType::Directory => sink.dir(rel)?,
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(|e| TarballError::Corrupt(format!("link target: {e}")))?
                    .map(|t| t.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let Some(listed) = expected_links.remove(rel) else {
                    return Err(TarballError::unsafe_entry(
                        &raw_path,
                        if links.iter().any(|l| l.path == rel) {
                            "appears twice".to_string()
                        } else {
                            format!("is a symlink to {target:?} the signed manifest does not list")
                        },
                    ));
                };
                if target != listed.target {
                    return Err(TarballError::Mismatch(format!(
                        "{rel} links to {target:?}, the manifest says {:?}",
                        listed.target
                    )));
                }
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let Some(listed) = expected.remove(rel) else {
                    return Err(TarballError::unsafe_entry(
                        &raw_path,
                        if files.iter().any(|f| f.path == rel) {
                            "appears twice"
                        } else {
                            "is not listed in the signed manifest"
                        },
                    ));
                };
                if entry.size() != listed.size {
                    return Err(TarballError::Mismatch(format!(
                        "{rel} is {} bytes, the manifest says {}",
                        entry.size(),
                        listed.size
                    )));
                }
                sink.file(listed, &mut entry)?;
            }
            other => {
                return Err(TarballError::unsafe_entry(
                    &raw_path,
                    format!(
                        "is a {} (only regular files, directories and signed symlinks are allowed)",
                        entry_kind_name(other)
                    ),
                ))
            }
        }
    }
    if let Some(missing) = expected.keys().chain(expected_links.keys()).min() {
        return Err(TarballError::Mismatch(format!(
            "{missing} is listed in the manifest but missing from the tarball ({} missing)",
            expected.len() + expected_links.len()
        )));
    }
    Ok(())
}

/// Copies `content` to `out` while hashing it: more bytes than `listed.size`, or a sha256
/// other than `listed.sha256`, is refused. `write_err` names a failed write.
pub fn copy_checked(
    content: &mut dyn Read,
    listed: &FileEntry,
    out: &mut dyn Write,
    buf: &mut [u8],
    write_err: impl Fn(io::Error) -> TarballError,
) -> Result<(), TarballError> {
    let mut hasher = Sha256::new();
    let mut written = 0u64;
    loop {
        let n = content
            .read(buf)
            .map_err(|e| TarballError::Corrupt(format!("{}: {e}", listed.path)))?;
        if n == 0 {
            break;
        }
        written += n as u64;
        if written > listed.size {
            return Err(TarballError::Mismatch(format!(
                "{} is larger than the {} bytes the manifest says",
                listed.path, listed.size
            )));
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(&write_err)?;
    }
    let sha = hex::encode(hasher.finalize());
    if sha != listed.sha256 {
        return Err(TarballError::Mismatch(format!(
            "{} has sha256 {sha}, the manifest says {}",
            listed.path, listed.sha256
        )));
    }
    Ok(())
}

fn entry_kind_name(kind: tar::EntryType) -> &'static str {
    match kind {
        tar::EntryType::Symlink => "symlink",
        tar::EntryType::Link => "hard link",
        tar::EntryType::Char => "character device",
        tar::EntryType::Block => "block device",
        tar::EntryType::Fifo => "FIFO",
        _ => "special entry",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, data: &[u8]) -> FileEntry {
        FileEntry {
            path: path.into(),
            sha256: hex::encode(Sha256::digest(data)),
            mode: 0o644,
            size: data.len() as u64,
            config: false,
        }
    }

    /// Builds a tar stream with raw header paths so hostile names can be written.
    fn tar_with(entries: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, kind, data) in entries {
            let mut header = tar::Header::new_gnu();
            let name = path.as_bytes();
            header.as_old_mut().name[..name.len()].copy_from_slice(name);
            header.set_entry_type(*kind);
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            let mut data: &[u8] = data;
            if *kind == tar::EntryType::Symlink || *kind == tar::EntryType::Link {
                // A link's data is its target.
                let target = if data.is_empty() {
                    "/etc/passwd"
                } else {
                    std::str::from_utf8(data).unwrap()
                };
                header.set_link_name(target).unwrap();
                header.set_size(0);
                data = b"";
            }
            header.set_cksum();
            builder.append(&header, data).unwrap();
        }
        builder.into_inner().unwrap()
    }

    #[test]
    fn a_listed_tree_passes() {
        let tar = tar_with(&[
            ("./", tar::EntryType::Directory, b""),
            ("./bin/", tar::EntryType::Directory, b""),
            ("./bin/app", tar::EntryType::Regular, b"#!/bin/sh\n"),
            ("./README", tar::EntryType::Regular, b"hello"),
        ]);
        let files = [entry("bin/app", b"#!/bin/sh\n"), entry("README", b"hello")];
        check_tar(&tar[..], &files, &[], &mut Discard).unwrap();
    }

    fn link(path: &str, target: &str) -> LinkEntry {
        LinkEntry {
            path: path.into(),
            target: target.into(),
        }
    }

    #[test]
    fn only_the_signed_links_pass_with_their_signed_targets() {
        let tar = tar_with(&[
            ("lib/libfoo.so.1", tar::EntryType::Regular, b"elf"),
            ("lib/libfoo.so", tar::EntryType::Symlink, b"libfoo.so.1"),
        ]);
        let files = [entry("lib/libfoo.so.1", b"elf")];
        let links = [link("lib/libfoo.so", "libfoo.so.1")];
        check_tar(&tar[..], &files, &links, &mut Discard).unwrap();

        let cases: Vec<(Vec<u8>, &str)> = vec![
            (
                tar_with(&[
                    ("lib/libfoo.so.1", tar::EntryType::Regular, b"elf"),
                    ("lib/libfoo.so", tar::EntryType::Symlink, b"/etc/shadow"),
                ]),
                "the manifest says \"libfoo.so.1\"",
            ),
            (
                tar_with(&[("lib/libfoo.so.1", tar::EntryType::Regular, b"elf")]),
                "lib/libfoo.so is listed in the manifest but missing",
            ),
            (
                tar_with(&[
                    ("lib/libfoo.so.1", tar::EntryType::Regular, b"elf"),
                    ("lib/libfoo.so", tar::EntryType::Directory, b""),
                ]),
                "in the place of the signed link",
            ),
            (
                tar_with(&[
                    ("lib/libfoo.so", tar::EntryType::Symlink, b"libfoo.so.1"),
                    ("lib/libfoo.so/x", tar::EntryType::Regular, b"elf"),
                ]),
                "in the place of the signed link",
            ),
            (
                tar_with(&[
                    ("lib/libfoo.so.1", tar::EntryType::Regular, b"elf"),
                    ("lib/libfoo.so", tar::EntryType::Symlink, b"libfoo.so.1"),
                    ("lib/libfoo.so", tar::EntryType::Symlink, b"libfoo.so.1"),
                ]),
                "twice",
            ),
            (
                tar_with(&[
                    ("lib/libfoo.so.1", tar::EntryType::Regular, b"elf"),
                    ("lib/libfoo.so", tar::EntryType::Symlink, b"libfoo.so.1"),
                    ("lib/other", tar::EntryType::Symlink, b"libfoo.so.1"),
                ]),
                "does not list",
            ),
        ];
        for (tar, why) in cases {
            let err = check_tar(&tar[..], &files, &links, &mut Discard).unwrap_err();
            assert!(err.is_refusal());
            let err = err.to_string();
            assert!(err.contains(why), "expected {why:?} in {err:?}");
        }
    }

    #[test]
    fn every_entry_a_device_would_refuse_is_refused() {
        let cases: Vec<(Vec<u8>, Vec<FileEntry>, &str)> = vec![
            (
                tar_with(&[("../evil", tar::EntryType::Regular, b"x")]),
                vec![],
                "'..'",
            ),
            (
                tar_with(&[("/abs", tar::EntryType::Regular, b"x")]),
                vec![],
                "absolute",
            ),
            (
                tar_with(&[("link", tar::EntryType::Symlink, b"")]),
                vec![],
                "symlink",
            ),
            (
                tar_with(&[("hard", tar::EntryType::Link, b"")]),
                vec![],
                "hard link",
            ),
            (
                tar_with(&[("dev", tar::EntryType::Char, b"")]),
                vec![],
                "character device",
            ),
            (
                tar_with(&[("fifo", tar::EntryType::Fifo, b"")]),
                vec![],
                "FIFO",
            ),
            (
                tar_with(&[("extra", tar::EntryType::Regular, b"x")]),
                vec![],
                "not listed",
            ),
            (
                tar_with(&[
                    ("a", tar::EntryType::Regular, b"x"),
                    ("a", tar::EntryType::Regular, b"x"),
                ]),
                vec![entry("a", b"x")],
                "twice",
            ),
            (
                tar_with(&[("a", tar::EntryType::Regular, b"y")]),
                vec![entry("a", b"x")],
                "sha256",
            ),
            (
                tar_with(&[("a", tar::EntryType::Regular, b"xy")]),
                vec![entry("a", b"x")],
                "2 bytes, the manifest says 1",
            ),
            (tar_with(&[]), vec![entry("a", b"x")], "missing"),
            (
                b"not a tarball at all, just text".repeat(40),
                vec![],
                "cannot read",
            ),
        ];
        for (tar, files, why) in cases {
            let err = check_tar(&tar[..], &files, &[], &mut Discard).unwrap_err();
            assert!(err.is_refusal());
            let err = err.to_string();
            assert!(err.contains(why), "expected {why:?} in {err:?}");
        }
    }
}
