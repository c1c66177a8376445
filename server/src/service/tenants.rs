//! Tenants (docs/users.md): an install's separate fleets. Every install has `default`; an
//! admin of it (the install's admin) adds more and gives each its first admin
//! (`ferryctl users add NAME --role admin --tenant T`); everyone else sees only their own.

use ferry_manifests::wire::{TenantRequest, TenantView};

use super::error::{ServiceError, ServiceResult};
use crate::state::Shared;
use crate::store::LiveOperator;

/// The default tenant's name.
pub const DEFAULT: &str = "default";

/// Every tenant.
pub async fn list(state: &Shared) -> ServiceResult<Vec<TenantView>> {
    Ok(state
        .store
        .tenants()
        .await?
        .into_iter()
        .map(|(id, name)| TenantView { id, name })
        .collect())
}

/// The default tenant's id.
pub async fn default_id(state: &Shared) -> ServiceResult<String> {
    list(state)
        .await?
        .into_iter()
        .find(|t| t.name == DEFAULT)
        .map(|t| t.id)
        .ok_or(ServiceError::Vanished("the default tenant"))
}

/// Whether `user` is an admin of the default tenant: the install's admin.
pub async fn is_install_admin(state: &Shared, user: &LiveOperator) -> ServiceResult<bool> {
    Ok(user.role == "admin" && user.tenant_id == default_id(state).await?)
}

/// The id of the tenant named `name`.
pub async fn id_of(state: &Shared, name: &str) -> ServiceResult<String> {
    list(state)
        .await?
        .into_iter()
        .find(|t| t.name == name)
        .map(|t| t.id)
        .ok_or_else(|| ServiceError::not_found(format!("no tenant {name}")))
}

/// A new tenant (the install's admin only).
pub async fn add(
    state: &Shared,
    caller: &LiveOperator,
    req: &TenantRequest,
) -> ServiceResult<TenantView> {
    if !is_install_admin(state, caller).await? {
        return Err(ServiceError::Forbidden(format!(
            "only an admin of the {DEFAULT} tenant adds tenants; user {} is not",
            caller.user_name
        )));
    }
    if ferry_manifests::manifest::validate_item_name(&req.name).is_err() {
        return Err(ServiceError::invalid(format!(
            "tenant name {:?}: 1-64 of a-z 0-9 . _ -, starting with a letter or digit",
            req.name
        )));
    }
    if list(state).await?.iter().any(|t| t.name == req.name) {
        return Err(ServiceError::conflict(format!(
            "a tenant is already named {}",
            req.name
        )));
    }
    let id = state.store.add_tenant(&req.name).await?;
    // Catalogs split by tenant from now on, on every instance.
    state.releases_changed();
    tracing::info!(tenant = %req.name, "tenant added");
    Ok(TenantView {
        id,
        name: req.name.clone(),
    })
}
