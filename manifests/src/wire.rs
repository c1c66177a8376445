//! JSON wire types of the HTTP API (`/api/v1`), shared by ferry-agent, ferry-server and
//! ferryctl. docs/protocol.md describes each endpoint that carries them.

use serde::{Deserialize, Serialize};

use crate::invalid::Invalid;

/// What a device has installed of one item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InstalledItem {
    pub item: String,
    /// `None` when the item is configured but nothing is installed yet.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub version: Option<semver::Version>,
}

/// Facts about a device, sent at enrolment and on every check-in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeviceFacts {
    pub hostname: String,
    pub os: String,
    #[serde(default)]
    pub os_version: String,
    pub arch: String,
    pub agent_version: String,
    #[serde(default)]
    pub device_class: Option<String>,
    /// Release date of the newest validly signed manifest the device has seen (freeze
    /// detection: a device whose newest manifest is old is not hearing of new releases).
    #[serde(default)]
    pub newest_manifest_at: Option<String>,
    /// Tags from the device's config (`tags = [...]`); an operator's tags replace them.
    #[serde(default)]
    pub tags: Vec<String>,
    /// A friendly name from the device's config; an operator's name replaces it.
    #[serde(default)]
    pub friendly_name: Option<String>,
    /// The device's offset from UTC, for maintenance windows in its local time.
    #[serde(default)]
    pub utc_offset_secs: Option<i32>,
    pub installed: Vec<InstalledItem>,
}

/// Checks a tag: 1-64 characters of a-z, 0-9, '.', '_', '-', ':'.
pub fn validate_tag(tag: &str) -> Result<(), Invalid> {
    let ok = !tag.is_empty()
        && tag.len() <= 64
        && tag
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-:".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Invalid::Tag(tag.to_string()))
    }
}

/// Checks a list of tags (at most 32) and a friendly name (at most 128 characters).
pub fn validate_labels(tags: &[String], friendly_name: Option<&str>) -> Result<(), Invalid> {
    if tags.len() > 32 {
        return Err(Invalid::TooManyTags(tags.len()));
    }
    for t in tags {
        validate_tag(t)?;
    }
    if let Some(name) = friendly_name {
        if name.chars().count() > 128 || name.chars().any(char::is_control) {
            return Err(Invalid::FriendlyName);
        }
    }
    Ok(())
}

/// `PATCH /api/v1/hosts/{host}`: the operator's tags and friendly name, which win over the
/// device's own. An empty list or name clears the operator's value (the device's shows again).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HostEdit {
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    #[serde(default)]
    pub friendly_name: Option<String>,
}

/// `POST /api/v1/check`: ask hosts to check in now (those long-polling answer at once).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CheckRequest {
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub item: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CheckAnswer {
    /// How many hosts were asked.
    pub hosts: usize,
}

/// `POST /api/v1/update-batches`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BatchRequest {
    /// Every available update of one host.
    Host {
        host: String,
        #[serde(default)]
        category: Option<String>,
        #[serde(default)]
        exclude: Vec<String>,
    },
    /// One item to one version, on every host that has it or on the listed hosts.
    Item {
        item: String,
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        to_version: semver::Version,
        #[serde(default)]
        hosts: Vec<String>,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BatchEntryView {
    pub host_id: String,
    pub hostname: String,
    pub item: String,
    pub version: String,
    /// queued, dispatched, skipped, installed, failed, rolled_back, refused
    pub status: String,
    pub update_id: Option<String>,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BatchView {
    pub id: String,
    pub kind: String,
    pub description: String,
    /// running, completed (every install succeeded or was skipped), failed
    pub status: String,
    pub created_at: String,
    /// Entries per status.
    pub counts: std::collections::BTreeMap<String, usize>,
    pub entries: Vec<BatchEntryView>,
}

/// Which hosts a campaign targets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", content = "values", rename_all = "snake_case")]
pub enum CampaignTarget {
    All,
    /// Hosts with any of these tags.
    Tags(Vec<String>),
    /// These hosts (ids or hostnames in a request; ids once stored).
    Hosts(Vec<String>),
}

/// `POST /api/v1/campaigns`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CampaignRequest {
    #[serde(default)]
    pub name: Option<String>,
    pub item: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub version: semver::Version,
    pub target: CampaignTarget,
    #[serde(default)]
    pub require_acceptance: bool,
    /// Waves as cumulative shares or counts, e.g. `10%,50%,100%` (default: one wave).
    #[serde(default)]
    pub waves: Option<String>,
    /// Share of a wave that must install before the next starts (default 0.5).
    #[serde(default)]
    pub success_threshold: Option<f64>,
    /// Share of finished installs that may fail before the campaign pauses (default 0.5).
    #[serde(default)]
    pub max_failure_rate: Option<f64>,
    /// Daily window in the device's local time, e.g. `02:00-04:00`.
    #[serde(default)]
    pub window: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CampaignMemberView {
    pub host_id: String,
    pub hostname: String,
    pub wave: usize,
    pub accepted: bool,
    /// waiting (its wave has not started), awaiting_acceptance, outside_window, pending,
    /// installed, failed, rolled_back, refused, cancelled
    pub status: String,
    pub update_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CampaignView {
    pub id: String,
    pub name: String,
    pub item: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub version: semver::Version,
    pub target: CampaignTarget,
    pub require_acceptance: bool,
    pub waves: usize,
    pub success_threshold: f64,
    pub max_failure_rate: f64,
    pub window: Option<String>,
    /// running, paused, cancelled
    pub status: String,
    pub status_reason: String,
    /// Waves up to this one (0-based) may install.
    pub open_wave: usize,
    pub failure_share: f64,
    pub counts: std::collections::BTreeMap<String, usize>,
    pub members: Vec<CampaignMemberView>,
    pub created_at: String,
}

/// A campaign offered to a device that must accept it (`--running-mode=campaign_check`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CampaignOffer {
    pub campaign_id: String,
    pub name: String,
    pub item: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub version: semver::Version,
    pub accepted: bool,
}

/// `POST /api/v1/tokens`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenRequest {
    pub name: String,
    /// `operator` (default) or `enrol`.
    #[serde(default)]
    pub kind: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenView {
    pub id: String,
    pub kind: String,
    pub name: String,
    pub created_at: String,
    pub revoked_at: Option<String>,
    /// Only in the answer to its creation: the token itself, never stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// A software item: every name that has releases, with how it is presented and whether it
/// is still offered.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ItemView {
    pub name: String,
    pub featured: bool,
    /// https only, at most 2048 characters.
    pub icon_url: Option<String>,
    /// A deactivated item's releases are no longer offered or installable.
    pub deactivated: bool,
    pub releases: usize,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub newest: Option<semver::Version>,
}

/// `PATCH /api/v1/items/{name}`: each field optional; an empty icon URL clears it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ItemEdit {
    #[serde(default)]
    pub featured: Option<bool>,
    #[serde(default)]
    pub icon_url: Option<String>,
    #[serde(default)]
    pub deactivated: Option<bool>,
}

/// Checks an item icon URL: https, at most 2048 characters.
pub fn validate_icon_url(url: &str) -> Result<(), Invalid> {
    if url.len() > 2048 {
        return Err(Invalid::IconUrlLength(url.len()));
    }
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| Invalid::IconUrlScheme(url.to_string()))?;
    if rest.is_empty()
        || rest.starts_with('/')
        || url.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(Invalid::IconUrl(url.to_string()));
    }
    Ok(())
}

/// `POST /api/v1/enrol`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnrolRequest {
    pub enrol_token: String,
    pub facts: DeviceFacts,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnrolResponse {
    pub host_id: String,
    /// The device's own credential; sent as `Authorization: Bearer` from now on.
    pub device_token: String,
}

/// `POST /api/v1/device/checkin`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CheckInRequest {
    pub facts: DeviceFacts,
    /// Long-poll: when there is no job, wait up to this many seconds for one before answering
    /// (the server caps it).
    #[serde(default)]
    pub wait_secs: u64,
}

/// A newer signed release of an item the device manages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Available {
    pub item: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub version: semver::Version,
    pub category: String,
    /// Path of the signed envelope, relative to the server URL.
    pub manifest_path: String,
}

/// An install the operator asked this device to perform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Job {
    pub job_id: String,
    pub item: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub version: semver::Version,
    pub manifest_path: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CheckInResponse {
    pub host_id: String,
    pub available: Vec<Available>,
    pub jobs: Vec<Job>,
    /// Report ids the server has stored; the device may drop them from its queue.
    #[serde(default)]
    pub acked_reports: Vec<String>,
    /// The newest trust root version the server holds; a device on an older one fetches
    /// `api/v1/trust-roots/{version}` for each version after its own.
    #[serde(default)]
    pub trust_root_version: Option<u64>,
    /// The poll interval the server suggests; the device keeps it within its own bounds.
    #[serde(default)]
    pub poll_interval_secs: Option<u64>,
    /// Campaigns that target this device and need its acceptance.
    #[serde(default)]
    pub campaigns: Vec<CampaignOffer>,
    /// Jobs cancelled since they were handed out; the device drops them.
    #[serde(default)]
    pub cancelled_jobs: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The new version is in place and healthy.
    Installed,
    /// The install failed before anything changed.
    Failed,
    /// The new version was put in place, failed post-install or its health check, and the
    /// previous version was restored.
    RolledBack,
    /// The device refused the release (signature, expiry, downgrade, hash, unsafe tarball).
    Refused,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Installed => "installed",
            Outcome::Failed => "failed",
            Outcome::RolledBack => "rolled_back",
            Outcome::Refused => "refused",
        }
    }
}

/// `POST /api/v1/device/output`: a piece of a running job's hook output.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OutputChunk {
    pub update_id: String,
    pub text: String,
}

/// `POST /api/v1/device/reports`: the outcome of one install attempt. Reports are queued on
/// the device and retried; `report_id` makes a retry idempotent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Report {
    pub report_id: String,
    #[serde(default)]
    pub job_id: Option<String>,
    pub item: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub version: semver::Version,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub from_version: Option<semver::Version>,
    pub outcome: Outcome,
    /// One line saying what happened, for lists.
    pub message: String,
    /// Output of post-install and health-check commands.
    #[serde(default)]
    pub output: String,
    pub started_at: String,
    pub finished_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReportBatch {
    pub reports: Vec<Report>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReportAck {
    pub acked: Vec<String>,
}

/// Error body of every non-2xx API response.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiError {
    pub code: String,
    pub message: String,
}

// ---- operator API ----

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HostView {
    pub id: String,
    #[serde(flatten)]
    pub facts: HostFacts,
    pub enrolled_at: String,
    pub last_seen: String,
    pub online: bool,
    /// Effective tags: the operator's if set, else the device's.
    pub tags: Vec<String>,
    /// Effective friendly name: the operator's if set, else the device's.
    pub friendly_name: Option<String>,
    pub installed: Vec<InstalledItem>,
    /// Newer releases of the items this host has (deactivated items left out).
    #[serde(default)]
    pub available: Vec<Available>,
}

/// What a device reports about itself, as the server keeps and shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HostFacts {
    pub hostname: String,
    pub os: String,
    pub os_version: String,
    pub arch: String,
    pub agent_version: String,
    pub device_class: Option<String>,
    /// Release date of the newest signed manifest the device has verified.
    pub newest_manifest_at: Option<String>,
}

impl DeviceFacts {
    /// The facts the server keeps of a check-in (labels and installed items go elsewhere).
    pub fn host_facts(&self) -> HostFacts {
        HostFacts {
            hostname: self.hostname.clone(),
            os: self.os.clone(),
            os_version: self.os_version.clone(),
            arch: self.arch.clone(),
            agent_version: self.agent_version.clone(),
            device_class: self.device_class.clone(),
            newest_manifest_at: self.newest_manifest_at.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReleaseView {
    pub item: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub version: semver::Version,
    pub category: String,
    pub released_at: String,
    pub expires_at: String,
    pub notes: String,
    #[serde(default)]
    pub release_url: Option<String>,
    pub layout: String,
    pub artifact_name: String,
    pub artifact_size: u64,
    pub artifact_sha256: String,
    pub signed_by: Vec<String>,
    pub published_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PublishResponse {
    pub item: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub version: semver::Version,
}

/// `POST /api/v1/updates`: assign an install to one host.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TriggerRequest {
    /// Host id or hostname.
    pub host: String,
    pub item: String,
    /// The newest release when absent.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub version: Option<semver::Version>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HistoryView {
    pub id: String,
    pub host_id: String,
    pub hostname: String,
    pub item: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub version: semver::Version,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub from_version: Option<semver::Version>,
    /// pending, installed, failed, rolled_back, refused
    pub status: String,
    /// Who asked: `user`, or `device` for an install the device chose (auto_install).
    pub actor: String,
    pub message: String,
    pub output: String,
    pub created_at: String,
    pub finished_at: Option<String>,
}

/// Formats an instant the way every wire timestamp is written: RFC 3339 UTC with exactly
/// three fractional digits (`2026-01-02T03:04:05.678Z`), so that text order is time order.
pub fn timestamp(t: time::OffsetDateTime) -> String {
    const FORMAT: &[time::format_description::BorrowedFormatItem<'static>] = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    t.to_offset(time::UtcOffset::UTC)
        .format(FORMAT)
        .unwrap_or_default()
}

/// The current instant as a wire timestamp.
pub fn now() -> String {
    timestamp(time::OffsetDateTime::now_utc())
}

#[cfg(test)]
mod tests {
    #[test]
    fn icon_urls_are_https_and_bounded() {
        assert!(super::validate_icon_url("https://cdn.example.org/web.svg").is_ok());
        assert!(super::validate_icon_url("http://cdn.example.org/web.svg").is_err());
        assert!(super::validate_icon_url("javascript:alert(1)").is_err());
        assert!(super::validate_icon_url("https://").is_err());
        let long = format!("https://x.org/{}", "a".repeat(2040));
        assert!(super::validate_icon_url(&long).is_err());
    }

    #[test]
    fn timestamps_are_fixed_width_so_text_order_is_time_order() {
        let t = time::macros::datetime!(2026-01-02 03:04:05 UTC);
        assert_eq!(super::timestamp(t), "2026-01-02T03:04:05.000Z");
        let later = t + time::Duration::milliseconds(500);
        assert!(super::timestamp(later) > super::timestamp(t));
    }
}
