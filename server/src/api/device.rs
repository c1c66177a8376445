//! Device endpoints: enrolment, check-in, reports.

use axum::extract::State;
use axum::Json;
use ferry_manifests::manifest::validate_item_name;
use ferry_manifests::wire::{
    CheckInRequest, CheckInResponse, DeviceFacts, EnrolRequest, EnrolResponse, Job, ReportAck,
    ReportBatch,
};

use crate::auth::{hash_token, new_token, Device};
use crate::error::extract::Json as ApiJson;
use crate::error::{ApiResult, AppError};
use crate::store::{HostRow, ReportRecord};
use crate::{fleet, now, Shared};

/// Most reports accepted in one request.
const MAX_REPORTS: usize = 100;
/// Output kept per report (the tail, if longer).
const MAX_OUTPUT: usize = 1024 * 1024;

fn validate_facts(facts: &DeviceFacts) -> ApiResult<()> {
    if facts.hostname.trim().is_empty() || facts.hostname.len() > 255 {
        return Err(AppError::bad_request("hostname must be 1-255 characters"));
    }
    if facts.installed.len() > 1000 {
        return Err(AppError::bad_request("at most 1000 installed items"));
    }
    for i in &facts.installed {
        validate_item_name(&i.item).map_err(AppError::bad_request)?;
    }
    ferry_manifests::wire::validate_labels(&facts.tags, facts.friendly_name.as_deref())
        .map_err(AppError::bad_request)?;
    Ok(())
}

fn host_row(id: String, facts: &DeviceFacts, enrolled_at: String) -> HostRow {
    let t = now();
    HostRow {
        id,
        facts: facts.host_facts(),
        enrolled_at: if enrolled_at.is_empty() {
            t.clone()
        } else {
            enrolled_at
        },
        last_seen: t,
        device_tags: facts.tags.clone(),
        device_friendly_name: facts.friendly_name.clone(),
        operator_tags: None,
        operator_friendly_name: None,
    }
}

#[utoipa::path(post, path = "/api/v1/enrol", tag = "device", request_body = ferry_manifests::wire::EnrolRequest, responses((status = 200, body = ferry_manifests::wire::EnrolResponse), crate::error::ClientErrors))]
pub async fn enrol(
    State(state): State<Shared>,
    ApiJson(req): ApiJson<EnrolRequest>,
) -> ApiResult<Json<EnrolResponse>> {
    if !state
        .store
        .token_valid("enrol", &hash_token(&req.enrol_token))
        .await?
    {
        return Err(AppError::unauthorized(
            "enrolment token is unknown or revoked; copy DATA_DIR/enrol.token from the server",
        ));
    }
    validate_facts(&req.facts)?;
    let id = uuid::Uuid::new_v4().to_string();
    let device_token = new_token("fdv").map_err(|e| AppError::Internal(e.to_string()))?;
    let host = host_row(id.clone(), &req.facts, String::new());
    state
        .store
        .create_host(&host, &hash_token(&device_token))
        .await?;
    state.store.update_host(&host, &req.facts.installed).await?;
    tracing::info!(host_id = %id, hostname = %host.facts.hostname, "host enrolled");
    Ok(Json(EnrolResponse {
        host_id: id,
        device_token,
    }))
}

#[utoipa::path(post, path = "/api/v1/device/checkin", tag = "device", request_body = ferry_manifests::wire::CheckInRequest, responses((status = 200, body = ferry_manifests::wire::CheckInResponse), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn check_in(
    State(state): State<Shared>,
    Device(host_id): Device,
    ApiJson(req): ApiJson<CheckInRequest>,
) -> ApiResult<Json<CheckInResponse>> {
    validate_facts(&req.facts)?;
    let host = host_row(host_id.clone(), &req.facts, String::from("-"));
    // The database is written only when the facts changed; last-seen goes to the batch.
    if state
        .cache
        .check_in(&host_id, &req.facts, host.last_seen.clone())
    {
        state.store.update_host(&host, &req.facts.installed).await?;
        if let Some(offset) = req.facts.utc_offset_secs {
            state.store.set_utc_offset(&host_id, offset).await?;
        }
    }
    // Campaign membership is decided here, when the host checks in, never by scanning the
    // fleet on a timer. The effective tags count (the operator's win).
    let campaigns = if state.campaigns_active().await? {
        let tags = state.store.host_tags(&host_id).await?;
        crate::api::campaigns::on_check_in(&state, &host_id, &tags, &req.facts.installed).await?
    } else {
        Vec::new()
    };
    // Unless an update changed anywhere since this host last had no work, it still has none.
    let epoch = state.store.updates_epoch();
    let (cancelled_jobs, mut jobs) = if state.cache.idle_at(&host_id, epoch) {
        (Vec::new(), Vec::new())
    } else {
        let cancelled = state.store.cancelled_updates(&host_id).await?;
        let jobs = pending_jobs(&state, &host_id).await?;
        let idle = cancelled.is_empty() && jobs.is_empty();
        state.cache.set_idle(&host_id, idle.then_some(epoch));
        (cancelled, jobs)
    };
    let wait = req.wait_secs.min(state.config.long_poll_max_secs);
    if jobs.is_empty() && wait > 0 {
        // Long-poll: answer as soon as there is work (or a `ferryctl check`), else at the end.
        if state
            .waker
            .wait(&host_id, std::time::Duration::from_secs(wait))
            .await
        {
            jobs = pending_jobs(&state, &host_id).await?;
        }
    }
    let releases = state.releases().await?;
    let available = fleet::available_for(&req.facts.installed, &releases);
    let trust_root_version = state.trust_root_version().await?;
    Ok(Json(CheckInResponse {
        host_id,
        available,
        jobs,
        acked_reports: vec![],
        trust_root_version,
        poll_interval_secs: state.config.poll_interval_secs,
        campaigns,
        cancelled_jobs,
    }))
}

async fn pending_jobs(state: &Shared, host_id: &str) -> ApiResult<Vec<Job>> {
    Ok(state
        .store
        .pending_jobs(host_id)
        .await?
        .into_iter()
        .map(|j| Job {
            manifest_path: fleet::manifest_path(&j.item, &j.version),
            job_id: j.id,
            item: j.item,
            version: j.version,
        })
        .collect())
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
    match state
        .store
        .append_output(&chunk.update_id, &host_id, &chunk.text)
        .await?
    {
        Some(offset) => {
            state.live.publish(
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

#[utoipa::path(post, path = "/api/v1/device/reports", tag = "device", request_body = ferry_manifests::wire::ReportBatch, responses((status = 200, body = ferry_manifests::wire::ReportAck), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn reports(
    State(state): State<Shared>,
    Device(host_id): Device,
    ApiJson(batch): ApiJson<ReportBatch>,
) -> ApiResult<Json<ReportAck>> {
    if batch.reports.len() > MAX_REPORTS {
        return Err(AppError::bad_request(format!(
            "at most {MAX_REPORTS} reports per request"
        )));
    }
    let mut acked = Vec::new();
    for r in batch.reports {
        validate_item_name(&r.item).map_err(AppError::bad_request)?;
        if r.report_id.is_empty() || r.report_id.len() > 64 {
            return Err(AppError::bad_request("report_id must be 1-64 characters"));
        }
        let mut output = r.output;
        if output.len() > MAX_OUTPUT {
            let mut cut = output.len() - MAX_OUTPUT;
            while !output.is_char_boundary(cut) {
                cut += 1;
            }
            output = output.split_off(cut);
        }
        let new = state
            .store
            .record_report(&ReportRecord {
                report_id: r.report_id.clone(),
                host_id: host_id.clone(),
                job_id: r.job_id.clone(),
                item: r.item.clone(),
                version: r.version.to_string(),
                from_version: r.from_version.map(|v| v.to_string()),
                status: r.outcome.as_str().to_string(),
                message: r.message.clone(),
                output,
                started_at: r.started_at,
                finished_at: r.finished_at,
            })
            .await?;
        if new {
            tracing::info!(%host_id, item = %r.item, version = %r.version, outcome = r.outcome.as_str(), "report: {}", r.message);
            if let Some(job) = &r.job_id {
                crate::api::campaigns::on_report(&state, job).await?;
                state.live.publish(
                    job,
                    crate::live::LiveEvent::End {
                        status: r.outcome.as_str().to_string(),
                    },
                );
            }
        }
        acked.push(r.report_id);
    }
    // A finished install frees the host for its next batch entry.
    crate::api::batches::dispatch(&state, &host_id).await?;
    Ok(Json(ReportAck { acked }))
}
