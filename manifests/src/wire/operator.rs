//! The operator API: hosts, items, releases, updates, batches, campaigns, tokens, history.

use serde::{Deserialize, Serialize};

use super::device::{Available, DeviceFacts, InstalledItem};
use crate::invalid::Invalid;

/// `PATCH /api/v1/hosts/{host}`: the operator's tags and friendly name, which win over the
/// device's own. An empty list or name clears the operator's value (the device's shows again).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HostEdit {
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<crate::wire::Tag>>, max_items = 32))]
    pub tags: Option<Vec<String>>,
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(max_length = 128, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$")
    )]
    pub friendly_name: Option<String>,
}

/// `POST /api/v1/check`: ask hosts to check in now (those long-polling answer at once).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CheckRequest {
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub item: Option<String>,
}

/// Exactly one of `host` or `item`, as the server requires.
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for CheckRequest {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        let only = |field: &str, other: &str, description: &str| {
            ObjectBuilder::new()
                .property(
                    field,
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .min_length(Some(1))
                        .description(Some(description)),
                )
                .required(field)
                .property(other, ObjectBuilder::new().schema_type(Type::Null))
        };
        OneOfBuilder::new()
            .item(only(
                "host",
                "item",
                "a host id (or unique prefix) or hostname",
            ))
            .item(only("item", "host", "every host that has this item"))
            .description(Some("Give exactly one of `host` or `item`."))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for CheckRequest {}

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

/// `POST /api/v1/tokens`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenRequest {
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 128,
            pattern = "[^ \\t\\n\\u000b\\f\\r\\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]"
        )
    )]
    pub name: String,
    /// `operator` (default) or `enrol`.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, pattern = "^(operator|enrol)$"))]
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
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 2048,
            pattern = "^(|https://[^ \\t\\n\\u000b\\f\\r\\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\u0000-\\u001f\\u007f-\\u009f\\ufeff/][^ \\t\\n\\u000b\\f\\r\\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\u0000-\\u001f\\u007f-\\u009f\\ufeff]*)$"
        )
    )]
    pub icon_url: Option<String>,
    #[serde(default)]
    pub deactivated: Option<bool>,
}

/// Checks an item icon URL: https, at most 2048 characters.
pub fn validate_icon_url(url: &str) -> Result<(), Invalid> {
    if url.chars().count() > 2048 {
        return Err(Invalid::IconUrlLength(url.chars().count()));
    }
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| Invalid::IconUrlScheme(url.to_string()))?;
    if rest.is_empty()
        || rest.starts_with('/')
        || url
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '\u{feff}')
    {
        return Err(Invalid::IconUrl(url.to_string()));
    }
    Ok(())
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HostView {
    pub id: String,
    #[serde(flatten)]
    pub facts: HostFacts,
    pub enrolled_at: String,
    pub last_seen: String,
    /// The connectivity rule (docs/mqtt.md): long-polling now, or keeping its rhythm.
    pub online: bool,
    /// A long-poll of this host is open on the server now: a check-now or a trigger reaches
    /// it within a second.
    #[serde(default)]
    pub long_polling: bool,
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
    /// Base URLs that also serve the artifact (`BASE/ARTIFACT_NAME`), tried by devices before
    /// the server's own copy (`ferryctl release publish --mirror`).
    #[serde(default)]
    pub mirrors: Vec<String>,
}

/// `PUT /api/v1/releases/{item}/{version}/mirrors`: the base URLs that serve the release's
/// artifact besides the server (replacing those recorded before; empty removes them).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MirrorsRequest {
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<MirrorBase>, max_items = 16))]
    pub mirrors: Vec<String>,
}

/// A mirror's base URL: `http://` or `https://`, a host, no query or fragment.
#[cfg(feature = "openapi")]
#[derive(utoipa::ToSchema)]
#[schema(
    value_type = String,
    pattern = "^https?://[^/\\s?#\\u0000-\\u001f\\u007f-\\u009f][^\\s?#\\u0000-\\u001f\\u007f-\\u009f]*$",
    max_length = 2048
)]
pub struct MirrorBase(pub String);

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
    #[cfg_attr(feature = "openapi", schema(min_length = 1))]
    pub host: String,
    #[cfg_attr(feature = "openapi", schema(pattern = "^[a-z0-9][a-z0-9._-]{0,63}$"))]
    pub item: String,
    /// The newest release when absent.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, pattern = "^(0|[1-9][0-9]{0,15})\\.(0|[1-9][0-9]{0,15})\\.(0|[1-9][0-9]{0,15})(-(0|[1-9][0-9]{0,15}|[0-9]*[A-Za-z-][0-9A-Za-z-]*)(\\.(0|[1-9][0-9]{0,15}|[0-9]*[A-Za-z-][0-9A-Za-z-]*))*)?(\\+[0-9A-Za-z-]+(\\.[0-9A-Za-z-]+)*)?$"))]
    pub version: Option<semver::Version>,
    /// Queue it even though the host already has that version (the device re-verifies it
    /// and reports it in place).
    #[serde(default)]
    pub force: bool,
    /// Run the install's hooks in a terminal the operator attaches to
    /// (`POST /api/v1/update-history/{id}/terminal`).
    #[serde(default)]
    pub interactive: bool,
    /// With `interactive`: do not keep what the operator types in the history (passwords).
    /// The terminal's own echo, if the hook leaves it on, is still part of the output.
    #[serde(default)]
    pub hide_input: bool,
}

/// `POST /api/v1/update-history/{id}/terminal`: attach to an interactive install's terminal,
/// or send it keystrokes, a window size or a keep-alive. Without a `lease` this attaches:
/// the answer's lease holds the terminal's input (exactly one operator at a time; another
/// attaching while it is held gets `holder: false` and watches only). A lease not used for
/// 15 s lapses, so a dropped operator can attach again.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TerminalInput {
    #[serde(default)]
    pub lease: Option<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_length = 65536))]
    pub text: Option<String>,
    #[serde(default, deserialize_with = "window_dimension")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1000))]
    pub cols: Option<u16>,
    #[serde(default, deserialize_with = "window_dimension")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1000))]
    pub rows: Option<u16>,
}

/// A window's columns or rows: a whole number, also when written `80.0` (JSON Schema's
/// `integer` allows it).
fn window_dimension<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
    let Some(n) = Option::<f64>::deserialize(d)? else {
        return Ok(None);
    };
    if n.fract() != 0.0 || !(0.0..=f64::from(u16::MAX)).contains(&n) {
        return Err(serde::de::Error::custom(format!(
            "{n} is not a window size (a whole number of columns or rows)"
        )));
    }
    Ok(Some(n as u16))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TerminalLease {
    pub lease: String,
    /// Whether this lease holds the input; false: another operator does, watch only.
    pub holder: bool,
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
    /// What the operator typed into an interactive install's terminal, one line per piece
    /// sent, with when (`[09:01:02] y⏎`; control keys shown as `^C`, `⏎`). Empty when the
    /// trigger asked not to keep input (`hide_input`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub typed: String,
    /// What the device downloaded for it (bytes, and from a delta or not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetched: Option<crate::wire::Fetched>,
    pub created_at: String,
    pub finished_at: Option<String>,
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

/// `GET /api/v1/mqtt`: one broker connection of the MQTT bridge and how it is doing.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MqttConnectionView {
    pub name: String,
    /// `mqtt://HOST:PORT` (no credentials).
    pub url: String,
    pub connected: bool,
    /// Another server instance on the shared database serves this connection; this one
    /// takes over if that one stops.
    #[serde(default)]
    pub standby: bool,
    /// The last connection or publishing error, if any since the last connect.
    pub last_error: Option<String>,
    /// Messages published since the server started.
    pub published: u64,
    pub topic_prefix: String,
    pub discovery: bool,
    pub discovery_prefix: String,
    /// `server.toml` (read at start; change it there) or `api` (stored, secrets sealed).
    #[serde(default)]
    pub source: String,
}

/// `POST /api/v1/mqtt`: a broker connection to add; `PATCH /api/v1/mqtt/{name}` takes the
/// same fields, each optional (an empty `password`, `username` or `ca_pem` removes it).
/// Secrets are write-only: no answer ever carries them.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MqttConnectionRequest {
    #[serde(default)]
    pub name: Option<String>,
    /// `mqtt://HOST[:PORT]` or `mqtts://HOST[:PORT]`.
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// PEM of the CA to trust for mqtts (instead of the system's roots).
    #[serde(default)]
    pub ca_pem: Option<String>,
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub topic_prefix: Option<String>,
    #[serde(default)]
    pub discovery: Option<bool>,
    #[serde(default)]
    pub discovery_prefix: Option<String>,
}
