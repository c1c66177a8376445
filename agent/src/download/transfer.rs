//! One download from one URL: resumed with a Range request from what the part file holds,
//! hashed as it streams, never past the signed size, and given up on a stop or a transfer
//! too slow to finish.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use ferry_manifests::Manifest;
use reqwest::header::{CONTENT_RANGE, RANGE};
use reqwest::StatusCode;
use sha2::{Digest, Sha256};

use super::{DownloadError, Tampered};
use crate::agent::Agent;
use crate::client::{check_status, transport_error};
use crate::error::{io_err, Error};

/// `start` is set to the offset this answer's bytes were written from (0 when it started the
/// part over), so the caller knows which range came from `url`.
pub(super) fn download_one(
    agent: &Agent,
    url: &reqwest::Url,
    part: &Path,
    manifest: &Manifest,
    start: &mut u64,
) -> Result<(), DownloadError> {
    let size = manifest.artifact.size;
    let mut p = Part::open(part, size)?;
    *start = p.have;
    if p.have < size {
        let resp = ask(agent, url, &mut p)?;
        *start = p.have;
        stream(agent, url, manifest, resp, &mut p)?;
        p.file.sync_all().map_err(io_err(part))?;
    }
    if p.have < size {
        return Err(DownloadError::Transient(Error::Unreachable {
            what: "server",
            url: url.to_string(),
            message: format!(
                "connection closed after {} of {size} bytes; will resume",
                p.have
            ),
        }));
    }
    let sha = hex::encode(p.hasher.finalize());
    if sha != manifest.artifact.sha256 {
        return Err(DownloadError::Tampered(Tampered::Hash {
            name: manifest.artifact.name.clone(),
            url: url.to_string(),
            actual: sha,
            expected: manifest.artifact.sha256.clone(),
        }));
    }
    Ok(())
}

/// A partial download on disk: the file, how much of it there is, and the hash of that much.
struct Part<'a> {
    path: &'a Path,
    file: File,
    have: u64,
    hasher: Sha256,
}

impl<'a> Part<'a> {
    /// Opens (or creates) the part file; one longer than the artifact starts over. What is
    /// already on disk is hashed, so the final hash covers the whole file.
    fn open(path: &'a Path, size: u64) -> Result<Part<'a>, DownloadError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(path)
            .map_err(io_err(path))?;
        let mut have = file.metadata().map(|m| m.len()).unwrap_or(0);
        if have > size {
            file.set_len(0).map_err(io_err(path))?;
            have = 0;
        }
        let mut hasher = Sha256::new();
        if have > 0 {
            let mut existing = File::open(path).map_err(io_err(path))?;
            std::io::copy(&mut (&mut existing).take(have), &mut hasher).map_err(io_err(path))?;
        }
        Ok(Part {
            path,
            file,
            have,
            hasher,
        })
    }

    /// Starts over from the first byte.
    fn reset(&mut self) -> Result<(), DownloadError> {
        self.file.set_len(0).map_err(io_err(self.path))?;
        self.hasher = Sha256::new();
        self.have = 0;
        Ok(())
    }
}

/// Asks for the rest of the artifact (a Range from what the part holds); the answer, once
/// it is known to continue the part (or the part was started over for a whole answer).
fn ask(
    agent: &Agent,
    url: &reqwest::Url,
    p: &mut Part<'_>,
) -> Result<reqwest::blocking::Response, DownloadError> {
    let have = p.have;
    let mut req = agent.api.http().get(url.clone());
    if agent.api.same_origin(url) {
        req = agent.api.authorize(req);
    }
    if have > 0 {
        req = req.header(RANGE, format!("bytes={have}-"));
        tracing::info!(%url, offset = have, "resuming download");
    }
    let resp = req.send().map_err(|e| transport_error(url, e))?;
    if have > 0 && resp.status() == StatusCode::RANGE_NOT_SATISFIABLE {
        return Err(restart(
            &p.file,
            p.path,
            url,
            "server refused the resume range",
        )?);
    }
    let resp = check_status(url, resp)?;
    if have > 0 && resp.status() == StatusCode::OK {
        // The server ignored the range: start over, and say so (every interruption costs
        // the whole file again from such a server).
        tracing::warn!(%url, offset = have, "the server ignored the Range request and sends the whole file again; downloads from it cannot resume (serve the repository with a web server that honours Range, e.g. nginx, Apache or caddy)");
        p.reset()?;
    } else if resp.status() == StatusCode::PARTIAL_CONTENT {
        let expected_prefix = format!("bytes {have}-");
        let ok = resp
            .headers()
            .get(CONTENT_RANGE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with(&expected_prefix));
        if !ok {
            return Err(restart(
                &p.file,
                p.path,
                url,
                "server answered a different range",
            )?);
        }
    }
    Ok(resp)
}

/// Writes the answer's body to the part, hashing as it goes, never past the signed size;
/// shows progress; gives up on a stop or a transfer slower than `min_download_rate`.
fn stream(
    agent: &Agent,
    url: &reqwest::Url,
    manifest: &Manifest,
    mut body: reqwest::blocking::Response,
    p: &mut Part<'_>,
) -> Result<(), DownloadError> {
    let size = manifest.artifact.size;
    let mut progress = agent
        .progress
        .as_ref()
        .map(|p| p.bytes(&format!("downloading {}", manifest.artifact.name), size));
    let mut shown = crate::dashboard::Throttle::new();
    let show = |done: u64| crate::dashboard::Progress {
        item: manifest.item.clone(),
        version: manifest.version.to_string(),
        stage: "downloading".into(),
        bytes_done: done,
        bytes_total: size,
        files_done: None,
        files_total: None,
        pid: std::process::id(),
        updated_at: ferry_manifests::wire::now(),
    };
    // With a rate cap, reads are small enough that each pause is short (a stop is heard).
    let cap = agent.cfg.max_download_rate;
    let mut buf = vec![0u8; cap.map_or(128 * 1024, |c| crate::delivery::read_size(c, 128 * 1024))];
    let (began, mut taken) = (Instant::now(), 0u64);
    // Slow retrieval: over each window of read_timeout_secs the transfer must average
    // min_download_rate, or it is abandoned for the next mirror (the part is kept).
    let window = Duration::from_secs(agent.cfg.read_timeout_secs);
    let (mut window_start, mut window_bytes) = (Instant::now(), 0u64);
    loop {
        let n = body.read(&mut buf).map_err(|e| Error::Unreachable {
            what: "server",
            url: url.to_string(),
            message: format!("download interrupted after {} bytes: {e}", p.have),
        })?;
        if n == 0 {
            return Ok(());
        }
        if agent.stop.load(std::sync::atomic::Ordering::SeqCst) {
            p.file.sync_all().map_err(io_err(p.path))?;
            return Err(DownloadError::Transient(Error::Interrupted));
        }
        if p.have + n as u64 > size {
            return Err(DownloadError::Tampered(Tampered::TooLong {
                name: manifest.artifact.name.clone(),
                size,
            }));
        }
        p.hasher.update(&buf[..n]);
        p.file.write_all(&buf[..n]).map_err(io_err(p.path))?;
        p.have += n as u64;
        if let Some(cap) = cap {
            taken += n as u64;
            std::thread::sleep(crate::delivery::pause(cap, taken, began.elapsed()));
        }
        window_bytes += n as u64;
        let elapsed = window_start.elapsed();
        if elapsed >= window {
            let rate = window_bytes as f64 / elapsed.as_secs_f64();
            if agent.cfg.min_download_rate > 0 && rate < agent.cfg.min_download_rate as f64 {
                p.file.sync_all().map_err(io_err(p.path))?;
                return Err(DownloadError::Transient(Error::Unreachable {
                    what: "server",
                    url: url.to_string(),
                    message: format!(
                        "too slow: {rate:.0} bytes/s over {} s, below min_download_rate {}; will resume",
                        window.as_secs(),
                        agent.cfg.min_download_rate
                    ),
                }));
            }
            (window_start, window_bytes) = (Instant::now(), 0);
        }
        if let Some(bar) = progress.as_mut() {
            bar.update(p.have);
        }
        if shown.due(p.have >= size) {
            crate::dashboard::record_progress(&agent.dir, &show(p.have));
        }
    }
}

fn restart(
    file: &File,
    part: &Path,
    url: &reqwest::Url,
    reason: &'static str,
) -> Result<DownloadError, DownloadError> {
    file.set_len(0).map_err(io_err(part))?;
    Ok(DownloadError::Transient(Error::DownloadRestarted {
        url: url.to_string(),
        reason,
    }))
}
