//! Items: how each is presented and whether it is offered, and the rules every request
//! about an item passes, whoever makes it.

use std::collections::BTreeMap;

use ferry_manifests::manifest::validate_item_name;
use ferry_manifests::wire::{validate_icon_url, ItemEdit, ItemView};

use super::error::{ServiceError, ServiceResult};
use crate::state::Shared;
use crate::store::ItemSettings;

/// Refuses (409) an install of a deactivated item.
pub async fn ensure_active(state: &Shared, item: &str) -> ServiceResult<()> {
    let deactivated = state
        .store
        .item_settings()
        .await?
        .into_iter()
        .any(|s| s.name == item && s.deactivated);
    if deactivated {
        return Err(ServiceError::conflict(format!(
            "item {item} is deactivated; activate it first (ferryctl items edit {item} --activate)"
        )));
    }
    Ok(())
}

/// Every item with releases or settings, with how it is presented.
pub async fn list(state: &Shared) -> ServiceResult<Vec<ItemView>> {
    let mut items: BTreeMap<String, ItemView> = BTreeMap::new();
    for r in state.store.releases(None).await? {
        let e = items.entry(r.item.clone()).or_insert_with(|| ItemView {
            name: r.item.clone(),
            featured: false,
            icon_url: None,
            deactivated: false,
            releases: 0,
            newest: None,
        });
        e.releases += 1;
        if e.newest.as_ref().is_none_or(|n| &r.version > n) {
            e.newest = Some(r.version.clone());
        }
    }
    for settings in state.store.item_settings().await? {
        let ItemSettings {
            name,
            featured,
            icon_url,
            deactivated,
        } = settings;
        let e = items.entry(name.clone()).or_insert_with(|| ItemView {
            name,
            featured: false,
            icon_url: None,
            deactivated: false,
            releases: 0,
            newest: None,
        });
        e.featured = featured;
        e.icon_url = icon_url;
        e.deactivated = deactivated;
    }
    Ok(items.into_values().collect())
}

/// Features an item, sets its icon, or (de)activates it.
pub async fn edit(state: &Shared, name: &str, edit: &ItemEdit) -> ServiceResult<ItemView> {
    validate_item_name(name).map_err(ServiceError::invalid)?;
    let icon = match edit.icon_url.as_deref() {
        Some("") => Some(None),
        Some(url) => {
            validate_icon_url(url).map_err(ServiceError::invalid)?;
            Some(Some(url))
        }
        None => None,
    };
    state
        .store
        .edit_item(name, edit.featured, icon, edit.deactivated)
        .await?;
    // Deactivation changes what devices are offered.
    state.releases_changed();
    state.changed();
    tracing::info!(item = %name, "item edited");
    list(state)
        .await?
        .into_iter()
        .find(|i| i.name == name)
        .ok_or_else(|| ServiceError::Vanished("item"))
}
