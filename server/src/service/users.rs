//! Users (docs/users.md): add, list, edit, remove. Who may do what is `policy::roles`; the
//! check on every request is `auth`'s.

use ferry_manifests::wire::{UserEdit, UserRequest, UserView};

use super::error::{ServiceError, ServiceResult};
use crate::auth::passwords::PasswordError;
use crate::policy::roles::Role;
use crate::state::Shared;
use crate::store::UserRow;

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
    }
}

fn valid_name(name: &str) -> bool {
    ferry_manifests::manifest::validate_item_name(name).is_ok()
}

fn valid_tag(tag: &str) -> bool {
    !tag.is_empty() && tag.len() <= 64 && !tag.chars().any(|c| c.is_control() || c == ',')
}

pub async fn list(state: &Shared) -> ServiceResult<Vec<UserView>> {
    Ok(state.store.users().await?.into_iter().map(view).collect())
}

async fn one(state: &Shared, name: &str) -> ServiceResult<UserView> {
    list(state)
        .await?
        .into_iter()
        .find(|u| u.name == name)
        .ok_or_else(|| ServiceError::not_found(format!("no user {name}")))
}

pub async fn add(state: &Shared, req: &UserRequest) -> ServiceResult<UserView> {
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
        )
        .await?;
    tracing::info!(user = %req.name, %role, "user added");
    one(state, &req.name).await
}

pub async fn edit(state: &Shared, name: &str, edit: &UserEdit) -> ServiceResult<UserView> {
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
    let users = state.store.users().await?;
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
    one(state, name).await
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

/// Removes a user; its tokens go with it (refused on the next request).
pub async fn remove(state: &Shared, name: &str) -> ServiceResult<()> {
    let users = state.store.users().await?;
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

/// The id of the user named `name`.
pub async fn id_of(state: &Shared, name: &str) -> ServiceResult<String> {
    Ok(one(state, name).await?.id)
}
