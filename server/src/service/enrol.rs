//! A device enrols with an enrolment token: the token must be live (not revoked, expired or
//! used up), enrolment fleet-wide must be within its budget, and the host is created,
//! accepted at once or (when the token asks for it) waiting for an operator.

use ferry_manifests::wire::{now, EnrolRequest, EnrolResponse};

use super::error::{ServiceError, ServiceResult};
use crate::auth::{hash_token, new_token, tokens, TokenKind};
use crate::state::Shared;

/// Enrols a device whose facts the handler has checked.
pub async fn enrol(state: &Shared, req: &EnrolRequest) -> ServiceResult<EnrolResponse> {
    let token_hash = hash_token(&req.enrol_token);
    let refused = || {
        ServiceError::Unauthorized(
            "enrolment token is unknown, revoked, expired or used up; copy DATA_DIR/enrol.token from the server or create one with `ferryctl tokens create --kind enrol`".into(),
        )
    };
    // Checked without spending it first, so a refusal for the budget costs no use.
    if !tokens::valid(&state.store, TokenKind::Enrol, &token_hash).await? {
        return Err(refused());
    }
    if let Err(over) = state.budgets.enrolment() {
        if over.first {
            tracing::warn!(
                "more enrolments than `enrolments_per_minute` allows; refusing with 429 until they slow down"
            );
        }
        return Err(ServiceError::Busy {
            retry_after: over.retry_after,
            message: format!(
                "too many devices are enrolling (`enrolments_per_minute`); retry in {} s",
                over.retry_after.as_secs().max(1)
            ),
        });
    }
    let t = now();
    // One use spent in one statement: two enrolments cannot both take its last use.
    let Some((needs_acceptance, tenant_id)) =
        state.store.spend_enrol_token(&token_hash, &t).await?
    else {
        return Err(refused());
    };
    let id = uuid::Uuid::new_v4().to_string();
    let device_token = new_token(TokenKind::Device).map_err(ServiceError::Random)?;
    let mut host = super::checkin::host_row(id.clone(), &req.facts, t.clone(), t);
    host.accepted = !needs_acceptance;
    // The host joins the enrolment token's tenant.
    host.tenant_id = tenant_id;
    state
        .store
        .create_host(&host, &hash_token(&device_token))
        .await?;
    let hash = crate::cache::facts_hash(&req.facts);
    state
        .store
        .update_host(
            host.into(),
            &req.facts.installed,
            req.facts.utc_offset_secs,
            hash,
        )
        .await?;
    // Its first check-in compares with what it enrolled with, without a read.
    state.cache.remember_facts(&id, hash);
    if needs_acceptance {
        tracing::info!(host_id = %id, hostname = %req.facts.hostname, "host enrolled; it waits for an operator's acceptance (ferryctl hosts accept)");
        state.changed();
    } else {
        tracing::info!(host_id = %id, hostname = %req.facts.hostname, "host enrolled");
    }
    Ok(EnrolResponse {
        host_id: id,
        device_token,
    })
}
