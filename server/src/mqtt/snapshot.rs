//! Builds the bridge's [`Snapshot`] from the store: the thin I/O side of the topic functions.

use std::collections::{BTreeMap, HashMap};

use super::model::{HostState, ItemState, Snapshot, SoftwareCounts};
use crate::policy::fleet;
use crate::state::Shared;
use crate::store::StoreError;

/// Hosts read and published per page: a large fleet never sits in memory as one snapshot,
/// and the first hosts reach the broker before the last are read.
pub const PAGE: u32 = 500;

/// Reads the fleet a page of hosts at a time; what the pages share (item settings,
/// releases, pending updates) is read once.
pub struct Reader {
    settings: BTreeMap<String, crate::store::ItemSettings>,
    catalog: std::sync::Arc<crate::cache::Catalog>,
    pending: HashMap<String, Vec<String>>,
    /// The last failed install per (host, item).
    failures: HashMap<(String, String), crate::store::LastFailure>,
    /// What each host's sources found, in numbers.
    software: HashMap<String, SoftwareCounts>,
    /// Per host, its software an operator featured (`ferryctl items edit NAME --featured`):
    /// an entity each, as a featured item.
    featured_software: HashMap<String, Vec<ferry_manifests::wire::PackageHit>>,
    now: time::OffsetDateTime,
    after: Option<String>,
    done: bool,
    /// Only this tenant's hosts (a tenant's connection).
    tenant: Option<String>,
}

impl Reader {
    /// A reader of every host, or (`tenant`) of one tenant's.
    pub async fn open(state: &Shared, tenant: Option<String>) -> Result<Reader, StoreError> {
        let settings = state
            .store
            .item_settings()
            .await?
            .into_iter()
            .map(|s| (s.name.clone(), s))
            .collect();
        let mut pending: HashMap<String, Vec<String>> = HashMap::new();
        for (host, item) in state.store.pending_items().await? {
            pending.entry(host).or_default().push(item);
        }
        let failures = state
            .store
            .last_failures()
            .await?
            .into_iter()
            .map(|f| ((f.host_id.clone(), f.item.clone()), f))
            .collect();
        let software = state
            .store
            .package_counts()
            .await?
            .into_iter()
            .map(|c| {
                let n = |v: i64| usize::try_from(v).unwrap_or(0);
                let counts = SoftwareCounts {
                    total: n(c.total),
                    pending: n(c.pending),
                    security: n(c.security),
                    bugfix: n(c.bugfix),
                    feature: n(c.feature),
                };
                (c.host_id, counts)
            })
            .collect();
        let featured: Vec<String> = state
            .store
            .item_settings()
            .await?
            .into_iter()
            .filter(|s| s.featured && !s.deactivated)
            .map(|s| s.name)
            .collect();
        let mut featured_software: HashMap<String, Vec<_>> = HashMap::new();
        for hit in state.store.packages_named_any(&featured).await? {
            featured_software
                .entry(hit.host_id.clone())
                .or_default()
                .push(hit);
        }
        Ok(Reader {
            software,
            featured_software,
            settings,
            catalog: state.catalog().await?,
            pending,
            failures,
            now: time::OffsetDateTime::now_utc(),
            after: None,
            done: false,
            tenant,
        })
    }

    /// The next page of hosts (in id order), or `None` once the whole fleet was read.
    pub async fn next_page(&mut self, state: &Shared) -> Result<Option<Snapshot>, StoreError> {
        if self.done {
            return Ok(None);
        }
        let rows = state.store.hosts_page(self.after.as_deref(), PAGE).await?;
        self.done = rows.len() < PAGE as usize;
        let Some((last, _)) = rows.last() else {
            return Ok(None);
        };
        self.after = Some(last.id.clone());
        let hosts = rows
            .into_iter()
            .filter(|(host, _)| {
                self.tenant.is_none() || host.tenant_id.as_deref() == self.tenant.as_deref()
            })
            .map(|(host, installed)| self.host(state, host, &installed))
            .collect();
        Ok(Some(Snapshot { hosts }))
    }

    fn host(
        &self,
        state: &Shared,
        host: crate::store::HostRow,
        installed: &[ferry_manifests::wire::InstalledItem],
    ) -> HostState {
        let none = Vec::new();
        // Last-seen times are written in batches: the cache has the newest.
        let last_seen = state
            .cache
            .seen(&host.id)
            .unwrap_or_else(|| host.last_seen.clone());
        let pending = self.pending.get(&host.id).unwrap_or(&none);
        let (tags, friendly_name) = fleet::effective_labels(
            &host.device_tags,
            host.device_friendly_name.as_deref(),
            host.operator_tags.as_deref(),
            host.operator_friendly_name.as_deref(),
            state.config.trust_device_tags,
        );
        // The host's tenant's releases.
        let releases = self.catalog.for_tenant(host.tenant_id.as_deref());
        let available = fleet::available_for(installed, &releases);
        let mut items = Vec::new();
        for i in installed {
            let setting = self.settings.get(&i.item);
            if setting.is_some_and(|s| s.deactivated) {
                continue;
            }
            let newer = available.iter().find(|a| a.item == i.item);
            let release = newer.and_then(|a| {
                releases
                    .iter()
                    .find(|r| r.item == a.item && r.version == a.version)
            });
            items.push(ItemState {
                name: i.item.clone(),
                featured: setting.is_some_and(|s| s.featured),
                icon_url: setting.and_then(|s| s.icon_url.clone()),
                installed: i.version.as_ref().map(|v| v.to_string()),
                latest: newer.map(|a| a.version.to_string()),
                category: newer.map(|a| a.category.clone()),
                release_date: release.map(|r| r.released_at.chars().take(10).collect()),
                release_url: release.and_then(|r| r.release_url.clone()),
                notes: release.map(|r| r.notes.clone()).unwrap_or_default(),
                in_progress: pending.contains(&i.item),
                last_checked_at: Some(last_seen.clone()),
                failed_here: newer.and_then(|a| {
                    self.failures
                        .get(&(host.id.clone(), i.item.clone()))
                        .filter(|f| f.version == a.version)
                        .map(|f| (f.status.clone(), f.message.clone()))
                }),
            });
        }
        // Featured software the host's sources found, unless a Ferry item has the name.
        for hit in self.featured_software.get(&host.id).unwrap_or(&Vec::new()) {
            if items.iter().any(|i| i.name == hit.name) {
                continue;
            }
            let setting = self.settings.get(&hit.name);
            items.push(software_item(
                hit,
                setting.and_then(|s| s.icon_url.clone()),
                pending.contains(&ferry_manifests::wire::packages_item(&hit.source)),
                &last_seen,
            ));
        }
        let batch_in_progress = items.iter().any(|i| !i.featured && i.in_progress);
        HostState {
            software: self.software.get(&host.id).copied(),
            online: fleet::is_present(
                state.presence.get(&host.id),
                &last_seen,
                self.now,
                state.config.offline_after_secs,
            ),
            tenant: host.tenant_id.unwrap_or_default(),
            id: host.id,
            hostname: host.facts.hostname,
            friendly_name,
            os: host.facts.os,
            os_version: host.facts.os_version,
            arch: host.facts.arch,
            agent_version: host.facts.agent_version,
            last_seen,
            tags,
            items,
            batch_in_progress,
        }
    }
}

/// A featured piece of discovered software as an item of its host: installed, the upgrade
/// its source offers, and for a forge's release its page, date and notes.
fn software_item(
    hit: &ferry_manifests::wire::PackageHit,
    icon_url: Option<String>,
    in_progress: bool,
    last_seen: &str,
) -> ItemState {
    let release = hit.release.as_ref().filter(|_| hit.latest.is_some());
    ItemState {
        name: hit.name.clone(),
        featured: true,
        icon_url,
        installed: Some(hit.version.clone()),
        latest: hit.latest.clone(),
        category: hit
            .latest
            .as_ref()
            .map(|_| hit.category.unwrap_or_default().to_string()),
        release_date: release
            .and_then(|r| r.published_at.as_ref())
            .map(|t| t.chars().take(10).collect()),
        release_url: release.map(|r| r.url.clone()),
        notes: release.map(|r| r.summary.clone()).unwrap_or_default(),
        in_progress,
        last_checked_at: Some(last_seen.to_string()),
        failed_here: None,
    }
}

/// The campaigns a connection publishes (its tenant's, or all), as their topics say them.
pub async fn campaigns(
    state: &Shared,
    tenant: Option<&str>,
) -> Result<Vec<super::model::CampaignState>, StoreError> {
    let mut out = Vec::new();
    for c in state.store.campaigns().await? {
        if tenant.is_some() && c.tenant_id.as_deref() != tenant {
            continue;
        }
        let observing = c.observe.watching.as_ref().and_then(|(wave, since)| {
            let ends = crate::service::campaigns::observe::window(&c, since)?.ends_at();
            Some((wave + 1, ferry_manifests::wire::timestamp(ends)))
        });
        out.push(super::model::CampaignState {
            state: super::topics::campaign_state(
                c.status.as_str(),
                &c.status_reason,
                observing.is_some(),
            )
            .to_string(),
            id: c.id,
            name: c.name,
            item: c.item,
            version: c.version.to_string(),
            reason: c.status_reason,
            observing,
        });
    }
    Ok(out)
}
