//! Deltas on demand: a device on an older release checked in, or a release was published.
//! Each delta is built once, in the background, from the releases the store holds
//! (`crate::deltas` writes and indexes the files).

use ferry_manifests::{Envelope, Manifest};

use crate::state::Shared;

/// Builds the delta in the background unless it is ready, under way or failed before.
pub fn request(state: &Shared, item: &str, from: &semver::Version, to: &semver::Version) {
    if state.config.delta_from_releases == 0 || from >= to {
        return;
    }
    if !state.deltas.claim(item, from, to) {
        return;
    }
    let state = state.clone();
    let (item, from, to) = (item.to_string(), from.clone(), to.clone());
    tokio::spawn(async move {
        let started = std::time::Instant::now();
        match build(&state, &item, &from, &to).await {
            Ok((offer, Made::Built)) => {
                tracing::info!(%item, %from, %to, bytes = offer.size, ms = started.elapsed().as_millis() as u64, "delta built");
                state.deltas.built(&item, &from, &to, offer);
            }
            Ok((offer, Made::Fetched)) => {
                tracing::info!(%item, %from, %to, bytes = offer.size, "delta taken from the artifact store (another instance built it)");
                state.deltas.built(&item, &from, &to, offer);
            }
            Err(e) => tracing::warn!(%item, %from, %to, "cannot build a delta: {e}"),
        }
    });
}

/// After `version` of `item` is published: deltas from its last N releases before it.
pub async fn after_publish(state: &Shared, item: &str, version: &semver::Version) {
    let n = state.config.delta_from_releases;
    let Ok(releases) = state.store.releases(Some(item)).await else {
        return;
    };
    let mut older: Vec<&semver::Version> = releases
        .iter()
        .map(|r| &r.version)
        .filter(|v| *v < version)
        .collect();
    older.sort();
    for from in older.into_iter().rev().take(n) {
        request(state, item, from, version);
    }
}

async fn manifest(
    state: &Shared,
    item: &str,
    version: &semver::Version,
) -> anyhow::Result<Manifest> {
    let text = state
        .store
        .envelope(item, &version.to_string())
        .await?
        .ok_or_else(|| anyhow::anyhow!("no release {item} {version}"))?;
    let envelope = Envelope::parse(text.as_bytes())?;
    Ok(Manifest::parse_unverified(&envelope)?)
}

/// Where a ready delta came from.
enum Made {
    Built,
    Fetched,
}

async fn build(
    state: &Shared,
    item: &str,
    from: &semver::Version,
    to: &semver::Version,
) -> anyhow::Result<(ferry_manifests::wire::DeltaOffer, Made)> {
    let data_dir = state.config.data_dir.clone();
    // Built once fleet-wide: another instance's delta, in object storage, is taken as it is.
    let (tarball, sidecar) = crate::deltas::keys(item, from, to);
    let store = &state.artifact_store;
    if store.is_object_store()
        && store.fetch(&sidecar, &data_dir.join(&sidecar)).await?
        && store.fetch(&tarball, &data_dir.join(&tarball)).await?
    {
        let text = tokio::fs::read(data_dir.join(&sidecar)).await?;
        return Ok((
            crate::deltas::offer_of(item, from, to, &text)?,
            Made::Fetched,
        ));
    }
    let a = manifest(state, item, from).await?;
    let b = manifest(state, item, to).await?;
    let artifact = state.artifacts_dir().join(&b.artifact.name);
    if !store
        .fetch(&format!("artifacts/{}", b.artifact.name), &artifact)
        .await?
    {
        anyhow::bail!("the artifact {} is in no store", b.artifact.name);
    }
    let reserve = state.config.min_free_disk_bytes;
    let built = {
        let data_dir = data_dir.clone();
        tokio::task::spawn_blocking(move || {
            crate::deltas::build(&data_dir, &artifact, &a, &b, reserve)
        })
        .await??
    };
    // The tarball first: an instance that finds the sidecar finds the delta whole.
    store.put(&tarball, &data_dir.join(&tarball)).await?;
    store.put(&sidecar, &data_dir.join(&sidecar)).await?;
    Ok((built, Made::Built))
}
