//! Installing from a file-level delta (`ferry_manifests::delta`): the new release's staging
//! tree is assembled from the files the delta carries (unpacked with every check a full
//! artifact gets) and from copies of the installed release's files, each hashed as it is
//! written and checked against the new release's signed manifest. Copies, never hard links:
//! the installed release is the backup, and a hook of the new one may change its files.
//! Anything wrong (a missing or changed local file, a delta that does not add up) is an error
//! the install answers by fetching the full artifact instead.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use ferry_manifests::delta::{DeltaMeta, DELTA_META, MAX_META_BYTES};
use ferry_manifests::manifest::check_relative_path;
use ferry_manifests::wire::DeltaOffer;
use ferry_manifests::{FileEntry, Manifest};
use sha2::{Digest, Sha256};

use super::unpack::{place_links, unpack_tar, write_file, UnpackError};
use crate::error::io_err;
use crate::fsops::Fs;
use ferry_manifests::tarball::TarballError;

/// Where a release's files come from when it is staged.
pub enum Source<'a> {
    /// The full artifact, verified against the manifest first.
    Artifact(&'a Path),
    /// A delta, and the directory holding the installed release it starts from.
    Delta { file: &'a Path, base: &'a Path },
}

/// Whether `offer` may be used: the device has exactly its starting version installed, the
/// manifest of that version is at hand, and the delta is no larger than the new release's
/// changed files can make it. Returns why not, for the log.
pub fn usable(
    offer: &DeltaOffer,
    installed: Option<&semver::Version>,
    installed_manifest: Option<&Manifest>,
    new: &Manifest,
) -> Result<(), String> {
    if installed != Some(&offer.from_version) {
        return Err(format!(
            "it starts from {}, and this device has {}",
            offer.from_version,
            installed.map_or("nothing".into(), |v| v.to_string())
        ));
    }
    let Some(old) = installed_manifest.filter(|m| m.version == offer.from_version) else {
        return Err(format!(
            "the manifest of the installed {} is not kept here",
            offer.from_version
        ));
    };
    if offer.size >= new.artifact.size {
        return Err(format!(
            "it is {} bytes, no smaller than the {}-byte artifact",
            offer.size, new.artifact.size
        ));
    }
    let cap = ferry_manifests::delta::max_size(old, new);
    if offer.size > cap {
        return Err(format!(
            "it claims {} bytes, more than the {cap} the changed files can take; refused",
            offer.size
        ));
    }
    Ok(())
}

fn mismatch(text: String) -> UnpackError {
    TarballError::Mismatch(format!("delta: {text}")).into()
}

/// Reads the delta's first entry, its metadata.
fn read_meta(file: &Path) -> Result<(DeltaMeta, Vec<u8>), UnpackError> {
    let f = File::open(file).map_err(io_err(file))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(f));
    let mut entries = archive
        .entries()
        .map_err(|e| UnpackError::Corrupt(e.to_string()))?;
    let mut first = entries
        .next()
        .ok_or_else(|| mismatch("it is empty".into()))?
        .map_err(|e| UnpackError::Corrupt(e.to_string()))?;
    let name = first
        .path()
        .map_err(|e| UnpackError::Corrupt(e.to_string()))?
        .to_string_lossy()
        .into_owned();
    if name != DELTA_META || first.size() > MAX_META_BYTES {
        return Err(mismatch(format!(
            "its first entry is {name:?}, not {DELTA_META}"
        )));
    }
    let mut bytes = Vec::new();
    first
        .read_to_end(&mut bytes)
        .map_err(|e| UnpackError::Corrupt(e.to_string()))?;
    let meta: DeltaMeta =
        serde_json::from_slice(&bytes).map_err(|e| mismatch(format!("{DELTA_META}: {e}")))?;
    Ok((meta, bytes))
}

/// The files a delta says are unchanged at the same path; none when it cannot be read (the
/// assembly then fails and the install falls back to the full artifact).
pub fn unchanged_paths(file: &Path) -> Vec<String> {
    read_meta(file)
        .map(|(meta, _)| {
            meta.copy
                .into_iter()
                .filter(|c| c.path == c.from)
                .map(|c| c.path)
                .collect()
        })
        .unwrap_or_default()
}

/// Assembles `manifest`'s release into `dest` (which must not exist yet) from the delta
/// `file` and the installed release's files under `base`.
pub fn assemble(
    fs: &dyn Fs,
    file: &Path,
    base: &Path,
    manifest: &Manifest,
    dest: &Path,
) -> Result<(), UnpackError> {
    let (meta, meta_bytes) = read_meta(file)?;
    if meta.item != manifest.item || meta.to != manifest.version {
        return Err(mismatch(format!(
            "it is for {} {}, not {} {}",
            meta.item, meta.to, manifest.item, manifest.version
        )));
    }
    if manifest.files.iter().any(|f| f.path == DELTA_META) {
        return Err(mismatch(format!(
            "the release itself has a file {DELTA_META}"
        )));
    }
    let listed = |path: &str| manifest.files.iter().find(|f| f.path == path);
    // What the delta carries, checked entry by entry as a full artifact is; its metadata
    // entry is listed too (with the bytes just read), then removed.
    let mut carried: Vec<FileEntry> = Vec::new();
    for path in &meta.carried {
        carried.push(
            listed(path)
                .ok_or_else(|| {
                    mismatch(format!(
                        "it carries {path}, which the release does not list"
                    ))
                })?
                .clone(),
        );
    }
    carried.push(FileEntry {
        path: DELTA_META.into(),
        sha256: hex::encode(Sha256::digest(&meta_bytes)),
        mode: 0o600,
        size: meta_bytes.len() as u64,
        config: false,
    });
    fs.create_dir_all(dest).map_err(io_err(dest))?;
    let f = File::open(file).map_err(io_err(file))?;
    // Links are not carried: they are created from the signed manifest at the end.
    unpack_tar(fs, flate2::read::GzDecoder::new(f), &carried, &[], dest)?;
    let meta_path = dest.join(DELTA_META);
    fs.remove_file(&meta_path).map_err(io_err(&meta_path))?;

    // The rest from the installed release, each copy checked against the signed manifest.
    let mut buf = vec![0u8; 128 * 1024];
    let mut placed = meta.carried.len();
    for c in &meta.copy {
        let entry = listed(&c.path).ok_or_else(|| {
            mismatch(format!(
                "it copies {}, which the release does not list",
                c.path
            ))
        })?;
        check_relative_path(&c.from)
            .map_err(|e| mismatch(format!("it copies from {:?}: {e}", c.from)))?;
        let source = base.join(&c.from);
        if !std::fs::symlink_metadata(&source).is_ok_and(|m| m.is_file()) {
            return Err(mismatch(format!(
                "{} is not a file here (changed or removed since it was installed)",
                source.display()
            )));
        }
        let target = dest.join(&c.path);
        if let Some(parent) = target.parent() {
            if !parent.is_dir() {
                fs.create_dir_all(parent).map_err(io_err(parent))?;
            }
        }
        let mut from = File::open(&source).map_err(io_err(&source))?;
        write_file(fs, &mut from, &target, entry, &mut buf)
            .map_err(|e| mismatch(format!("{} (from {}): {e}", c.path, source.display())))?;
        placed += 1;
    }
    if placed != manifest.files.len() {
        return Err(mismatch(format!(
            "it accounts for {placed} of the release's {} files",
            manifest.files.len()
        )));
    }
    place_links(fs, &manifest.links, dest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(version: &str, files: &[(&str, &[u8])]) -> Manifest {
        let mut m: Manifest = serde_json::from_str(include_str!(
            "../../../manifests/examples/web-1.1.0.payload.json"
        ))
        .unwrap();
        m.version = version.parse().unwrap();
        m.files = files
            .iter()
            .map(|(p, c)| FileEntry {
                path: p.to_string(),
                sha256: hex::encode(Sha256::digest(c)),
                mode: 0o644,
                size: c.len() as u64,
                config: false,
            })
            .collect();
        m
    }

    fn offer(from: &str, size: u64) -> DeltaOffer {
        DeltaOffer {
            from_version: from.parse().unwrap(),
            path: "p".into(),
            size,
            sha256: "0".repeat(64),
        }
    }

    #[test]
    fn a_delta_is_used_only_from_the_installed_version_and_within_its_cap() {
        let a = manifest("1.0.0", &[("x", b"one"), ("y", b"two")]);
        let mut b = manifest("1.1.0", &[("x", b"one"), ("y", b"three")]);
        b.artifact.size = 1 << 40;
        let v = |s: &str| s.parse::<semver::Version>().unwrap();
        assert!(usable(&offer("1.0.0", 600), Some(&v("1.0.0")), Some(&a), &b).is_ok());
        let other = usable(&offer("0.9.0", 600), Some(&v("1.0.0")), Some(&a), &b);
        assert!(other.unwrap_err().contains("starts from 0.9.0"));
        assert!(usable(&offer("1.0.0", 600), Some(&v("1.0.0")), None, &b).is_err());
        let big = usable(&offer("1.0.0", 1 << 30), Some(&v("1.0.0")), Some(&a), &b);
        assert!(big.unwrap_err().contains("refused"), "a delta past its cap");
        // No smaller than the artifact: the artifact it is.
        b.artifact.size = 600;
        let same = usable(&offer("1.0.0", 600), Some(&v("1.0.0")), Some(&a), &b);
        assert!(
            same.unwrap_err().contains("no smaller"),
            "a delta as big as the artifact"
        );
    }
}
