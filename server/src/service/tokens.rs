//! Operator and enrolment tokens: create (shown once), list, revoke. Only hashes are stored.

use ferry_manifests::wire::{TokenRequest, TokenView};

use super::error::{ServiceError, ServiceResult};
use crate::auth::{hash_token, new_token, TokenKind};
use crate::state::Shared;
use crate::store::{IdKind, TokenLimits};

/// Creates an operator or enrolment token; the answer carries the token itself, shown
/// only this once (only its hash is kept). An operator token belongs to the user named in
/// the request, else to `caller` (the user asking).
pub async fn create(state: &Shared, req: &TokenRequest, caller: &str) -> ServiceResult<TokenView> {
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
        limits.user_id = Some(match &req.user {
            Some(name) => super::users::id_of(state, name).await?,
            None => caller.to_string(),
        });
    } else if req.user.is_some() {
        return Err(ServiceError::invalid(
            "user applies to operator tokens only; an enrolment token belongs to the fleet",
        ));
    }
    let token = new_token(token_kind).map_err(ServiceError::Random)?;
    let id = state
        .store
        .add_token(token_kind.as_str(), name, &hash_token(&token), &limits)
        .await?;
    tracing::info!(%id, %kind, %name, "token created");
    let mut view = state
        .store
        .tokens()
        .await?
        .into_iter()
        .find(|t| t.id == id)
        .ok_or_else(|| ServiceError::Vanished("token"))?;
    view.token = Some(token);
    Ok(view)
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
    })
}

/// Every token (hashes never leave the server).
pub async fn list(state: &Shared) -> ServiceResult<Vec<TokenView>> {
    Ok(state.store.tokens().await?)
}

/// Revokes a token (by id or unique id prefix); the last operator token is kept.
pub async fn revoke(state: &Shared, id: &str) -> ServiceResult<()> {
    let id = super::full_id(state, IdKind::Token, id).await?;
    let tokens = state.store.tokens().await?;
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
