//! A static release repository, written offline: any web host that serves files (a forge's
//! release assets, an object store, nginx, `python3 -m http.server`) can then serve it to
//! devices configured with `repository_url`. Flat, so a forge's release assets can hold it
//! too (docs/release-format.md):
//!
//! ```text
//! DIR/ITEM.index.json             signed release index (expires)
//! DIR/ITEM-VERSION.manifest.json  signed manifest, as `ferryctl release build` wrote it
//! DIR/ITEM-VERSION.tar.gz         the artifact
//! DIR/ITEM-FROM-TO.delta.tar.gz   a delta from an earlier release (only where it is smaller)
//! DIR/ITEM-FROM-TO.delta.json     its size and sha256
//! ```

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use ferry_manifests::index::{index_file, IndexEntry, ReleaseIndex};
use ferry_manifests::manifest::Compression;
use ferry_manifests::tarball::{check_tar, Discard};
use ferry_manifests::{Envelope, Manifest, SigningKeyFile};
use sha2::{Digest, Sha256};

use crate::args::IndexArgs;

/// Adds the releases built in `outdir` to the repository `dir` and signs each touched item's
/// index again.
pub fn publish(
    outdir: &Path,
    dir: &Path,
    args: &IndexArgs,
    delta_from_releases: usize,
) -> anyhow::Result<()> {
    let keys = load_keys(args)?;
    let manifests = manifest_files(outdir)?;
    if manifests.is_empty() {
        bail!(
            "{} holds no *.manifest.json; run `ferryctl release build --out {}` first",
            outdir.display(),
            outdir.display()
        );
    }
    let mut items = std::collections::BTreeSet::new();
    for path in manifests {
        let (manifest, text) = read_manifest(&path)?;
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let artifact = outdir.join(&manifest.artifact.name);
        let bytes =
            fs::read(&artifact).with_context(|| format!("cannot read {}", artifact.display()))?;
        let sha = hex::encode(Sha256::digest(&bytes));
        if bytes.len() as u64 != manifest.artifact.size || sha != manifest.artifact.sha256 {
            bail!(
                "{} is {} bytes with sha256 {sha}, but {} signs {} bytes with sha256 {}; build the release again",
                artifact.display(),
                bytes.len(),
                path.display(),
                manifest.artifact.size,
                manifest.artifact.sha256
            );
        }
        holds_what_it_lists(&bytes, &manifest)
            .with_context(|| format!("{} does not hold what {} lists, and every device would refuse it; build the release again", artifact.display(), path.display()))?;
        // The artifact first: an index never names a manifest whose artifact is missing.
        write_atomic(&dir.join(&manifest.artifact.name), &bytes)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        write_atomic(&dir.join(name), &text)?;
        println!(
            "added {} {} to {}",
            manifest.item,
            manifest.version,
            dir.display()
        );
        write_deltas(dir, &manifest, &bytes, delta_from_releases)?;
        items.insert(manifest.item);
    }
    for item in items {
        write_index(dir, &item, &keys, args.index_expires_in_days)?;
    }
    Ok(())
}

/// Writes the deltas to `b` (its artifact `bytes`) from up to `count` earlier releases of its
/// item in `dir`, newest first, each only where it is smaller than the artifact.
fn write_deltas(dir: &Path, b: &Manifest, bytes: &[u8], count: usize) -> anyhow::Result<()> {
    let mut earlier = Vec::new();
    for path in manifest_files(dir)? {
        let (a, _) = read_manifest(&path)?;
        if a.item == b.item && a.version < b.version {
            earlier.push(a);
        }
    }
    earlier.sort_by(|x, y| y.version.cmp(&x.version));
    for a in earlier.iter().take(count) {
        let name = ferry_manifests::delta::repository_file(&b.item, &a.version, &b.version);
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        let delta = ferry_manifests::delta::write(a, b, decompress(bytes, b)?, gz)
            .with_context(|| format!("cannot write the delta {name}"))?
            .finish()
            .with_context(|| format!("cannot write the delta {name}"))?;
        if delta.len() as u64 >= b.artifact.size {
            println!(
                "no delta from {} to {}: it would be {} bytes, the artifact is {}",
                a.version,
                b.version,
                delta.len(),
                b.artifact.size
            );
            continue;
        }
        let side = ferry_manifests::delta::Sidecar {
            size: delta.len() as u64,
            sha256: hex::encode(Sha256::digest(&delta)),
        };
        // The delta before its sidecar: a device only looks for a delta its sidecar names.
        write_atomic(&dir.join(format!("{name}.tar.gz")), &delta)?;
        write_atomic(
            &dir.join(format!("{name}.json")),
            &serde_json::to_vec(&side)?,
        )?;
        println!(
            "delta from {} to {}: {} bytes ({}% of the artifact)",
            a.version,
            b.version,
            delta.len(),
            delta.len() as u64 * 100 / b.artifact.size.max(1)
        );
    }
    Ok(())
}

fn decompress<'a>(
    bytes: &'a [u8],
    manifest: &Manifest,
) -> anyhow::Result<Box<dyn std::io::Read + 'a>> {
    Ok(match manifest.artifact.compression {
        Compression::Gzip => Box::new(flate2::read::GzDecoder::new(bytes)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(bytes)?),
    })
}

/// Checks the artifact's tarball as devices will ([`ferry_manifests::tarball`]).
fn holds_what_it_lists(bytes: &[u8], manifest: &Manifest) -> anyhow::Result<()> {
    check_tar(
        decompress(bytes, manifest)?,
        &manifest.files,
        &manifest.links,
        &mut Discard,
    )?;
    Ok(())
}

/// Signs the index of every item under `dir` again (a fresh expiry).
pub fn reindex(dir: &Path, args: &IndexArgs) -> anyhow::Result<()> {
    let keys = load_keys(args)?;
    let mut items: Vec<String> = fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_string_lossy()
                .strip_suffix(".index.json")
                .map(str::to_string)
        })
        .collect();
    items.sort();
    if items.is_empty() {
        bail!(
            "{} holds no ITEM.index.json; add a release with `ferryctl release publish --to-dir {}` first",
            dir.display(),
            dir.display()
        );
    }
    for item in items {
        write_index(dir, &item, &keys, args.index_expires_in_days)?;
    }
    Ok(())
}

fn load_keys(args: &IndexArgs) -> anyhow::Result<Vec<SigningKeyFile>> {
    if args.key.is_empty() {
        bail!("a repository's index is signed: give the release key with --key KEY");
    }
    args.key
        .iter()
        .map(|p| SigningKeyFile::load(p).map_err(anyhow::Error::from))
        .collect()
}

fn manifest_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".manifest.json"))
        .collect();
    out.sort();
    Ok(out)
}

fn read_manifest(path: &Path) -> anyhow::Result<(Manifest, Vec<u8>)> {
    let text = fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let envelope = Envelope::parse(&text)
        .with_context(|| format!("{} is not a signed manifest", path.display()))?;
    let manifest = Manifest::parse_unverified(&envelope)
        .with_context(|| format!("{} holds an invalid manifest", path.display()))?;
    Ok((manifest, text))
}

/// Lists every release of `item` in `dir` in a freshly signed index.
fn write_index(dir: &Path, item: &str, keys: &[SigningKeyFile], days: u32) -> anyhow::Result<()> {
    let mut releases = Vec::new();
    for path in manifest_files(dir)? {
        let (m, _) = read_manifest(&path)?;
        if m.item != item {
            continue;
        }
        releases.push(IndexEntry {
            version: m.version,
            category: m.category,
            manifest: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            released_at: m.released_at,
            notes: m.notes,
            release_url: m.release_url,
            compatible: m.compatible,
        });
    }
    releases.sort_by(|a, b| a.version.cmp(&b.version));
    let now = time::OffsetDateTime::now_utc();
    let now = now.replace_nanosecond(0).unwrap_or(now);
    let index = ReleaseIndex {
        item: item.to_string(),
        issued_at: now,
        expires_at: now + time::Duration::days(i64::from(days)),
        releases,
    };
    index
        .validate()
        .map_err(|e| anyhow::anyhow!("the index of {item} would be invalid: {e}"))?;
    let refs: Vec<&SigningKeyFile> = keys.iter().collect();
    let path = dir.join(index_file(item));
    write_atomic(&path, index.sign(&refs).to_json().as_bytes())?;
    println!(
        "signed {} ({} releases, newest {}, expires {})",
        path.display(),
        index.releases.len(),
        index
            .releases
            .last()
            .map(|e| e.version.to_string())
            .unwrap_or_else(|| "none".into()),
        index
            .expires_at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    );
    Ok(())
}

/// Write beside, sync, rename: a web host never serves half a file.
fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    let mut f =
        fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
