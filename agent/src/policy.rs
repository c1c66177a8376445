//! Decisions about whether a verified release may be installed on this device. Plain code over
//! data, tested without I/O.

use std::collections::BTreeMap;

use ferry_manifests::wire::{Available, Job};
use ferry_manifests::Manifest;
use semver::Version;

use crate::state::ItemState;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Install it.
    Install,
    /// This exact version is already in place; nothing to do.
    AlreadyInstalled,
}

/// Why a verified release is refused on this device.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("manifest is for item {found:?}, but it was offered as {expected:?}")]
    WrongItem { expected: String, found: String },
    #[error("manifest is for version {found}, but it was offered as {expected}")]
    WrongVersion { expected: Version, found: Version },
    #[error("release is for device classes {compatible:?}; this device is {device:?}")]
    Incompatible {
        compatible: Vec<String>,
        device: Option<String>,
    },
    #[error("release is a {0} bundle for devices that update through a hawkBit client; the Ferry agent installs tarball releases (publish one built with --from)")]
    Bundle(&'static str),
    #[error("release {offered} is older than {highest}, the highest version installed here; rollback refused (sign a manifest with allow_downgrade to permit it)")]
    Downgrade { offered: Version, highest: Version },
}

pub fn admit(
    manifest: &Manifest,
    offered_item: &str,
    offered_version: &Version,
    item: &ItemState,
    device_class: Option<&str>,
) -> Result<Admission, Refusal> {
    if manifest.item != offered_item {
        return Err(Refusal::WrongItem {
            expected: offered_item.to_string(),
            found: manifest.item.clone(),
        });
    }
    if &manifest.version != offered_version {
        return Err(Refusal::WrongVersion {
            expected: offered_version.clone(),
            found: manifest.version.clone(),
        });
    }
    if let Some(bundle) = manifest.artifact.bundle {
        return Err(Refusal::Bundle(bundle.as_str()));
    }
    if !manifest.compatible.is_empty()
        && !device_class.is_some_and(|c| manifest.compatible.iter().any(|m| m == c))
    {
        return Err(Refusal::Incompatible {
            compatible: manifest.compatible.clone(),
            device: device_class.map(str::to_string),
        });
    }
    if item.installed.as_ref() == Some(&manifest.version) {
        return Ok(Admission::AlreadyInstalled);
    }
    if let Some(highest) = &item.highest {
        if &manifest.version < highest && !manifest.allow_downgrade {
            return Err(Refusal::Downgrade {
                offered: manifest.version.clone(),
                highest: highest.clone(),
            });
        }
    }
    Ok(Admission::Install)
}

/// Whether an offered version is worth installing without being asked (auto_install).
pub fn is_upgrade(offered: &Version, item: &ItemState) -> bool {
    if item.held_back(offered) {
        return false;
    }
    let floor = item.highest.as_ref().or(item.installed.as_ref());
    floor.is_none_or(|v| offered > v)
}

/// What a person's explicit install (`--running-mode=install` with nothing downloaded) takes
/// up for an item: its offered upgrade, a version that failed here included (a person asking
/// is the retry), where no one else approves installs (`auto_install`, or no server, whose
/// jobs would be the approval). `None` when there is nothing to take.
pub fn explicit_install<'a>(
    offered: Option<&'a Available>,
    item: &ItemState,
    auto_install: bool,
    has_server: bool,
) -> Option<&'a Available> {
    let offered = offered?;
    if item.pending.is_some() || (has_server && !auto_install) {
        return None;
    }
    let mut retry = item.clone();
    retry.release_hold(&offered.version);
    is_upgrade(&offered.version, &retry).then_some(offered)
}

/// A release the check stage should verify and record as pending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub item: String,
    pub version: Version,
    /// The operator's job, or `None` for an upgrade taken by `auto_install`.
    pub job_id: Option<String>,
    /// Where the server serves its signed manifest.
    pub manifest_path: String,
    /// The operator's job runs its hooks in their terminal.
    pub interactive: bool,
    /// A delta from the installed version, if the server has one.
    pub delta: Option<ferry_manifests::wire::DeltaOffer>,
    /// More places serving the artifact, offered by the server.
    pub mirrors: Vec<String>,
    /// It may download over a metered link.
    pub metered_allowed: bool,
    /// Devices at this device's site that hold the artifact, nearest first.
    pub peers: Vec<String>,
}

/// What to install after a check-in: every job, in the server's order; then, with
/// `auto_install`, each configured item's offered upgrade that has no job and nothing pending.
pub fn wanted(
    jobs: &[Job],
    available: &[Available],
    auto_install: bool,
    configured: &[String],
    states: &BTreeMap<String, ItemState>,
) -> Vec<Wanted> {
    let mut out: Vec<Wanted> = jobs
        .iter()
        .map(|j| Wanted {
            item: j.item.clone(),
            version: j.version.clone(),
            job_id: Some(j.job_id.clone()),
            manifest_path: j.manifest_path.clone(),
            interactive: j.interactive,
            delta: j.delta.clone(),
            mirrors: j.mirrors.clone(),
            metered_allowed: j.metered_allowed,
            peers: j.peers.clone(),
        })
        .collect();
    if !auto_install {
        return out;
    }
    let none = ItemState::default();
    for a in available {
        let st = states.get(&a.item).unwrap_or(&none);
        if configured.contains(&a.item)
            && !out.iter().any(|w| w.item == a.item)
            && st.pending.is_none()
            && is_upgrade(&a.version, st)
        {
            out.push(Wanted {
                item: a.item.clone(),
                version: a.version.clone(),
                job_id: None,
                manifest_path: a.manifest_path.clone(),
                interactive: false,
                delta: a.delta.clone(),
                mirrors: a.mirrors.clone(),
                metered_allowed: false,
                peers: a.peers.clone(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(version: &str) -> Manifest {
        serde_json::from_str::<Manifest>(include_str!(
            "../../manifests/examples/web-1.1.0.payload.json"
        ))
        .map(|mut m| {
            m.version = version.parse().unwrap();
            m
        })
        .unwrap()
    }

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    fn installed(installed: &str, highest: &str) -> ItemState {
        ItemState {
            installed: Some(v(installed)),
            highest: Some(v(highest)),
            ..Default::default()
        }
    }

    #[test]
    fn upgrades_install_and_the_same_version_is_a_no_op() {
        let m = manifest("1.1.0");
        let st = installed("1.0.0", "1.0.0");
        assert_eq!(
            admit(&m, "web", &v("1.1.0"), &st, None),
            Ok(Admission::Install)
        );
        let st = installed("1.1.0", "1.1.0");
        assert_eq!(
            admit(&m, "web", &v("1.1.0"), &st, None),
            Ok(Admission::AlreadyInstalled)
        );
    }

    #[test]
    fn older_than_the_highest_ever_installed_is_refused_unless_signed_to_allow() {
        let mut m = manifest("1.0.0");
        // Rolled back by hand to 1.0.0 after 1.1.0: still refuses 0.9-like downgrades below 1.1.0.
        let st = installed("1.1.0", "1.1.0");
        assert!(matches!(
            admit(&m, "web", &v("1.0.0"), &st, None),
            Err(Refusal::Downgrade { .. })
        ));
        m.allow_downgrade = true;
        assert_eq!(
            admit(&m, "web", &v("1.0.0"), &st, None),
            Ok(Admission::Install)
        );
    }

    #[test]
    fn substitution_and_wrong_device_class_are_refused() {
        let mut m = manifest("1.1.0");
        let st = ItemState::default();
        assert!(matches!(
            admit(&m, "api", &v("1.1.0"), &st, None),
            Err(Refusal::WrongItem { .. })
        ));
        assert!(matches!(
            admit(&m, "web", &v("1.2.0"), &st, None),
            Err(Refusal::WrongVersion { .. })
        ));
        m.artifact.bundle = Some(ferry_manifests::manifest::Bundle::Swupdate);
        assert!(matches!(
            admit(&m, "web", &m.version.clone(), &ItemState::default(), None),
            Err(Refusal::Bundle("swupdate"))
        ));
        m.artifact.bundle = None;
        m.compatible = vec!["rpi4".into()];
        assert!(admit(&m, "web", &v("1.1.0"), &st, Some("rpi4")).is_ok());
        assert!(matches!(
            admit(&m, "web", &v("1.1.0"), &st, Some("x86")),
            Err(Refusal::Incompatible { .. })
        ));
        assert!(admit(&m, "web", &v("1.1.0"), &st, None).is_err());
    }

    #[test]
    fn auto_install_only_takes_upgrades() {
        assert!(is_upgrade(&v("1.0.0"), &ItemState::default()));
        assert!(is_upgrade(&v("1.1.0"), &installed("1.0.0", "1.0.0")));
        assert!(!is_upgrade(&v("1.0.0"), &installed("1.0.0", "1.0.0")));
        assert!(!is_upgrade(&v("1.0.5"), &installed("1.0.0", "1.1.0")));
        let mut failed = installed("1.0.0", "1.0.0");
        failed.last_failed = Some(v("1.1.0"));
        assert!(
            !is_upgrade(&v("1.1.0"), &failed),
            "a version that failed here is not retried"
        );
        assert!(is_upgrade(&v("1.2.0"), &failed));
    }

    #[test]
    fn jobs_come_first_and_auto_install_adds_upgrades_without_a_job() {
        let job = |item: &str, version: &str| Job {
            job_id: format!("job-{item}"),
            item: item.into(),
            version: v(version),
            manifest_path: format!("m/{item}"),
            interactive: false,
            delta: None,
            mirrors: vec![],
            rollback: None,
            metered_allowed: false,
            peers: vec![],
        };
        let offer = |item: &str, version: &str| Available {
            item: item.into(),
            version: v(version),
            category: "feature".into(),
            manifest_path: format!("m/{item}"),
            notes: String::new(),
            release_url: None,
            delta: None,
            mirrors: vec![],
            peers: vec![],
        };
        let configured = vec!["web".to_string(), "db".to_string(), "api".to_string()];
        let mut states = BTreeMap::new();
        states.insert("web".to_string(), installed("1.0.0", "1.0.0"));
        states.insert("db".to_string(), installed("2.0.0", "2.0.0"));
        let jobs = vec![job("web", "1.1.0")];
        let available = vec![
            offer("web", "1.2.0"),   // has a job: the job wins
            offer("db", "1.9.0"),    // older than installed: not an upgrade
            offer("api", "0.1.0"),   // nothing installed yet: auto_install takes it
            offer("other", "9.0.0"), // not configured here
        ];
        let manual = wanted(&jobs, &available, false, &configured, &states);
        assert_eq!(manual.len(), 1);
        assert_eq!(manual[0].job_id.as_deref(), Some("job-web"));
        let auto = wanted(&jobs, &available, true, &configured, &states);
        let picked: Vec<(&str, String, bool)> = auto
            .iter()
            .map(|w| (w.item.as_str(), w.version.to_string(), w.job_id.is_some()))
            .collect();
        assert_eq!(
            picked,
            vec![
                ("web", "1.1.0".into(), true),
                ("api", "0.1.0".into(), false)
            ]
        );
    }

    #[test]
    fn a_person_asking_to_install_retries_a_failed_version_where_no_one_else_approves() {
        let offered = Available {
            item: "web".into(),
            version: "1.1.0".parse().unwrap(),
            category: "feature".into(),
            manifest_path: "web-1.1.0.manifest.json".into(),
            notes: String::new(),
            release_url: None,
            delta: None,
            mirrors: vec![],
            peers: vec![],
        };
        let failed = ItemState {
            installed: Some("1.0.0".parse().unwrap()),
            highest: Some("1.0.0".parse().unwrap()),
            last_failed: Some("1.1.0".parse().unwrap()),
            ..Default::default()
        };
        assert!(
            !is_upgrade(&offered.version, &failed),
            "not retried by itself"
        );
        assert!(explicit_install(Some(&offered), &failed, true, false).is_some());
        assert!(explicit_install(Some(&offered), &failed, false, false).is_some());
        assert!(
            explicit_install(Some(&offered), &failed, false, true).is_none(),
            "with a server and no auto_install, the server's jobs approve"
        );
        let current = ItemState {
            installed: Some("1.1.0".parse().unwrap()),
            highest: Some("1.1.0".parse().unwrap()),
            ..Default::default()
        };
        assert!(explicit_install(Some(&offered), &current, true, false).is_none());
        assert!(explicit_install(None, &failed, true, false).is_none());
    }
}

/// Whether a certificate received at `received` and expiring at `not_after` is due for
/// renewal at `now` (all the server's clock): after two thirds of its life, so a device that
/// is off for a while still renews before it expires.
pub fn renewal_due(
    received: time::OffsetDateTime,
    not_after: time::OffsetDateTime,
    now: time::OffsetDateTime,
) -> bool {
    let life = not_after - received;
    now >= received + life * 2 / 3
}

#[cfg(test)]
mod renewal_tests {
    use super::renewal_due;
    use time::macros::datetime;

    #[test]
    fn a_certificate_renews_after_two_thirds_of_its_life() {
        let got = datetime!(2026-01-01 00:00 UTC);
        let ends = datetime!(2026-04-01 00:00 UTC); // 90 days
        for (now, due) in [
            (datetime!(2026-01-02 00:00 UTC), false),
            // Sixty days in: 1 March is the 59th.
            (datetime!(2026-03-01 23:59 UTC), false),
            (datetime!(2026-03-02 00:00 UTC), true),
            (datetime!(2026-03-31 23:59 UTC), true),
            // Expired already: due (the server will say whether it still may).
            (datetime!(2026-05-01 00:00 UTC), true),
        ] {
            assert_eq!(renewal_due(got, ends, now), due, "{now}");
        }
    }
}
