//! Fleet decisions as plain code over data, tested without I/O.

use ferry_manifests::wire::{Available, InstalledItem, ReleaseView};
use time::OffsetDateTime;

/// Path (relative to the server URL) of a release's signed envelope.
pub fn manifest_path(item: &str, version: &semver::Version) -> String {
    format!("api/v1/releases/{item}/{version}/manifest")
}

/// For each item the host reports, the newest release newer than what it has installed.
/// `releases` may be in any order.
pub fn available_for(installed: &[InstalledItem], releases: &[ReleaseView]) -> Vec<Available> {
    let mut out = Vec::new();
    for inst in installed {
        let newest = releases
            .iter()
            .filter(|r| r.item == inst.item)
            .filter(|r| inst.version.as_ref().is_none_or(|v| &r.version > v))
            .max_by(|a, b| a.version.cmp(&b.version));
        if let Some(r) = newest {
            out.push(Available {
                item: r.item.clone(),
                version: r.version.clone(),
                category: r.category.clone(),
                manifest_path: manifest_path(&r.item, &r.version),
                notes: r.notes.clone(),
                release_url: r.release_url.clone(),
                delta: None,
                mirrors: mirror_urls(r),
                peers: vec![],
            });
        }
    }
    out
}

/// A host is online while its last check-in is less than `offline_after_secs` old.
pub fn is_online(last_seen: &str, now: OffsetDateTime, offline_after_secs: u64) -> bool {
    OffsetDateTime::parse(last_seen, &time::format_description::well_known::Rfc3339)
        .map(|seen| (now - seen).whole_seconds() < offline_after_secs as i64)
        .unwrap_or(false)
}

/// How the server last heard from a device (this server instance, since it started).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contact {
    /// A long-poll is open now.
    Holding,
    /// The device closed its long-poll before the answer: stopped, killed or cut off.
    Dropped,
    /// Its long-poll ran out with nothing to do: a long-polling device is back at once.
    Waited,
    /// A check-in of a cycle (or a long-poll answered with work), a report, live output.
    Other,
}

/// A long-polling device whose long-poll ran out is back within this long, or offline.
pub const LONG_POLL_GRACE_SECS: i64 = 15;

/// The connectivity rule (docs/mqtt.md): online while a long-poll is open; offline as soon
/// as the device drops it, or when it is not back within [`LONG_POLL_GRACE_SECS`] of a
/// long-poll that ran out; otherwise online while the last check-in is newer than
/// `offline_after_secs` (the rhythm of a timer or cron device, two missed hourly runs by
/// default).
pub fn is_present(
    contact: Option<(Contact, OffsetDateTime)>,
    last_seen: &str,
    now: OffsetDateTime,
    offline_after_secs: u64,
) -> bool {
    match contact {
        Some((Contact::Holding, _)) => true,
        Some((Contact::Dropped, _)) => false,
        Some((Contact::Waited, at)) => (now - at).whole_seconds() < LONG_POLL_GRACE_SECS,
        Some((Contact::Other, _)) | None => is_online(last_seen, now, offline_after_secs),
    }
}

/// A host's tags and name: the operator's win. The tags are what campaigns target, so a
/// device's own tags count only where the server trusts devices to choose their campaigns
/// (`trust_device_tags`); otherwise a host the operator has not tagged has none.
pub fn effective_labels(
    device_tags: &[String],
    device_name: Option<&str>,
    operator_tags: Option<&[String]>,
    operator_name: Option<&str>,
    trust_device_tags: bool,
) -> (Vec<String>, Option<String>) {
    let tags = match operator_tags {
        Some(tags) => tags.to_vec(),
        None if trust_device_tags => device_tags.to_vec(),
        None => Vec::new(),
    };
    (tags, operator_name.or(device_name).map(str::to_string))
}

/// How long a cancelled job is still told to its host (a device offline for a while still
/// hears of it and drops it).
pub const CANCELLED_TOLD_FOR: time::Duration = time::Duration::days(7);

/// The wire timestamp after which a job cancelled is still told to its host, at `now`.
pub fn cancelled_told_since(now: OffsetDateTime) -> String {
    ferry_manifests::wire::timestamp(now - CANCELLED_TOLD_FOR)
}

/// Whether a delta from `from` to `to` of `item` may be built: only between two releases
/// the server published, upward. A device names `from` (what it says it has), so anything
/// else would let one device make the server try, and remember, deltas without end.
pub fn delta_wanted(
    releases: &[ReleaseView],
    item: &str,
    from: &semver::Version,
    to: &semver::Version,
) -> bool {
    from < to
        && releases
            .iter()
            .any(|r| r.item == item && &r.version == from)
}

/// The newest release of `item`.
pub fn newest<'a>(releases: &'a [ReleaseView], item: &str) -> Option<&'a ReleaseView> {
    releases
        .iter()
        .filter(|r| r.item == item)
        .max_by(|a, b| a.version.cmp(&b.version))
}

/// Most mirrors a release may list.
pub const MAX_MIRRORS: usize = 16;

/// Checks and normalises mirror base URLs (http or https, no trailing `/`).
pub fn mirror_bases(input: &[String]) -> Result<Vec<String>, String> {
    if input.len() > MAX_MIRRORS {
        return Err(format!(
            "at most {MAX_MIRRORS} mirrors per release, not {}",
            input.len()
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(input.len());
    for m in input {
        let base = m.trim_end_matches('/');
        let rest = base
            .strip_prefix("https://")
            .or_else(|| base.strip_prefix("http://"));
        let ok = rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/'))
            && base.len() <= 2048
            && !base.chars().any(|c| c.is_whitespace() || c.is_control())
            && !base.contains(['?', '#']);
        if !ok {
            return Err(format!(
                "mirror {m:?} must be an http:// or https:// base URL without query, such as https://cdn.example.com/ferry"
            ));
        }
        if !out.iter().any(|o| o == base) {
            out.push(base.to_string());
        }
    }
    Ok(out)
}

/// Where each mirror serves the artifact.
pub fn mirror_urls(release: &ReleaseView) -> Vec<String> {
    release
        .mirrors
        .iter()
        .map(|base| format!("{base}/{}", release.artifact_name))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::testing::release;

    #[test]
    fn deltas_are_built_only_upward_between_published_releases() {
        let releases = [
            release("web", "1.0.0"),
            release("web", "1.1.0"),
            release("db", "0.9.0"),
        ];
        let v = |s: &str| s.parse::<semver::Version>().unwrap();
        assert!(delta_wanted(&releases, "web", &v("1.0.0"), &v("1.1.0")));
        assert!(
            !delta_wanted(&releases, "web", &v("1.1.0"), &v("1.0.0")),
            "downward"
        );
        let claimed = format!("0.0.1-{}", "a".repeat(4096));
        assert!(
            !delta_wanted(&releases, "web", &v(&claimed), &v("1.1.0")),
            "never published"
        );
        assert!(
            !delta_wanted(&releases, "web", &v("0.9.0"), &v("1.1.0")),
            "another item's version"
        );
    }

    #[test]
    fn a_cancelled_job_is_told_for_a_week_from_the_given_clock() {
        let now = time::macros::datetime!(2026-03-10 12:00:00 UTC);
        assert_eq!(cancelled_told_since(now), "2026-03-03T12:00:00.000Z");
    }

    #[test]
    fn mirrors_are_http_base_urls_kept_in_order_once() {
        let got = mirror_bases(&[
            "https://cdn.example.com/ferry/".into(),
            "http://127.0.0.1:9000/bucket".into(),
            "https://cdn.example.com/ferry".into(),
        ])
        .unwrap();
        assert_eq!(
            got,
            [
                "https://cdn.example.com/ferry",
                "http://127.0.0.1:9000/bucket"
            ]
        );
        for bad in [
            "ftp://x/y",
            "https://",
            "cdn.example.com",
            "https://x/a b",
            "https://x/?a=1",
        ] {
            assert!(mirror_bases(&[bad.into()]).is_err(), "{bad}");
        }
        assert!(mirror_bases(&vec!["https://x".to_string(); MAX_MIRRORS + 1]).is_err());
        let mut r = release("web", "1.0.0");
        r.artifact_name = "web-1.0.0.tar.gz".into();
        r.mirrors = got;
        assert_eq!(
            mirror_urls(&r),
            [
                "https://cdn.example.com/ferry/web-1.0.0.tar.gz",
                "http://127.0.0.1:9000/bucket/web-1.0.0.tar.gz"
            ]
        );
    }

    #[test]
    fn the_newest_newer_release_is_available_in_semver_order() {
        let releases = [
            release("web", "1.9.0"),
            release("web", "1.10.0"),
            release("web", "1.0.0"),
            release("api", "2.0.0"),
        ];
        let installed = [
            InstalledItem {
                item: "web".into(),
                version: Some("1.0.0".parse().unwrap()),
            },
            InstalledItem {
                item: "db".into(),
                version: None,
            },
        ];
        let av = available_for(&installed, &releases);
        assert_eq!(av.len(), 1);
        assert_eq!(av[0].version.to_string(), "1.10.0");
        assert_eq!(av[0].manifest_path, "api/v1/releases/web/1.10.0/manifest");
        let up_to_date = [InstalledItem {
            item: "web".into(),
            version: Some("1.10.0".parse().unwrap()),
        }];
        assert!(available_for(&up_to_date, &releases).is_empty());
    }

    #[test]
    fn the_operators_labels_win_and_a_devices_tags_count_only_when_trusted() {
        let device = vec!["prod".to_string()];
        let operator = vec!["prod".to_string(), "eu".to_string()];
        assert_eq!(
            effective_labels(&device, Some("kiosk"), None, None, false),
            (vec![], Some("kiosk".into())),
            "a device cannot tag itself into a campaign"
        );
        assert_eq!(
            effective_labels(&device, Some("kiosk"), None, None, true),
            (device.clone(), Some("kiosk".into()))
        );
        for trusted in [false, true] {
            assert_eq!(
                effective_labels(
                    &device,
                    Some("kiosk"),
                    Some(&operator),
                    Some("Front desk"),
                    trusted
                ),
                (operator.clone(), Some("Front desk".into()))
            );
        }
    }

    #[test]
    fn online_means_seen_within_the_window() {
        let now = OffsetDateTime::now_utc();
        let fmt = |t: OffsetDateTime| {
            t.format(&time::format_description::well_known::Rfc3339)
                .unwrap()
        };
        assert!(is_online(&fmt(now - time::Duration::seconds(10)), now, 60));
        assert!(!is_online(&fmt(now - time::Duration::seconds(61)), now, 60));
        assert!(!is_online("garbage", now, 60));
    }

    #[test]
    fn a_long_polling_device_is_online_until_it_drops_or_misses_its_next_poll() {
        let now = OffsetDateTime::now_utc();
        let fmt = |t: OffsetDateTime| {
            t.format(&time::format_description::well_known::Rfc3339)
                .unwrap()
        };
        let secs = time::Duration::seconds;
        let recent = fmt(now - secs(5));
        let long_ago = fmt(now - secs(4000));
        // Holding: online, however old the last check-in.
        assert!(is_present(
            Some((Contact::Holding, now - secs(600))),
            &long_ago,
            now,
            60
        ));
        // Dropped: offline at once, however recent.
        assert!(!is_present(
            Some((Contact::Dropped, now)),
            &recent,
            now,
            3600
        ));
        // Ran out: back within the grace, or offline long before offline_after_secs.
        assert!(is_present(
            Some((Contact::Waited, now - secs(3))),
            &recent,
            now,
            3600
        ));
        assert!(!is_present(
            Some((Contact::Waited, now - secs(LONG_POLL_GRACE_SECS))),
            &recent,
            now,
            3600
        ));
        // A timer device: its rhythm is offline_after_secs.
        assert!(is_present(
            Some((Contact::Other, now - secs(5))),
            &recent,
            now,
            7260
        ));
        assert!(!is_present(None, &long_ago, now, 3600));
        assert!(is_present(None, &long_ago, now, 7260));
    }
}
