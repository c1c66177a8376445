//! An install asked for by a person: through the API (`ferryctl update trigger`), or by
//! pressing Install in Home Assistant (the MQTT bridge). The same checks either way.

use crate::error::{ApiResult, AppError};
use crate::policy::fleet;
use crate::state::Shared;

/// Queues an install of `item` (the newest release, or `version`) on `host_id`, with `actor`
/// in the history; returns the update's id. Refused (409) when the host does not manage the
/// item, already has that version (unless `force`) or has an update of it pending.
/// An interactive install's options.
#[derive(Debug, Clone, Copy)]
pub struct Interactive {
    /// Keep what the operator types in the history.
    pub record_input: bool,
}

pub async fn trigger(
    state: &Shared,
    host_id: &str,
    item: &str,
    version: Option<&semver::Version>,
    force: bool,
    interactive: Option<Interactive>,
    actor: &str,
) -> ApiResult<String> {
    crate::api::items::ensure_active(state, item).await?;
    let releases = state.store.releases(Some(item)).await?;
    let release = match version {
        Some(v) => releases.iter().find(|r| &r.version == v),
        None => fleet::newest(&releases, item),
    };
    let Some(release) = release else {
        return Err(AppError::not_found(match version {
            Some(v) => format!("no release {item} {v}; see ferryctl releases list"),
            None => format!("no release of {item}; publish one first"),
        }));
    };
    let (host, installed) = state
        .store
        .host(host_id)
        .await?
        .ok_or_else(|| AppError::not_found(format!("no host {host_id}")))?;
    let Some(current) = installed.iter().find(|i| i.item == item) else {
        let items: Vec<&str> = installed.iter().map(|i| i.item.as_str()).collect();
        return Err(AppError::conflict(format!(
            "{} does not manage {item} (its items: {}); add it to [[items]] in the device's agent config first",
            host.facts.hostname,
            if items.is_empty() { "none".to_string() } else { items.join(", ") }
        )));
    };
    if current.version.as_ref() == Some(&release.version) && !force {
        return Err(AppError::conflict(format!(
            "{} already has {item} {}; pass --force (\"force\": true) to queue it anyway",
            host.facts.hostname, release.version
        )));
    }
    if let Some(existing) = state.store.active_update(host_id, item).await? {
        return Err(AppError::conflict(format!(
            "host already has a pending update of {item} ({existing})"
        )));
    }
    let id = state
        .store
        .create_update(
            host_id,
            item,
            &release.version,
            actor,
            interactive.map(|how| how.record_input),
        )
        .await?;
    tracing::info!(%host_id, %item, version = %release.version, update = %id, %actor, "update triggered");
    state.wake(host_id);
    state.changed();
    Ok(id)
}
