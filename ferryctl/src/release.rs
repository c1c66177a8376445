//! Offline release work: key generation, packing a directory into a deterministic tarball,
//! and signing its manifest. Nothing here talks to the server; private keys never leave the
//! machine that runs these commands.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use ferry_manifests::manifest::{
    artifact_file_name, check_relative_path, validate_item_name, Artifact, Bundle, Compression,
    FileEntry, Install, Layout, LinkEntry,
};
use ferry_manifests::{Manifest, SigningKeyFile};
use sha2::{Digest, Sha256};

use crate::args::BuildArgs;

pub fn keygen(out: &Path) -> anyhow::Result<()> {
    let key_path = with_suffix(out, "key");
    let pub_path = with_suffix(out, "pub");
    for p in [&key_path, &pub_path] {
        if p.exists() {
            bail!(
                "{} already exists; refusing to overwrite a key",
                p.display()
            );
        }
    }
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let key = SigningKeyFile::generate()?;
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&key_path)
        .with_context(|| format!("cannot create {}", key_path.display()))?;
    f.write_all(key.to_file_string().as_bytes())?;
    f.sync_all()?;
    fs::write(&pub_path, key.public().to_file_string())
        .with_context(|| format!("cannot write {}", pub_path.display()))?;
    println!("key id {}", key.id);
    println!("private key: {} (keep it offline)", key_path.display());
    println!(
        "public key:  {} (list it in the agents' trusted_keys)",
        pub_path.display()
    );
    Ok(())
}

/// Marks the files matching any of `globs` (paths relative to `--from`, `*` not crossing
/// `/`) as configuration files; a glob that matches nothing is a mistake worth stopping for.
fn mark_config_files(files: &mut [FileEntry], globs: &[String]) -> anyhow::Result<()> {
    let options = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: false,
    };
    for text in globs {
        let pattern = glob::Pattern::new(text)
            .with_context(|| format!("--config-file {text:?} is not a valid glob"))?;
        let mut matched = 0;
        for f in files.iter_mut() {
            if pattern.matches_with(&f.path, options) {
                f.config = true;
                matched += 1;
            }
        }
        if matched == 0 {
            bail!("--config-file {text:?} matches no file of the release (paths are relative to --from, e.g. etc/app.conf)");
        }
    }
    Ok(())
}

fn with_suffix(prefix: &Path, ext: &str) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

/// Packs `--from` into a deterministic tarball and writes the signed manifest beside it.
pub fn build(args: &BuildArgs) -> anyhow::Result<()> {
    validate_item_name(&args.item).map_err(anyhow::Error::msg)?;
    if let Some(url) = &args.release_url {
        ferry_manifests::invalid::validate_release_url(url)
            .map_err(|e| anyhow::anyhow!("--release-url: {e}"))?;
    }
    let keys = args
        .key
        .iter()
        .map(|p| SigningKeyFile::load(p))
        .collect::<Result<Vec<_>, _>>()?;
    // Nothing is written until the input is known to be good.
    let make_out = || {
        fs::create_dir_all(&args.out)
            .with_context(|| format!("cannot create {}", args.out.display()))
    };
    let (name, tarball, bundle, files, links) = match (&args.from, &args.artifact) {
        (Some(from), _) => {
            if !from.is_dir() {
                bail!("--from {} is not a directory", from.display());
            }
            let mut entries = Vec::new();
            walk(from, from, &mut entries)?;
            make_out()?;
            let name = artifact_file_name(&args.item, &args.version, args.compression);
            let tarball = args.out.join(&name);
            let tmp = args.out.join(format!(".{name}.tmp"));
            let (mut files, links) = write_tarball(from, &entries, &tmp, args.compression)
                .with_context(|| format!("cannot write {}", tmp.display()))?;
            mark_config_files(&mut files, &args.config_files)?;
            fs::rename(&tmp, &tarball)?;
            (name, tarball, None, files, links)
        }
        (None, Some(path)) => {
            let (name, bundle) = copy_bundle(args, path, make_out)?;
            (
                name.clone(),
                args.out.join(name),
                Some(bundle),
                vec![],
                vec![],
            )
        }
        (None, None) => bail!("give --from DIR (a tarball release) or --artifact BUNDLE"),
    };

    let mut hasher = Sha256::new();
    let size = std::io::copy(&mut File::open(&tarball)?, &mut hasher)?;
    let now = time::OffsetDateTime::now_utc();
    let now = now.replace_nanosecond(0).unwrap_or(now);
    let mut urls = args.urls.clone();
    urls.push(name.clone());
    let manifest = Manifest {
        item: args.item.clone(),
        version: args.version.clone(),
        category: args.category,
        released_at: now,
        expires_at: now + time::Duration::days(i64::from(args.expires_in_days)),
        notes: args.notes.clone(),
        release_url: args.release_url.clone(),
        compatible: args.compatible.clone(),
        allow_downgrade: args.allow_downgrade,
        artifact: Artifact {
            name: name.clone(),
            size,
            sha256: hex::encode(hasher.finalize()),
            urls,
            compression: args.compression,
            bundle,
        },
        files,
        links,
        install: Install {
            layout: args.layout,
            post_install: args.post_install.clone(),
            health_check: args.health_check.clone(),
            units: args.units.clone(),
        },
    };
    manifest
        .validate()
        .map_err(|e| anyhow::anyhow!("the manifest would be invalid: {e}"))?;
    let key_refs: Vec<&SigningKeyFile> = keys.iter().collect();
    let envelope = manifest.sign(&key_refs);
    let manifest_path = args
        .out
        .join(format!("{}-{}.manifest.json", args.item, args.version));
    fs::write(&manifest_path, envelope.to_json())?;
    let links = match manifest.links.len() {
        0 => String::new(),
        1 => ", 1 link".to_string(),
        n => format!(", {n} links"),
    };
    match bundle {
        Some(b) => println!(
            "copied the {} bundle to {} ({} bytes, sha256 {}); it goes to DDI devices only",
            b.as_str(),
            tarball.display(),
            size,
            manifest.artifact.sha256
        ),
        None => println!(
            "built {} ({} files{links}, {} bytes, sha256 {})",
            tarball.display(),
            manifest.files.len(),
            size,
            manifest.artifact.sha256
        ),
    }
    println!(
        "signed {} with {}",
        manifest_path.display(),
        keys.iter()
            .map(|k| k.id.0.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

/// Copies the bundle at `path` into `--out` as `ITEM-VERSION.swu` (or `.raucb`); a bundle
/// carries no tarball options.
fn copy_bundle(
    args: &BuildArgs,
    path: &Path,
    make_out: impl FnOnce() -> anyhow::Result<()>,
) -> anyhow::Result<(String, Bundle)> {
    let file_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let Some(bundle) = Bundle::of_file_name(file_name) else {
        bail!(
            "--artifact {}: a bundle is a SWUpdate image named *.swu or a RAUC bundle named *.raucb",
            path.display()
        );
    };
    if !args.post_install.is_empty()
        || args.health_check.is_some()
        || !args.units.is_empty()
        || !args.config_files.is_empty()
        || args.layout != Layout::Symlink
    {
        bail!("--artifact: the bundle's installer does the installing; --post-install, --health-check, --unit, --config-file and --layout are for tarball releases");
    }
    let meta = fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if !meta.is_file() || meta.len() == 0 {
        bail!("--artifact {} is not a non-empty file", path.display());
    }
    make_out()?;
    let name = format!("{}-{}.{}", args.item, args.version, bundle.suffix());
    let tmp = args.out.join(format!(".{name}.tmp"));
    fs::copy(path, &tmp)
        .with_context(|| format!("cannot copy {} to {}", path.display(), tmp.display()))?;
    fs::rename(&tmp, args.out.join(&name))?;
    Ok((name, bundle))
}

enum Entry {
    Dir(String),
    File(String, u32),
    Link(String, String),
}

/// Collects directories, regular files and symlinks under `dir`, sorted, so the tarball is
/// deterministic. A symlink is kept as a link (its target signed in the manifest) when its
/// target is relative and stays inside `--from`; special files are refused.
fn walk(base: &Path, dir: &Path, out: &mut Vec<Entry>) -> anyhow::Result<()> {
    let mut children: Vec<_> = fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .collect::<Result<_, _>>()?;
    children.sort_by_key(|e| e.file_name());
    for child in children {
        let path = child.path();
        let rel = path
            .strip_prefix(base)?
            .to_str()
            .with_context(|| format!("{} is not valid UTF-8", path.display()))?
            .to_string();
        check_relative_path(&rel).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let meta = fs::symlink_metadata(&path)?;
        let ft = meta.file_type();
        if ft.is_dir() {
            out.push(Entry::Dir(rel));
            walk(base, &path, out)?;
        } else if ft.is_file() {
            out.push(Entry::File(rel, meta.permissions().mode() & 0o7777));
        } else if ft.is_symlink() {
            let target = fs::read_link(&path)?;
            let target = target
                .to_str()
                .with_context(|| format!("{}: its target is not valid UTF-8", path.display()))?
                .to_string();
            ferry_manifests::manifest::check_link_target(&rel, &target).map_err(|e| {
                anyhow::anyhow!(
                    "{} -> {target}: {e}; a release may only carry links that resolve inside it",
                    path.display()
                )
            })?;
            out.push(Entry::Link(rel, target));
        } else {
            bail!(
                "{} is not a regular file, directory or symlink; releases carry plain files and links",
                path.display()
            );
        }
    }
    Ok(())
}

struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

fn write_tarball(
    base: &Path,
    entries: &[Entry],
    out: &Path,
    compression: Compression,
) -> anyhow::Result<(Vec<FileEntry>, Vec<LinkEntry>)> {
    let file = BufWriter::with_capacity(256 * 1024, File::create(out)?);
    let encoder = match compression {
        Compression::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
            file,
            flate2::Compression::default(),
        )),
        Compression::Zstd => Encoder::Zstd(zstd::stream::write::Encoder::new(file, 3)?),
    };
    let mut tar = tar::Builder::new(encoder);
    let mut files = Vec::new();
    let mut links = Vec::new();
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        match entry {
            Entry::Dir(rel) => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                tar.append_data(&mut header, rel, std::io::empty())?;
            }
            Entry::File(rel, mode) => {
                let path = base.join(rel);
                let f =
                    File::open(&path).with_context(|| format!("cannot read {}", path.display()))?;
                let size = f.metadata()?.len();
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(*mode);
                header.set_size(size);
                let mut reader = HashingReader {
                    inner: f.take(size),
                    hasher: Sha256::new(),
                    count: 0,
                };
                tar.append_data(&mut header, rel, &mut reader)?;
                if reader.count != size {
                    bail!("{} changed size while it was packed", path.display());
                }
                files.push(FileEntry {
                    path: rel.clone(),
                    sha256: hex::encode(reader.hasher.finalize()),
                    mode: *mode,
                    size,
                    config: false,
                });
            }
            Entry::Link(rel, target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_mode(0o777);
                header.set_size(0);
                tar.append_link(&mut header, rel, target)?;
                links.push(LinkEntry {
                    path: rel.clone(),
                    target: target.clone(),
                });
            }
        }
    }
    let file = tar.into_inner()?.finish()?;
    file.into_inner()
        .map_err(|e| anyhow::anyhow!("cannot flush the tarball: {e}"))?
        .sync_all()?;
    Ok((files, links))
}

/// The tarball's compressor, finished explicitly so a failed trailer write is an error.
enum Encoder {
    Gzip(flate2::write::GzEncoder<BufWriter<File>>),
    Zstd(zstd::stream::write::Encoder<'static, BufWriter<File>>),
}

impl Encoder {
    fn finish(self) -> std::io::Result<BufWriter<File>> {
        match self {
            Encoder::Gzip(e) => e.finish(),
            Encoder::Zstd(e) => e.finish(),
        }
    }
}

impl Write for Encoder {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Encoder::Gzip(e) => e.write(buf),
            Encoder::Zstd(e) => e.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Encoder::Gzip(e) => e.flush(),
            Encoder::Zstd(e) => e.flush(),
        }
    }
}
