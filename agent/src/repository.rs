//! Releases from a static release repository (`repository_url`, written by `ferryctl release
//! publish --to-dir`): the check stage reads each configured item's signed index
//! (`ITEM.index.json`) instead of asking a server what is available. The index is verified
//! with the same release keys as manifests, refused once expired, and never taken when older
//! than one this device has already seen, so a stale mirror or a replayed index can hold a
//! device back only until the index it replays expires. What the index names is then
//! fetched, verified and installed exactly as a server's offer is, from a delta when the
//! repository has one from the installed version.

use ferry_manifests::delta::{repository_file, Sidecar, MAX_SIDECAR_BYTES};
use ferry_manifests::index::{index_file, ReleaseIndex};
use ferry_manifests::wire::{Available, DeltaOffer};
use reqwest::Url;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::agent::Agent;
use crate::error::{Error, RepoProblem};

/// A file of the repository (which is flat: every file sits beside the index).
fn file_url(repo: &Url, name: &str) -> Result<Url, Error> {
    repo.join(name).map_err(|source| Error::BadUrl {
        url: format!("{repo}{name}"),
        source,
    })
}

/// The directory a release's relative artifact URLs resolve against, when its manifest came
/// from a repository (an absolute manifest URL); `None` for a server's manifest path.
pub fn source_of(manifest_path: &str) -> Option<String> {
    let url = Url::parse(manifest_path).ok()?;
    url.join(".").ok().map(|u| u.to_string())
}

/// What the repository offers: for each configured item, the newest release for this
/// device's class. Items whose index cannot be used are returned as problems (one item's bad
/// index does not hold back the others); an unreachable repository is an error.
pub fn offers(agent: &mut Agent, repo: &Url) -> Result<(Vec<Available>, Vec<Error>), Error> {
    let mut available = Vec::new();
    let mut problems = Vec::new();
    let names: Vec<String> = agent.cfg.items.iter().map(|i| i.name.clone()).collect();
    for item in names {
        let url = file_url(repo, &index_file(&item))?;
        match read_index(agent, &item, &url) {
            Ok(index) => {
                let Some(entry) = index.newest_for(agent.cfg.device_class.as_deref()) else {
                    continue;
                };
                // Offered only when newer than what is in place, as a server offers.
                let installed = agent
                    .state
                    .items
                    .get(&item)
                    .and_then(|s| s.installed.clone());
                if installed.as_ref().is_some_and(|v| entry.version <= *v) {
                    continue;
                }
                let delta = installed
                    .as_ref()
                    .and_then(|from| delta_offer(agent, repo, &item, from, &entry.version));
                available.push(Available {
                    item: item.clone(),
                    version: entry.version.clone(),
                    category: entry.category.as_str().to_string(),
                    manifest_path: file_url(repo, &entry.manifest)?.to_string(),
                    notes: entry.notes.clone(),
                    release_url: entry.release_url.clone(),
                    delta,
                    mirrors: vec![],
                    peers: vec![],
                });
            }
            Err(Fetch::Unreachable(e)) => return Err(e),
            Err(Fetch::Problem(problem)) => {
                tracing::error!(%item, %url, "{problem}");
                problems.push(Error::Repository {
                    url: url.to_string(),
                    problem,
                });
            }
        }
    }
    Ok((available, problems))
}

/// The repository's delta from the installed `from` to `to`, when it has one
/// (`ferryctl release publish --to-dir` writes them). Anything wrong with it only means the
/// full artifact is fetched: the delta is checked against the signed manifest like a
/// server's.
fn delta_offer(
    agent: &Agent,
    repo: &Url,
    item: &str,
    from: &semver::Version,
    to: &semver::Version,
) -> Option<DeltaOffer> {
    let name = repository_file(item, from, to);
    let url = file_url(repo, &format!("{name}.json")).ok()?;
    let side: Sidecar = match agent.api.small_file(&url, MAX_SIDECAR_BYTES) {
        Ok(Some(bytes)) => match serde_json::from_slice(&bytes) {
            Ok(side) => side,
            Err(e) => {
                tracing::warn!(%url, "the repository's delta description is unusable ({e}); the full artifact is fetched");
                return None;
            }
        },
        Ok(None) => return None,
        Err(e) => {
            tracing::info!(%url, "no delta ({e}); the full artifact is fetched");
            return None;
        }
    };
    Some(DeltaOffer {
        from_version: from.clone(),
        path: file_url(repo, &format!("{name}.tar.gz")).ok()?.to_string(),
        size: side.size,
        sha256: side.sha256,
    })
}

enum Fetch {
    Unreachable(Error),
    Problem(RepoProblem),
}

/// Fetches, verifies and records `item`'s index.
fn read_index(agent: &mut Agent, item: &str, url: &Url) -> Result<ReleaseIndex, Fetch> {
    let envelope = match agent.api.envelope(url.as_str()) {
        Ok((envelope, _)) => envelope,
        Err(Error::Unreachable { url, message, .. }) => {
            return Err(Fetch::Unreachable(Error::Unreachable {
                what: "repository",
                url,
                message,
            }))
        }
        Err(Error::Server {
            status: 200,
            message,
            ..
        }) => return Err(Fetch::Problem(RepoProblem::Unusable(message))),
        Err(Error::Server {
            status, message, ..
        }) => {
            return Err(Fetch::Problem(RepoProblem::Missing(format!(
                "HTTP {status}: {message}"
            ))))
        }
        Err(e) => return Err(Fetch::Unreachable(e)),
    };
    let index = ReleaseIndex::verify(
        &envelope,
        &agent.trust.keys,
        agent.trust.threshold,
        agent.trusted_now(),
    )
    .map_err(|e| Fetch::Problem(e.into()))?;
    if index.item != item {
        return Err(Fetch::Problem(RepoProblem::WrongItem {
            expected: item.to_string(),
            found: index.item,
        }));
    }
    let st = agent.state.items.entry(item.to_string()).or_default();
    let seen = st
        .index_issued_at
        .as_deref()
        .and_then(|s| OffsetDateTime::parse(s, &Rfc3339).ok());
    let issued = index.issued_at.format(&Rfc3339).unwrap_or_default();
    match seen {
        Some(seen) if index.issued_at < seen => {
            return Err(Fetch::Problem(RepoProblem::Replayed {
                issued_at: issued,
                seen: seen.format(&Rfc3339).unwrap_or_default(),
            }))
        }
        Some(seen) if index.issued_at == seen => {}
        _ => st.index_issued_at = Some(issued),
    }
    Ok(index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_artifact_urls_resolve_in_the_manifests_directory() {
        assert_eq!(
            source_of("https://example.org/r/web-1.0.0.manifest.json").as_deref(),
            Some("https://example.org/r/")
        );
        assert_eq!(source_of("api/v1/releases/web/1.0.0/manifest"), None);
        let repo = Url::parse("https://example.org/r/").unwrap();
        assert_eq!(
            file_url(&repo, &index_file("web")).unwrap().as_str(),
            "https://example.org/r/web.index.json"
        );
    }
}
