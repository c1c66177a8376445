//! Batches at work: when a host is free, its next batch entry becomes an install.

use crate::error::{ApiResult, AppError};
use crate::policy::batch;
use crate::store::EntryRow;
use crate::Shared;

/// Dispatches the next batch entry on `host_id`, if the host is free.
pub async fn dispatch(state: &Shared, host_id: &str) -> ApiResult<()> {
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
                .map_err(|source| AppError::StoredVersion {
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
            .create_update(host_id, &entry.item, &version, "user")
            .await?;
        state
            .store
            .mark_dispatched(batch_id, entry.state.seq, &id)
            .await?;
        tracing::info!(batch = %batch_id, %host_id, item = %entry.item, %version, update = %id, "batch entry dispatched");
        state.waker.wake(host_id);
    }
    Ok(())
}
