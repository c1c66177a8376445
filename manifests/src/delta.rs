//! File-level deltas between two releases of an item. A delta from A to B is a gzip tarball
//! whose first entry, [`DELTA_META`], says which of B's files come from A (by content: a
//! rename or move costs nothing), followed by every file of B whose content A does not have,
//! named by its path in B. It is not signed: every file a device assembles from it is checked
//! against B's signed manifest, and its size is bounded by what that manifest lists
//! ([`max_size`]), so a bad delta can only fall back to the full artifact.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::manifest::Manifest;

/// Name of the delta's first entry.
pub const DELTA_META: &str = "ferry-delta.json";
/// Largest `ferry-delta.json` a device reads.
pub const MAX_META_BYTES: u64 = 16 * 1024 * 1024;

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
