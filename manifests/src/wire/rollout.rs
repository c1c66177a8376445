//! The operator API: batch updates and campaigns.

use serde::{Deserialize, Serialize};

/// `POST /api/v1/update-batches`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BatchRequest {
    /// Every available update of one host.
    Host {
        host: String,
        #[serde(default)]
        #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, pattern = "^(security|bugfix|feature|unknown)$"))]
        category: Option<String>,
        #[serde(default)]
        #[cfg_attr(feature = "openapi", schema(value_type = Vec<crate::wire::ItemName>))]
        exclude: Vec<String>,
        /// Run each install's hooks in a terminal an operator attaches to, one at a time.
        #[serde(default)]
        interactive: bool,
    },
    /// One item to one version, on every host that has it or on the listed hosts.
    Item {
        #[cfg_attr(feature = "openapi", schema(pattern = "^[a-z0-9][a-z0-9._-]{0,63}$"))]
        item: String,
        #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^(0|[1-9][0-9]{0,15})\\.(0|[1-9][0-9]{0,15})\\.(0|[1-9][0-9]{0,15})(-(0|[1-9][0-9]{0,15}|[0-9]*[A-Za-z-][0-9A-Za-z-]*)(\\.(0|[1-9][0-9]{0,15}|[0-9]*[A-Za-z-][0-9A-Za-z-]*))*)?(\\+[0-9A-Za-z-]+(\\.[0-9A-Za-z-]+)*)?$"))]
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
    /// Who started it: `user` (API, ferryctl) or `mqtt` (a host's Install button).
    #[serde(default)]
    pub actor: String,
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
#[serde(
    tag = "kind",
    content = "values",
    rename_all = "snake_case",
    from = "TargetOnTheWire"
)]
pub enum CampaignTarget {
    All,
    /// Hosts with any of these tags.
    Tags(Vec<String>),
    /// These hosts (ids or hostnames in a request; ids once stored).
    Hosts(Vec<String>),
}

/// How a target reads: `values` may stand beside `"kind": "all"` (and is ignored there).
#[derive(Deserialize)]
struct TargetOnTheWire {
    kind: TargetKind,
    #[serde(default)]
    values: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum TargetKind {
    All,
    Tags,
    Hosts,
}

impl From<TargetOnTheWire> for CampaignTarget {
    fn from(t: TargetOnTheWire) -> CampaignTarget {
        match t.kind {
            TargetKind::All => CampaignTarget::All,
            TargetKind::Tags => CampaignTarget::Tags(t.values),
            TargetKind::Hosts => CampaignTarget::Hosts(t.values),
        }
    }
}

/// `POST /api/v1/campaigns`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CampaignRequest {
    #[serde(default)]
    pub name: Option<String>,
    #[cfg_attr(feature = "openapi", schema(pattern = "^[a-z0-9][a-z0-9._-]{0,63}$"))]
    pub item: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^(0|[1-9][0-9]{0,15})\\.(0|[1-9][0-9]{0,15})\\.(0|[1-9][0-9]{0,15})(-(0|[1-9][0-9]{0,15}|[0-9]*[A-Za-z-][0-9A-Za-z-]*)(\\.(0|[1-9][0-9]{0,15}|[0-9]*[A-Za-z-][0-9A-Za-z-]*))*)?(\\+[0-9A-Za-z-]+(\\.[0-9A-Za-z-]+)*)?$"))]
    pub version: semver::Version,
    pub target: CampaignTarget,
    #[serde(default)]
    pub require_acceptance: bool,
    /// Waves as cumulative shares or counts, e.g. `10%,50%,100%` (default: one wave).
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = "^[0-9]+(\\.[0-9]+)?%?(,[0-9]+(\\.[0-9]+)?%?)*$")
    )]
    pub waves: Option<String>,
    /// Share of a wave that must install before the next starts (default 0.5).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 0.0, maximum = 1.0))]
    pub success_threshold: Option<f64>,
    /// Share of finished installs that may fail before the campaign pauses (default 0.5).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 0.0, maximum = 1.0))]
    pub max_failure_rate: Option<f64>,
    /// Daily window in the device's local time, e.g. `02:00-04:00`.
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = "^([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-3]):[0-5][0-9]$")
    )]
    pub window: Option<String>,
    /// Create it even though no host matches now (hosts join as they check in); without it
    /// such a campaign is refused (409).
    #[serde(default)]
    pub allow_empty: bool,
    /// Its first wave opens only once a user with the approver (or admin) role other than
    /// its creator approves it (`POST /api/v1/campaigns/{id}/approval`); until then it is
    /// paused.
    #[serde(default)]
    pub require_approval: bool,
    /// Watch each wave's health for this many seconds after its installs before the next
    /// opens (docs/campaigns.md, "Observation"); 0 or absent: off.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(maximum = 2592000))]
    pub observe_secs: Option<u64>,
    /// A wave that regresses in its window is rolled back to the release each host had.
    #[serde(default)]
    pub rollback_on_regression: bool,
    /// A wave fails its window when more than this share of its hosts failed (default 0.2)…
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 0.0, maximum = 1.0))]
    pub regression_max_share: Option<f64>,
    /// …and that share exceeds the control group's by more than this (default 0.2).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 0.0, maximum = 1.0))]
    pub regression_max_excess: Option<f64>,
    /// Hosts of a wave that must report for a verdict (default 1).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 100000))]
    pub regression_min_hosts: Option<u64>,
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
    /// running, paused, cancelled, completed
    pub status: String,
    pub status_reason: String,
    /// For a completed campaign: whether the share of hosts that installed reached the
    /// success threshold.
    #[serde(default)]
    pub succeeded: Option<bool>,
    /// Waves up to this one (0-based) may install.
    pub open_wave: usize,
    pub failure_share: f64,
    pub counts: std::collections::BTreeMap<String, usize>,
    pub members: Vec<CampaignMemberView>,
    pub created_at: String,
    /// Who must not approve it (its creator), and who did, when it needs approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<CampaignApproval>,
    /// The observation window after each wave, in seconds (0: off).
    #[serde(default)]
    pub observe_secs: u64,
    #[serde(default)]
    pub rollback_on_regression: bool,
    /// The watch over the current wave, while there is one (and the last verdict).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observation: Option<ObservationView>,
}

/// A wave under observation: its hosts against the control group (members that have not
/// installed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ObservationView {
    /// The wave watched (0-based, as `open_wave`).
    pub wave: usize,
    pub started_at: String,
    pub ends_at: String,
    pub left_secs: u64,
    /// observing, healthy, regressed, too_few
    pub verdict: String,
    pub wave_hosts: usize,
    pub wave_share: f64,
    pub control_hosts: usize,
    pub control_share: f64,
    /// Failing hosts of the wave, with the probes that failed.
    pub failing: Vec<FailingHost>,
    /// The probes failing in the wave, most common first: `health (2), reboot (1)`.
    pub probes: String,
    /// The two failure shares over the window so far, for a chart.
    pub series: Vec<SharePoint>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FailingHost {
    pub hostname: String,
    pub probes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SharePoint {
    pub at: String,
    pub wave: f64,
    pub control: f64,
}

/// A campaign's approval (`require_approval`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CampaignApproval {
    pub created_by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_at: Option<String>,
}

/// `PATCH /api/v1/campaigns/{id}`: what may change while a campaign runs; each field
/// optional.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CampaignEdit {
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 0.0, maximum = 1.0))]
    pub success_threshold: Option<f64>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 0.0, maximum = 1.0))]
    pub max_failure_rate: Option<f64>,
    /// `02:00-04:00`, or empty to remove the window.
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = "^(|([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-3]):[0-5][0-9])$")
    )]
    pub window: Option<String>,
    /// All waves, as at creation; those already open must be given unchanged.
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = "^[0-9]+(\\.[0-9]+)?%?(,[0-9]+(\\.[0-9]+)?%?)*$")
    )]
    pub waves: Option<String>,
}
