//! Unpacking a verified artifact into a fresh staging directory.
//!
//! Only bytes whose sha256 matches the signed manifest reach the decompressor: the whole
//! compressed artifact is hashed first. Then every tar entry is checked as the server checked
//! it at publish ([`ferry_manifests::tarball`]), written with `create_new` (so nothing already
//! on disk is followed), hashed while it is written, its mode taken from the signed manifest.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use ferry_manifests::manifest::Compression;
use ferry_manifests::tarball::{check_tar, copy_checked, Sink, TarballError};
use ferry_manifests::{FileEntry, LinkEntry, Manifest};
use sha2::{Digest, Sha256};

use crate::error::{io_err, PathIo};
use crate::fsops::Fs;

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("artifact {path} is {actual} bytes, the signed manifest says {expected}")]
    ArtifactSize {
        path: PathBuf,
        expected: u64,
        actual: u64,
    },
    #[error("artifact {path} has sha256 {actual}, the signed manifest says {expected}")]
    ArtifactHash {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("cannot read the tarball: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Tarball(#[from] TarballError),
    #[error(transparent)]
    Io(#[from] PathIo),
}

impl UnpackError {
    /// Whether this is the release's fault (refused) rather than the device's (failed).
    pub fn is_refusal(&self) -> bool {
        match self {
            UnpackError::Io(_) => false,
            UnpackError::Tarball(e) => e.is_refusal(),
            _ => true,
        }
    }
}

/// Hashes a whole file, returning (size, sha256 hex).
pub fn hash_file(path: &Path) -> io::Result<(u64, String)> {
    let mut file = File::open(path)?;
    hash_reader(&mut file)
}

fn hash_reader(reader: &mut impl Read) -> io::Result<(u64, String)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((total, hex::encode(hasher.finalize())))
}

/// Checks the artifact against the manifest, then unpacks it into `dest`, which must not
/// exist yet. On error `dest` may hold a partial tree; the caller removes it.
pub fn unpack_verified(
    fs: &dyn Fs,
    artifact: &Path,
    manifest: &Manifest,
    dest: &Path,
) -> Result<(), UnpackError> {
    let mut file = File::open(artifact).map_err(io_err(artifact))?;
    let (size, sha) = hash_reader(&mut file).map_err(io_err(artifact))?;
    if size != manifest.artifact.size {
        return Err(UnpackError::ArtifactSize {
            path: artifact.to_path_buf(),
            expected: manifest.artifact.size,
            actual: size,
        });
    }
    if sha != manifest.artifact.sha256 {
        return Err(UnpackError::ArtifactHash {
            path: artifact.to_path_buf(),
            expected: manifest.artifact.sha256.clone(),
            actual: sha,
        });
    }
    file.seek(SeekFrom::Start(0)).map_err(io_err(artifact))?;
    fs.create_dir_all(dest).map_err(io_err(dest))?;
    let input = io::BufReader::with_capacity(256 * 1024, file);
    // Decompression runs on its own thread, so it overlaps hashing and writing on a second
    // core; memory stays bounded by the channel.
    match manifest.artifact.compression {
        Compression::Gzip => unpack_tar(
            fs,
            Pipelined::new(flate2::read::GzDecoder::new(input)),
            &manifest.files,
            &manifest.links,
            dest,
        )?,
        Compression::Zstd => {
            let decoder = zstd::stream::read::Decoder::with_buffer(input)
                .map_err(|e| UnpackError::Corrupt(format!("zstd: {e}")))?;
            unpack_tar(
                fs,
                Pipelined::new(decoder),
                &manifest.files,
                &manifest.links,
                dest,
            )?
        }
    }
    place_links(fs, &manifest.links, dest)
}

/// Creates the release's signed symlinks under `dest`, once every file is in place. Their
/// paths and targets were checked with the manifest; no file lies under one, and each is
/// created new, so nothing is followed.
pub fn place_links(fs: &dyn Fs, links: &[LinkEntry], dest: &Path) -> Result<(), UnpackError> {
    for link in links {
        let at = dest.join(&link.path);
        if let Some(parent) = at.parent() {
            if !parent.is_dir() {
                fs.create_dir_all(parent).map_err(io_err(parent))?;
            }
        }
        fs.symlink(Path::new(&link.target), &at)
            .map_err(io_err(&at))?;
    }
    Ok(())
}

/// Chunks in flight between the decompressing thread and the unpacker.
const PIPELINE_DEPTH: usize = 4;
/// Size of each chunk.
const PIPELINE_CHUNK: usize = 256 * 1024;

/// A reader whose source is read on another thread, [`PIPELINE_DEPTH`] chunks ahead.
pub struct Pipelined {
    rx: std::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    current: Vec<u8>,
    pos: usize,
    done: bool,
}

impl Pipelined {
    pub fn new<R: Read + Send + 'static>(mut source: R) -> Pipelined {
        let (tx, rx) = std::sync::mpsc::sync_channel(PIPELINE_DEPTH);
        std::thread::spawn(move || loop {
            let mut chunk = vec![0u8; PIPELINE_CHUNK];
            match source.read(&mut chunk) {
                Ok(0) => {
                    let _ = tx.send(Ok(Vec::new()));
                    break;
                }
                Ok(n) => {
                    chunk.truncate(n);
                    // The unpacker stopped (an error, a refusal): stop decompressing.
                    if tx.send(Ok(chunk)).is_err() {
                        break;
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                    break;
                }
            }
        });
        Pipelined {
            rx,
            current: Vec::new(),
            pos: 0,
            done: false,
        }
    }
}

impl Read for Pipelined {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.current.len() {
            if self.done {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Ok(chunk)) if chunk.is_empty() => self.done = true,
                Ok(Ok(chunk)) => {
                    self.current = chunk;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => {
                    return Err(io::Error::other("the decompressing thread stopped"));
                }
            }
        }
        let n = buf.len().min(self.current.len() - self.pos);
        buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Unpacks a tar stream into `dest`, checking each entry against `files` and `links` as the
/// server did at publish ([`ferry_manifests::tarball`]). The links are checked, not created:
/// [`place_links`] does that once every file is in place.
pub fn unpack_tar(
    fs: &dyn Fs,
    reader: impl Read,
    files: &[FileEntry],
    links: &[LinkEntry],
    dest: &Path,
) -> Result<(), UnpackError> {
    let mut sink = Staging {
        fs,
        dest,
        buf: vec![0u8; 128 * 1024],
    };
    check_tar(reader, files, links, &mut sink)?;
    Ok(())
}

/// Writes checked entries under a staging directory.
struct Staging<'a> {
    fs: &'a dyn Fs,
    dest: &'a Path,
    buf: Vec<u8>,
}

impl Sink for Staging<'_> {
    fn dir(&mut self, rel: &str) -> Result<(), TarballError> {
        let target = self.dest.join(rel);
        if target.symlink_metadata().is_ok_and(|m| !m.is_dir()) {
            return Err(TarballError::Unsafe {
                entry: rel.to_string(),
                reason: "is a directory over a file".into(),
            });
        }
        self.fs.create_dir_all(&target).map_err(write_err(&target))
    }

    fn file(&mut self, listed: &FileEntry, content: &mut dyn Read) -> Result<(), TarballError> {
        let target = self.dest.join(&listed.path);
        if let Some(parent) = target.parent() {
            if !parent.is_dir() {
                self.fs.create_dir_all(parent).map_err(write_err(parent))?;
            }
        }
        write_file(self.fs, content, &target, listed, &mut self.buf)
    }
}

fn write_err(path: &Path) -> impl Fn(io::Error) -> TarballError + '_ {
    move |source| TarballError::Write {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes one listed file at `target` (which must not exist), checked while it is written;
/// its mode comes from the signed manifest.
pub(crate) fn write_file(
    fs: &dyn Fs,
    content: &mut dyn Read,
    target: &Path,
    listed: &FileEntry,
    buf: &mut [u8],
) -> Result<(), TarballError> {
    let mut out = fs.create_new(target).map_err(|e| {
        if e.kind() == io::ErrorKind::AlreadyExists {
            TarballError::Unsafe {
                entry: listed.path.clone(),
                reason: "appears twice".into(),
            }
        } else {
            write_err(target)(e)
        }
    })?;
    copy_checked(content, listed, &mut out, buf, write_err(target))?;
    // The mode comes from the signed manifest, never from the tar header; set it explicitly
    // because the umask would strip bits at open.
    out.set_permissions(fs::Permissions::from_mode(listed.mode))
        .map_err(write_err(target))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsops::RealFs;

    fn sha(data: &[u8]) -> String {
        hex::encode(Sha256::digest(data))
    }

    fn entry(path: &str, data: &[u8], mode: u32) -> FileEntry {
        FileEntry {
            path: path.into(),
            sha256: sha(data),
            mode,
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
            if *kind == tar::EntryType::Symlink || *kind == tar::EntryType::Link {
                header.set_link_name("/etc/passwd").unwrap();
                header.set_size(0);
            }
            header.set_cksum();
            builder.append(&header, *data).unwrap();
        }
        builder.into_inner().unwrap()
    }

    #[test]
    fn a_listed_tree_unpacks_with_manifest_modes() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("stage");
        fs::create_dir(&dest).unwrap();
        let tar = tar_with(&[
            ("./", tar::EntryType::Directory, b""),
            ("./bin/", tar::EntryType::Directory, b""),
            ("./bin/app", tar::EntryType::Regular, b"#!/bin/sh\n"),
            ("./README", tar::EntryType::Regular, b"hello"),
        ]);
        let files = [
            entry("bin/app", b"#!/bin/sh\n", 0o755),
            entry("README", b"hello", 0o644),
        ];
        unpack_tar(&RealFs, &tar[..], &files, &[], &dest).unwrap();
        assert_eq!(fs::read(dest.join("README")).unwrap(), b"hello");
        let mode = fs::metadata(dest.join("bin/app"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o755);
    }

    #[test]
    fn entries_that_would_escape_are_refused_and_nothing_is_written_outside() {
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
        ];
        for (tar, files, why) in cases {
            let dir = tempfile::tempdir().unwrap();
            let dest = dir.path().join("stage");
            fs::create_dir(&dest).unwrap();
            let err = unpack_tar(&RealFs, &tar[..], &files, &[], &dest)
                .unwrap_err()
                .to_string();
            assert!(err.contains(why), "expected {why:?} in {err:?}");
            let outside: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
            assert_eq!(
                outside.len(),
                1,
                "something was created beside the staging dir"
            );
        }
    }

    #[test]
    fn a_pipelined_reader_returns_exactly_the_source_bytes() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let mut out = Vec::new();
        Pipelined::new(std::io::Cursor::new(data.clone()))
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data);
    }

    #[test]
    fn a_tampered_artifact_never_reaches_the_decompressor() {
        let dir = tempfile::tempdir().unwrap();
        let artifact = dir.path().join("a.tar.gz");
        fs::write(&artifact, b"not even gzip").unwrap();
        let mut manifest: Manifest = serde_json::from_str(include_str!(
            "../../../manifests/examples/web-1.1.0.payload.json"
        ))
        .unwrap();
        manifest.artifact.size = 13;
        let err =
            unpack_verified(&RealFs, &artifact, &manifest, &dir.path().join("stage")).unwrap_err();
        assert!(matches!(err, UnpackError::ArtifactHash { .. }), "{err}");
        assert!(!dir.path().join("stage").exists());
    }
}
