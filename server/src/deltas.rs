//! File-level deltas (`ferry_manifests::delta`), built by the server from releases it holds:
//! when a release is published, from each of the item's last `delta_from_releases` releases;
//! and on demand, when a device on an older release checks in. No key is involved: a delta
//! is not signed, and a device checks every file it takes from one against the new release's
//! signed manifest.
//!
//! `DATA_DIR/deltas/ITEM/FROM-TO.tar.gz` beside `FROM-TO.json` (its size and sha256) is all
//! the state there is; what is ready is kept in memory, read back at start.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ferry_manifests::delta::Sidecar;
use ferry_manifests::wire::DeltaOffer;
use ferry_manifests::Manifest;
use sha2::{Digest, Sha256};

use crate::artifact::tar_stream;

type Key = (String, semver::Version, semver::Version);

#[derive(Default)]
pub struct Deltas {
    ready: Mutex<HashMap<Key, DeltaOffer>>,
    /// Being built, or failed (not tried again until the server restarts).
    tried: Mutex<HashSet<Key>>,
}

fn dir(data_dir: &Path, item: &str) -> PathBuf {
    data_dir.join("deltas").join(item)
}

fn file_name(from: &semver::Version, to: &semver::Version) -> String {
    format!("{from}-{to}")
}

/// Where a delta is served: `api/v1/deltas/{item}/{from}/{to}`.
pub fn url_path(item: &str, from: &semver::Version, to: &semver::Version) -> String {
    format!("api/v1/deltas/{item}/{from}/{to}")
}

/// A delta's two files, as keys under the data directory (and in object storage):
/// `deltas/ITEM/FROM-TO.tar.gz` and its sidecar `….json`.
pub fn keys(item: &str, from: &semver::Version, to: &semver::Version) -> (String, String) {
    let name = file_name(from, to);
    (
        format!("deltas/{item}/{name}.tar.gz"),
        format!("deltas/{item}/{name}.json"),
    )
}

/// The offer of a delta whose sidecar (`FROM-TO.json`) says `text`.
pub fn offer_of(
    item: &str,
    from: &semver::Version,
    to: &semver::Version,
    text: &[u8],
) -> anyhow::Result<DeltaOffer> {
    let side: Sidecar = serde_json::from_slice(text)?;
    Ok(DeltaOffer {
        path: url_path(item, from, to),
        from_version: from.clone(),
        size: side.size,
        sha256: side.sha256,
    })
}

/// The file of a delta, if `item`, `from` and `to` name one safely.
pub fn file(data_dir: &Path, item: &str, from: &str, to: &str) -> Option<PathBuf> {
    ferry_manifests::invalid::validate_item_name(item).ok()?;
    let from: semver::Version = from.parse().ok()?;
    let to: semver::Version = to.parse().ok()?;
    Some(dir(data_dir, item).join(format!("{}.tar.gz", file_name(&from, &to))))
}

impl Deltas {
    /// What earlier runs built.
    pub fn load(data_dir: &Path) -> Deltas {
        let deltas = Deltas::default();
        let Ok(items) = std::fs::read_dir(data_dir.join("deltas")) else {
            return deltas;
        };
        let mut ready = deltas.ready.lock().unwrap_or_else(|e| e.into_inner());
        for item in items.flatten() {
            let item_name = item.file_name().to_string_lossy().into_owned();
            let Ok(files) = std::fs::read_dir(item.path()) else {
                continue;
            };
            for f in files.flatten() {
                let name = f.file_name().to_string_lossy().into_owned();
                let Some(stem) = name.strip_suffix(".json") else {
                    continue;
                };
                // FROM-TO, where each is a semver that may itself hold '-': try each split.
                let parsed = stem
                    .char_indices()
                    .filter(|(_, c)| *c == '-')
                    .find_map(|(i, _)| {
                        Some((stem[..i].parse().ok()?, stem[i + 1..].parse().ok()?))
                    });
                let Some((from, to)) = parsed else { continue };
                let Ok(text) = std::fs::read(f.path()) else {
                    continue;
                };
                let Ok(side) = serde_json::from_slice::<Sidecar>(&text) else {
                    continue;
                };
                let offer = DeltaOffer {
                    path: url_path(&item_name, &from, &to),
                    from_version: from.clone(),
                    size: side.size,
                    sha256: side.sha256,
                };
                ready.insert((item_name.clone(), from, to), offer);
            }
        }
        drop(ready);
        deltas
    }

    /// A ready delta from `from` to `to`.
    pub fn offer(
        &self,
        item: &str,
        from: &semver::Version,
        to: &semver::Version,
    ) -> Option<DeltaOffer> {
        let ready = self.ready.lock().unwrap_or_else(|e| e.into_inner());
        ready
            .get(&(item.to_string(), from.clone(), to.clone()))
            .cloned()
    }

    /// Claims the delta for a build: false when it is ready, under way or failed before.
    pub fn claim(&self, item: &str, from: &semver::Version, to: &semver::Version) -> bool {
        if self.offer(item, from, to).is_some() {
            return false;
        }
        self.tried
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((item.to_string(), from.clone(), to.clone()))
    }

    /// Records a delta built, ready to offer.
    pub fn built(
        &self,
        item: &str,
        from: &semver::Version,
        to: &semver::Version,
        offer: DeltaOffer,
    ) {
        self.ready
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((item.to_string(), from.clone(), to.clone()), offer);
    }
}

/// Builds the delta from release `a` to release `b` of one item into the data directory,
/// from `b`'s artifact (blocking: run it off the async threads).
pub fn build(
    data_dir: &Path,
    artifact: &Path,
    a: &Manifest,
    b: &Manifest,
    reserve: u64,
) -> anyhow::Result<DeltaOffer> {
    let (item, from, to) = (&b.item, &a.version, &b.version);
    // A delta is an optimisation: never one that would fill the disk devices' reports and
    // the database need.
    let bound = ferry_manifests::delta::max_size(a, b);
    let out_dir = dir(data_dir, item);
    std::fs::create_dir_all(&out_dir)?;
    let free = fs2::available_space(&out_dir)?;
    if free < bound.saturating_add(reserve) {
        anyhow::bail!(
            "skipped: it may take {} MiB and {} has {} MiB free, below min_free_disk_mb = {} MiB; devices fetch the full artifact",
            bound.div_ceil(1 << 20),
            data_dir.display(),
            free >> 20,
            reserve >> 20
        );
    }
    let (size, sha256) = write_delta(a, b, artifact, &out_dir, &file_name(from, to))?;
    Ok(DeltaOffer {
        from_version: from.clone(),
        path: url_path(item, from, to),
        size,
        sha256,
    })
}

/// Writes `NAME.tar.gz` (the metadata, then the files of `b` that `a` lacks, taken from `b`'s
/// artifact) and `NAME.json`, each through a temporary file and a rename.
fn write_delta(
    a: &Manifest,
    b: &Manifest,
    artifact: &Path,
    out_dir: &Path,
    name: &str,
) -> anyhow::Result<(u64, String)> {
    std::fs::create_dir_all(out_dir)?;
    let tmp = out_dir.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4()));
    let result = (|| -> anyhow::Result<()> {
        let file = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        let gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
        let gz =
            ferry_manifests::delta::write(a, b, tar_stream(artifact, b.artifact.compression)?, gz)
                .map_err(|e| {
                    anyhow::anyhow!(
                        "the artifact of {} {} is not what its manifest lists: {e}",
                        b.item,
                        b.version
                    )
                })?;
        let mut file = gz.finish()?;
        file.flush()?;
        file.into_inner()
            .map_err(|e| anyhow::anyhow!("cannot flush the delta: {e}"))?
            .sync_all()?;
        Ok(())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    let mut hasher = Sha256::new();
    let size = std::io::copy(&mut std::fs::File::open(&tmp)?, &mut hasher)?;
    let sha256 = hex::encode(hasher.finalize());
    std::fs::rename(&tmp, out_dir.join(format!("{name}.tar.gz")))?;
    let side = serde_json::to_vec(&Sidecar {
        size,
        sha256: sha256.clone(),
    })?;
    let side_tmp = out_dir.join(format!(".{name}.json.tmp"));
    std::fs::write(&side_tmp, side)?;
    std::fs::rename(&side_tmp, out_dir.join(format!("{name}.json")))?;
    Ok((size, sha256))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_manifests::manifest::FileEntry;

    fn manifest(version: &str, files: &[(&str, &[u8])]) -> Manifest {
        let mut m: Manifest = serde_json::from_str(include_str!(
            "../../manifests/examples/web-1.1.0.payload.json"
        ))
        .unwrap();
        m.version = version.parse().unwrap();
        m.files = files
            .iter()
            .map(|(path, data)| FileEntry {
                path: path.to_string(),
                sha256: hex::encode(Sha256::digest(data)),
                mode: 0o644,
                size: data.len() as u64,
                config: false,
            })
            .collect();
        m
    }

    /// A gzip tarball of `files`, plus a symlink when `link` is set.
    fn artifact(dir: &Path, files: &[(&str, &[u8])], link: bool) -> PathBuf {
        let mut tar = tar::Builder::new(Vec::new());
        for (path, data) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            tar.append_data(&mut header, path, *data).unwrap();
        }
        if link {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_size(0);
            tar.append_link(&mut header, "shadow", "/etc/shadow")
                .unwrap();
        }
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar.into_inner().unwrap()).unwrap();
        let path = dir.join("artifact.tar.gz");
        std::fs::write(&path, gz.finish().unwrap()).unwrap();
        path
    }

    #[test]
    fn a_delta_comes_only_from_an_artifact_a_device_would_install() {
        let dir = tempfile::tempdir().unwrap();
        let a = manifest("1.0.0", &[("keep", b"same"), ("old", b"1")]);
        let files: &[(&str, &[u8])] = &[("keep", b"same"), ("new", b"2")];
        let b = manifest("1.1.0", files);

        let good = artifact(dir.path(), files, false);
        let offer = build(dir.path(), &good, &a, &b, 0).unwrap();
        assert_eq!(offer.from_version, a.version);
        let written = file(dir.path(), "web", "1.0.0", "1.1.0").unwrap();
        assert_eq!(std::fs::metadata(written).unwrap().len(), offer.size);

        // The same listed files, plus a symlink the manifest does not list: no delta.
        let data = dir.path().join("data");
        let bad = artifact(dir.path(), files, true);
        let err = build(&data, &bad, &a, &b, 0).unwrap_err().to_string();
        assert!(err.contains("is not what its manifest lists"), "{err}");
        assert!(err.contains("symlink"), "{err}");
        assert!(!file(&data, "web", "1.0.0", "1.1.0").unwrap().exists());
        let left: Vec<_> = std::fs::read_dir(data.join("deltas/web"))
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "left behind: {left:?}");
    }

    #[test]
    fn a_delta_that_would_eat_the_disk_reserve_is_skipped_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let a = manifest("1.0.0", &[("old", b"1")]);
        let files: &[(&str, &[u8])] = &[("new", b"2")];
        let b = manifest("1.1.0", files);
        let good = artifact(dir.path(), files, false);
        // A reserve no disk here has free.
        let err = build(dir.path(), &good, &a, &b, u64::MAX / 4)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("skipped") && err.contains("min_free_disk_mb"),
            "{err}"
        );
        assert!(!file(dir.path(), "web", "1.0.0", "1.1.0").unwrap().exists());
    }
}
