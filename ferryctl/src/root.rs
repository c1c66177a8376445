//! Offline trust-root work for ferryctl: create version 1, derive the next version, show one.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use ferry_manifests::root::{RootKey, TrustRoot};
use ferry_manifests::{PublicKey, SigningKeyFile};

fn expiry(days: u32) -> time::OffsetDateTime {
    let now = time::OffsetDateTime::now_utc();
    let now = now.replace_nanosecond(0).unwrap_or(now);
    now + time::Duration::days(i64::from(days))
}

fn load_signers(paths: &[PathBuf]) -> anyhow::Result<Vec<SigningKeyFile>> {
    paths
        .iter()
        .map(|p| SigningKeyFile::load(p).map_err(anyhow::Error::from))
        .collect()
}

fn load_public(paths: &[PathBuf]) -> anyhow::Result<Vec<RootKey>> {
    paths
        .iter()
        .map(|p| {
            PublicKey::load(p)
                .map(|k| RootKey::from_public(&k))
                .map_err(anyhow::Error::from)
        })
        .collect()
}

fn write(root: &TrustRoot, signers: &[SigningKeyFile], out: &Path) -> anyhow::Result<()> {
    root.validate()
        .map_err(|e| anyhow::anyhow!("the root would be invalid: {e}"))?;
    let refs: Vec<&SigningKeyFile> = signers.iter().collect();
    std::fs::write(out, root.sign(&refs).to_json())
        .with_context(|| format!("cannot write {}", out.display()))?;
    println!(
        "wrote trust root version {} to {} (signed by {})",
        root.version,
        out.display(),
        signers
            .iter()
            .map(|k| k.id.0.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

pub fn init(
    root_keys: &[PathBuf],
    release_keys: &[PathBuf],
    root_threshold: usize,
    release_threshold: usize,
    expires_in_days: u32,
    out: &Path,
) -> anyhow::Result<()> {
    let signers = load_signers(root_keys)?;
    let root = TrustRoot {
        version: 1,
        expires_at: expiry(expires_in_days),
        root_keys: signers
            .iter()
            .map(|k| RootKey::from_public(&k.public()))
            .collect(),
        root_threshold,
        release_keys: load_public(release_keys)?,
        release_threshold,
    };
    write(&root, &signers, out)
}

pub struct Changes {
    pub from: PathBuf,
    pub sign_with: Vec<PathBuf>,
    pub add_release_keys: Vec<PathBuf>,
    pub remove_release_keys: Vec<String>,
    pub add_root_keys: Vec<PathBuf>,
    pub remove_root_keys: Vec<String>,
    pub root_threshold: Option<usize>,
    pub release_threshold: Option<usize>,
    pub expires_in_days: u32,
    pub out: PathBuf,
}

pub fn update(c: &Changes) -> anyhow::Result<()> {
    let bytes =
        std::fs::read(&c.from).with_context(|| format!("cannot read {}", c.from.display()))?;
    let current = TrustRoot::verify_initial(&bytes)
        .with_context(|| format!("{} is not a valid trust root", c.from.display()))?;
    let mut next: TrustRoot = (*current).clone();
    next.version += 1;
    next.expires_at = expiry(c.expires_in_days);
    for id in &c.remove_release_keys {
        let before = next.release_keys.len();
        next.release_keys.retain(|k| &k.keyid.0 != id);
        if next.release_keys.len() == before {
            bail!("release key {id} is not in version {}", current.version);
        }
    }
    for id in &c.remove_root_keys {
        let before = next.root_keys.len();
        next.root_keys.retain(|k| &k.keyid.0 != id);
        if next.root_keys.len() == before {
            bail!("root key {id} is not in version {}", current.version);
        }
    }
    next.release_keys.extend(load_public(&c.add_release_keys)?);
    next.root_keys.extend(load_public(&c.add_root_keys)?);
    if let Some(t) = c.root_threshold {
        next.root_threshold = t;
    }
    if let Some(t) = c.release_threshold {
        next.release_threshold = t;
    }
    let signers = load_signers(&c.sign_with)?;
    let refs: Vec<&SigningKeyFile> = signers.iter().collect();
    // Check here what devices will check: signed by enough old and new root keys.
    let envelope = next.sign(&refs);
    current
        .verify_next(envelope.to_json().as_bytes())
        .context("devices would refuse this root; sign it with enough keys of both the current and the new root")?;
    write(&next, &signers, &c.out)
}

pub fn show(file: &Path) -> anyhow::Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let root = TrustRoot::verify_initial(&bytes)
        .with_context(|| format!("{} is not a valid trust root", file.display()))?;
    println!("version            {}", root.version);
    println!(
        "expires            {}",
        ferry_manifests::wire::timestamp(root.expires_at)
    );
    println!(
        "root threshold     {} of {}",
        root.root_threshold,
        root.root_keys.len()
    );
    for k in &root.root_keys {
        println!("  root key         {}", k.keyid);
    }
    println!(
        "release threshold  {} of {}",
        root.release_threshold,
        root.release_keys.len()
    );
    for k in &root.release_keys {
        println!("  release key      {}", k.keyid);
    }
    Ok(())
}
