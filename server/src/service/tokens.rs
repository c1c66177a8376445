//! Operator and enrolment tokens: create (shown once), list, revoke. Only hashes are stored.

use ferry_manifests::wire::{TokenRequest, TokenView};

use super::error::{ServiceError, ServiceResult};
use crate::auth::{hash_token, new_token, TokenKind};
use crate::state::Shared;
use crate::store::{IdKind, LiveOperator, TokenLimits};

/// Creates an operator or enrolment token; the answer carries the token itself, shown
/// only this once (only its hash is kept). An operator token belongs to the user named in
/// the request, else to `caller` (the user asking).
pub async fn create(
    state: &Shared,
    req: &TokenRequest,
    caller: &LiveOperator,
) -> ServiceResult<TokenView> {
    let kind = req.kind.as_deref().unwrap_or("operator");
    let Some(token_kind) = TokenKind::creatable(kind) else {
        return Err(ServiceError::invalid(format!(
            "token kind {kind:?}: use operator or enrol"
        )));
    };
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > 128 {
        return Err(ServiceError::invalid("name must be 1-128 characters"));
    }
    let mut limits = limits(token_kind, req)?;
    if token_kind == TokenKind::Operator {
        let (user_id, tenant_id) = match &req.user {
            Some(name) => user_for_token(state, caller, name).await?,
            None => (caller.user_id.clone(), caller.tenant_id.clone()),
        };
        limits.user_id = Some(user_id);
        limits.tenant_id = Some(tenant_id);
    } else if req.user.is_some() {
        return Err(ServiceError::invalid(
            "user applies to operator tokens only; an enrolment token belongs to the fleet",
        ));
    }
    // A token is its user's tenant's; an enrolment token its caller's, and enrols hosts
    // into it.
    if limits.tenant_id.is_none() {
        limits.tenant_id = Some(caller.tenant_id.clone());
    }
    let token = new_token(token_kind).map_err(ServiceError::Random)?;
    let id = state
        .store
        .add_token(token_kind.as_str(), name, &hash_token(&token), &limits)
        .await?;
    tracing::info!(%id, %kind, %name, "token created");
    let mut view = state
        .store
        .tokens(limits.tenant_id.as_deref().unwrap_or(&caller.tenant_id))
        .await?
        .into_iter()
        .find(|t| t.id == id)
        .ok_or_else(|| ServiceError::Vanished("token"))?;
    view.token = Some(token);
    Ok(view)
}

/// The (user id, tenant id) an operator token for the user `name` belongs to: a user of the
/// caller's tenant, or (the install's admin, giving a new tenant its first credential) of
/// any.
async fn user_for_token(
    state: &Shared,
    caller: &LiveOperator,
    name: &str,
) -> ServiceResult<(String, String)> {
    let users = state.store.users().await?;
    let found = users.iter().find(|u| u.name == name);
    match found {
        Some(u) if u.tenant_id == caller.tenant_id => Ok((u.id.clone(), u.tenant_id.clone())),
        Some(u) if super::tenants::is_install_admin(state, caller).await? => {
            Ok((u.id.clone(), u.tenant_id.clone()))
        }
        _ => Err(ServiceError::not_found(format!("no user {name}"))),
    }
}

/// What a token is limited to, as asked.
fn limits(kind: TokenKind, req: &TokenRequest) -> ServiceResult<TokenLimits> {
    if kind != TokenKind::Enrol && (req.uses.is_some() || req.needs_acceptance) {
        return Err(ServiceError::invalid(
            "uses and needs_acceptance apply to enrolment tokens (kind enrol) only",
        ));
    }
    let expires_at = match req.expires_in_days {
        None => None,
        Some(days @ 1..=3650) => Some(ferry_manifests::wire::timestamp(
            time::OffsetDateTime::now_utc() + time::Duration::days(i64::from(days)),
        )),
        Some(other) => {
            return Err(ServiceError::invalid(format!(
                "expires_in_days is {other}: use 1 to 3650"
            )))
        }
    };
    if req.uses.is_some_and(|u| !(1..=1_000_000).contains(&u)) {
        return Err(ServiceError::invalid("uses must be 1 to 1000000"));
    }
    Ok(TokenLimits {
        expires_at,
        uses: req.uses,
        needs_acceptance: req.needs_acceptance,
        user_id: None,
        tenant_id: None,
    })
}

/// Every token of a tenant (hashes never leave the server).
pub async fn list(state: &Shared, tenant_id: &str) -> ServiceResult<Vec<TokenView>> {
    Ok(state.store.tokens(tenant_id).await?)
}

/// Revokes a token of the tenant (by id or unique id prefix); its last operator token is
/// kept.
pub async fn revoke(state: &Shared, tenant_id: &str, id: &str) -> ServiceResult<()> {
    let id = super::full_id(state, IdKind::Token, id).await?;
    let tokens = state.store.tokens(tenant_id).await?;
    let Some(t) = tokens.iter().find(|t| t.id == id && t.revoked_at.is_none()) else {
        return Err(ServiceError::not_found(format!("no active token {id}")));
    };
    let operators = tokens
        .iter()
        .filter(|t| t.kind == TokenKind::Operator.as_str() && t.revoked_at.is_none())
        .count();
    if t.kind == TokenKind::Operator.as_str() && operators == 1 {
        return Err(ServiceError::conflict(
            "this is the last operator token; create another before revoking it",
        ));
    }
    state.store.revoke_token(&id).await?;
    tracing::info!(%id, kind = %t.kind, name = %t.name, "token revoked");
    Ok(())
}
