//! The download stage: fetch each pending release's artifact into the state directory,
//! resuming a partial file with an HTTP Range request, hashing while it streams, and never
//! accepting more bytes than the signed size. A file is renamed to its final name only once
//! its size and sha256 match the signed manifest.

use std::fs::{self};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ferry_manifests::Manifest;

use crate::agent::Agent;
use crate::client::jittered;
use crate::client::Api;
use crate::error::{io_err, Error, PathIo};
use crate::fsops::free_space;
use crate::report::{self, Attempt};
use crate::state::{fsync_dir, StateDir};
use crate::verify;

#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// The bytes do not match the signed manifest: refuse the release.
    #[error(transparent)]
    Tampered(#[from] Tampered),
    /// Network or server trouble: keep the partial file and try again later.
    #[error(transparent)]
    Transient(#[from] Error),
}

impl From<PathIo> for DownloadError {
    fn from(e: PathIo) -> Self {
        DownloadError::Transient(e.into())
    }
}

/// How a server's bytes broke the signed manifest.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Tampered {
    #[error("artifact {name} from {url} has sha256 {actual}, the signed manifest says {expected}")]
    Hash {
        name: String,
        url: String,
        actual: String,
        expected: String,
    },
    #[error("server sent more than the {size} signed bytes of {name}; download cut off")]
    TooLong { name: String, size: u64 },
}

pub fn run(agent: &mut Agent) -> Result<usize, Error> {
    let result = run_items(agent);
    crate::dashboard::clear_progress(&agent.dir);
    result
}

fn run_items(agent: &mut Agent) -> Result<usize, Error> {
    let mut done = 0;
    // Asked once a run, and only when something is to be downloaded.
    let mut metered: Option<Option<&'static str>> = None;
    let names: Vec<String> = agent.cfg.items.iter().map(|i| i.name.clone()).collect();
    for name in names {
        let Some(pending) = agent.item_state(&name).pending.clone() else {
            continue;
        };
        if pending.downloaded {
            continue;
        }
        // A link that costs money: downloads wait for their window (the server hears why).
        if let Some(window) = agent.cfg.download_window {
            let minute = crate::delivery::local_minute(
                time::OffsetDateTime::now_utc(),
                agent.utc_offset_secs,
            );
            if !window.contains(minute) {
                let why = Error::DownloadWindow {
                    window: window.to_string(),
                    opens_in_min: window.opens_in(minute),
                };
                tracing::info!(item = %name, version = %pending.version, "{why}");
                hold(agent, &name, &pending, &why)?;
                continue;
            }
        }
        if !pending.metered_allowed {
            let how = *metered.get_or_insert_with(|| metered_link(agent.cfg.metered));
            if let Some(how) = how {
                let why = Error::Metered { how };
                tracing::info!(item = %name, version = %pending.version, "{why}");
                hold(agent, &name, &pending, &why)?;
                continue;
            }
        }
        let installed = agent.item_state(&name).installed.clone();
        let verified = match verify::load_verified(agent, &name, &pending) {
            Ok(v) => v,
            Err(refusal) => {
                report::finish(
                    agent,
                    Attempt::start(&name, &pending, installed).refused(refusal.to_string()),
                    &pending,
                )?;
                continue;
            }
        };
        match fetch(agent, &name, &pending, &verified) {
            Ok((path, fetched)) => {
                tracing::info!(item = %name, version = %pending.version, path = %path.display(), bytes = fetched.bytes, from_peers = fetched.from_peers, "downloaded and verified");
                if let Some(p) = agent.pending_mut(&name) {
                    p.downloaded = true;
                    p.fetched = Some(fetched);
                    p.waiting = None;
                }
                agent.dir.save_state(&agent.state)?;
                done += 1;
            }
            Err(DownloadError::Tampered(message)) => {
                report::finish(
                    agent,
                    Attempt::start(&name, &pending, installed).refused(message.to_string()),
                    &pending,
                )?;
            }
            Err(DownloadError::Transient(e)) => {
                if matches!(e, Error::NoSpace { .. }) {
                    crate::report::waiting(agent, &pending, &e);
                }
                return Err(e);
            }
        }
    }
    Ok(done)
}

/// A download that waits: the server hears why, and `status` shows it (kept in the state
/// only when it changed, so a run that waits again writes nothing).
fn hold(
    agent: &mut Agent,
    item: &str,
    pending: &crate::state::Pending,
    why: &Error,
) -> Result<(), Error> {
    crate::report::waiting(agent, pending, why);
    let text = why.to_string();
    let Some(p) = agent.pending_mut(item) else {
        return Ok(());
    };
    if p.waiting.as_deref() != Some(text.as_str()) {
        p.waiting = Some(text);
        agent.dir.save_state(&agent.state)?;
    }
    Ok(())
}

/// Whether the link is metered now, and why it is taken to be: `metered = true` in the
/// config, or NetworkManager's view (`metered = "auto"`, the default, where it runs).
fn metered_link(setting: crate::delivery::Metered) -> Option<&'static str> {
    use crate::delivery::Metered;
    match setting {
        Metered::Fixed(true) => Some("metered = true"),
        Metered::Fixed(false) => None,
        // NetworkManager keeps its runtime directory while it runs; without it, no question.
        Metered::Auto if !Path::new("/run/NetworkManager").is_dir() => None,
        Metered::Auto => {
            let out = std::process::Command::new("busctl")
                .args([
                    "--system",
                    "--timeout=2",
                    "get-property",
                    "org.freedesktop.NetworkManager",
                    "/org/freedesktop/NetworkManager",
                    "org.freedesktop.NetworkManager",
                    "Metered",
                ])
                .output();
            match out {
                Ok(o) if o.status.success() => {
                    crate::delivery::networkmanager_metered(&String::from_utf8_lossy(&o.stdout))
                        .filter(|m| *m)
                        .map(|_| "NetworkManager says so")
                }
                Ok(o) => {
                    tracing::debug!(stderr = %String::from_utf8_lossy(&o.stderr).trim(), "cannot ask NetworkManager whether the link is metered; taken as not metered");
                    None
                }
                Err(e) => {
                    tracing::debug!(error = %e, "busctl is not there to ask NetworkManager whether the link is metered; taken as not metered");
                    None
                }
            }
        }
    }
}

/// The pending release's delta when it is usable here (`install::delta::usable`), else its
/// full artifact; a delta that fails to download falls back to the full artifact.
fn fetch(
    agent: &mut Agent,
    item: &str,
    pending: &crate::state::Pending,
    verified: &ferry_manifests::VerifiedManifest,
) -> Result<(PathBuf, ferry_manifests::wire::Fetched), DownloadError> {
    use ferry_manifests::wire::Fetched;
    let installed = agent.item_state(item).installed;
    // Bytes already fetched for this install: a delta that could not be used.
    let before = pending.fetched.as_ref().map_or(0, |f| f.bytes);
    let mut fell_back = pending.fetched.is_some();
    // Peers at the site hold the full artifact: taking it from them costs the uplink
    // nothing, where even a delta comes from the server.
    let usable = pending.delta.as_ref().filter(|_| pending.peers.is_empty()).filter(|d| {
        let old = agent.dir.installed_release(item);
        match crate::install::delta::usable(d, installed.as_ref(), old.as_ref(), verified) {
            Ok(()) => true,
            Err(why) => {
                tracing::info!(%item, version = %verified.version, "not using the delta: {why}");
                false
            }
        }
    });
    if let Some(d) = usable.cloned() {
        // The delta's own size and hash (from the check-in) bound and check the transfer.
        let mut m = verified.manifest().clone();
        m.artifact.size = d.size;
        m.artifact.sha256 = d.sha256.clone();
        m.artifact.urls = vec![agent
            .api
            .url(&d.path)
            .map_err(DownloadError::Transient)?
            .to_string()];
        match fetch_artifact(agent, &m, None, &[]) {
            Ok((path, _)) => {
                tracing::info!(%item, version = %verified.version, from = %d.from_version, bytes = d.size, "downloaded a delta");
                let fetched = Fetched {
                    bytes: before + d.size,
                    delta_from: Some(d.from_version.clone()),
                    fell_back: false,
                    from_peers: 0,
                    bad_peers: vec![],
                };
                return Ok((path, fetched));
            }
            Err(DownloadError::Transient(Error::Interrupted)) => {
                return Err(DownloadError::Transient(Error::Interrupted))
            }
            Err(e) => {
                fell_back = true;
                tracing::warn!(%item, version = %verified.version, "the delta cannot be downloaded ({e}); fetching the full artifact")
            }
        }
    }
    if pending.delta.is_some() {
        // Not used: the install must not look for it.
        if let Some(p) = agent.pending_mut(item) {
            p.delta = None;
        }
    }
    // The server's mirrors go between the manifest's own absolute URLs and its copy.
    let offered;
    let manifest: &Manifest = if pending.mirrors.is_empty() {
        verified
    } else {
        let mut m = verified.manifest().clone();
        m.artifact.urls = with_offered_mirrors(&m.artifact.urls, &pending.mirrors);
        offered = m;
        &offered
    };
    let peers = peer_urls(&agent.api, &pending.peers);
    let (path, tally) = fetch_artifact(agent, manifest, pending.source.as_deref(), &peers)?;
    Ok((
        path,
        Fetched {
            bytes: before + verified.artifact.size,
            delta_from: None,
            fell_back,
            from_peers: tally.from_peers,
            bad_peers: tally.bad,
        },
    ))
}

/// The peers the server offered that may be asked: plain `http://` URLs (integrity comes
/// from the signed hash), never the server itself (a peer gets no credential).
fn peer_urls(api: &Api, offered: &[String]) -> Vec<reqwest::Url> {
    offered
        .iter()
        .filter_map(|u| reqwest::Url::parse(u).ok())
        .filter(|u| u.scheme() == "http" && !api.same_origin(u))
        .collect()
}

/// Where a download's bytes came from, when some came from peers: what the report counts,
/// and what tells a peer that served bad bytes from one that did not.
#[derive(Debug, Default)]
struct Sources {
    /// Ranges of the part file each peer wrote since it last started over.
    live: Vec<(reqwest::Url, u64, u64)>,
    /// Ranges peers wrote into a part that then failed the signed hash, with the sha256 the
    /// bytes there had: compared with the good file once there is one.
    suspects: Vec<(reqwest::Url, u64, u64, [u8; 32])>,
}

/// What peers gave a finished download.
#[derive(Debug, Default)]
struct PeerTally {
    from_peers: u64,
    /// Share addresses (`http://IP:PORT`) of peers whose bytes were wrong.
    bad: Vec<String>,
}

impl Sources {
    /// `url` wrote `start..end` of the part (`start` 0: it started the part over).
    fn wrote(&mut self, url: &reqwest::Url, peer: bool, start: u64, end: u64) {
        if start == 0 || end < start {
            self.live.clear();
        }
        if peer && end > start {
            self.live.push((url.clone(), start, end));
        }
    }

    /// The part failed the hash: what each peer wrote in it becomes suspect.
    fn failed(&mut self, part: &Path) {
        for (url, start, end) in std::mem::take(&mut self.live) {
            if let Ok(digest) = range_digest(part, start, end) {
                self.suspects.push((url, start, end, digest));
            }
        }
    }

    fn suspect(&self, url: &reqwest::Url) -> bool {
        self.suspects.iter().any(|(u, ..)| u == url)
    }

    /// The good file is in `path`: the peers whose suspect bytes differ from it were bad.
    fn tally(self, path: &Path) -> PeerTally {
        let from_peers = self.live.iter().map(|(_, s, e)| e - s).sum();
        let mut bad: Vec<String> = Vec::new();
        for (url, start, end, digest) in &self.suspects {
            let share = url.origin().ascii_serialization();
            if !bad.contains(&share) && range_digest(path, *start, *end).is_ok_and(|d| &d != digest)
            {
                tracing::warn!(peer = %share, "a peer at this site served bytes that fail the signed hash; the server is told, and no longer offers it");
                bad.push(share);
            }
        }
        PeerTally { from_peers, bad }
    }
}

/// The sha256 of bytes `start..end` of a file.
fn range_digest(path: &Path, start: u64, end: u64) -> std::io::Result<[u8; 32]> {
    use sha2::Digest;
    use std::io::{Read, Seek};
    let mut file = fs::File::open(path)?;
    file.seek(std::io::SeekFrom::Start(start))?;
    let mut hasher = sha2::Sha256::new();
    std::io::copy(&mut file.take(end.saturating_sub(start)), &mut hasher)?;
    Ok(hasher.finalize().into())
}

/// The URLs to try, in order: the signed manifest's absolute ones (its publisher's mirrors),
/// then those the server offered (http or https only, each once), then the manifest's
/// relative ones (the server's or repository's own copy).
pub fn with_offered_mirrors(urls: &[String], offered: &[String]) -> Vec<String> {
    let absolute = |u: &String| u.starts_with("http://") || u.starts_with("https://");
    let mut out: Vec<String> = urls.iter().filter(|u| absolute(u)).cloned().collect();
    for m in offered.iter().filter(|m| absolute(m)) {
        if !out.contains(m) {
            out.push(m.clone());
        }
    }
    out.extend(urls.iter().filter(|u| !absolute(u)).cloned());
    out
}

/// Tries each peer, then each artifact URL, in order; returns the path of the verified
/// artifact and what peers gave.
fn fetch_artifact(
    agent: &Agent,
    manifest: &Manifest,
    source: Option<&str>,
    peers: &[reqwest::Url],
) -> Result<(PathBuf, PeerTally), DownloadError> {
    let artifact = &manifest.artifact;
    let final_path = agent.dir.artifact_path(&manifest.item, &artifact.sha256);
    if final_path.exists() {
        return Ok((final_path, PeerTally::default()));
    }
    let mut sources = Sources::default();
    preflight_space(&agent.dir, artifact.size)?;
    let part = agent.dir.partial_path(&manifest.item, &artifact.sha256);
    let mut last_error = None;
    for pass in 0..=agent.cfg.download_retries {
        if pass > 0 {
            // 1, 2, 4 … s (at most a minute), ±50%, so a fleet does not retry in step.
            let wait = jittered(Duration::from_secs(1 << (pass - 1).min(6)), 0.5);
            tracing::info!(pass, "retrying the download in {:.1} s", wait.as_secs_f64());
            std::thread::sleep(wait);
        }
        match try_mirrors(agent, manifest, &part, source, peers, &mut sources) {
            Ok(()) => {
                fs::rename(&part, &final_path).map_err(io_err(&final_path))?;
                fsync_dir(&agent.dir.downloads())?;
                let tally = sources.tally(&final_path);
                return Ok((final_path, tally));
            }
            Err(DownloadError::Tampered(m)) => return Err(DownloadError::Tampered(m)),
            Err(DownloadError::Transient(Error::Interrupted)) => {
                return Err(DownloadError::Transient(Error::Interrupted))
            }
            Err(DownloadError::Transient(e)) => last_error = Some(e),
        }
    }
    Err(DownloadError::Transient(
        last_error.unwrap_or(Error::NoArtifactUrl),
    ))
}

/// One pass over the peers, then the artifact's URLs, in order.
fn try_mirrors(
    agent: &Agent,
    manifest: &Manifest,
    part: &Path,
    source: Option<&str>,
    peers: &[reqwest::Url],
    sources: &mut Sources,
) -> Result<(), DownloadError> {
    let mut last_error = None;
    let mut tampered = None;
    let mut urls: Vec<(reqwest::Url, bool)> = peers
        .iter()
        .filter(|u| !sources.suspect(u))
        .map(|u| (u.clone(), true))
        .collect();
    for url in &manifest.artifact.urls {
        let url = resolve_url(&agent.api, url, source).map_err(DownloadError::Transient)?;
        urls.push((url, false));
    }
    for (url, peer) in urls {
        // A resumed download whose hash fails may have started from a bad local partial file:
        // retry that URL once from zero before blaming it.
        for _attempt in 0..2 {
            let resumed = fs::metadata(part).is_ok_and(|m| m.len() > 0);
            let mut start = 0;
            let result = download_one(agent, &url, part, manifest, &mut start);
            let end = fs::metadata(part).map_or(0, |m| m.len());
            sources.wrote(&url, peer, start, end);
            match result {
                Ok(()) => return Ok(()),
                Err(DownloadError::Tampered(m)) => {
                    sources.failed(part);
                    let _ = fs::remove_file(part);
                    tracing::warn!(%url, "{m}");
                    if peer {
                        // The next source starts over; the server hears of a bad peer only
                        // once a good file shows whose bytes were wrong.
                        break;
                    }
                    tampered = Some(m);
                    if resumed {
                        continue;
                    }
                    break;
                }
                Err(DownloadError::Transient(Error::Interrupted)) => {
                    return Err(DownloadError::Transient(Error::Interrupted))
                }
                Err(DownloadError::Transient(e)) => {
                    tracing::warn!(%url, "download failed: {e}");
                    if !peer {
                        last_error = Some(e);
                    }
                    break;
                }
            }
        }
    }
    // Every mirror failed. If some only failed to answer, try again (one of them may serve
    // good bytes); if every one served bad bytes, refuse the release. Peers do not decide:
    // bad bytes from a peer alone never refuse a release, and a peer gone is no outage.
    if let (Some(m), None) = (tampered, &last_error) {
        return Err(DownloadError::Tampered(m));
    }
    Err(DownloadError::Transient(
        last_error.unwrap_or(Error::NoArtifactUrl),
    ))
}

/// Relative URLs resolve against the repository directory the manifest came from, else
/// against the server's artifact base.
pub fn resolve_url(api: &Api, url: &str, source: Option<&str>) -> Result<reqwest::Url, Error> {
    let bad = |source| Error::BadUrl {
        url: url.to_string(),
        source,
    };
    if url.starts_with("http://") || url.starts_with("https://") {
        reqwest::Url::parse(url).map_err(bad)
    } else if let Some(dir) = source {
        reqwest::Url::parse(dir)
            .and_then(|d| d.join(url))
            .map_err(bad)
    } else {
        api.url(&format!("api/v1/artifacts/{url}"))
    }
}

fn preflight_space(dir: &StateDir, needed: u64) -> Result<(), Error> {
    let path = dir.downloads();
    let free = free_space(&path).map_err(io_err(&path))?;
    if free < needed {
        return Err(Error::NoSpace { path, needed, free });
    }
    Ok(())
}

mod transfer;
use transfer::download_one;

#[cfg(test)]
mod tests;
