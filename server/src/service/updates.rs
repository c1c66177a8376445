//! An install asked for by a person: through the API (`ferryctl update trigger`), or by
//! pressing Install in Home Assistant (the MQTT bridge). The same checks either way.

use super::error::{ServiceError, ServiceResult};
use super::Actor;
use crate::policy::fleet;
use crate::state::Shared;

/// An interactive install's options.
#[derive(Debug, Clone, Copy)]
pub struct Interactive {
    /// Keep what the operator types in the history.
    pub record_input: bool,
}

/// An install asked for.
#[derive(Debug, Clone)]
pub struct Install<'a> {
    pub host_id: &'a str,
    pub item: &'a str,
    /// `None`: the newest release.
    pub version: Option<&'a semver::Version>,
    /// Queue it even when the host already has that version.
    pub force: bool,
    /// Run its hooks in an operator's terminal.
    pub interactive: Option<Interactive>,
    pub actor: Actor,
}

/// Queues an install, with its actor in the history; returns the update's id. Refused (409)
/// when the item is deactivated, the host does not manage it, already has that version
/// (unless `force`) or has an update of it pending; 404 without such a host or release.
pub async fn trigger(state: &Shared, install: Install<'_>) -> ServiceResult<String> {
    let Install {
        host_id,
        item,
        version,
        force,
        interactive,
        actor,
    } = install;
    let actor = actor.as_str();
    super::items::ensure_active(state, item).await?;
    let releases = state.store.releases(Some(item)).await?;
    let release = match version {
        Some(v) => releases.iter().find(|r| &r.version == v),
        None => fleet::newest(&releases, item),
    };
    let Some(release) = release else {
        return Err(ServiceError::not_found(match version {
            Some(v) => format!("no release {item} {v}; see ferryctl releases list"),
            None => format!("no release of {item}; publish one first"),
        }));
    };
    let (host, installed) = state
        .store
        .host(host_id)
        .await?
        .ok_or_else(|| ServiceError::not_found(format!("no host {host_id}")))?;
    let Some(current) = installed.iter().find(|i| i.item == item) else {
        let items: Vec<&str> = installed.iter().map(|i| i.item.as_str()).collect();
        return Err(ServiceError::conflict(format!(
            "{} does not manage {item} (its items: {}); add it to [[items]] in the device's agent config first",
            host.facts.hostname,
            if items.is_empty() { "none".to_string() } else { items.join(", ") }
        )));
    };
    if current.version.as_ref() == Some(&release.version) && !force {
        return Err(ServiceError::conflict(format!(
            "{} already has {item} {}; pass --force (\"force\": true) to queue it anyway",
            host.facts.hostname, release.version
        )));
    }
    if let Some(existing) = state.store.active_update(host_id, item).await? {
        return Err(ServiceError::conflict(format!(
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
