//! Reports arrived: the one place that decides what a device's reports change. Each is
//! stored once (a resend changes nothing), ends the live output of its job, re-decides the
//! campaigns of its update, and frees the host for its next batch entry.

use ferry_manifests::wire::{PackageReport, Report};
use time::OffsetDateTime;

use super::error::ServiceResult;
use crate::policy::status::UpdateStatus;
use crate::state::Shared;
use crate::store::{Recorded, ReportRecord};

/// Output kept per report (the tail, if longer).
const MAX_OUTPUT: usize = 1024 * 1024;

/// Most characters of a device's text that go into one log line.
const LOGGED_CHARS: usize = 200;

/// A device's text as a log line may hold it: control characters escaped (a terminal
/// reading the log would obey them), cut at [`LOGGED_CHARS`].
fn loggable(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(LOGGED_CHARS)
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect();
    if text.chars().count() > LOGGED_CHARS {
        out.push('…');
    }
    out
}

/// How far a device's clock is from the server's: the device's reading when it sent
/// (`sent_at`) against the server's when it received; `None` within a minute (or unreadable),
/// where the device's times are kept as they are.
pub fn clock_offset(sent_at: &str, received: OffsetDateTime) -> Option<time::Duration> {
    let sent = ferry_manifests::wire::parse_timestamp(sent_at)?;
    let offset = received - sent;
    (offset.abs() > time::Duration::minutes(1)).then_some(offset)
}

/// A device's time moved by `offset` into the server's; the text unchanged when unreadable.
fn moved(device_time: &str, offset: time::Duration) -> String {
    ferry_manifests::wire::parse_timestamp(device_time)
        .map(|t| ferry_manifests::wire::timestamp(t + offset))
        .unwrap_or_else(|| device_time.to_string())
}

/// Stores `reports` of `host_id` (validated by the handler), their times moved into the
/// server's when the device's clock (at `sent_at`) disagreed; returns the ids to
/// acknowledge.
pub async fn reports_arrived(
    state: &Shared,
    host_id: &str,
    reports: Vec<Report>,
    package_reports: Vec<PackageReport>,
    sent_at: Option<&str>,
) -> ServiceResult<Vec<String>> {
    let offset = sent_at.and_then(|s| clock_offset(s, OffsetDateTime::now_utc()));
    if let Some(o) = offset {
        tracing::info!(host = %host_id, seconds = o.whole_seconds(), "the device's clock is off; its report times are moved to the server's");
    }
    let mut acked = Vec::new();
    let at = |t: &str| offset.map_or_else(|| t.to_string(), |o| moved(t, o));
    for r in reports {
        let output = tail(r.output);
        let recorded = state
            .store
            .record_report(&ReportRecord {
                report_id: r.report_id.clone(),
                host_id: host_id.to_string(),
                job_id: r.job_id.clone(),
                item: r.item.clone(),
                version: r.version.to_string(),
                from_version: r.from_version.map(|v| v.to_string()),
                status: UpdateStatus::from_outcome(r.outcome),
                message: r.message.clone(),
                output,
                started_at: at(&r.started_at),
                finished_at: at(&r.finished_at),
                device_finished_at: offset.map(|_| r.finished_at.clone()),
                fetched: r
                    .fetched
                    .as_ref()
                    .and_then(|f| serde_json::to_string(f).ok()),
                packages: None,
            })
            .await?;
        if recorded != Recorded::Again {
            let message = loggable(&r.message);
            tracing::info!(%host_id, item = %r.item, version = %r.version, outcome = r.outcome.as_str(), "report: {message}");
            state.metrics.install(r.outcome.as_str(), "release");
            if let Some(f) = &r.fetched {
                state.metrics.from_peers(f.from_peers);
                let what = format!("{} {}", r.item, r.version);
                super::sites::bad_peers(state, host_id, f, &what).await?;
            }
        }
        // Only a job of this host ends: another host's job id in a report touches nothing of
        // that job (its live output, its terminal, its campaign).
        if let Recorded::Job(job) = &recorded {
            super::campaigns::on_report(state, job).await?;
            job_ended(state, job, r.outcome);
        }
        acked.push(r.report_id);
    }
    for r in package_reports {
        let item = ferry_manifests::wire::packages_item(&r.source);
        let recorded = state
            .store
            .record_report(&ReportRecord {
                report_id: r.report_id.clone(),
                host_id: host_id.to_string(),
                job_id: Some(r.job_id.clone()),
                version: match r.changes.len() {
                    1 => "1 package".to_string(),
                    n => format!("{n} packages"),
                },
                item: item.clone(),
                from_version: None,
                status: UpdateStatus::from_outcome(r.outcome),
                message: r.message.clone(),
                output: tail(r.output),
                started_at: at(&r.started_at),
                finished_at: at(&r.finished_at),
                device_finished_at: offset.map(|_| r.finished_at.clone()),
                fetched: None,
                packages: serde_json::to_string(&r.changes).ok(),
            })
            .await?;
        if recorded != Recorded::Again {
            let message = loggable(&r.message);
            tracing::info!(%host_id, %item, outcome = r.outcome.as_str(), "report: {message}");
            state.metrics.install(r.outcome.as_str(), "packages");
        }
        if let Recorded::Job(job) = &recorded {
            job_ended(state, job, r.outcome);
        }
        acked.push(r.report_id);
    }
    // A finished install frees the host for its next batch entry.
    super::batches::dispatch(state, host_id).await?;
    state.changed();
    Ok(acked)
}

/// The last [`MAX_OUTPUT`] bytes of a report's output.
fn tail(mut output: String) -> String {
    if output.len() > MAX_OUTPUT {
        let mut cut = output.len() - MAX_OUTPUT;
        while !output.is_char_boundary(cut) {
            cut += 1;
        }
        output = output.split_off(cut);
    }
    output
}

/// A job ended: its terminal closes, its live output ends.
fn job_ended(state: &Shared, job: &str, outcome: ferry_manifests::wire::Outcome) {
    state.terminals.close(job);
    state.publish_live(
        job,
        crate::live::LiveEvent::End {
            status: outcome.as_str().to_string(),
        },
    );
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_devices_text_is_logged_escaped_and_bounded() {
        assert_eq!(super::loggable("installed 1.0.0"), "installed 1.0.0");
        assert_eq!(
            super::loggable("a\u{1b}[2J\r\nforged"),
            "a\\u{1b}[2J\\r\\nforged"
        );
        let long = super::loggable(&"x".repeat(8192));
        assert_eq!(long.chars().count(), super::LOGGED_CHARS + 1);
    }

    #[test]
    fn a_device_clock_years_off_is_moved_into_the_servers_time() {
        use super::{clock_offset, moved};
        let received = ferry_manifests::wire::parse_timestamp("2026-12-05T10:00:30.000Z").unwrap();
        // Two years behind: its report of a minute ago reads in 2024.
        let offset = clock_offset("2024-12-05T10:00:00.000Z", received).unwrap();
        assert_eq!(
            moved("2024-12-05T09:59:00.000Z", offset),
            "2026-12-05T09:59:30.000Z"
        );
        // Within a minute: kept as it is.
        assert_eq!(clock_offset("2026-12-05T10:00:00.000Z", received), None);
        assert_eq!(clock_offset("not a time", received), None);
        assert_eq!(moved("garbage", offset), "garbage");
    }
}
