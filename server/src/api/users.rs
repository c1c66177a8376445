//! Users: list, add, edit, remove (`service::users`); the admin's (`policy::roles`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use ferry_manifests::wire::{UserEdit, UserRequest, UserView};

use crate::auth::Operator;
use crate::error::extract::{Json as ApiJson, Path};
use crate::error::ApiResult;
use crate::service::users;
use crate::state::Shared;

#[utoipa::path(get, path = "/api/v1/users", tag = "users", responses((status = 200, body = Vec<ferry_manifests::wire::UserView>), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn list(State(state): State<Shared>, op: Operator) -> ApiResult<Json<Vec<UserView>>> {
    Ok(Json(users::list(&state, &op.user().tenant_id).await?))
}

#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = ferry_manifests::wire::UserRequest, responses((status = 200, body = ferry_manifests::wire::UserView), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn add(
    State(state): State<Shared>,
    op: Operator,
    ApiJson(req): ApiJson<UserRequest>,
) -> ApiResult<Json<UserView>> {
    Ok(Json(users::add(&state, op.user(), &req).await?))
}

#[utoipa::path(patch, path = "/api/v1/users/{name}", tag = "users", params(("name" = String, Path)), request_body = ferry_manifests::wire::UserEdit, responses((status = 200, body = ferry_manifests::wire::UserView), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn edit(
    State(state): State<Shared>,
    op: Operator,
    Path(name): Path<String>,
    ApiJson(edit): ApiJson<UserEdit>,
) -> ApiResult<(
    axum::Extension<crate::policy::audit::Change>,
    Json<UserView>,
)> {
    let before = users::list(&state, &op.user().tenant_id)
        .await?
        .into_iter()
        .find(|u| u.name == name);
    let after = users::edit(&state, op.user(), &name, &edit).await?;
    Ok((
        crate::policy::audit::Change::of(before.as_ref(), Some(&after)),
        Json(after),
    ))
}

#[utoipa::path(delete, path = "/api/v1/users/{name}", tag = "users", params(("name" = String, Path)), responses((status = 204, description = "removed, with its tokens"), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn remove(
    State(state): State<Shared>,
    op: Operator,
    Path(name): Path<String>,
) -> ApiResult<(axum::Extension<crate::policy::audit::Change>, StatusCode)> {
    let before = users::list(&state, &op.user().tenant_id)
        .await?
        .into_iter()
        .find(|u| u.name == name);
    users::remove(&state, op.user(), &name).await?;
    Ok((
        crate::policy::audit::Change::of(before.as_ref(), None::<&()>),
        StatusCode::NO_CONTENT,
    ))
}
