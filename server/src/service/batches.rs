//! Batches at work: when a host is free, its next batch entry becomes an install.

use super::error::{ServiceError, ServiceResult};
use crate::policy::batch;
use crate::state::Shared;
use crate::store::EntryRow;

/// Dispatches the next batch entry on `host_id`, if the host is free.
pub async fn dispatch(state: &Shared, host_id: &str) -> ServiceResult<()> {
    let entries: Vec<(String, EntryRow)> = state
        .store
        .batch_entries(None, Some(host_id))
        .await?
        .into_iter()
        .filter(|(_, e)| e.state.host_id == host_id)
        .collect();
    if entries.is_empty() {
        return Ok(());
    }
    let busy = if state.store.host_busy(host_id).await? {
        vec![host_id.to_string()]
    } else {
        vec![]
    };
    // Entries are ordered by batch then sequence: number them globally so older batches go
    // first.
    let states: Vec<batch::EntryState> = entries
        .iter()
        .enumerate()
        .map(|(i, (_, e))| batch::EntryState {
            seq: i as i64,
            ..e.state.clone()
        })
        .collect();
    for next in batch::next_to_dispatch(&states, &busy) {
        let (batch_id, entry) = &entries[next.seq as usize];
        let version: semver::Version =
            entry
                .version
                .parse()
                .map_err(|source| ServiceError::StoredVersion {
                    text: entry.version.clone(),
                    source,
                })?;
        if state
            .store
            .active_update(host_id, &entry.item)
            .await?
            .is_some()
        {
            state
                .store
                .mark_skipped(
                    batch_id,
                    entry.state.seq,
                    "an update of this item is already active",
                )
                .await?;
            continue;
        }
        let id = state
            .store
            .create_update(
                host_id,
                &entry.item,
                &version,
                &entry.actor,
                entry.interactive.then_some(true),
            )
            .await?;
        state
            .store
            .mark_dispatched(batch_id, entry.state.seq, &id)
            .await?;
        tracing::info!(batch = %batch_id, %host_id, item = %entry.item, %version, update = %id, "batch entry dispatched");
        state.wake(host_id);
    }
    Ok(())
}

/// Plans a batch of one host: per item the newest release it lacks (of `category` if given),
/// leaving out `exclude`, and with `only_plain` the featured items (Home Assistant's host
/// Install button covers only the items summed up as "packages").
pub async fn plan_host(
    state: &Shared,
    host_id: &str,
    category: Option<&str>,
    exclude: &[String],
    only_plain: bool,
) -> ServiceResult<Vec<crate::policy::batch::Planned>> {
    let (_, installed) = state
        .store
        .host(host_id)
        .await?
        .ok_or_else(|| ServiceError::not_found(format!("no host {host_id}")))?;
    let releases = state.releases().await?;
    let mut available = batch::available(&installed, &releases, category);
    if only_plain {
        let featured: Vec<String> = state
            .store
            .item_settings()
            .await?
            .into_iter()
            .filter(|s| s.featured)
            .map(|s| s.name)
            .collect();
        available.retain(|a| !featured.contains(&a.item));
    }
    let active_items: Vec<String> = state
        .store
        .pending_jobs(host_id)
        .await?
        .into_iter()
        .map(|j| j.item)
        .collect();
    Ok(batch::plan_host(
        host_id,
        &available,
        exclude,
        &active_items,
    ))
}

/// Creates a planned batch and dispatches the first entry of each of its hosts; returns its
/// id. Refused (400) when there is nothing to do.
pub async fn start(
    state: &Shared,
    kind: &str,
    description: &str,
    actor: super::Actor,
    interactive: bool,
    planned: &[crate::policy::batch::Planned],
) -> ServiceResult<String> {
    if planned.is_empty() {
        return Err(ServiceError::invalid(
            "nothing to do: no host has an update matching this batch",
        ));
    }
    let id = state
        .store
        .create_batch(kind, description, actor.as_str(), interactive, planned)
        .await?;
    tracing::info!(batch = %id, %description, entries = planned.len(), "update batch created");
    let mut hosts: Vec<&str> = planned.iter().map(|p| p.host_id.as_str()).collect();
    hosts.dedup();
    for h in hosts {
        dispatch(state, h).await?;
    }
    state.changed();
    Ok(id)
}
