//! Software items: list them with their presentation, feature or deactivate one.

use axum::extract::State;
use axum::Json;
use ferry_manifests::wire::{ItemEdit, ItemView};

use crate::auth::Operator;
use crate::error::extract::{Json as ApiJson, Path};
use crate::error::ApiResult;
use crate::service::items;
use crate::state::Shared;

#[utoipa::path(get, path = "/api/v1/items", tag = "items", responses((status = 200, body = Vec<ferry_manifests::wire::ItemView>), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn list(State(state): State<Shared>, op: Operator) -> ApiResult<Json<Vec<ItemView>>> {
    let mut list = items::list(&state).await?;
    let catalog = state.catalog().await?;
    list.retain(|i| catalog.is_of(&i.name, Some(&op.user().tenant_id)));
    Ok(Json(list))
}

#[utoipa::path(patch, path = "/api/v1/items/{name}", tag = "items", params(("name" = String, Path, pattern = "^[a-z0-9][a-z0-9._-]{0,63}$")), request_body = ferry_manifests::wire::ItemEdit, responses((status = 200, body = ferry_manifests::wire::ItemView), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn edit(
    State(state): State<Shared>,
    op: Operator,
    Path(name): Path<String>,
    ApiJson(edit): ApiJson<ItemEdit>,
) -> ApiResult<(
    axum::Extension<crate::policy::audit::Change>,
    Json<ItemView>,
)> {
    // Another tenant's item is not the caller's to change.
    crate::service::releases::require_item_of(&state, &name, Some(&op.user().tenant_id)).await?;
    let before = items::list(&state)
        .await?
        .into_iter()
        .find(|i| i.name == name);
    let after = items::edit(&state, &name, &edit).await?;
    Ok((
        crate::policy::audit::Change::of(before.as_ref(), Some(&after)),
        Json(after),
    ))
}
