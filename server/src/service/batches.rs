//! Batches: planned from a request and stored; at work, a host that is free gets its next
//! entry as an install.

use std::collections::BTreeMap;

use ferry_manifests::manifest::Category;
use ferry_manifests::wire::{BatchEntryView, BatchRequest, BatchView};

use super::error::{ServiceError, ServiceResult};
use super::Actor;
use crate::policy::batch::{self, Planned};
use crate::state::Shared;
use crate::store::{BatchRow, EntryRow, IdKind};

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
        let interactive = entry.interactive.then_some(true);
        let (id, version) = match &entry.packages {
            Some(packages) => {
                let source = entry.item.trim_end_matches(" packages");
                let id = state
                    .store
                    .create_package_update(host_id, source, packages, &entry.actor, interactive)
                    .await?;
                (id, entry.version.clone())
            }
            None => {
                let version: semver::Version =
                    entry
                        .version
                        .parse()
                        .map_err(|source| ServiceError::StoredVersion {
                            text: entry.version.clone(),
                            source,
                        })?;
                let id = state
                    .store
                    .create_update(host_id, &entry.item, &version, &entry.actor, interactive)
                    .await?;
                (id, version.to_string())
            }
        };
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
    let (host, installed) = state
        .store
        .host(host_id)
        .await?
        .ok_or_else(|| ServiceError::not_found(format!("no host {host_id}")))?;
    if !host.accepted {
        return Err(ServiceError::conflict(format!(
            "{} waits for an operator's acceptance; accept it first (ferryctl hosts accept {host_id})",
            host.facts.hostname
        )));
    }
    let releases = state.releases_for(host.tenant_id.as_deref()).await?;
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
    let mut planned = batch::plan_host(host_id, &available, exclude, &active_items);
    // The software the host's sources found: the operator's category, one run per source.
    let category = category
        .map(|c| c.parse::<Category>())
        .transpose()
        .map_err(ServiceError::invalid)?;
    let (_, upgrades) = state.store.host_software(host_id).await?;
    let active_sources: Vec<String> = state
        .store
        .pending_package_jobs(host_id)
        .await?
        .into_iter()
        .map(|j| j.source)
        .collect();
    planned.extend(batch::plan_packages(
        host_id,
        &upgrades,
        category,
        exclude,
        &active_sources,
    ));
    Ok(planned)
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
        .create_batch(kind, description, &actor.to_text(), interactive, planned)
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

fn view(b: &BatchRow, entries: Vec<EntryRow>) -> BatchView {
    let states: Vec<batch::EntryState> = entries.iter().map(|e| e.state.clone()).collect();
    let mut counts = BTreeMap::new();
    for s in &states {
        *counts.entry(s.status().as_str().to_string()).or_insert(0) += 1;
    }
    BatchView {
        id: b.id.clone(),
        kind: b.kind.clone(),
        description: b.description.clone(),
        actor: b.actor.clone(),
        status: batch::batch_status(&states).to_string(),
        created_at: b.created_at.clone(),
        counts,
        entries: entries
            .into_iter()
            .map(|e| BatchEntryView {
                status: e.state.status().as_str().to_string(),
                host_id: e.state.host_id,
                hostname: e.hostname,
                item: e.item,
                version: e.version,
                update_id: e.update_id,
                message: e.message,
            })
            .collect(),
    }
}

async fn load(state: &Shared, id: &str) -> ServiceResult<BatchView> {
    // `follow` polls this: one row, not every batch.
    let b = state
        .store
        .batch(id)
        .await?
        .ok_or_else(|| ServiceError::not_found(format!("no update batch {id}")))?;
    let entries = state
        .store
        .batch_entries(Some(id), None)
        .await?
        .into_iter()
        .map(|(_, e)| e)
        .collect();
    Ok(view(&b, entries))
}

/// Plans a batch from a request (a host's updates, or an item to a version on every host
/// that has it), stores it and starts it; the batch as it stands.
pub async fn create(state: &Shared, req: BatchRequest, actor: Actor) -> ServiceResult<BatchView> {
    let hosts = state.store.hosts().await?;
    let interactive = matches!(
        req,
        BatchRequest::Host {
            interactive: true,
            ..
        }
    );
    let active = |host_id: &str| {
        let state = state.clone();
        let host_id = host_id.to_string();
        async move { state.store.pending_jobs(&host_id).await }
    };
    let (kind, description, planned): (&str, String, Vec<Planned>) = match &req {
        BatchRequest::Host {
            host,
            category,
            exclude,
            ..
        } => {
            let (host_id, hostname) = super::hosts::resolve(state, host).await?;
            let planned = plan_host(state, &host_id, category.as_deref(), exclude, false).await?;
            let mut d = format!("all updates of {hostname}");
            if let Some(c) = category {
                d.push_str(&format!(", category {c}"));
            }
            if !exclude.is_empty() {
                d.push_str(&format!(", except {}", exclude.join(",")));
            }
            ("host", d, planned)
        }
        BatchRequest::Item {
            item,
            to_version,
            hosts: only,
        } => {
            super::items::ensure_active(state, item).await?;
            super::releases::installable(state, item, Some(to_version)).await?;
            let mut wanted = Vec::new();
            for h in only {
                wanted.push(super::hosts::resolve(state, h).await?.0);
            }
            let mut candidates = Vec::new();
            for (h, installed) in &hosts {
                // A host waiting for acceptance is given nothing.
                if !h.accepted || (!wanted.is_empty() && !wanted.contains(&h.id)) {
                    continue;
                }
                let busy = active(&h.id).await?.iter().any(|j| &j.item == item);
                candidates.push((h.id.clone(), installed.clone(), busy));
            }
            let planned = batch::plan_item(item, to_version, &candidates);
            ("item", format!("{item} to {to_version}"), planned)
        }
    };
    let id = start(state, kind, &description, actor, interactive, &planned).await?;
    load(state, &id).await
}

/// Every batch, or those with `status`.
pub async fn list(state: &Shared, status: Option<&str>) -> ServiceResult<Vec<BatchView>> {
    let wanted = status.filter(|s| !s.is_empty());
    if let Some(s) = wanted {
        s.parse::<crate::policy::status::BatchStatus>()
            .map_err(|e| ServiceError::invalid(format!("status {e}")))?;
    }
    let mut by_batch: BTreeMap<String, Vec<EntryRow>> = BTreeMap::new();
    for (id, e) in state.store.batch_entries(None, None).await? {
        by_batch.entry(id).or_default().push(e);
    }
    let mut out = Vec::new();
    for b in state.store.batches().await? {
        let entries = by_batch.remove(&b.id).unwrap_or_default();
        let v = view(&b, entries);
        if wanted.is_none_or(|s| s == v.status) {
            out.push(v);
        }
    }
    Ok(out)
}

/// One batch by id or unique id prefix.
pub async fn show(state: &Shared, id: &str) -> ServiceResult<BatchView> {
    let id = super::full_id(state, IdKind::Batch, id).await?;
    load(state, &id).await
}
