//! File-level deltas between two releases of an item. A delta from A to B is a gzip tarball
//! whose first entry, [`DELTA_META`], says which of B's files come from A (by content: a
//! rename or move costs nothing), followed by every file of B whose content A does not have,
//! named by its path in B. It is not signed: every file a device assembles from it is checked
//! against B's signed manifest, and its size is bounded by what that manifest lists
//! ([`max_size`]), so a bad delta can only fall back to the full artifact.

use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Write};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::manifest::{FileEntry, Manifest};
use crate::tarball::{check_tar, Discard, Sink, TarballError};

/// Name of the delta's first entry.
pub const DELTA_META: &str = "ferry-delta.json";
/// Largest `ferry-delta.json` a device reads.
pub const MAX_META_BYTES: u64 = 16 * 1024 * 1024;

/// A built delta's size and sha256: the server keeps it beside each delta, a static
/// repository publishes it as [`repository_file`]`.json` beside `.tar.gz`. Not signed: it
/// only bounds and checks the transfer (every file is checked against the signed manifest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sidecar {
    pub size: u64,
    pub sha256: String,
}

/// Largest sidecar a device reads.
pub const MAX_SIDECAR_BYTES: u64 = 4096;

/// The name, without suffix, of the delta from `from` to `to` of `item` in a static release
/// repository: `ITEM-FROM-TO.delta` (`.tar.gz` the delta, `.json` its [`Sidecar`]).
pub fn repository_file(item: &str, from: &semver::Version, to: &semver::Version) -> String {
    format!("{item}-{from}-{to}.delta")
}

/// A file of B that is taken from A.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Copy {
    /// Its path in B.
    pub path: String,
    /// The path in A that has the same content.
    pub from: String,
}

/// `ferry-delta.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeltaMeta {
    pub item: String,
    pub from: semver::Version,
    pub to: semver::Version,
    pub copy: Vec<Copy>,
    /// The files the tarball carries, by their path in B.
    pub carried: Vec<String>,
}

/// Which files of `b` come from `a` and which the delta must carry.
pub fn plan(a: &Manifest, b: &Manifest) -> DeltaMeta {
    let in_a: BTreeMap<&str, &str> = a
        .files
        .iter()
        .map(|f| (f.sha256.as_str(), f.path.as_str()))
        .collect();
    let mut copy = Vec::new();
    let mut carried = Vec::new();
    for f in &b.files {
        match in_a.get(f.sha256.as_str()) {
            Some(from) => copy.push(Copy {
                path: f.path.clone(),
                from: from.to_string(),
            }),
            None => carried.push(f.path.clone()),
        }
    }
    DeltaMeta {
        item: b.item.clone(),
        from: a.version.clone(),
        to: b.version.clone(),
        copy,
        carried,
    }
}

/// The most bytes a delta from `a` to `b` may take: the files of `b` whose content `a` lacks,
/// each with its tar header and padding, the metadata, the tar trailer, and gzip's worst case
/// on incompressible data. A delta claiming more is refused before a byte is read.
pub fn max_size(a: &Manifest, b: &Manifest) -> u64 {
    let meta = plan(a, b);
    let sizes: BTreeMap<&str, u64> = b.files.iter().map(|f| (f.path.as_str(), f.size)).collect();
    let tar: u64 = meta
        .carried
        .iter()
        .map(|p| 512 + sizes.get(p.as_str()).copied().unwrap_or(0).div_ceil(512) * 512)
        .sum::<u64>()
        + 512
        + MAX_META_BYTES.min(
            serde_json::to_vec(&meta)
                .map(|v| v.len() as u64)
                .unwrap_or(0)
                .div_ceil(512)
                * 512,
        )
        + 1024;
    // gzip stored blocks: 5 bytes per 64 KiB block, plus header and trailer.
    tar + tar / 65_535 * 5 + 5 + 64
}

/// Writes the delta from `a` to `b` as an uncompressed tar stream into `out` (the caller
/// compresses it with gzip): [`DELTA_META`] first, then the files of `b` that `a` lacks, taken
/// from `artifact`, `b`'s tarball (decompressed). The whole artifact is checked as devices
/// check it while the carried files are copied, so a delta only ever comes from an artifact a
/// device would install; links are never carried, devices create them from the manifest.
pub fn write<W: Write>(
    a: &Manifest,
    b: &Manifest,
    artifact: impl Read,
    out: W,
) -> Result<W, TarballError> {
    let meta = plan(a, b);
    let carried: HashSet<&str> = meta.carried.iter().map(String::as_str).collect();
    let write_err = |source| TarballError::Write {
        path: DELTA_META.into(),
        source,
    };
    let mut tar = tar::Builder::new(out);
    let json = serde_json::to_vec_pretty(&meta).map_err(|e| write_err(e.into()))?;
    tar.append_data(&mut header(json.len() as u64), DELTA_META, json.as_slice())
        .map_err(write_err)?;
    let mut sink = Carry {
        tar: &mut tar,
        carried: &carried,
    };
    check_tar(artifact, &b.files, &b.links, &mut sink)?;
    tar.into_inner().map_err(write_err)
}

fn header(size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_size(size);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    header
}

/// Copies the files a delta carries into it, each checked against the manifest as it goes.
struct Carry<'a, W: Write> {
    tar: &'a mut tar::Builder<W>,
    carried: &'a HashSet<&'a str>,
}

impl<W: Write> Sink for Carry<'_, W> {
    fn dir(&mut self, _rel: &str) -> Result<(), TarballError> {
        Ok(())
    }

    fn file(&mut self, listed: &FileEntry, content: &mut dyn Read) -> Result<(), TarballError> {
        if !self.carried.contains(listed.path.as_str()) {
            return Discard.file(listed, content);
        }
        let mut hashing = Hashing {
            inner: content,
            hasher: Sha256::new(),
        };
        self.tar
            .append_data(&mut header(listed.size), &listed.path, &mut hashing)
            .map_err(|source| TarballError::Write {
                path: listed.path.clone().into(),
                source,
            })?;
        let sha = hex::encode(hashing.hasher.finalize());
        if sha != listed.sha256 {
            return Err(TarballError::Mismatch(format!(
                "{} has sha256 {sha}, the manifest says {}",
                listed.path, listed.sha256
            )));
        }
        Ok(())
    }
}

/// A reader that hashes what passes through it.
struct Hashing<'a> {
    inner: &'a mut dyn Read,
    hasher: Sha256,
}

impl Read for Hashing<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::tests::sample;

    fn with_files(version: &str, files: &[(&str, char, u64)]) -> Manifest {
        let mut m = sample(time::OffsetDateTime::now_utc());
        m.version = version.parse().unwrap();
        m.files = files
            .iter()
            .map(|(path, sha, size)| crate::manifest::FileEntry {
                path: path.to_string(),
                sha256: sha.to_string().repeat(64),
                mode: 0o644,
                size: *size,
                config: false,
            })
            .collect();
        m
    }

    #[test]
    fn a_delta_carries_only_new_content_and_renames_cost_nothing() {
        let a = with_files("1.0.0", &[("bin/web", 'a', 100), ("old/name", 'b', 50)]);
        let b = with_files(
            "1.1.0",
            &[
                ("bin/web", 'c', 120),
                ("new/name", 'b', 50),
                ("extra", 'd', 10),
            ],
        );
        let m = plan(&a, &b);
        assert_eq!(m.carried, vec!["bin/web".to_string(), "extra".to_string()]);
        assert_eq!(
            m.copy,
            vec![Copy {
                path: "new/name".into(),
                from: "old/name".into()
            }]
        );
        // Bounded by the new files (512-byte tar blocks), not by the whole release.
        let cap = max_size(&a, &b);
        assert!(
            cap < 512 * 2 + 512 + 512 * 2 + 512 * 4 + 1024 + 200,
            "{cap}"
        );
        let unchanged = with_files("1.2.0", &[("bin/web", 'c', 120)]);
        assert!(max_size(&b, &unchanged) < cap);
    }
}
