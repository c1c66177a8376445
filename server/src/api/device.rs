//! Device endpoints: enrolment, check-in, reports.

use axum::extract::State;
use axum::Json;
use ferry_manifests::manifest::validate_item_name;
use ferry_manifests::wire::{
    CertificateRequest, CertificateResponse, CheckInRequest, CheckInResponse, DeviceFacts,
    EnrolRequest, EnrolResponse, ReportAck, ReportBatch,
};

use crate::auth::{CheckingIn, ClientCertificate, Device};
use crate::error::extract::Json as ApiJson;
use crate::error::{ApiResult, AppError};
use crate::service;
use crate::state::Shared;

/// Most reports accepted in one request.
const MAX_REPORTS: usize = 100;

/// Longest text a device may report in one of its facts (os, arch, versions, device class).
const MAX_FACT_CHARS: usize = 128;
/// Longest installed version a device may report (semver allows any length; nothing Ferry
/// publishes is near this).
const MAX_VERSION_CHARS: usize = 128;

/// What a device reports about itself, checked before anything of it is kept or logged: sizes
/// bounded, no control characters (they would reach terminals and logs), each item once.
fn validate_facts(facts: &DeviceFacts) -> ApiResult<()> {
    let printable = |s: &str| !s.chars().any(char::is_control);
    if facts.hostname.trim().is_empty()
        || facts.hostname.chars().count() > 255
        || !printable(&facts.hostname)
    {
        return Err(AppError::bad_request(
            "hostname must be 1-255 characters, without control characters",
        ));
    }
    let texts = [
        ("os", Some(facts.os.as_str())),
        ("os_version", Some(facts.os_version.as_str())),
        ("arch", Some(facts.arch.as_str())),
        ("agent_version", Some(facts.agent_version.as_str())),
        ("device_class", facts.device_class.as_deref()),
        ("newest_manifest_at", facts.newest_manifest_at.as_deref()),
    ];
    for (key, value) in texts {
        if let Some(v) = value.filter(|v| v.chars().count() > MAX_FACT_CHARS || !printable(v)) {
            return Err(AppError::bad_request(format!(
                "{key} must be at most {MAX_FACT_CHARS} characters, without control characters ({} given)",
                v.chars().count()
            )));
        }
    }
    if facts
        .utc_offset_secs
        .is_some_and(|o| !(-86400..=86400).contains(&o))
    {
        return Err(AppError::bad_request(
            "utc_offset_secs must be between -86400 and 86400",
        ));
    }
    if facts.installed.len() > 1000 {
        return Err(AppError::bad_request("at most 1000 installed items"));
    }
    let mut seen = std::collections::HashSet::new();
    for i in &facts.installed {
        validate_item_name(&i.item).map_err(AppError::bad_request)?;
        if !seen.insert(i.item.as_str()) {
            return Err(AppError::bad_request(format!(
                "item {} is listed twice in installed",
                i.item
            )));
        }
        if let Some(v) = i.version.as_ref().map(|v| v.to_string()) {
            if v.len() > MAX_VERSION_CHARS {
                return Err(AppError::bad_request(format!(
                    "installed version of {} is {} characters; at most {MAX_VERSION_CHARS}",
                    i.item,
                    v.len()
                )));
            }
        }
    }
    ferry_manifests::wire::validate_labels(&facts.tags, facts.friendly_name.as_deref())
        .map_err(AppError::bad_request)?;
    if let Some(site) = &facts.site {
        ferry_manifests::wire::validate_site(site).map_err(AppError::bad_request)?;
    }
    Ok(())
}

#[utoipa::path(post, path = "/api/v1/enrol", tag = "device", request_body = ferry_manifests::wire::EnrolRequest, responses((status = 200, body = ferry_manifests::wire::EnrolResponse), crate::error::ClientErrors))]
pub async fn enrol(
    State(state): State<Shared>,
    ClientCertificate(presented): ClientCertificate,
    ApiJson(req): ApiJson<EnrolRequest>,
) -> ApiResult<Json<EnrolResponse>> {
    validate_facts(&req.facts)?;
    Ok(Json(service::enrol::enrol(&state, &req, presented).await?))
}

/// A certificate for the device's key: to renew the one it has before it expires, or to
/// move from a bearer token to a certificate (docs/security.md).
#[utoipa::path(post, path = "/api/v1/device/certificate", tag = "device", request_body = ferry_manifests::wire::CertificateRequest, responses((status = 200, body = ferry_manifests::wire::CertificateResponse), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn certificate(
    State(state): State<Shared>,
    Device(host_id): Device,
    ApiJson(req): ApiJson<CertificateRequest>,
) -> ApiResult<Json<CertificateResponse>> {
    Ok(Json(
        service::enrol::certificate(&state, &host_id, &req.csr).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/device/checkin", tag = "device", request_body = ferry_manifests::wire::CheckInRequest, responses((status = 200, body = ferry_manifests::wire::CheckInResponse), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn check_in(
    State(state): State<Shared>,
    device: CheckingIn,
    ApiJson(req): ApiJson<CheckInRequest>,
) -> ApiResult<Json<CheckInResponse>> {
    validate_facts(&req.facts)?;
    if let Some(d) = &req.inventory_digest {
        if !ferry_manifests::manifest::is_sha256_hex(d) {
            return Err(AppError::bad_request(
                "inventory_digest must be 64 lowercase hex digits",
            ));
        }
    }
    Ok(Json(
        service::checkin::check_in(&state, device.host_id, device.accepted, device.peer, req)
            .await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/device/output", tag = "device", request_body = ferry_manifests::wire::OutputChunk, responses((status = 204, description = "stored and relayed"), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn output(
    State(state): State<Shared>,
    Device(host_id): Device,
    ApiJson(chunk): ApiJson<ferry_manifests::wire::OutputChunk>,
) -> ApiResult<axum::http::StatusCode> {
    if chunk.text.len() > 1024 * 1024 {
        return Err(AppError::bad_request("at most 1 MiB of output per request"));
    }
    // An install's output: the device is here, busy.
    state
        .presence
        .contact(&host_id, crate::policy::fleet::Contact::Other);
    match state
        .store
        .append_output(&chunk.update_id, &host_id, &chunk.text)
        .await?
    {
        Some(offset) => {
            state.publish_live(
                &chunk.update_id,
                crate::live::LiveEvent::Chunk {
                    offset,
                    text: chunk.text,
                },
            );
            Ok(axum::http::StatusCode::NO_CONTENT)
        }
        None => Err(AppError::not_found(format!(
            "no running update {} on this host",
            chunk.update_id
        ))),
    }
}

/// A job the device cannot start yet (no space, a root it may not write): its message says
/// why, and it stays pending.
#[utoipa::path(post, path = "/api/v1/device/waiting", tag = "device", request_body = ferry_manifests::wire::Waiting, responses((status = 204, description = "noted"), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn waiting(
    State(state): State<Shared>,
    Device(host_id): Device,
    ApiJson(w): ApiJson<ferry_manifests::wire::Waiting>,
) -> ApiResult<axum::http::StatusCode> {
    // Shown to operators: one bounded line, no control characters.
    let message: String = w
        .message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(1024)
        .collect();
    if state
        .store
        .note_update(&w.job_id, &host_id, &message)
        .await?
    {
        state.changed();
        Ok(axum::http::StatusCode::NO_CONTENT)
    } else {
        Err(AppError::not_found(format!(
            "no pending update {} on this host",
            w.job_id
        )))
    }
}

/// The software the device's sources found, sent when the check-in asked for it
/// (`inventory_wanted`): whole, or what changed since the list the server has (`base`; 409
/// when the server no longer has that list). It replaces what the server had for this host.
#[utoipa::path(post, path = "/api/v1/device/inventory", tag = "device", request_body = ferry_manifests::wire::InventoryUpload, responses((status = 200, body = ferry_manifests::wire::InventoryAck), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn inventory(
    State(state): State<Shared>,
    Device(host_id): Device,
    ApiJson(upload): ApiJson<ferry_manifests::wire::InventoryUpload>,
) -> ApiResult<Json<ferry_manifests::wire::InventoryAck>> {
    let stored = service::packages::store(&state, &host_id, upload).await?;
    Ok(Json(ferry_manifests::wire::InventoryAck { stored }))
}

#[utoipa::path(post, path = "/api/v1/device/reports", tag = "device", request_body = ferry_manifests::wire::ReportBatch, responses((status = 200, body = ferry_manifests::wire::ReportAck), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn reports(
    State(state): State<Shared>,
    Device(host_id): Device,
    ApiJson(batch): ApiJson<ReportBatch>,
) -> ApiResult<Json<ReportAck>> {
    if batch.reports.len() + batch.package_reports.len() > MAX_REPORTS {
        return Err(AppError::bad_request(format!(
            "at most {MAX_REPORTS} reports per request"
        )));
    }
    for r in &batch.reports {
        validate_item_name(&r.item).map_err(AppError::bad_request)?;
        if r.report_id.is_empty() || r.report_id.len() > 64 {
            return Err(AppError::bad_request("report_id must be 1-64 characters"));
        }
        if let Some(f) = &r.fetched {
            if f.bad_peers.len() > 16
                || f.bad_peers
                    .iter()
                    .any(|p| ferry_manifests::wire::share_address(p).is_none())
            {
                return Err(AppError::bad_request(
                    "fetched.bad_peers: at most 16 share addresses, each http://IP:PORT",
                ));
            }
        }
    }
    for r in &batch.package_reports {
        if r.report_id.is_empty() || r.report_id.len() > 64 {
            return Err(AppError::bad_request("report_id must be 1-64 characters"));
        }
        if !crate::service::packages::valid_source(&r.source) {
            return Err(AppError::bad_request(format!(
                "source {:?}: 1-16 lowercase letters",
                r.source
            )));
        }
        if r.changes.len() > ferry_manifests::wire::MAX_INVENTORY {
            return Err(AppError::bad_request(format!(
                "at most {} packages per report",
                ferry_manifests::wire::MAX_INVENTORY
            )));
        }
        // Shown escaped wherever a person reads them; bounded here, as the schema says.
        let long = |t: &str| t.chars().count() > 256;
        if r.changes.iter().any(|c| {
            c.name.is_empty()
                || long(&c.name)
                || c.from.as_deref().is_some_and(long)
                || c.to.as_deref().is_some_and(long)
        }) {
            return Err(AppError::bad_request(
                "a package's name is 1-256 characters and its versions at most 256",
            ));
        }
    }
    state
        .presence
        .contact(&host_id, crate::policy::fleet::Contact::Other);
    let acked = service::report::reports_arrived(
        &state,
        &host_id,
        batch.reports,
        batch.package_reports,
        batch.sent_at.as_deref(),
    )
    .await?;
    Ok(Json(ReportAck { acked }))
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
pub struct TerminalQuery {
    /// The last event's `seq` the device took (0 at first).
    #[serde(default)]
    pub after: u64,
}

/// How long a device's poll for terminal input is held open when nothing comes.
const TERMINAL_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

/// What the operator's terminal sent to this device's interactive install since `after`,
/// held open up to 20 s until something comes; and whether an operator is attached.
#[utoipa::path(get, path = "/api/v1/device/terminal/{job}", tag = "device", params(("job" = String, Path), TerminalQuery), responses((status = 200, body = ferry_manifests::wire::TerminalPoll), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn terminal(
    State(state): State<Shared>,
    Device(host_id): Device,
    axum::extract::Path(job): axum::extract::Path<String>,
    axum::extract::Query(q): axum::extract::Query<TerminalQuery>,
) -> ApiResult<Json<ferry_manifests::wire::TerminalPoll>> {
    if state.store.interactive_host(&job).await?.as_deref() != Some(host_id.as_str()) {
        return Err(AppError::not_found(format!(
            "no interactive install {job} under way on this host"
        )));
    }
    state
        .presence
        .contact(&host_id, crate::policy::fleet::Contact::Other);
    let (events, attached) = state.terminals.poll(&job, q.after, TERMINAL_WAIT).await;
    Ok(Json(ferry_manifests::wire::TerminalPoll {
        events,
        attached,
    }))
}
