//! Software installed by other means than Ferry, as the configured `[[sources]]` find it
//! (docs/sources.md), with the upgrade each source offers, reported to the server so
//! fleet-wide questions ("which hosts have openssl older than 3.0.15", "which hosts have
//! security updates pending") have an answer. A check-in carries only the list's digest; the
//! list itself goes when the server's copy differs.

pub mod apt;
pub mod command;
pub mod containers;
pub mod forge;

use std::path::Path;
use std::time::{Duration, SystemTime};

use ferry_manifests::wire::{InventoryPackage, MAX_INVENTORY};

use crate::config::SourceConfig;
use crate::error::Error;

/// Longest an `apt-get update` may run before it is killed (the old lists are used).
const REFRESH_TIMEOUT: Duration = Duration::from_secs(600);

/// What every configured source finds, sorted (the digest's order); `None` without sources.
/// `manual`: a person asked for this check, so each source refreshes what it knows first.
/// `items`: the versions of Ferry's items installed here (a forge source may follow one).
pub fn collect(
    sources: &[SourceConfig],
    state_dir: &Path,
    manual: bool,
    items: &std::collections::BTreeMap<String, String>,
) -> Result<Option<Vec<InventoryPackage>>, Error> {
    if sources.is_empty() {
        return Ok(None);
    }
    let mut all = Vec::new();
    for source in sources {
        match source {
            SourceConfig::Apt(apt) => {
                let stamp = state_dir.join("apt-refreshed");
                let last = std::fs::metadata(&stamp).and_then(|m| m.modified()).ok();
                if refresh_due(last, SystemTime::now(), apt.refresh_interval_secs, manual) {
                    refresh_apt(&stamp);
                }
                all.extend(read_apt_cached(apt, &state_dir.join("apt-inventory.json"))?)
            }
            SourceConfig::Command(c) => all.extend(command::read(c)?),
            SourceConfig::Containers(c) => all.extend(containers::read(c, state_dir, manual)?),
            SourceConfig::Forge(f) => all.extend(forge::read(f, state_dir, items, manual)?),
        }
    }
    all.sort();
    all.dedup();
    all.truncate(MAX_INVENTORY);
    Ok(Some(all))
}

/// What the apt source read last, with the fingerprint of the files it read.
#[derive(serde::Serialize, serde::Deserialize)]
struct AptCache {
    fingerprint: String,
    packages: Vec<InventoryPackage>,
}

/// The apt source's packages, read again only when the status database or a list changed:
/// a full set of Debian lists is tens of megabytes (a quarter of a second on a fast machine),
/// the cache a few hundred kilobytes. A cache that cannot be read or written is ignored.
fn read_apt_cached(
    source: &crate::config::AptSource,
    cache: &Path,
) -> Result<Vec<InventoryPackage>, Error> {
    let fingerprint = apt::fingerprint(source).ok();
    if let Some(fp) = &fingerprint {
        let cached = std::fs::read(cache)
            .ok()
            .and_then(|b| serde_json::from_slice::<AptCache>(&b).ok())
            .filter(|c| &c.fingerprint == fp);
        if let Some(c) = cached {
            return Ok(c.packages);
        }
    }
    let packages = apt::read(source)?;
    if let Some(fingerprint) = fingerprint {
        let entry = AptCache {
            fingerprint,
            packages,
        };
        let tmp = cache.with_extension("json.tmp");
        let written = serde_json::to_vec(&entry)
            .map_err(std::io::Error::other)
            .and_then(|bytes| std::fs::write(&tmp, bytes))
            .and_then(|()| std::fs::rename(&tmp, cache));
        if let Err(e) = written {
            tracing::debug!(
                "cannot keep the apt source's list in {} ({e})",
                cache.display()
            );
        }
        return Ok(entry.packages);
    }
    Ok(packages)
}

/// Whether a source's lists are refreshed now: on a person's check, or once `interval_secs`
/// have passed since the last refresh (never when 0: the host refreshes them itself).
pub fn refresh_due(
    last: Option<SystemTime>,
    now: SystemTime,
    interval_secs: u64,
    manual: bool,
) -> bool {
    if interval_secs == 0 {
        return false;
    }
    manual
        || last.is_none_or(|last| {
            // A stamp in the future (the clock went back) counts as due.
            now.duration_since(last)
                .map_or(true, |age| age >= Duration::from_secs(interval_secs))
        })
}

/// `apt-get update`, bounded in time; a failure is logged and the lists it left are used.
/// The stamp records the attempt, so a broken mirror is not retried at every run.
fn refresh_apt(stamp: &Path) {
    tracing::info!("refreshing APT's package lists (apt-get update)");
    let result = run_bounded(
        std::process::Command::new("apt-get").args(["update", "-q"]),
        REFRESH_TIMEOUT,
        64 * 1024,
    );
    match result {
        Ok(out) if out.ok => tracing::debug!(output = %out.text, "apt-get update done"),
        Ok(out) => tracing::warn!(
            "apt-get update failed ({}); the upgrades shown come from the lists it had: {}",
            out.status,
            out.text
                .lines()
                .rev()
                .take(3)
                .collect::<Vec<_>>()
                .join(" / ")
        ),
        Err(e) => tracing::warn!("cannot run apt-get update ({e}); the lists it had are used"),
    }
    if let Err(e) = std::fs::write(stamp, b"") {
        tracing::warn!("cannot record the refresh in {} ({e})", stamp.display());
    }
}

/// `'text'` for `/bin/sh`, a single quote inside written `'\''`.
pub fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// How a bounded command ended.
pub struct Ran {
    pub ok: bool,
    /// The exit status, or why it was killed.
    pub status: String,
    /// stdout and stderr together: the last `max_bytes` of it, or all of it when it fits.
    pub text: String,
    /// How many bytes it printed.
    pub len: u64,
}

/// Runs `cmd` with stdin closed and its output in a temporary file (no pipe to fill), in its
/// own process group, killed with the group after `timeout`; keeps the last `max_bytes` of
/// what it printed in memory.
pub fn run_bounded(
    cmd: &mut std::process::Command,
    timeout: Duration,
    max_bytes: u64,
) -> std::io::Result<Ran> {
    use std::io::{Read, Seek};
    use std::os::unix::process::CommandExt;
    let mut out = tempfile::tempfile()?;
    cmd.stdin(std::process::Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out.try_clone()?)
        .process_group(0);
    let mut child = cmd.spawn()?;
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Ok(status);
        }
        if started.elapsed() >= timeout {
            let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
            let _ = child.wait();
            break Err(format!(
                "timed out after {} s and was killed",
                timeout.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let len = out.seek(std::io::SeekFrom::End(0))?;
    out.seek(std::io::SeekFrom::Start(len.saturating_sub(max_bytes)))?;
    let mut bytes = Vec::new();
    out.read_to_end(&mut bytes)?;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    Ok(match status {
        Ok(s) => Ran {
            ok: s.success(),
            status: s.to_string(),
            text,
            len,
        },
        Err(why) => Ran {
            ok: false,
            status: why,
            text,
            len,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AptSource;

    fn source(dir: &Path) -> SourceConfig {
        SourceConfig::Apt(AptSource {
            dpkg_status: dir.join("status"),
            lists_dir: dir.join("lists"),
            refresh_interval_secs: 0,
        })
    }

    #[test]
    fn the_digest_changes_with_the_list_and_only_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("status");
        std::fs::write(&path, apt::tests::STATUS).unwrap();
        let sources = [source(dir.path())];
        let a = collect(&sources, dir.path(), false, &Default::default())
            .unwrap()
            .unwrap();
        let digest = ferry_manifests::wire::inventory_digest(&a);
        let again = collect(&sources, dir.path(), false, &Default::default())
            .unwrap()
            .unwrap();
        assert_eq!(digest, ferry_manifests::wire::inventory_digest(&again));
        std::fs::write(
            &path,
            apt::tests::STATUS.replace("3.0.15-1~deb12u1", "3.0.16-1~deb12u1"),
        )
        .unwrap();
        let b = collect(&sources, dir.path(), false, &Default::default())
            .unwrap()
            .unwrap();
        assert_ne!(digest, ferry_manifests::wire::inventory_digest(&b));
        assert_eq!(
            collect(&[], dir.path(), false, &Default::default()).unwrap(),
            None
        );
        std::fs::remove_file(&path).unwrap();
        let missing = collect(&sources, dir.path(), false, &Default::default())
            .unwrap_err()
            .to_string();
        assert!(missing.contains("status"), "{missing}");
    }

    #[test]
    fn the_apt_source_is_read_again_only_when_its_files_change() {
        let dir = tempfile::tempdir().unwrap();
        let status = dir.path().join("status");
        std::fs::write(&status, apt::tests::STATUS).unwrap();
        let SourceConfig::Apt(source) = source(dir.path()) else {
            unreachable!()
        };
        let cache = dir.path().join("apt-inventory.json");
        let first = read_apt_cached(&source, &cache).unwrap();
        assert!(first.iter().any(|p| p.name == "openssl"));
        // Unchanged files: the cache answers (marked here so it shows).
        let mut kept: AptCache = serde_json::from_slice(&std::fs::read(&cache).unwrap()).unwrap();
        kept.packages.truncate(1);
        std::fs::write(&cache, serde_json::to_vec(&kept).unwrap()).unwrap();
        assert_eq!(read_apt_cached(&source, &cache).unwrap().len(), 1);
        // dpkg replaces its status file: read again.
        let new = dir.path().join("status.new");
        std::fs::write(
            &new,
            apt::tests::STATUS.replace("Package: openssl", "Package: libssl3"),
        )
        .unwrap();
        std::fs::rename(&new, &status).unwrap();
        let again = read_apt_cached(&source, &cache).unwrap();
        assert!(again.iter().any(|p| p.name == "libssl3"), "{again:?}");
        // A new list: read again.
        std::fs::create_dir_all(dir.path().join("lists")).unwrap();
        std::fs::write(
            dir.path()
                .join("lists/x_dists_y_main_binary-amd64_Packages"),
            "Package: libssl3\nVersion: 9\nArchitecture: amd64\n",
        )
        .unwrap();
        let upgraded = read_apt_cached(&source, &cache).unwrap();
        let libssl = upgraded.iter().find(|p| p.name == "libssl3").unwrap();
        assert_eq!(libssl.latest.as_deref(), Some("9"));
    }

    #[test]
    fn lists_are_refreshed_on_a_manual_check_and_after_the_interval() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let ago = |s: u64| Some(now - Duration::from_secs(s));
        assert!(refresh_due(None, now, 86_400, false));
        assert!(!refresh_due(ago(3_600), now, 86_400, false));
        assert!(refresh_due(ago(3_600), now, 86_400, true));
        assert!(refresh_due(ago(90_000), now, 86_400, false));
        assert!(refresh_due(
            Some(now + Duration::from_secs(60)),
            now,
            86_400,
            false
        ));
        // 0: the host refreshes its lists itself, even on a manual check.
        assert!(!refresh_due(None, now, 0, true));
    }

    #[test]
    fn a_bounded_command_is_killed_at_its_timeout_with_what_it_printed() {
        let started = std::time::Instant::now();
        let ran = run_bounded(
            std::process::Command::new("sh").args(["-c", "echo begun; sleep 30 & wait"]),
            Duration::from_millis(300),
            1024,
        )
        .unwrap();
        assert!(!ran.ok);
        assert!(ran.status.contains("timed out"), "{}", ran.status);
        assert_eq!(ran.text, "begun\n");
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
