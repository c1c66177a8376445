//! Software items: list them with their presentation, feature or deactivate one.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::Json;
use ferry_manifests::manifest::validate_item_name;
use ferry_manifests::wire::{validate_icon_url, ItemEdit, ItemView};

use crate::auth::Operator;
use crate::error::extract::{Json as ApiJson, Path};
use crate::error::{ApiResult, AppError};
use crate::state::Shared;
use crate::store::ItemSettings;

#[utoipa::path(get, path = "/api/v1/items", tag = "items", responses((status = 200, body = Vec<ferry_manifests::wire::ItemView>), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn list(State(state): State<Shared>, _op: Operator) -> ApiResult<Json<Vec<ItemView>>> {
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
    Ok(Json(items.into_values().collect()))
}

#[utoipa::path(patch, path = "/api/v1/items/{name}", tag = "items", params(("name" = String, Path, pattern = "^[a-z0-9][a-z0-9._-]{0,63}$")), request_body = ferry_manifests::wire::ItemEdit, responses((status = 200, body = ferry_manifests::wire::ItemView), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn edit(
    State(state): State<Shared>,
    op: Operator,
    Path(name): Path<String>,
    ApiJson(edit): ApiJson<ItemEdit>,
) -> ApiResult<Json<ItemView>> {
    validate_item_name(&name).map_err(AppError::bad_request)?;
    let icon = match edit.icon_url.as_deref() {
        Some("") => Some(None),
        Some(url) => {
            validate_icon_url(url).map_err(AppError::bad_request)?;
            Some(Some(url))
        }
        None => None,
    };
    state
        .store
        .edit_item(&name, edit.featured, icon, edit.deactivated)
        .await?;
    // Deactivation changes what devices are offered.
    state.releases_changed();
    state.changed();
    tracing::info!(item = %name, "item edited");
    let Json(all) = list(State(state), op).await?;
    all.into_iter()
        .find(|i| i.name == name)
        .map(Json)
        .ok_or_else(|| AppError::Vanished("item"))
}
