//! Peers at a site (docs/delivery.md): a check-in's jobs get the site's peers that hold
//! their artifact, or wait while a sharing device of the site fetches the release first; a
//! device that starts sharing wakes the site's waiting devices; a peer reported for bad bytes
//! is offered no more.

use ferry_manifests::wire::{Available, Fetched, Job, ReleaseView, Site};

use super::error::ServiceResult;
use crate::policy::sites::{self, Offer, SiteNow};
use crate::state::Shared;

/// The jobs of a host at `site` as they are offered: with peers, from the server, or held
/// back (their update's message says why); and the ids of those this sharing device fetches
/// first for its site (to be offered no delta: its peers need the full artifact).
pub async fn offers(
    state: &Shared,
    host_id: &str,
    site: &Site,
    jobs: Vec<Job>,
) -> ServiceResult<(Vec<Job>, Vec<String>)> {
    let releases = state.host_releases(host_id).await?;
    let own = own_address(site);
    let now = time::OffsetDateTime::now_utc();
    let since = ferry_manifests::wire::timestamp(now - sites::FETCH_HOLD);
    let mut out = Vec::with_capacity(jobs.len());
    let mut whole = Vec::new();
    for mut job in jobs {
        let artifact =
            release_of(&releases, &job.item, &job.version).map(|r| r.artifact_sha256.clone());
        // A rollback downloads nothing; a release unknown here is the device's to refuse.
        let Some(sha256) = artifact.filter(|_| job.rollback.is_none()) else {
            out.push(job);
            continue;
        };
        let peers = state.store.site_peers(host_id, &site.name, &sha256).await?;
        let (mine, others) = if peers.is_empty() {
            let version = job.version.to_string();
            state
                .store
                .site_fetches(
                    host_id,
                    &job.job_id,
                    &site.name,
                    (&job.item, &version),
                    &since,
                )
                .await?
        } else {
            (false, 0)
        };
        let known = SiteNow {
            peers,
            shares: site.share.is_some(),
            mine,
            others,
            cap: state.config.site_max_downloads,
        };
        match sites::offer(&site.name, &known) {
            Offer::Peers(peers) => {
                job.peers = sites::nearest_first(own, peers)
                    .iter()
                    .map(|p| ferry_manifests::wire::peer_artifact_url(p, &sha256))
                    .collect();
                out.push(job);
            }
            Offer::Server { take: false } => {
                if known.mine && known.shares {
                    whole.push(job.job_id.clone());
                }
                out.push(job);
            }
            Offer::Server { take: true } => {
                let at = ferry_manifests::wire::timestamp(now);
                let version = job.version.to_string();
                let cap = state.config.site_max_downloads;
                let release = (job.item.as_str(), version.as_str());
                if state
                    .store
                    .take_site_fetch(
                        host_id,
                        &job.job_id,
                        &site.name,
                        release,
                        (&since, &at),
                        cap,
                    )
                    .await?
                {
                    whole.push(job.job_id.clone());
                    out.push(job);
                } else {
                    // Another device of the site took the last place a moment ago.
                    let why = sites::offer(
                        &site.name,
                        &SiteNow {
                            others: i64::from(cap),
                            ..known
                        },
                    );
                    if let Offer::Wait(why) = why {
                        state.store.note_update(&job.job_id, host_id, &why).await?;
                    }
                }
            }
            Offer::Wait(why) => {
                tracing::debug!(%host_id, item = %job.item, version = %job.version, "{why}");
                state.store.note_update(&job.job_id, host_id, &why).await?;
            }
        }
    }
    Ok((out, whole))
}

/// Upgrades a host at `site` may take by itself (`auto_install`): each with the site's peers
/// that hold its artifact. Nothing is held back for them (no job, no place to take).
pub async fn available_peers(
    state: &Shared,
    host_id: &str,
    site: &Site,
    releases: &[ReleaseView],
    available: &mut [Available],
) -> ServiceResult<()> {
    let own = own_address(site);
    for a in available {
        let Some(release) = release_of(releases, &a.item, &a.version) else {
            continue;
        };
        let sha256 = &release.artifact_sha256;
        let peers = state.store.site_peers(host_id, &site.name, sha256).await?;
        a.peers = sites::nearest_first(own, peers)
            .iter()
            .map(|p| ferry_manifests::wire::peer_artifact_url(p, sha256))
            .collect();
    }
    Ok(())
}

/// The address the device shares from, to rank its peers by.
fn own_address(site: &Site) -> Option<std::net::IpAddr> {
    site.share
        .as_deref()
        .and_then(ferry_manifests::wire::share_address)
        .map(|a| a.ip())
}

/// The plain (not bundle) release `item` `version`.
fn release_of<'a>(
    releases: &'a [ReleaseView],
    item: &str,
    version: &semver::Version,
) -> Option<&'a ReleaseView> {
    releases
        .iter()
        .find(|r| r.item == item && &r.version == version && r.bundle.is_none())
}

/// A host at `site` now says it holds artifacts: the site's devices waiting for a peer are
/// woken (on whichever instance holds them) to ask again.
pub async fn sharing(state: &Shared, host_id: &str, site: &Site) -> ServiceResult<()> {
    if site.share.is_none() || site.holds.is_empty() {
        return Ok(());
    }
    for waiting in state.store.site_waiting(host_id, &site.name).await? {
        state.wake(&waiting);
    }
    Ok(())
}

/// A report says peers served bytes that failed the signed hash: they are offered no more.
pub async fn bad_peers(
    state: &Shared,
    reporter: &str,
    fetched: &Fetched,
    what: &str,
) -> ServiceResult<()> {
    for share in fetched.bad_peers.iter().take(16) {
        if ferry_manifests::wire::share_address(share).is_none() {
            continue;
        }
        let note = format!(
            "served bytes of {what} that failed the signed hash (found by host {reporter} at {})",
            ferry_manifests::wire::now()
        );
        match state.store.share_fault(reporter, share, &note).await? {
            Some(peer) => {
                tracing::warn!(%peer, %reporter, %share, "a peer served bytes that failed the signed hash; it is offered to its site no more");
                state.changed();
            }
            None => {
                tracing::info!(%reporter, %share, "a report names a bad peer that is not a device of its site");
            }
        }
    }
    Ok(())
}
