//! The `forge` source: an upstream project's newest release on GitHub, Gitea or Forgejo
//! (`GET /repos/OWNER/NAME/releases/latest`, the same call and fields on all three), against
//! the version installed here, read from a command or from a Ferry item (docs/sources.md).
//! What is reported is news of upstream: Ferry never installs it from the forge.
//!
//! Reading the forge's answer and a command's version are plain functions; `read` is the I/O.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

use ferry_manifests::manifest::Category;
use ferry_manifests::wire::{InventoryPackage, UpstreamRelease, MAX_RELEASE_SUMMARY};

use crate::config::{ForgeInstalled, ForgeSource};
use crate::error::Error;

/// The name the source's software carries in the fleet.
pub const SOURCE: &str = "forge";

/// How long the forge may take to answer.
const FORGE_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the `installed` command may run.
const INSTALLED_TIMEOUT: Duration = Duration::from_secs(30);

/// A forge's newest release, as kept between refreshes (`forge-NAME.json`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Latest {
    /// The tag, without a leading `v`.
    pub version: String,
    pub release: UpstreamRelease,
}

/// Reads the forge's `releases/latest` answer: the tag (a leading `v` dropped), the release's
/// page, when it was published, and the first [`MAX_RELEASE_SUMMARY`] characters of its notes.
pub fn parse_latest(body: &serde_json::Value) -> Result<Latest, String> {
    let tag = body["tag_name"]
        .as_str()
        .filter(|t| !t.is_empty())
        .ok_or("the answer has no tag_name")?;
    let url = body["html_url"]
        .as_str()
        .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
        .ok_or("the answer has no html_url")?;
    let summary: String = body["body"]
        .as_str()
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_control() || matches!(c, '\n' | '\t'))
        .take(MAX_RELEASE_SUMMARY)
        .collect();
    Ok(Latest {
        version: strip_v(tag).to_string(),
        release: UpstreamRelease {
            url: url.chars().take(2048).collect(),
            published_at: body["published_at"]
                .as_str()
                .map(|t| t.chars().take(64).collect()),
            summary: summary.trim_end().to_string(),
        },
    })
}

fn strip_v(tag: &str) -> &str {
    tag.strip_prefix('v')
        .filter(|r| r.starts_with(|c: char| c.is_ascii_digit()))
        .unwrap_or(tag)
}

/// The first word of a command's output that looks like a version (`tool 1.4.2 (abc)` →
/// `1.4.2`, `v2.0` → `2.0`).
pub fn version_in(output: &str) -> Option<String> {
    output
        .split(|c: char| c.is_whitespace() || c == ',' || c == '(' || c == ')')
        .map(strip_v)
        .find(|w| w.starts_with(|c: char| c.is_ascii_digit()) && w.contains('.'))
        .map(|w| w.trim_end_matches(['.', ':', ';']).to_string())
}

/// The software as inventory: installed here, and the forge's release when it is newer.
pub fn package(name: &str, installed: &str, latest: Option<&Latest>) -> InventoryPackage {
    let newer = latest.filter(|l| {
        deb_version::compare_versions(&l.version, installed) == std::cmp::Ordering::Greater
    });
    InventoryPackage {
        source: SOURCE.into(),
        name: name.to_string(),
        version: installed.to_string(),
        latest: newer.map(|l| l.version.clone()),
        category: newer.map(|_| Category::Unknown),
        release: newer.map(|l| l.release.clone()),
    }
}

/// The source's software, or nothing when it is not installed here (the command fails or the
/// item has no version); the forge is asked when due, else its last answer is used.
pub fn read(
    source: &ForgeSource,
    state_dir: &Path,
    items: &BTreeMap<String, String>,
    manual: bool,
) -> Result<Option<InventoryPackage>, Error> {
    let failed = |why: String| Error::Source {
        name: format!("forge {}", source.name),
        why,
    };
    let installed = match &source.installed {
        ForgeInstalled::Item(item) => items.get(item).cloned(),
        ForgeInstalled::Command(cmd) => {
            let ran = super::run_bounded(
                std::process::Command::new("/bin/sh").args(["-c", cmd]),
                INSTALLED_TIMEOUT,
                64 * 1024,
            )
            .map_err(|e| failed(format!("cannot run `installed`: {e}")))?;
            if !ran.ok {
                return Err(failed(format!(
                    "`installed` {}: {}",
                    ran.status,
                    ran.text.trim()
                )));
            }
            Some(version_in(&ran.text).ok_or_else(|| {
                failed(format!(
                    "`installed` printed no version: {:?}",
                    ran.text.chars().take(200).collect::<String>()
                ))
            })?)
        }
    };
    let Some(installed) = installed else {
        return Ok(None);
    };
    let cache = state_dir.join(format!("forge-{}.json", hex::encode(&source.name)));
    let known: Option<Latest> = std::fs::read(&cache)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let last = std::fs::metadata(&cache).and_then(|m| m.modified()).ok();
    let latest = if super::refresh_due(
        last,
        SystemTime::now(),
        source.refresh_interval_secs,
        manual,
    ) || known.is_none()
    {
        match ask(source) {
            Ok(l) => {
                if let Ok(bytes) = serde_json::to_vec(&l) {
                    let _ = std::fs::write(&cache, bytes);
                }
                Some(l)
            }
            Err(why) => {
                // Reported, and the last answer stands: a forge that is down or a repository
                // renamed says so in the log and the status, and loses nothing.
                tracing::warn!(source = %source.name, "{why}");
                known
            }
        }
    } else {
        known
    };
    Ok(Some(package(&source.name, &installed, latest.as_ref())))
}

/// `GET API/repos/OWNER/NAME/releases/latest`.
fn ask(source: &ForgeSource) -> Result<Latest, String> {
    let url = format!("{}/repos/{}/releases/latest", source.api_base, source.repo);
    let http = reqwest::blocking::Client::builder()
        .timeout(FORGE_TIMEOUT)
        .user_agent(concat!("ferry-agent/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| e.to_string())?;
    let mut req = http.get(&url).header(
        reqwest::header::ACCEPT,
        if source.github {
            "application/vnd.github+json"
        } else {
            "application/json"
        },
    );
    if let Some(path) = &source.token_file {
        let token = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read token_file {}: {e}", path.display()))?;
        req = req.header(
            reqwest::header::AUTHORIZATION,
            format!("token {}", token.trim()),
        );
    }
    let resp = req.send().map_err(|e| format!("{url}: {e}"))?;
    match resp.status().as_u16() {
        200 => {}
        404 => {
            return Err(format!(
                "{url}: 404: {} has no published release, or no such repository (check `repo` and `url`)",
                source.repo
            ))
        }
        401 | 403 => {
            return Err(format!(
                "{url}: {}: the forge refused (a private repository needs `token_file`; GitHub limits unauthenticated calls to 60 an hour)",
                resp.status()
            ))
        }
        _ => return Err(format!("{url}: {}", resp.status())),
    }
    let body: serde_json::Value = resp
        .json()
        .map_err(|e| format!("{url}: not the forge's JSON: {e}"))?;
    parse_latest(&body).map_err(|why| format!("{url}: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_release_is_read_with_its_page_date_and_the_start_of_its_notes() {
        let body = serde_json::json!({
            "tag_name": "v2.1.0",
            "html_url": "https://git.example.org/acme/tool/releases/tag/v2.1.0",
            "published_at": "2026-11-30T12:00:00Z",
            "body": format!("## Fixes\n\n{}", "x".repeat(1000)),
        });
        let l = parse_latest(&body).unwrap();
        assert_eq!(l.version, "2.1.0");
        assert_eq!(
            l.release.published_at.as_deref(),
            Some("2026-11-30T12:00:00Z")
        );
        assert!(l.release.summary.starts_with("## Fixes\n\n"));
        assert_eq!(l.release.summary.chars().count(), MAX_RELEASE_SUMMARY);
        assert!(parse_latest(&serde_json::json!({"message": "Not Found"})).is_err());
        let odd = serde_json::json!({"tag_name": "version-2", "html_url": "https://x/y"});
        assert_eq!(parse_latest(&odd).unwrap().version, "version-2");
    }

    #[test]
    fn the_installed_version_is_the_first_version_like_word() {
        assert_eq!(version_in("tool 1.4.2 (abc)\n").as_deref(), Some("1.4.2"));
        assert_eq!(version_in("v2.0\n").as_deref(), Some("2.0"));
        assert_eq!(
            version_in("Zigbee2MQTT version 1.40.1.").as_deref(),
            Some("1.40.1")
        );
        assert_eq!(version_in("no version here"), None);
    }

    #[test]
    fn only_a_newer_release_is_an_upgrade_and_carries_its_notes() {
        let l = Latest {
            version: "1.10.0".into(),
            release: UpstreamRelease {
                url: "https://x/r".into(),
                published_at: None,
                summary: "notes".into(),
            },
        };
        let p = package("tool", "1.9.2", Some(&l));
        assert_eq!(p.latest.as_deref(), Some("1.10.0"));
        assert_eq!(p.release.as_ref().unwrap().summary, "notes");
        assert_eq!(p.category, Some(Category::Unknown));
        let same = package("tool", "1.10.0", Some(&l));
        assert_eq!(
            (same.latest, same.release, same.category),
            (None, None, None)
        );
        assert_eq!(package("tool", "1.0", None).latest, None);
    }
}
