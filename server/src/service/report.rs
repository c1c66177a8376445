//! Reports arrived: the one place that decides what a device's reports change. Each is
//! stored once (a resend changes nothing), ends the live output of its job, re-decides the
//! campaigns of its update, and frees the host for its next batch entry.

use ferry_manifests::wire::Report;

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

/// Stores `reports` of `host_id` (validated by the handler); returns the ids to acknowledge.
pub async fn reports_arrived(
    state: &Shared,
    host_id: &str,
    reports: Vec<Report>,
) -> ServiceResult<Vec<String>> {
    let mut acked = Vec::new();
    for r in reports {
        let mut output = r.output;
        if output.len() > MAX_OUTPUT {
            let mut cut = output.len() - MAX_OUTPUT;
            while !output.is_char_boundary(cut) {
                cut += 1;
            }
            output = output.split_off(cut);
        }
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
                started_at: r.started_at,
                finished_at: r.finished_at,
                fetched: r
                    .fetched
                    .as_ref()
                    .and_then(|f| serde_json::to_string(f).ok()),
            })
            .await?;
        if recorded != Recorded::Again {
            let message = loggable(&r.message);
            tracing::info!(%host_id, item = %r.item, version = %r.version, outcome = r.outcome.as_str(), "report: {message}");
        }
        // Only a job of this host ends: another host's job id in a report touches nothing of
        // that job (its live output, its terminal, its campaign).
        if let Recorded::Job(job) = &recorded {
            super::campaigns::on_report(state, job).await?;
            state.terminals.close(job);
            state.publish_live(
                job,
                crate::live::LiveEvent::End {
                    status: r.outcome.as_str().to_string(),
                },
            );
        }
        acked.push(r.report_id);
    }
    // A finished install frees the host for its next batch entry.
    super::batches::dispatch(state, host_id).await?;
    state.changed();
    Ok(acked)
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
}
