//! Decisions about whether a verified release may be installed on this device. Plain code over
//! data, tested without I/O.

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
    if item.last_failed.as_ref() == Some(offered) {
        return false;
    }
    let floor = item.highest.as_ref().or(item.installed.as_ref());
    floor.is_none_or(|v| offered > v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(version: &str) -> Manifest {
        serde_json::from_str::<Manifest>(include_str!(
            "../../manifests/examples/web-1.1.0.manifest.json"
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
}
