//! Batch updates, as plain code over data: what a batch plans, which entry goes next on each
//! host, and what a batch's status is. The store persists entries; `api::batches` is the shell.

use std::collections::BTreeMap;

use ferry_manifests::manifest::Category;
use ferry_manifests::wire::{
    packages_item, Available, InstalledItem, PackageChange, PackageHit, ReleaseView,
};

use super::status::{BatchStatus, EntryStatus, UpdateStatus};

/// One planned install of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub host_id: String,
    /// The item, or `SOURCE packages` for an upgrade of a source's packages.
    pub item: String,
    pub target: Target,
    /// Soft-skipped at planning time, with the reason.
    pub skip: Option<String>,
}

/// What a planned entry installs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A release of a Ferry item.
    Release(semver::Version),
    /// Upgrades of packages a host's source found (name, installed, offered), in one run of
    /// the source's installer.
    Packages {
        source: String,
        packages: Vec<PackageChange>,
    },
}

impl Target {
    /// The version column of the entry: the release's version, or how many packages.
    pub fn version_text(&self) -> String {
        match self {
            Target::Release(v) => v.to_string(),
            Target::Packages { packages, .. } if packages.len() == 1 => "1 package".into(),
            Target::Packages { packages, .. } => format!("{} packages", packages.len()),
        }
    }
}

/// The source of upstream releases (docs/sources.md): tracked, never installed by a batch.
pub const FORGE: &str = "forge";

/// `batch-host` for the software a host's sources found: one entry per source with every
/// offered upgrade of `category` (any if `None`) not in `exclude` (package names); a source
/// with an upgrade already under way is soft-skipped. A forge's releases (`forge`) are news
/// of upstream, not something Ferry installs: they are never planned.
pub fn plan_packages(
    host_id: &str,
    upgrades: &[PackageHit],
    category: Option<Category>,
    exclude: &[String],
    active_sources: &[String],
) -> Vec<Planned> {
    let mut by_source: BTreeMap<&str, Vec<PackageChange>> = BTreeMap::new();
    for u in upgrades {
        let Some(latest) = &u.latest else { continue };
        if u.source == FORGE {
            continue;
        }
        if category.is_some_and(|c| u.category != Some(c)) || exclude.contains(&u.name) {
            continue;
        }
        by_source
            .entry(u.source.as_str())
            .or_default()
            .push(PackageChange {
                name: u.name.clone(),
                from: Some(u.version.clone()),
                to: Some(latest.clone()),
            });
    }
    by_source
        .into_iter()
        .map(|(source, mut packages)| {
            packages.sort_by(|a, b| a.name.cmp(&b.name));
            let item = packages_item(source);
            Planned {
                host_id: host_id.to_string(),
                skip: active_sources
                    .iter()
                    .any(|s| s == source)
                    .then(|| format!("an upgrade of {item} is already active")),
                item,
                target: Target::Packages {
                    source: source.to_string(),
                    packages,
                },
            }
        })
        .collect()
}

/// `batch-host`: every item with a newer release for this host, filtered by category and
/// exclusions; items with an active update are soft-skipped.
pub fn plan_host(
    host_id: &str,
    available: &[Available],
    exclude: &[String],
    active_items: &[String],
) -> Vec<Planned> {
    available
        .iter()
        .filter(|a| !exclude.contains(&a.item))
        .map(|a| Planned {
            host_id: host_id.to_string(),
            item: a.item.clone(),
            target: Target::Release(a.version.clone()),
            skip: active_items
                .contains(&a.item)
                .then(|| format!("an update of {} is already active", a.item)),
        })
        .collect()
}

/// `batch-item`: every given host that has the item gets `to`; hosts already at or past it,
/// and hosts with an active update of the item, are soft-skipped.
pub fn plan_item(
    item: &str,
    to: &semver::Version,
    hosts: &[(String, Vec<InstalledItem>, bool)],
) -> Vec<Planned> {
    hosts
        .iter()
        .filter_map(|(host_id, installed, active)| {
            let current = installed.iter().find(|i| i.item == item)?;
            let skip = if *active {
                Some(format!("an update of {item} is already active"))
            } else {
                match &current.version {
                    Some(v) if v == to => Some(format!("already at {to}")),
                    Some(v) if v > to => Some(format!("has {v}, newer than {to}")),
                    _ => None,
                }
            };
            Some(Planned {
                host_id: host_id.clone(),
                item: item.to_string(),
                target: Target::Release(to.clone()),
                skip,
            })
        })
        .collect()
}

/// An entry's state as stored: dispatched entries carry their update's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryState {
    pub seq: i64,
    pub host_id: String,
    pub skipped: bool,
    /// `None` until dispatched; then the update's status.
    pub update_status: Option<UpdateStatus>,
}

impl EntryState {
    pub fn status(&self) -> EntryStatus {
        match (self.update_status, self.skipped) {
            (_, true) => EntryStatus::Skipped,
            (None, false) => EntryStatus::Queued,
            (Some(UpdateStatus::Pending), false) => EntryStatus::Dispatched,
            (Some(s), false) => EntryStatus::Finished(s),
        }
    }
}

/// The entries to dispatch now: per host, the first queued entry, if nothing is in flight on
/// that host (one update at a time per host, in order). `busy_hosts` have an update pending
/// from elsewhere (a trigger, another batch).
pub fn next_to_dispatch<'a>(
    entries: &'a [EntryState],
    busy_hosts: &[String],
) -> Vec<&'a EntryState> {
    let mut by_host: BTreeMap<&str, Vec<&EntryState>> = BTreeMap::new();
    for e in entries {
        by_host.entry(e.host_id.as_str()).or_default().push(e);
    }
    let mut out = Vec::new();
    for (host, mut list) in by_host {
        if busy_hosts.iter().any(|b| b == host)
            || list.iter().any(|e| e.status() == EntryStatus::Dispatched)
        {
            continue;
        }
        list.sort_by_key(|e| e.seq);
        if let Some(first) = list.into_iter().find(|e| e.status() == EntryStatus::Queued) {
            out.push(first);
        }
    }
    out
}

/// `running` while anything is queued or dispatched; then `completed` if every install
/// succeeded or was skipped, else `failed`.
pub fn batch_status(entries: &[EntryState]) -> BatchStatus {
    if entries
        .iter()
        .any(|e| matches!(e.status(), EntryStatus::Queued | EntryStatus::Dispatched))
    {
        BatchStatus::Running
    } else if entries.iter().all(|e| {
        matches!(
            e.status(),
            EntryStatus::Finished(UpdateStatus::Installed) | EntryStatus::Skipped
        )
    }) {
        BatchStatus::Completed
    } else {
        BatchStatus::Failed
    }
}

/// What `batch-host` installs of each of a host's items: the newest release it lacks, or with
/// `category`, the newest it lacks of that category (a security release stays wanted when a
/// newer feature release followed it).
pub fn available(
    installed: &[InstalledItem],
    releases: &[ReleaseView],
    category: Option<&str>,
) -> Vec<Available> {
    match category {
        None => crate::policy::fleet::available_for(installed, releases),
        Some(c) => {
            let of_category: Vec<ReleaseView> = releases
                .iter()
                .filter(|r| r.category == c)
                .cloned()
                .collect();
            crate::policy::fleet::available_for(installed, &of_category)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: i64, host: &str, status: Option<&str>) -> EntryState {
        EntryState {
            seq,
            host_id: host.into(),
            skipped: false,
            update_status: status.map(|s| s.parse().unwrap()),
        }
    }

    #[test]
    fn one_update_at_a_time_per_host_in_order() {
        let entries = vec![
            entry(2, "a", None),
            entry(1, "a", None),
            entry(3, "b", Some("pending")),
            entry(4, "b", None),
            entry(5, "c", Some("installed")),
            entry(6, "c", None),
        ];
        let next: Vec<i64> = next_to_dispatch(&entries, &[])
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(
            next,
            vec![1, 6],
            "a starts with its first entry, b waits, c goes on"
        );
        let next: Vec<i64> = next_to_dispatch(&entries, &["a".into()])
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(next, vec![6], "a host busy elsewhere waits");
    }

    #[test]
    fn status_follows_the_entries() {
        assert_eq!(batch_status(&[entry(1, "a", None)]), BatchStatus::Running);
        let mut skipped = entry(2, "a", None);
        skipped.skipped = true;
        assert_eq!(
            batch_status(&[entry(1, "a", Some("installed")), skipped.clone()]),
            BatchStatus::Completed
        );
        assert_eq!(
            batch_status(&[entry(1, "a", Some("rolled_back")), skipped]),
            BatchStatus::Failed
        );
    }

    #[test]
    fn plans_skip_what_is_active_or_already_there() {
        let v = |s: &str| s.parse::<semver::Version>().unwrap();
        let avail = vec![
            Available {
                item: "web".into(),
                version: v("2.0.0"),
                category: "security".into(),
                manifest_path: String::new(),
                notes: String::new(),
                release_url: None,
                delta: None,
                mirrors: vec![],
                peers: vec![],
            },
            Available {
                item: "api".into(),
                version: v("1.1.0"),
                category: "feature".into(),
                manifest_path: String::new(),
                notes: String::new(),
                release_url: None,
                delta: None,
                mirrors: vec![],
                peers: vec![],
            },
        ];
        let p = plan_host("h", &avail, &[], &[]);
        assert_eq!(p.len(), 2);
        let p = plan_host("h", &avail, &["api".into()], &["web".into()]);
        assert_eq!(p.len(), 1);
        assert!(p[0].skip.is_some());

        let inst = |ver: Option<&str>| {
            vec![InstalledItem {
                item: "web".into(),
                version: ver.map(v),
            }]
        };
        let hosts = vec![
            ("old".to_string(), inst(Some("1.0.0")), false),
            ("same".to_string(), inst(Some("2.0.0")), false),
            ("busy".to_string(), inst(Some("1.0.0")), true),
            ("none".to_string(), vec![], false),
        ];
        let p = plan_item("web", &v("2.0.0"), &hosts);
        let summary: Vec<(&str, bool)> = p
            .iter()
            .map(|e| (e.host_id.as_str(), e.skip.is_some()))
            .collect();
        assert_eq!(
            summary,
            vec![("old", false), ("same", true), ("busy", true)]
        );
    }

    #[test]
    fn a_category_picks_the_newest_release_of_it_the_host_lacks() {
        let release = |version: &str, category: &str| ReleaseView {
            category: category.into(),
            ..crate::policy::testing::release("web", version)
        };
        let releases = vec![
            release("1.0.0", "feature"),
            release("1.1.0", "security"),
            release("1.2.0", "feature"),
        ];
        let installed = vec![InstalledItem {
            item: "web".into(),
            version: Some("1.0.0".parse().unwrap()),
        }];
        let security = available(&installed, &releases, Some("security"));
        assert_eq!(security.len(), 1, "{security:?}");
        assert_eq!(security[0].version.to_string(), "1.1.0");
        let all = available(&installed, &releases, None);
        assert_eq!(all[0].version.to_string(), "1.2.0");
        let up_to_date = vec![InstalledItem {
            item: "web".into(),
            version: Some("1.1.0".parse().unwrap()),
        }];
        assert!(available(&up_to_date, &releases, Some("security")).is_empty());
    }

    #[test]
    fn packages_are_planned_one_entry_per_source_by_category_and_exclusion() {
        use super::{plan_packages, Target};
        use ferry_manifests::manifest::Category;
        let hit = |source: &str, name: &str, latest: Option<&str>, c: Option<Category>| {
            ferry_manifests::wire::PackageHit {
                host_id: "h".into(),
                hostname: "h".into(),
                source: source.into(),
                name: name.into(),
                version: "1".into(),
                latest: latest.map(Into::into),
                category: c,
                release: None,
            }
        };
        let upgrades = vec![
            hit("apt", "openssl", Some("2"), Some(Category::Security)),
            hit("apt", "curl", Some("2"), Some(Category::Security)),
            hit("apt", "bar", Some("2"), Some(Category::Unknown)),
            hit("apt", "kept", None, None),
            hit("npm", "left-pad", Some("2"), Some(Category::Security)),
            hit("forge", "zigbee2mqtt", Some("2"), Some(Category::Security)),
        ];
        let security = plan_packages(
            "h",
            &upgrades,
            Some(Category::Security),
            &["curl".to_string()],
            &["npm".to_string()],
        );
        assert_eq!(security.len(), 2);
        assert_eq!(security[0].item, "apt packages");
        let Target::Packages { source, packages } = &security[0].target else {
            panic!("{security:?}")
        };
        assert_eq!(source, "apt");
        let names: Vec<&str> = packages.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["openssl"]);
        assert_eq!(packages[0].to.as_deref(), Some("2"));
        assert_eq!(security[0].skip, None);
        // A source with an upgrade under way is soft-skipped.
        assert!(security[1]
            .skip
            .as_deref()
            .unwrap()
            .contains("npm packages"));
        // Without a category: every offered upgrade but the excluded.
        let all = plan_packages("h", &upgrades, None, &[], &[]);
        assert_eq!(all[0].target.version_text(), "3 packages");
        assert!(plan_packages("h", &upgrades, Some(Category::Feature), &[], &[]).is_empty());
    }
}
