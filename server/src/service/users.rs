//! Users (docs/users.md): add, list, edit, remove. Who may do what is `policy::roles`; the
//! check on every request is `auth`'s.

use ferry_manifests::wire::{UserEdit, UserRequest, UserView};

use super::error::{ServiceError, ServiceResult};
use crate::auth::passwords::PasswordError;
use crate::policy::roles::Role;
use crate::state::Shared;
use crate::store::{LiveOperator, UserRow};

fn view(u: UserRow) -> UserView {
    UserView {
        id: u.id,
        name: u.name,
        role: u.role,
        tag: u.tag,
        created_at: u.created_at,
        tokens: u64::try_from(u.tokens).unwrap_or(0),
        password: u.password,
        single_sign_on: u.single_sign_on,
        tenant: u.tenant,
    }
}

fn valid_name(name: &str) -> bool {
    ferry_manifests::manifest::validate_item_name(name).is_ok()
}

fn valid_tag(tag: &str) -> bool {
    !tag.is_empty() && tag.len() <= 64 && !tag.chars().any(|c| c.is_control() || c == ',')
}

/// The users of a tenant (their names are the install's: unique across tenants).
pub async fn list(state: &Shared, tenant_id: &str) -> ServiceResult<Vec<UserView>> {
    Ok(rows(state, tenant_id)
        .await?
        .into_iter()
        .map(view)
        .collect())
}

async fn rows(state: &Shared, tenant_id: &str) -> ServiceResult<Vec<UserRow>> {
    let mut all = state.store.users().await?;
    all.retain(|u| u.tenant_id == tenant_id);
    Ok(all)
}

async fn one(state: &Shared, name: &str, tenant_id: &str) -> ServiceResult<UserView> {
    list(state, tenant_id)
        .await?
        .into_iter()
        .find(|u| u.name == name)
        .ok_or_else(|| ServiceError::not_found(format!("no user {name}")))
}

/// Adds a user to the caller's tenant, or (the install's admin) to the one named.
pub async fn add(
    state: &Shared,
    caller: &LiveOperator,
    req: &UserRequest,
) -> ServiceResult<UserView> {
    let tenant_id = match req.tenant.as_deref() {
        None => caller.tenant_id.clone(),
        Some(name) => {
            let id = super::tenants::id_of(state, name).await?;
            if id != caller.tenant_id && !super::tenants::is_install_admin(state, caller).await? {
                return Err(ServiceError::Forbidden(format!(
                    "only an admin of the default tenant adds users to another tenant; user {} is not",
                    caller.user_name
                )));
            }
            id
        }
    };
    if !valid_name(&req.name) {
        return Err(ServiceError::invalid(format!(
            "user name {:?}: 1-64 of a-z 0-9 . _ -, starting with a letter or digit",
            req.name
        )));
    }
    let role: Role = req.role.parse().map_err(ServiceError::invalid)?;
    if let Some(t) = req.tag.as_deref().filter(|t| !valid_tag(t)) {
        return Err(ServiceError::invalid(format!(
            "tag {t:?}: 1-64 characters, no commas"
        )));
    }
    if state
        .store
        .users()
        .await?
        .iter()
        .any(|u| u.name == req.name)
    {
        return Err(ServiceError::conflict(format!(
            "a user is already named {}",
            req.name
        )));
    }
    let hash = match &req.password {
        Some(p) => Some(hash_password(p).await?),
        None => None,
    };
    state
        .store
        .add_user(
            &req.name,
            role.as_str(),
            req.tag.as_deref(),
            hash.as_deref(),
            &tenant_id,
        )
        .await?;
    tracing::info!(user = %req.name, %role, "user added");
    one(state, &req.name, &tenant_id).await
}

/// Edits a user of the caller's tenant.
pub async fn edit(
    state: &Shared,
    caller: &LiveOperator,
    name: &str,
    edit: &UserEdit,
) -> ServiceResult<UserView> {
    let role = edit
        .role
        .as_deref()
        .map(str::parse::<Role>)
        .transpose()
        .map_err(ServiceError::invalid)?;
    if let Some(t) = edit
        .tag
        .as_deref()
        .filter(|t| !t.is_empty() && !valid_tag(t))
    {
        return Err(ServiceError::invalid(format!(
            "tag {t:?}: 1-64 characters, no commas"
        )));
    }
    let users = rows(state, &caller.tenant_id).await?;
    let Some(user) = users.iter().find(|u| u.name == name) else {
        return Err(ServiceError::not_found(format!("no user {name}")));
    };
    if user.role == "admin" && role.is_some_and(|r| r != Role::Admin) && last_admin(&users) {
        return Err(ServiceError::conflict(format!(
            "{name} is the last admin; make another user admin first"
        )));
    }
    let hash = match &edit.password {
        Some(p) => Some(hash_password(p).await?),
        None => None,
    };
    state
        .store
        .edit_user(name, role.map(Role::as_str), edit.tag.as_deref())
        .await?;
    if let Some(hash) = &hash {
        state.store.set_password(name, Some(hash)).await?;
    }
    // A new role, tag or password ends the user's web sessions (a role or tag change would
    // at their next request anyway).
    state.sessions.end_user(&user.id);
    tracing::info!(user = %name, role = ?role, password = hash.is_some(), "user edited");
    one(state, name, &caller.tenant_id).await
}

/// The argon2id hash of a new password (in a blocking thread: it costs by design).
async fn hash_password(password: &str) -> ServiceResult<String> {
    let password = password.to_string();
    tokio::task::spawn_blocking(move || crate::auth::passwords::hash(&password))
        .await
        .map_err(|e| ServiceError::Password(format!("hashing a password: {e}")))?
        .map_err(|e| match e {
            PasswordError::TooShort | PasswordError::TooLong => {
                ServiceError::invalid(e.to_string())
            }
            other => ServiceError::Password(other.to_string()),
        })
}

fn last_admin(users: &[UserRow]) -> bool {
    users.iter().filter(|u| u.role == "admin").count() == 1
}

/// Removes a user of the caller's tenant; its tokens go with it (refused on the next
/// request). A tenant keeps its last admin.
pub async fn remove(state: &Shared, caller: &LiveOperator, name: &str) -> ServiceResult<()> {
    let users = rows(state, &caller.tenant_id).await?;
    let Some(user) = users.iter().find(|u| u.name == name) else {
        return Err(ServiceError::not_found(format!("no user {name}")));
    };
    if user.role == "admin" && last_admin(&users) {
        return Err(ServiceError::conflict(format!(
            "{name} is the last admin; make another user admin first"
        )));
    }
    state.store.remove_user(name).await?;
    state.sessions.end_user(&user.id);
    tracing::info!(user = %name, "user removed, with its tokens");
    Ok(())
}

/// The id of the user named `name` in the tenant.
pub async fn id_of(state: &Shared, name: &str, tenant_id: &str) -> ServiceResult<String> {
    Ok(one(state, name, tenant_id).await?.id)
}
