//! Releases: a signed release published (indexed without being trusted: devices verify),
//! and the mirrors that serve its artifact.

use std::path::Path;

use ferry_manifests::wire::{now, PublishResponse, ReleaseView};
use ferry_manifests::{Envelope, Manifest};
use sha2::{Digest, Sha256};

use super::error::{ServiceError, ServiceResult};
use crate::policy::fleet;
use crate::state::Shared;
use crate::store::NewRelease;
use crate::store::OwnedKind;

/// Stores a signed release. The server indexes the manifest without trusting it (it holds no
/// keys to decide trust; devices verify), but refuses an envelope whose artifact it does not
/// hold with the exact size and hash, so a broken publish fails here rather than on devices.
/// Publishes a release for `tenant` (the publisher's): in an install of several tenants, its
/// item and artifact must be the tenant's (an item is the tenant's that first published it).
pub async fn publish(state: &Shared, body: &[u8], tenant: &str) -> ServiceResult<PublishResponse> {
    let envelope = Envelope::parse(body).map_err(|e| ServiceError::invalid(e.to_string()))?;
    let manifest =
        Manifest::parse_unverified(&envelope).map_err(|e| ServiceError::invalid(e.to_string()))?;
    if envelope.signatures.is_empty() {
        return Err(ServiceError::invalid("the manifest is not signed"));
    }
    signed_as_the_trust_root_says(state, &envelope, tenant).await?;
    if manifest.expires_at <= time::OffsetDateTime::now_utc() {
        return Err(ServiceError::invalid(format!(
            "{} {} expired at {}: every device would refuse it; build it again with a later expiry (ferryctl release build --expires-in-days DAYS)",
            manifest.item,
            manifest.version,
            ferry_manifests::wire::timestamp(manifest.expires_at)
        )));
    }
    let path = state.artifacts_dir().join(&manifest.artifact.name);
    let key = format!("artifacts/{}", manifest.artifact.name);
    if !state.artifact_store.fetch(&key, &path).await? {
        return Err(ServiceError::invalid(format!(
            "artifact {} has not been uploaded; PUT /api/v1/artifacts/{} first",
            manifest.artifact.name, manifest.artifact.name
        )));
    }
    let (size, sha) = hash_file(&path).await?;
    if size != manifest.artifact.size || sha != manifest.artifact.sha256 {
        return Err(ServiceError::invalid(format!(
            "stored artifact {} is {size} bytes with sha256 {sha}, the manifest says {} bytes with sha256 {}",
            manifest.artifact.name, manifest.artifact.size, manifest.artifact.sha256
        )));
    }
    if manifest.artifact.bundle.is_none() {
        holds_what_it_lists(&path, &manifest).await?;
    }
    claim_item(state, &manifest.item, &manifest.artifact.name, tenant).await?;
    one_kind_per_item(state, &manifest).await?;
    let view = view_of(&manifest, &envelope);
    let text = String::from_utf8_lossy(body).into_owned();
    if !state
        .store
        .add_release(&NewRelease {
            view,
            envelope: text,
        })
        .await?
    {
        return Err(ServiceError::conflict(format!(
            "{} {} is already published; releases are immutable, publish a new version",
            manifest.item, manifest.version
        )));
    }
    state.releases_changed();
    tracing::info!(item = %manifest.item, version = %manifest.version, "release published");
    // Deltas from the item's previous releases, built in the background (a bundle has its
    // installer's own ways).
    if manifest.artifact.bundle.is_none() {
        super::deltas::after_publish(state, &manifest.item, &manifest.version).await;
    }
    Ok(PublishResponse {
        item: manifest.item,
        version: manifest.version,
    })
}

/// The artifact's tarball is checked as devices check it: an entry the manifest does not list
/// (a link, a device node, a `../` path) would make every device refuse the release, and a
/// delta built from it would install on some devices what the full artifact cannot.
async fn holds_what_it_lists(path: &Path, manifest: &Manifest) -> ServiceResult<()> {
    let (owned, check) = (path.to_path_buf(), manifest.clone());
    let checked = tokio::task::spawn_blocking(move || crate::artifact::check(&owned, &check))
        .await
        .map_err(|e| ServiceError::Io {
            action: "checking",
            path: path.to_path_buf(),
            source: std::io::Error::other(e),
        })?;
    checked.map_err(|e| {
        ServiceError::invalid(format!(
            "artifact {} does not hold what the signed manifest of {} {} lists, and every device would refuse it: {e}; rebuild the release with `ferryctl release build`",
            manifest.artifact.name, manifest.item, manifest.version
        ))
    })
}

/// An item is released as tarballs (for agents) or as one installer's bundles (for DDI
/// devices), never both: a host of the one kind could not install the other's versions.
async fn one_kind_per_item(state: &Shared, manifest: &Manifest) -> ServiceResult<()> {
    let kind = manifest.artifact.bundle.map(|b| b.as_str());
    let existing = state.store.releases(Some(&manifest.item)).await?;
    if let Some(other) = existing.iter().find(|r| r.bundle.as_deref() != kind) {
        let what = |k: Option<&str>| match k {
            Some(b) => format!("{b} bundles"),
            None => "tarballs".to_string(),
        };
        return Err(ServiceError::conflict(format!(
            "{} is released as {} ({} is), this release is one of {}: give it another item name",
            manifest.item,
            what(other.bundle.as_deref()),
            other.version,
            what(kind)
        )));
    }
    Ok(())
}

/// Whether a release's signed expiry has passed by the server's clock.
fn expired(expires_at: &str) -> bool {
    ferry_manifests::wire::parse_timestamp(expires_at)
        .is_some_and(|t| t <= time::OffsetDateTime::now_utc())
}

/// Refuses an item that is not `tenant`'s (in an install of several tenants, each has its own
/// items), in the words of one that does not exist.
pub async fn require_item_of(
    state: &Shared,
    item: &str,
    tenant: Option<&str>,
) -> ServiceResult<()> {
    if state.catalog().await?.is_of(item, tenant) {
        Ok(())
    } else {
        Err(ServiceError::not_found(format!(
            "no release of {item}; see ferryctl releases list"
        )))
    }
}

/// Claims an item for `tenant` at its first publish (one published before tenants, or while
/// there was one, is the default tenant's), and checks the artifact is the tenant's too.
async fn claim_item(state: &Shared, item: &str, artifact: &str, tenant: &str) -> ServiceResult<()> {
    let c = state.catalog().await?;
    if !c.several {
        return Ok(());
    }
    let claimant = if c.claimed(item) || state.store.releases(Some(item)).await?.is_empty() {
        tenant.to_string()
    } else {
        c.default_id.clone()
    };
    let owner = state.store.claim(OwnedKind::Item, item, &claimant).await?;
    if owner != tenant {
        return Err(ServiceError::conflict(format!(
            "the item {item} is another tenant's; publish yours under another name"
        )));
    }
    if !artifact_is_of(state, artifact, Some(tenant)).await? {
        return Err(ServiceError::conflict(format!(
            "the artifact {artifact} is another tenant's; upload yours under another name"
        )));
    }
    Ok(())
}

/// Whether an artifact file is `tenant`'s to read (always, with one tenant; a name no tenant
/// claimed is the default tenant's).
pub async fn artifact_is_of(
    state: &Shared,
    name: &str,
    tenant: Option<&str>,
) -> ServiceResult<bool> {
    let c = state.catalog().await?;
    if !c.several {
        return Ok(true);
    }
    let owner = state.store.artifact_owner(name).await?;
    Ok(owner.as_deref().unwrap_or(&c.default_id) == tenant.unwrap_or(&c.default_id))
}

/// Claims an artifact name for `tenant` before its upload, in an install of several
/// tenants: a name another tenant holds (or a file uploaded before tenants, the default
/// tenant's) is refused.
pub async fn claim_artifact(
    state: &Shared,
    name: &str,
    tenant: &str,
    exists: bool,
) -> ServiceResult<()> {
    let c = state.catalog().await?;
    if !c.several {
        return Ok(());
    }
    let claimant = match state.store.artifact_owner(name).await? {
        Some(owner) => owner,
        None if exists => c.default_id.clone(),
        None => tenant.to_string(),
    };
    let owner = state
        .store
        .claim(OwnedKind::Artifact, name, &claimant)
        .await?;
    if owner != tenant {
        return Err(ServiceError::conflict(format!(
            "the artifact name {name} is another tenant's; name yours differently"
        )));
    }
    Ok(())
}

/// The release of `item` an install may take: `version`, or the newest; a withdrawn one is
/// refused with when and why.
pub async fn installable(
    state: &Shared,
    item: &str,
    version: Option<&semver::Version>,
) -> ServiceResult<ReleaseView> {
    let releases = state.store.releases(Some(item)).await?;
    let live: Vec<ReleaseView> = releases
        .iter()
        .filter(|r| r.withdrawn_at.is_none())
        .cloned()
        .collect();
    let found = match version {
        Some(v) => releases.iter().find(|r| &r.version == v),
        None => fleet::newest(&live, item),
    };
    match found {
        Some(r) if r.withdrawn_at.is_some() => Err(ServiceError::conflict(format!(
            "{item} {} was withdrawn at {} ({}); publish a fixed version",
            r.version,
            r.withdrawn_at.as_deref().unwrap_or_default(),
            r.withdrawn_reason.as_deref().unwrap_or("no reason given")
        ))),
        Some(r) if expired(&r.expires_at) => Err(ServiceError::conflict(format!(
            "{item} {} expired at {}: every device would refuse it; publish a freshly signed release",
            r.version, r.expires_at
        ))),
        Some(r) => Ok(r.clone()),
        None => Err(ServiceError::not_found(match version {
            Some(v) => format!("no release {item} {v}; see ferryctl releases list"),
            None => format!("no release of {item}; publish one first"),
        })),
    }
}

/// Withdraws a release: it is no longer offered, counted or advertised (MQTT), installs of it
/// not yet started are cancelled (devices hear of it at check-in), and its campaigns are
/// cancelled. The history that names it stays.
pub async fn withdraw(
    state: &Shared,
    item: &str,
    version: &semver::Version,
    reason: &str,
) -> ServiceResult<ReleaseView> {
    let reason = reason.trim();
    if reason.chars().count() > 512 || reason.chars().any(char::is_control) {
        return Err(ServiceError::invalid(
            "the reason is one line of at most 512 characters",
        ));
    }
    let reason = if reason.is_empty() {
        "withdrawn by an operator"
    } else {
        reason
    };
    let release = installable(state, item, Some(version)).await?;
    if !state
        .store
        .withdraw_release(item, &version.to_string(), reason)
        .await?
    {
        return Err(ServiceError::conflict(format!(
            "{item} {version} is withdrawn already"
        )));
    }
    for c in state.store.campaigns().await? {
        let open = matches!(
            c.status,
            crate::policy::status::CampaignStatus::Running
                | crate::policy::status::CampaignStatus::Paused
        );
        if open && c.item == item && &c.version == version {
            let why = format!("release withdrawn: {reason}");
            super::campaigns::cancel(state, &c.id, &why).await?;
        }
    }
    state.releases_changed();
    state.campaigns_changed();
    state.changed();
    tracing::warn!(%item, %version, %reason, "release withdrawn");
    Ok(ReleaseView {
        withdrawn_at: Some(now()),
        withdrawn_reason: Some(reason.to_string()),
        ..release
    })
}

/// With a trust root published here, a release must be signed as it says (a threshold of its
/// release keys): devices that follow the root would refuse anything else, so publishing it
/// would only make a release no device can install. Without one (devices pin their keys),
/// the server cannot know the keys and leaves the check to the devices.
async fn signed_as_the_trust_root_says(
    state: &Shared,
    envelope: &Envelope,
    tenant: &str,
) -> ServiceResult<()> {
    // The publisher's tenant's chain.
    let guest = state.guest(Some(tenant)).await?;
    let Some((version, text)) = state.store.latest_root(guest.as_deref()).await? else {
        return Ok(());
    };
    let root = ferry_manifests::root::TrustRoot::verify_initial(text.as_bytes())
        .map_err(|e| ServiceError::invalid(format!("the stored trust root {version}: {e}")))?;
    envelope
        .verify(
            ferry_manifests::envelope::MANIFEST_PAYLOAD_TYPE,
            &root.release_keyset(),
            root.release_threshold,
        )
        .map_err(|e| {
            ServiceError::invalid(format!(
                "the manifest's signatures do not meet trust root {version} (its release keys, threshold {}): {e}",
                root.release_threshold
            ))
        })?;
    Ok(())
}

/// A release as the server lists it, from its manifest and envelope.
fn view_of(manifest: &Manifest, envelope: &Envelope) -> ReleaseView {
    let fmt = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    };
    ReleaseView {
        item: manifest.item.clone(),
        version: manifest.version.clone(),
        category: manifest.category.to_string(),
        released_at: fmt(manifest.released_at),
        expires_at: fmt(manifest.expires_at),
        notes: manifest.notes.clone(),
        release_url: manifest.release_url.clone(),
        layout: match manifest.artifact.bundle {
            Some(b) => b.as_str().to_string(),
            None => manifest.install.layout.to_string(),
        },
        artifact_name: manifest.artifact.name.clone(),
        artifact_size: manifest.artifact.size,
        artifact_sha256: manifest.artifact.sha256.clone(),
        signed_by: envelope
            .signatures
            .iter()
            .map(|s| s.keyid.0.clone())
            .collect(),
        published_at: now(),
        mirrors: Vec::new(),
        withdrawn_at: None,
        withdrawn_reason: None,
        bundle: manifest.artifact.bundle.map(|b| b.as_str().to_string()),
        metered_allowed: false,
    }
}

/// Lets installs of a release download over a metered link (an urgent fix), or not: a
/// device's job for it carries `metered_allowed` from its next check-in on.
pub async fn set_metered_allowed(
    state: &Shared,
    item: &str,
    version: &str,
    allowed: bool,
) -> ServiceResult<ReleaseView> {
    if !state
        .store
        .set_metered_allowed(item, version, allowed)
        .await?
    {
        return Err(ServiceError::not_found(format!(
            "no release {item} {version}"
        )));
    }
    state.releases_changed();
    tracing::info!(%item, %version, allowed, "release allowed on metered links: {allowed}");
    state
        .store
        .releases(Some(item))
        .await?
        .into_iter()
        .find(|r| r.version.to_string() == version)
        .ok_or_else(|| ServiceError::not_found(format!("no release {item} {version}")))
}

/// Records where else the release's artifact is served (mirrors, a CDN, an object store's
/// public URL): devices try `BASE/ARTIFACT_NAME` for each, in order, before the server's own
/// copy. They are hints, not trust: the signed manifest's hash decides what is installed.
pub async fn set_mirrors(
    state: &Shared,
    item: &str,
    version: &str,
    mirrors: &[String],
) -> ServiceResult<ReleaseView> {
    let mirrors = fleet::mirror_bases(mirrors).map_err(ServiceError::invalid)?;
    if !state.store.set_mirrors(item, version, &mirrors).await? {
        return Err(ServiceError::not_found(format!(
            "no release {item} {version}"
        )));
    }
    state.releases_changed();
    tracing::info!(%item, %version, mirrors = mirrors.len(), "release mirrors recorded");
    let view = state
        .store
        .releases(Some(item))
        .await?
        .into_iter()
        .find(|r| r.version.to_string() == version)
        .ok_or_else(|| ServiceError::not_found(format!("no release {item} {version}")))?;
    Ok(view)
}

/// The size and sha256 of one of the server's files.
pub async fn hash_file(path: &Path) -> ServiceResult<(u64, String)> {
    let owned = path.to_path_buf();
    let io = |source| ServiceError::Io {
        action: "hashing",
        path: path.to_path_buf(),
        source,
    };
    tokio::task::spawn_blocking(move || {
        let mut f = std::fs::File::open(&owned)?;
        let mut hasher = Sha256::new();
        let n = std::io::copy(&mut f, &mut hasher)?;
        Ok::<_, std::io::Error>((n, hex::encode(hasher.finalize())))
    })
    .await
    .map_err(|e| io(std::io::Error::other(e)))?
    .map_err(io)
}
