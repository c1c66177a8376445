//! A user limited to hosts with a tag (`policy::scope`), carried out: whether what a request
//! addresses is within their reach, and which hosts a list may show them.

use std::collections::HashSet;

use ferry_manifests::wire::{BatchRequest, BatchView, CampaignTarget, CampaignView};

use super::error::{ServiceError, ServiceResult};
use crate::policy::fleet;
use crate::policy::scope::{Addressed, Scope};
use crate::state::Shared;
use crate::store::{HostRow, IdKind};

/// A host's tenant and tags as campaigns (and scopes) see them; `None`: no such host.
async fn host_reach(
    state: &Shared,
    host_id: &str,
) -> ServiceResult<Option<(Option<String>, Vec<String>)>> {
    Ok(state
        .store
        .host(host_id)
        .await?
        .map(|(h, _)| reach_of(state, &h)))
}

fn reach_of(state: &Shared, h: &HostRow) -> (Option<String>, Vec<String>) {
    let (tags, _) = fleet::effective_labels(
        &h.device_tags,
        None,
        h.operator_tags.as_deref(),
        None,
        state.config.trust_device_tags,
    );
    (h.tenant_id.clone(), tags)
}

/// Whether the host with this id is within reach (a host that is gone is not).
pub async fn sees_host(state: &Shared, scope: &Scope, host_id: &str) -> ServiceResult<bool> {
    if scope.is_all() {
        return Ok(true);
    }
    Ok(match host_reach(state, host_id).await? {
        Some((tenant, tags)) => scope.sees(tenant.as_deref(), &tags),
        None => false,
    })
}

/// The ids of the hosts within reach (`None`: every host).
pub async fn visible_hosts(
    state: &Shared,
    scope: &Scope,
) -> ServiceResult<Option<HashSet<String>>> {
    if scope.is_all() {
        return Ok(None);
    }
    Ok(Some(
        state
            .store
            .hosts()
            .await?
            .into_iter()
            .filter(|(h, _)| {
                let (tenant, tags) = reach_of(state, h);
                scope.sees(tenant.as_deref(), &tags)
            })
            .map(|(h, _)| h.id)
            .collect(),
    ))
}

/// Whether a campaign of this tenant is one the scope's tenant may see.
fn same_tenant(scope: &Scope, tenant: Option<&str>) -> bool {
    scope.tenant().is_none_or(|t| Some(t) == tenant)
}

/// Whether what a route addresses is within reach. Something that does not exist is, so
/// that its handler says so in its own words; something out of reach is answered as if it did
/// not exist (the caller's 404), so a limited user learns nothing of other hosts.
pub async fn within(state: &Shared, scope: &Scope, what: &Addressed) -> ServiceResult<bool> {
    if scope.is_all() {
        return Ok(true);
    }
    match what {
        Addressed::Nothing => Ok(true),
        Addressed::FleetWide => Ok(false),
        Addressed::Host(given) => match super::resolve_host(state, given).await {
            Ok((id, _)) => sees_host(state, scope, &id).await,
            Err(_) => Ok(true),
        },
        Addressed::Update(given) => {
            let id = super::full_id(state, IdKind::Update, given).await?;
            match state.store.history(None, None, Some(&id)).await?.first() {
                Some(e) => sees_host(state, scope, &e.host_id).await,
                None => Ok(true),
            }
        }
        Addressed::Campaign(given) => {
            let id = super::full_id(state, IdKind::Campaign, given).await?;
            let Some(c) = state.store.campaign(&id).await? else {
                return Ok(true);
            };
            Ok(same_tenant(scope, c.tenant_id.as_deref())
                && target_within(state, scope, &c.target).await?)
        }
        Addressed::Batch(given) => {
            let id = super::full_id(state, IdKind::Batch, given).await?;
            if state.store.batch(&id).await?.is_none() {
                return Ok(true);
            }
            let entries = state.store.batch_entries(Some(&id), None).await?;
            if entries.is_empty() {
                return Ok(false);
            }
            for (_, e) in &entries {
                if !sees_host(state, scope, &e.state.host_id).await? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
    }
}

/// Whether a campaign target (host ids or names) stays within reach.
pub async fn target_within(
    state: &Shared,
    scope: &Scope,
    target: &CampaignTarget,
) -> ServiceResult<bool> {
    let mut seen = HashSet::new();
    if let CampaignTarget::Hosts(hosts) = target {
        for h in hosts {
            if let Ok((id, _)) = super::resolve_host(state, h).await {
                if sees_host(state, scope, &id).await? {
                    seen.insert(h.clone());
                }
            }
        }
    }
    Ok(scope.allows_target(target, |h| seen.contains(h)))
}

/// A host a request's body names, resolved, when it is within reach (else as if it did not
/// exist).
pub async fn require_host(
    state: &Shared,
    scope: &Scope,
    host: &str,
) -> ServiceResult<(String, String)> {
    let (id, name) = super::resolve_host(state, host).await?;
    if !sees_host(state, scope, &id).await? {
        return Err(ServiceError::not_found(format!(
            "no host with id or hostname {host:?}"
        )));
    }
    Ok((id, name))
}

/// The refusal of something that reaches beyond a limited user's hosts.
pub fn refuse(scope: &Scope, user: &str, what: &str) -> ServiceError {
    ServiceError::Forbidden(scope.refusal(user, what))
}

/// Keeps what is about a host within reach (`host` gives each one's host id).
pub async fn keep_visible<T>(
    state: &Shared,
    scope: &Scope,
    list: &mut Vec<T>,
    host: impl Fn(&T) -> &str,
) -> ServiceResult<()> {
    if let Some(visible) = visible_hosts(state, scope).await? {
        list.retain(|x| visible.contains(host(x)));
    }
    Ok(())
}

/// A batch request kept within a user's hosts: a host's batch of a host within reach; an
/// item's batch on listed hosts within reach, and "every host with the item" made the hosts
/// of the user's tenant (refused to a user limited to a tag: name the hosts).
pub async fn check_batch(
    state: &Shared,
    scope: &Scope,
    user: &str,
    req: BatchRequest,
) -> ServiceResult<BatchRequest> {
    if scope.is_all() {
        return Ok(req);
    }
    if let BatchRequest::Item { item, .. } = &req {
        super::releases::require_item_of(state, item, scope.tenant()).await?;
    }
    match req {
        BatchRequest::Host { ref host, .. } => {
            require_host(state, scope, host).await?;
            Ok(req)
        }
        BatchRequest::Item { .. }
            if scope.tag().is_some()
                && matches!(&req, BatchRequest::Item { hosts, .. } if hosts.is_empty()) =>
        {
            Err(refuse(scope, user, "a batch of every host with the item"))
        }
        BatchRequest::Item {
            item,
            to_version,
            hosts,
        } if hosts.is_empty() => {
            let visible = visible_hosts(state, scope).await?.unwrap_or_default();
            let mut mine: Vec<String> = state
                .store
                .hosts_with_item(&item)
                .await?
                .into_iter()
                .filter(|h| visible.contains(h))
                .collect();
            mine.sort();
            if mine.is_empty() {
                return Err(ServiceError::conflict(format!(
                    "no host of yours has {item}"
                )));
            }
            Ok(BatchRequest::Item {
                item,
                to_version,
                hosts: mine,
            })
        }
        BatchRequest::Item { ref hosts, .. } => {
            for h in hosts {
                require_host(state, scope, h).await?;
            }
            Ok(req)
        }
    }
}

/// A campaign target stays within a limited user's hosts.
pub async fn check_target(
    state: &Shared,
    scope: &Scope,
    user: &str,
    target: &CampaignTarget,
) -> ServiceResult<()> {
    // Named hosts out of reach do not exist for the user (the campaign's own checks name the
    // ones that do not exist at all).
    if let CampaignTarget::Hosts(hosts) = target {
        for h in hosts {
            match super::resolve_host(state, h).await {
                Ok((id, _)) if !sees_host(state, scope, &id).await? => {
                    return Err(ServiceError::not_found(format!(
                        "no host with id or hostname {h:?}"
                    )))
                }
                _ => {}
            }
        }
        return Ok(());
    }
    if target_within(state, scope, target).await? {
        Ok(())
    } else {
        Err(refuse(scope, user, "this campaign's target"))
    }
}

/// Keeps the batches whose every host is within reach.
pub async fn keep_batches(
    state: &Shared,
    scope: &Scope,
    list: &mut Vec<BatchView>,
) -> ServiceResult<()> {
    if let Some(visible) = visible_hosts(state, scope).await? {
        list.retain(|b| {
            !b.entries.is_empty() && b.entries.iter().all(|e| visible.contains(&e.host_id))
        });
    }
    Ok(())
}

/// Keeps the campaigns whose target is within reach.
pub async fn keep_campaigns(
    state: &Shared,
    scope: &Scope,
    list: &mut Vec<CampaignView>,
) -> ServiceResult<()> {
    if scope.is_all() {
        return Ok(());
    }
    let tenants: std::collections::HashMap<String, Option<String>> = state
        .store
        .campaigns()
        .await?
        .into_iter()
        .map(|c| (c.id, c.tenant_id))
        .collect();
    let mut kept = Vec::with_capacity(list.len());
    for c in list.drain(..) {
        let tenant = tenants.get(&c.id).cloned().flatten();
        if same_tenant(scope, tenant.as_deref()) && target_within(state, scope, &c.target).await? {
            kept.push(c);
        }
    }
    *list = kept;
    Ok(())
}

/// Authentication reads through the state; what a limited user reaches is this module's to
/// say (here, so the state needs nothing of the service layer).
impl crate::auth::AuthContext for crate::state::AppState {
    fn store(&self) -> &crate::store::Store {
        &self.store
    }
    fn sessions(&self) -> &crate::auth::Sessions {
        &self.sessions
    }
    fn cache(&self) -> &crate::cache::Cache {
        &self.cache
    }
    fn budgets(&self) -> &crate::budget::Budgets {
        &self.budgets
    }
    fn identity(&self) -> &crate::identity::Identity {
        &self.identity
    }
    fn within_scope(
        self: &std::sync::Arc<Self>,
        scope: &crate::policy::scope::Scope,
        what: &crate::policy::scope::Addressed,
    ) -> impl std::future::Future<Output = Result<bool, crate::error::AppError>> + Send {
        let (state, scope, what) = (self.clone(), scope.clone(), what.clone());
        async move {
            within(&state, &scope, &what)
                .await
                .map_err(crate::error::AppError::from)
        }
    }
}
