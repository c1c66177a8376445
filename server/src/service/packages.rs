//! Software the devices' sources found installed (docs/sources.md): stored per host when a
//! device sends its list, and searched across the fleet.

use std::cmp::Ordering;

use ferry_manifests::manifest::Category;
use ferry_manifests::wire::{
    apply_inventory_delta, inventory_digest, InventoryPackage, InventoryUpload, PackageHit,
    MAX_INVENTORY,
};

use super::error::{ServiceError, ServiceResult};
use crate::state::Shared;

/// Stores a host's list as it sent it (whole, or a delta against the list the server has),
/// after checking each entry; returns how many packages the host has now.
pub async fn store(state: &Shared, host_id: &str, upload: InventoryUpload) -> ServiceResult<usize> {
    let InventoryUpload {
        packages,
        base,
        removed,
        digest,
    } = upload;
    if packages.len() > MAX_INVENTORY || removed.len() > MAX_INVENTORY {
        return Err(ServiceError::invalid(format!(
            "{} packages; at most {MAX_INVENTORY}",
            packages.len().max(removed.len())
        )));
    }
    for p in &packages {
        check(p).map_err(ServiceError::invalid)?;
    }
    let mut packages = match &base {
        None => {
            if !removed.is_empty() || digest.is_some() {
                return Err(ServiceError::conflict(
                    "`removed` and `digest` belong to a delta, which names its `base`; send the delta with it, or the whole list",
                ));
            }
            packages
        }
        Some(base) => {
            // A delta applies only to the list it was made against: anything else (another
            // instance stored a newer list, the host was reset) asks for the whole list.
            if state.store.inventory_digest(host_id).await?.as_ref() != Some(base) {
                return Err(ServiceError::conflict(
                    "the server no longer has the list this delta applies to; send the whole list",
                ));
            }
            let current = state.store.inventory(host_id).await?;
            let list = apply_inventory_delta(current, &packages, &removed);
            if digest.as_deref() != Some(inventory_digest(&list).as_str()) {
                return Err(ServiceError::conflict(
                    "the list after this delta does not match its digest; send the whole list",
                ));
            }
            list
        }
    };
    if packages.len() > MAX_INVENTORY {
        return Err(ServiceError::invalid(format!(
            "{} packages; at most {MAX_INVENTORY}",
            packages.len()
        )));
    }
    packages.sort();
    packages.dedup();
    let digest = inventory_digest(&packages);
    state
        .store
        .set_inventory(host_id, &digest, &packages)
        .await?;
    // The host's summaries on the MQTT bridge count this list.
    state.changed();
    Ok(packages.len())
}

/// Upgrades one piece of a host's software to what its source offers (Home Assistant's
/// Install on a featured package): a package update of that one package; returns its id.
pub async fn upgrade_one(
    state: &Shared,
    host_id: &str,
    name: &str,
    actor: super::Actor,
) -> ServiceResult<String> {
    let (_, upgrades) = state.store.host_software(host_id).await?;
    let Some(hit) = upgrades.iter().find(|u| u.name == name) else {
        return Err(ServiceError::not_found(format!(
            "the host has no upgrade of {name} offered"
        )));
    };
    if hit.source == crate::policy::batch::FORGE {
        return Err(ServiceError::conflict(format!(
            "{name}'s upgrade is an upstream release: Ferry does not install it"
        )));
    }
    let item = ferry_manifests::wire::packages_item(&hit.source);
    if state.store.active_update(host_id, &item).await?.is_some() {
        return Err(ServiceError::conflict(format!(
            "an upgrade of {item} is already under way on this host"
        )));
    }
    let change = ferry_manifests::wire::PackageChange {
        name: hit.name.clone(),
        from: Some(hit.version.clone()),
        to: hit.latest.clone(),
    };
    let id = state
        .store
        .create_package_update(host_id, &hit.source, &[change], &actor.to_text(), None)
        .await?;
    state.wake(host_id);
    state.changed();
    Ok(id)
}

/// A source's name is a short lowercase word (`apt`).
pub fn valid_source(source: &str) -> bool {
    !source.is_empty() && source.len() <= 16 && source.bytes().all(|b| b.is_ascii_lowercase())
}

/// A source is a short lowercase word; a name and a version are 1–256 printable characters.
fn check(p: &InventoryPackage) -> Result<(), String> {
    let printable = |s: &str| !s.is_empty() && s.len() <= 256 && !s.chars().any(char::is_control);
    if !valid_source(&p.source) {
        return Err(format!(
            "source {:?} must be 1-16 lowercase letters",
            p.source
        ));
    }
    if !printable(&p.name) || !printable(&p.version) || !p.latest.as_deref().is_none_or(printable) {
        return Err(format!(
            "package {:?} {:?}: a name and versions are 1-256 characters without control characters",
            p.name, p.version
        ));
    }
    if let Some(r) = &p.release {
        let summary_ok = r.summary.chars().count() <= ferry_manifests::wire::MAX_RELEASE_SUMMARY
            && !r
                .summary
                .chars()
                .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'));
        let url_ok = r.url.len() <= 2048
            && (r.url.starts_with("https://") || r.url.starts_with("http://"))
            && !r.url.chars().any(|c| c.is_control() || c.is_whitespace());
        if p.latest.is_none()
            || !url_ok
            || !summary_ok
            || !r
                .published_at
                .as_deref()
                .is_none_or(|t| t.len() <= 64 && !t.chars().any(char::is_control))
        {
            return Err(format!(
                "package {:?}: a release goes with an offered upgrade (`latest`), its url is http(s) (at most 2048 bytes), its summary at most {} characters",
                p.name,
                ferry_manifests::wire::MAX_RELEASE_SUMMARY
            ));
        }
    }
    if p.category.is_some() && p.latest.is_none() {
        return Err(format!(
            "package {:?}: a category belongs to an offered upgrade (`latest`)",
            p.name
        ));
    }
    Ok(())
}

/// Most rows a fleet-wide search returns.
pub const MAX_HITS: i64 = 100_000;

/// A fleet-wide question about installed software.
#[derive(Debug, Clone, Default)]
pub struct Search<'a> {
    /// Hosts with this package; without it, every package with an upgrade offered (as if
    /// `pending`).
    pub name: Option<&'a str>,
    /// Only versions that sort before this one.
    pub older_than: Option<&'a str>,
    /// Only packages with an upgrade offered.
    pub pending: bool,
    /// Only upgrades of this category (implies `pending`).
    pub category: Option<Category>,
}

/// The hosts that have `name` (or, without a name, every pending upgrade), filtered as asked
/// (versions compared as dpkg compares them, which also orders plain dotted versions).
pub async fn search(state: &Shared, q: &Search<'_>) -> ServiceResult<Vec<PackageHit>> {
    let pending = q.pending || q.category.is_some() || q.name.is_none();
    let hits = match q.name {
        Some(name) => state.store.packages_named(name).await?,
        None => state.store.packages_pending(q.category, MAX_HITS).await?,
    };
    Ok(hits
        .into_iter()
        .filter(|h| q.older_than.is_none_or(|v| older(&h.version, v)))
        .filter(|h| !pending || h.latest.is_some())
        .filter(|h| q.category.is_none_or(|c| h.category == Some(c)))
        .collect())
}

/// Whether `version` sorts before `than` as dpkg sorts versions.
pub fn older(version: &str, than: &str) -> bool {
    deb_version::compare_versions(version, than) == Ordering::Less
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_as_dpkg_compares_them() {
        assert!(older("3.0.14-1~deb12u2", "3.0.15"));
        assert!(!older("3.0.15-1~deb12u1", "3.0.15"));
        assert!(older("1.0~rc1", "1.0"));
        assert!(older("1:0.9", "2:0.1"));
        assert!(!older("2.10", "2.9"));
    }

    #[test]
    fn a_package_entry_is_checked() {
        let p = |source: &str, name: &str, version: &str| InventoryPackage {
            source: source.into(),
            name: name.into(),
            version: version.into(),
            latest: None,
            category: None,
            release: None,
        };
        assert!(check(&p("apt", "openssl", "3.0.15-1")).is_ok());
        assert!(check(&p("APT", "openssl", "1")).is_err());
        assert!(check(&p("apt", "", "1")).is_err());
        assert!(check(&p("apt", "x", "1\n2")).is_err());
        assert!(check(&p("apt", &"x".repeat(300), "1")).is_err());
        let upgrade = InventoryPackage {
            latest: Some("3.0.16-1".into()),
            category: Some(Category::Security),
            ..p("apt", "openssl", "3.0.15-1")
        };
        assert!(check(&upgrade).is_ok());
        let no_latest = InventoryPackage {
            latest: None,
            ..upgrade.clone()
        };
        assert!(check(&no_latest).is_err());
        let bad_latest = InventoryPackage {
            latest: Some("".into()),
            ..upgrade.clone()
        };
        assert!(check(&bad_latest).is_err());
        // An upstream release: an http(s) page, notes within 500 characters, only with an
        // upgrade.
        let release = |url: &str, summary: String| ferry_manifests::wire::UpstreamRelease {
            url: url.into(),
            published_at: Some("2026-11-30T12:00:00Z".into()),
            summary,
        };
        let with = |r| InventoryPackage {
            release: Some(r),
            ..upgrade.clone()
        };
        assert!(check(&with(release("https://x/r", "## Fixes\n- a".into()))).is_ok());
        assert!(check(&with(release("javascript:alert(1)", String::new()))).is_err());
        assert!(check(&with(release("https://x/r", "x".repeat(501)))).is_err());
        assert!(check(&with(release("https://x/r", "\u{1b}[2J".into()))).is_err());
        let orphan = InventoryPackage {
            latest: None,
            category: None,
            ..with(release("https://x/r", String::new()))
        };
        assert!(check(&orphan).is_err());
    }
}
