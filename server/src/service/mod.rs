//! What happens when, in the server's own words (request structs, [`Actor`], [`ServiceError`];
//! no HTTP): the events a server reacts to and what operators ask of it, each owned by one
//! module, so handlers stay thin and never call each other, and the API and the web UI do the
//! same thing the same way. Each gathers data from the store, asks `policy` what to do, and
//! carries it out (store writes, wake-ups, live output).
//!
//! - [`checkin`]: a host checked in.
//! - [`report`]: reports arrived.
//! - [`campaigns`]: campaigns at work (a host joined, a report arrived) and what operators
//!   ask of them ([`campaigns::requests`]).
//! - [`batches`]: a batch planned and started; a host free for its next entry.
//! - [`updates`]: a person asked for an install (API, web UI or MQTT); the history; terminals.
//! - [`deltas`]: a delta is wanted (a release published, an older host checked in).
//! - [`hosts`], [`items`], [`releases`], [`tokens`]: the fleet's records as operators see and
//!   change them.

pub mod batches;
pub mod campaigns;
pub mod checkin;
pub mod ddi;
pub mod deltas;
pub mod enrol;
pub mod error;
pub mod hosts;
pub mod items;
pub mod packages;
pub mod releases;
pub mod report;
pub mod scope;
pub mod sites;
pub mod tenants;
pub mod tokens;
pub mod updates;
pub mod users;
pub mod webhooks;

pub use error::{ServiceError, ServiceResult};

use crate::state::Shared;

/// The full id an operator meant: the id itself, or a unique prefix of one of at least four
/// characters (as git takes commit ids). An id nothing starts with comes back as given, for
/// the handler's own "no such …" answer.
pub async fn full_id(
    state: &Shared,
    kind: crate::store::IdKind,
    given: &str,
) -> ServiceResult<String> {
    let ids = state.store.ids_with_prefix(kind, given).await?;
    if ids.iter().any(|i| i == given) {
        return Ok(given.to_string());
    }
    match ids.as_slice() {
        [] => Ok(given.to_string()),
        [one] if given.len() >= 4 => Ok(one.clone()),
        // Short prefixes would soon name more than one: a conflict with the fleet as it
        // grows, like an ambiguous one.
        [_] => Err(ServiceError::conflict(format!(
            "id prefix {given:?} is too short: give at least 4 characters"
        ))),
        _ => Err(ServiceError::conflict(format!(
            "id prefix {given:?} is ambiguous: give more characters"
        ))),
    }
}

/// Who asked for something (an operator by token name, MQTT, a campaign): authentication
/// makes it, so it lives with `auth`.
pub use crate::auth::Actor;

#[cfg(test)]
mod tests;

/// Resolves a host id, a unique prefix of one, or a hostname to exactly one (id, hostname).
/// A full id always wins: a device cannot take over another host's id by naming itself so.
/// A text that is both a hostname and the start of another host's id is refused as ambiguous
/// rather than guessed.
pub async fn resolve_host(state: &Shared, host: &str) -> ServiceResult<(String, String)> {
    let mut found = state.store.find_hosts(host).await?;
    if let Some(i) = found.iter().position(|(id, _)| id == host) {
        return Ok(found.swap_remove(i));
    }
    if !found.is_empty() && host.len() >= 4 {
        let by_prefix = state
            .store
            .ids_with_prefix(crate::store::IdKind::Host, host)
            .await?;
        if let Some(other) = by_prefix
            .iter()
            .find(|id| !found.iter().any(|(f, _)| f == *id))
        {
            return Err(ServiceError::conflict(format!(
                "{host:?} is a hostname and the start of host id {other}; use the full host id"
            )));
        }
    }
    if found.is_empty() {
        let id = full_id(state, crate::store::IdKind::Host, host).await?;
        found = state.store.find_hosts(&id).await?;
        // Only the host with that id, not one that calls itself by it.
        found.retain(|(f, _)| *f == id);
    }
    match found.len() {
        0 => Err(ServiceError::not_found(format!(
            "no host with id or hostname {host:?}"
        ))),
        1 => Ok(found.remove(0)),
        n => Err(ServiceError::conflict(format!(
            "{n} hosts are named {host:?}; use the host id (ferryctl hosts list)"
        ))),
    }
}
