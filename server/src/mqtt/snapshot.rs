//! Builds the bridge's [`Snapshot`] from the store: the thin I/O side of the topic functions.

use std::collections::BTreeMap;

use super::model::{HostState, ItemState, Snapshot};
use crate::policy::fleet;
use crate::store::StoreError;
use crate::Shared;

/// Everything the bridge publishes, as the store has it now. A host is online while its last
/// check-in is more recent than `offline_after_secs` (docs/mqtt.md).
pub async fn build(state: &Shared) -> Result<Snapshot, StoreError> {
    let settings: BTreeMap<String, _> = state
        .store
        .item_settings()
        .await?
        .into_iter()
        .map(|s| (s.name.clone(), s))
        .collect();
    let releases = state.releases().await?;
    let now = time::OffsetDateTime::now_utc();
    let mut hosts = Vec::new();
    for (host, installed) in state.store.hosts().await? {
        let pending: Vec<String> = state
            .store
            .pending_jobs(&host.id)
            .await?
            .into_iter()
            .map(|j| j.item)
            .collect();
        let (tags, friendly_name) = fleet::effective_labels(
            &host.device_tags,
            host.device_friendly_name.as_deref(),
            host.operator_tags.as_deref(),
            host.operator_friendly_name.as_deref(),
        );
        let available = fleet::available_for(&installed, &releases);
        let mut items = Vec::new();
        for i in &installed {
            let setting = settings.get(&i.item);
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
                last_checked_at: Some(host.last_seen.clone()),
            });
        }
        let batch_in_progress = items.iter().any(|i| !i.featured && i.in_progress);
        hosts.push(HostState {
            online: fleet::is_online(&host.last_seen, now, state.config.offline_after_secs),
            id: host.id,
            hostname: host.facts.hostname,
            friendly_name,
            os: host.facts.os,
            os_version: host.facts.os_version,
            arch: host.facts.arch,
            agent_version: host.facts.agent_version,
            last_seen: host.last_seen,
            tags,
            items,
            batch_in_progress,
        });
    }
    Ok(Snapshot { hosts })
}
