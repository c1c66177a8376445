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

/// The labels an operator sees: the operator's tags and name win over the device's own.
pub fn effective_labels(
    device_tags: &[String],
    device_name: Option<&str>,
    operator_tags: Option<&[String]>,
    operator_name: Option<&str>,
) -> (Vec<String>, Option<String>) {
    (
        operator_tags.unwrap_or(device_tags).to_vec(),
        operator_name.or(device_name).map(str::to_string),
    )
}

/// The wire timestamp of `days` days ago.
pub fn days_ago(days: i64) -> String {
    ferry_manifests::wire::timestamp(OffsetDateTime::now_utc() - time::Duration::days(days))
}

/// The newest release of `item`.
pub fn newest<'a>(releases: &'a [ReleaseView], item: &str) -> Option<&'a ReleaseView> {
    releases
        .iter()
        .filter(|r| r.item == item)
        .max_by(|a, b| a.version.cmp(&b.version))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(item: &str, version: &str) -> ReleaseView {
        ReleaseView {
            item: item.into(),
            version: version.parse().unwrap(),
            category: "feature".into(),
            released_at: String::new(),
            expires_at: String::new(),
            notes: String::new(),
            release_url: None,
            layout: "symlink".into(),
            artifact_name: String::new(),
            artifact_size: 0,
            artifact_sha256: String::new(),
            signed_by: vec![],
            published_at: String::new(),
        }
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
    fn the_operators_labels_win_over_the_devices() {
        let device = vec!["lab".to_string()];
        let operator = vec!["prod".to_string(), "eu".to_string()];
        assert_eq!(
            effective_labels(&device, Some("kiosk"), None, None),
            (device.clone(), Some("kiosk".into()))
        );
        assert_eq!(
            effective_labels(&device, Some("kiosk"), Some(&operator), Some("Front desk")),
            (operator, Some("Front desk".into()))
        );
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
}
