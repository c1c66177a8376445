//! A device enrols: with an enrolment token (live, not revoked, expired or used up, within
//! the fleet-wide budget), sending a CSR for the key it made so the device CA certifies it;
//! or with a factory certificate from the CA the operator trusts (`device_ca_file`), and no
//! token. The host is created, accepted at once or waiting for an operator. Later, a device
//! renews its certificate (or moves from a bearer token to one) with [`certificate`].

use ferry_manifests::wire::{now, CertificateResponse, EnrolRequest, EnrolResponse};

use super::error::{ServiceError, ServiceResult};
use crate::auth::{hash_token, new_token, tokens, TokenKind};
use crate::identity::{ca, DeviceAuth, FactoryDevices, Presented};
use crate::state::Shared;
use crate::store::CertificateRow;

/// Enrols a device whose facts the handler has checked; `presented` is the client
/// certificate it connected with, if any.
pub async fn enrol(
    state: &Shared,
    req: &EnrolRequest,
    presented: Option<Presented>,
) -> ServiceResult<EnrolResponse> {
    if req.enrol_token.is_empty() {
        return match presented {
            Some(p) => factory(state, req, p).await,
            None => Err(ServiceError::Unauthorized(
                "give an enrolment token (enrol_token_file in agent.toml), or connect with a factory certificate (certificate and key in agent.toml)".into(),
            )),
        };
    }
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
    let mode = state.identity.config.device_auth;
    let certifying = match (&state.identity.ca, &req.csr) {
        (Some(ca), Some(csr)) => Some((ca, csr)),
        _ => None,
    };
    if mode == DeviceAuth::Certificate && certifying.is_none() {
        return Err(ServiceError::Unauthorized(
            "this server accepts devices by client certificate only (device_auth = certificate): the agent must reach it over https (server_url https://…) to send a certificate request".into(),
        ));
    }
    within_enrolment_budget(state)?;
    let id = uuid::Uuid::new_v4().to_string();
    // The CSR is checked (its signature proves the device holds the key) before the
    // token's use is spent.
    let issued = certifying
        .map(|(ca, csr)| {
            ca.issue(
                csr,
                &id,
                time::OffsetDateTime::now_utc(),
                state.identity.config.certificate_lifetime,
            )
            .map_err(|e| ServiceError::invalid(e.to_string()))
        })
        .transpose()?;
    let t = now();
    // One use spent in one statement: two enrolments cannot both take its last use.
    let Some((needs_acceptance, tenant_id)) =
        state.store.spend_enrol_token(&token_hash, &t).await?
    else {
        return Err(refused());
    };
    let device_token = new_token(TokenKind::Device).map_err(ServiceError::Random)?;
    let mut host = super::checkin::host_row(id.clone(), &req.facts, t.clone(), t.clone());
    host.accepted = !needs_acceptance;
    // The host joins the enrolment token's tenant.
    host.tenant_id = tenant_id;
    create(state, host, &hash_token(&device_token), &req.facts).await?;
    let (certificate, not_after) = match issued {
        Some(issued) => {
            let not_after = ferry_manifests::wire::timestamp(issued.not_after);
            record(
                state,
                &id,
                &issued.fingerprint,
                &issued.serial,
                "issued",
                &not_after,
            )
            .await?;
            (Some(issued.pem), Some(not_after))
        }
        None => (None, None),
    };
    if needs_acceptance {
        tracing::info!(host_id = %id, hostname = %req.facts.hostname, "host enrolled; it waits for an operator's acceptance (ferryctl hosts accept)");
        state.changed();
    } else {
        tracing::info!(host_id = %id, hostname = %req.facts.hostname, certificate = certificate.is_some(), "host enrolled");
    }
    Ok(EnrolResponse {
        host_id: id,
        // A device with a certificate has no use for a bearer token.
        device_token: if certificate.is_some() {
            String::new()
        } else {
            device_token
        },
        certificate,
        certificate_not_after: not_after,
    })
}

fn within_enrolment_budget(state: &Shared) -> ServiceResult<()> {
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
    Ok(())
}

/// Stores a new host and what it enrolled with.
async fn create(
    state: &Shared,
    host: crate::store::HostRow,
    token_hash: &str,
    facts: &ferry_manifests::wire::DeviceFacts,
) -> ServiceResult<()> {
    let id = host.id.clone();
    state.store.create_host(&host, token_hash).await?;
    let hash = crate::cache::facts_hash(facts);
    let written = crate::store::HostCheckIn {
        site: facts.site.clone(),
        ..host.into()
    };
    state
        .store
        .update_host(written, &facts.installed, facts.utc_offset_secs, hash)
        .await?;
    // Its first check-in compares with what it enrolled with, without a read.
    state.cache.remember_facts(&id, hash);
    Ok(())
}

async fn record(
    state: &Shared,
    host_id: &str,
    fingerprint: &str,
    serial: &str,
    source: &str,
    not_after: &str,
) -> ServiceResult<()> {
    state
        .store
        .add_certificate(&CertificateRow {
            fingerprint: fingerprint.to_string(),
            host_id: host_id.to_string(),
            serial: serial.to_string(),
            source: source.to_string(),
            not_after: not_after.to_string(),
            issued_at: now(),
            revoked_at: None,
        })
        .await?;
    Ok(())
}

/// A device with a factory certificate: the host it already is (it lost its state
/// directory), or a new one named by the certificate's subject, accepted or held as
/// `factory_devices` says. A certificate whose host was removed is refused for good.
async fn factory(state: &Shared, req: &EnrolRequest, p: Presented) -> ServiceResult<EnrolResponse> {
    let fingerprint = ca::fingerprint(&p.der);
    if let Some(holder) = state.store.certificate(&fingerprint).await? {
        if holder.certificate.revoked_at.is_some() || holder.accepted.is_none() {
            return Err(ServiceError::Unauthorized(
                "this device's certificate was revoked (its host was removed); it is never accepted again".into(),
            ));
        }
        return Ok(EnrolResponse {
            host_id: holder.certificate.host_id,
            device_token: String::new(),
            certificate: None,
            certificate_not_after: None,
        });
    }
    state.identity.verify_factory(&p).map_err(|e| {
        ServiceError::Unauthorized(format!("the device's certificate is refused: {e}"))
    })?;
    within_enrolment_budget(state)?;
    let subject = crate::identity::tls::subject(&p.der)
        .map_err(|e| ServiceError::Unauthorized(format!("the device's certificate: {e}")))?;
    let id = uuid::Uuid::new_v4().to_string();
    let t = now();
    let mut host = super::checkin::host_row(id.clone(), &req.facts, t.clone(), t);
    if let Some(name) = subject.common_name.filter(|n| !n.is_empty()) {
        host.facts.hostname = name;
    }
    let held = state.identity.config.factory_devices == FactoryDevices::Hold;
    host.accepted = !held;
    let hostname = host.facts.hostname.clone();
    // It authenticates by certificate; its token is never given out.
    let unused = new_token(TokenKind::Device).map_err(ServiceError::Random)?;
    create(state, host, &hash_token(&unused), &req.facts).await?;
    record(
        state,
        &id,
        &fingerprint,
        &subject.serial,
        "factory",
        &subject.not_after,
    )
    .await?;
    tracing::info!(host_id = %id, %hostname, held, "host joined with a factory certificate");
    state.changed();
    Ok(EnrolResponse {
        host_id: id,
        device_token: String::new(),
        certificate: None,
        certificate_not_after: None,
    })
}

/// A new certificate for the key of `csr`, for a device that proved itself (with its
/// current certificate, to renew, or its bearer token, to move to certificates). At most one
/// every third of a lifetime, so a device cannot fill the server with certificates.
pub async fn certificate(
    state: &Shared,
    host_id: &str,
    csr: &str,
) -> ServiceResult<CertificateResponse> {
    let Some(ca) = &state.identity.ca else {
        return Err(ServiceError::Conflict(
            "this server issues no device certificates: it needs TLS (--tls-cert) or a TLS-terminating proxy's header (client_cert_header), and device_auth other than token".into(),
        ));
    };
    let lifetime = state.identity.config.certificate_lifetime;
    let now_t = time::OffsetDateTime::now_utc();
    if let Some(newest) = state.store.host_certificates(host_id).await?.first() {
        let issued = time::OffsetDateTime::parse(
            &newest.issued_at,
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap_or(now_t);
        let next: time::OffsetDateTime = issued + lifetime / 3;
        if newest.source == "issued" && now_t < next {
            let wait = (next - now_t).whole_seconds().max(1) as u64;
            return Err(ServiceError::Busy {
                retry_after: std::time::Duration::from_secs(wait),
                message: format!(
                    "this device got a certificate at {}; the next may be asked for in {wait} s",
                    newest.issued_at
                ),
            });
        }
    }
    let issued = ca
        .issue(csr, host_id, now_t, lifetime)
        .map_err(|e| ServiceError::invalid(e.to_string()))?;
    let not_after = ferry_manifests::wire::timestamp(issued.not_after);
    record(
        state,
        host_id,
        &issued.fingerprint,
        &issued.serial,
        "issued",
        &not_after,
    )
    .await?;
    state.changed();
    tracing::info!(%host_id, %not_after, "device certificate issued");
    Ok(CertificateResponse {
        certificate: issued.pem,
        not_after,
    })
}
