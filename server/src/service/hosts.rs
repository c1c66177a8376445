//! Hosts as operators see them: the fleet list with each host's connectivity and what is
//! available to it, an operator's labels, removal, and asking hosts to check in now.

use ferry_manifests::wire::{
    CheckAnswer, CheckRequest, HostEdit, HostView, InstalledItem, ReleaseView,
};

use super::error::{ServiceError, ServiceResult};
use crate::policy::fleet;
use crate::state::Shared;
use crate::store::HostRow;

/// (online, long-polling now) of a host whose last check-in the store has as `last_seen`.
pub fn connectivity(
    state: &Shared,
    host_id: &str,
    stored_seen: &str,
    at: time::OffsetDateTime,
) -> (bool, bool) {
    let last_seen = state.cache.seen(host_id);
    let contact = state.presence.get(host_id);
    (
        fleet::is_present(
            contact,
            last_seen.as_deref().unwrap_or(stored_seen),
            at,
            state.config.offline_after_secs,
        ),
        contact.is_some_and(|(c, _)| c == fleet::Contact::Holding),
    )
}

/// A host as operators see it (the API's host list and the web UI).
pub fn view(
    state: &Shared,
    h: HostRow,
    installed: Vec<InstalledItem>,
    releases: &[ReleaseView],
    at: time::OffsetDateTime,
) -> HostView {
    let (tags, friendly_name) = fleet::effective_labels(
        &h.device_tags,
        h.device_friendly_name.as_deref(),
        h.operator_tags.as_deref(),
        h.operator_friendly_name.as_deref(),
        state.config.trust_device_tags,
    );
    let last_seen = state.cache.seen(&h.id).unwrap_or(h.last_seen);
    let (online, long_polling) = connectivity(state, &h.id, &last_seen, at);
    HostView {
        long_polling,
        online,
        id: h.id,
        facts: h.facts,
        enrolled_at: h.enrolled_at,
        last_seen,
        tags,
        reported_tags: h.device_tags,
        accepted: h.accepted,
        friendly_name,
        available: fleet::available_for(&installed, releases),
        installed,
        auth: h.auth,
        clone_seen: h.clone_seen,
        kind: h.kind,
        attributes: h.attributes,
        site: h.site,
        share: h.share_url,
        share_fault: h.share_fault,
    }
}

/// Every host, as operators see it.
pub async fn list(state: &Shared) -> ServiceResult<Vec<HostView>> {
    let at = time::OffsetDateTime::now_utc();
    let hosts = state.store.hosts().await?;
    let catalog = state.catalog().await?;
    Ok(hosts
        .into_iter()
        .map(|(h, installed)| {
            let releases = catalog.for_tenant(h.tenant_id.as_deref());
            view(state, h, installed, &releases, at)
        })
        .collect())
}

pub use super::resolve_host as resolve;

/// Sets or clears the operator's tags and friendly name, which win over the device's.
pub async fn edit(state: &Shared, host: &str, edit: &HostEdit) -> ServiceResult<HostView> {
    let (host_id, _) = resolve(state, host).await?;
    ferry_manifests::wire::validate_labels(
        edit.tags.as_deref().unwrap_or_default(),
        edit.friendly_name.as_deref(),
    )
    .map_err(ServiceError::invalid)?;
    state
        .store
        .edit_host(
            &host_id,
            edit.tags.as_deref(),
            edit.friendly_name.as_deref(),
        )
        .await?;
    if edit.share_ok && state.store.clear_share_fault(&host_id).await? {
        tracing::info!(%host_id, "offered to its site as a peer again");
        state.changed();
    }
    list(state)
        .await?
        .into_iter()
        .find(|h| h.id == host_id)
        .ok_or_else(|| ServiceError::not_found(format!("host {host} was removed")))
}

/// What an operator edits of a host (its tags and name), as the audit log keeps it.
pub async fn labels(state: &Shared, host: &str) -> Option<serde_json::Value> {
    let (id, _) = resolve(state, host).await.ok()?;
    let h = list(state).await.ok()?.into_iter().find(|h| h.id == id)?;
    Some(serde_json::json!({"tags": h.tags, "friendly_name": h.friendly_name}))
}

/// Accepts a host that enrolled with a token requiring it: from its next check-in it is
/// given updates and joins campaigns. Accepting an accepted host is a conflict.
pub async fn accept(state: &Shared, host: &str) -> ServiceResult<HostView> {
    let (host_id, hostname) = resolve(state, host).await?;
    if !state.store.accept_host(&host_id).await? {
        return Err(ServiceError::conflict(format!(
            "host {hostname} ({host_id}) is accepted already"
        )));
    }
    tracing::info!(%host_id, %hostname, "host accepted");
    state.changed();
    state.wake(&host_id);
    list(state)
        .await?
        .into_iter()
        .find(|h| h.id == host_id)
        .ok_or_else(|| ServiceError::not_found(format!("host {host} was removed")))
}

/// One host, with its certificates.
pub async fn show(state: &Shared, host: &str) -> ServiceResult<ferry_manifests::wire::HostDetail> {
    let (host_id, _) = resolve(state, host).await?;
    let view = list(state)
        .await?
        .into_iter()
        .find(|h| h.id == host_id)
        .ok_or_else(|| ServiceError::not_found(format!("host {host} was removed")))?;
    let certificates = state
        .store
        .host_certificates(&host_id)
        .await?
        .into_iter()
        .map(|c| ferry_manifests::wire::CertificateView {
            fingerprint: c.fingerprint,
            serial: c.serial,
            source: c.source,
            issued_at: c.issued_at,
            not_after: c.not_after,
            revoked_at: c.revoked_at,
        })
        .collect();
    Ok(ferry_manifests::wire::HostDetail {
        host: view,
        certificates,
    })
}

/// Removes a host: its history goes with it, and every instance forgets its credential.
pub async fn remove(state: &Shared, host: &str) -> ServiceResult<()> {
    let (host_id, hostname) = resolve(state, host).await?;
    state.store.remove_host(&host_id).await?;
    state.host_removed(&host_id);
    state.changed();
    tracing::info!(%host_id, %hostname, "host removed");
    Ok(())
}

/// Asks one host, every host with an item, or one host about one of its items (a Ferry
/// item or software its sources found), for a check now: a long-polling device checks within
/// a second, refreshing what its sources know; another at its next run.
pub async fn check_now(
    state: &Shared,
    req: &CheckRequest,
    scope: &crate::policy::scope::Scope,
) -> ServiceResult<CheckAnswer> {
    if req.host.as_deref() == Some("") || req.item.as_deref() == Some("") {
        return Err(ServiceError::invalid("host and item may not be empty"));
    }
    let mut hosts = match (&req.host, &req.item) {
        (Some(host), None) => vec![super::scope::require_host(state, scope, host).await?.0],
        (None, Some(item)) => state.store.hosts_with_item(item).await?,
        (Some(host), Some(item)) => {
            let (id, hostname) = super::scope::require_host(state, scope, host).await?;
            let has_item = state.store.hosts_with_item(item).await?.contains(&id)
                || state
                    .store
                    .packages_named(item)
                    .await?
                    .iter()
                    .any(|p| p.host_id == id);
            if !has_item {
                return Err(ServiceError::not_found(format!(
                    "{} has no item or software named {item:?} (`ferryctl hosts show {}`)",
                    hostname, hostname
                )));
            }
            vec![id]
        }
        (None, None) => return Err(ServiceError::invalid("give a host, an item, or both")),
    };
    // An item's hosts: those within the user's reach.
    super::scope::keep_visible(state, scope, &mut hosts, |h| h.as_str()).await?;
    for h in &hosts {
        state.ask_check(h);
    }
    Ok(CheckAnswer { hosts: hosts.len() })
}

/// The hosts that have an item with a newer release offered (no host is read whole).
pub async fn with_updates(
    state: &Shared,
    category: Option<&str>,
) -> ServiceResult<std::collections::HashSet<String>> {
    let mut releases = state.releases().await?.as_ref().clone();
    if let Some(c) = category {
        releases.retain(|r| r.category == c);
    }
    let which: Vec<_> = state
        .store
        .installed_counts()
        .await?
        .into_iter()
        .map(|(i, _)| i)
        .filter(|i| !fleet::available_for(std::slice::from_ref(i), &releases).is_empty())
        .collect();
    Ok(state
        .store
        .hosts_with_installed(&which)
        .await?
        .into_iter()
        .collect())
}
