//! The store's records: what handlers hand to the store and get back, the same whatever
//! backend keeps them.

use ferry_manifests::wire::{HostFacts, ReleaseView};

pub use crate::policy::campaign::{Campaign, Member};
use crate::policy::status::UpdateStatus;

use crate::policy::batch::EntryState;

/// A host as stored: its identity, the facts its device reports, and the labels the device and
/// an operator gave it (the operator's win; `fleet::effective_labels` decides).
#[derive(Debug, Clone)]
pub struct HostRow {
    pub id: String,
    pub facts: HostFacts,
    pub enrolled_at: String,
    pub last_seen: String,
    pub device_tags: Vec<String>,
    pub device_friendly_name: Option<String>,
    /// Set by an operator; wins over the device's.
    pub operator_tags: Option<Vec<String>>,
    pub operator_friendly_name: Option<String>,
    /// False while the host waits for an operator's acceptance (its enrolment token asked
    /// for it): it checks in but is given nothing.
    pub accepted: bool,
    /// The tenant it belongs to (`None`: the default tenant).
    pub tenant_id: Option<String>,
    /// How it proves itself: `token` or `certificate`.
    pub auth: String,
    /// When two devices last used its identity at once, and from where.
    pub clone_seen: Option<String>,
    /// `agent` (the Ferry agent) or `ddi` (a hawkBit DDI client).
    pub kind: String,
    /// What a DDI client sent of itself (`configData`).
    pub attributes: std::collections::BTreeMap<String, String>,
    /// Its site, where it shares artifacts with the site's devices, and why it is no longer
    /// offered to them (docs/delivery.md).
    pub site: Option<String>,
    pub share_url: Option<String>,
    pub share_fault: Option<String>,
}

/// What an enrolment token allows beyond enrolling: until when, how many more times, and
/// whether its hosts wait for an operator's acceptance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenLimits {
    pub expires_at: Option<String>,
    pub uses: Option<u32>,
    pub needs_acceptance: bool,
    /// The user an operator token belongs to.
    pub user_id: Option<String>,
    /// The tenant it belongs to (`None`: the default tenant).
    pub tenant_id: Option<String>,
}

/// A user (docs/users.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub id: String,
    pub name: String,
    pub role: String,
    /// Limited to hosts with this tag.
    pub tag: Option<String>,
    pub created_at: String,
    /// Live tokens it holds.
    pub tokens: i64,
    /// Whether they have a password.
    pub password: bool,
    /// Whether they came from the OpenID Connect provider.
    pub single_sign_on: bool,
    /// Their tenant's id and name.
    pub tenant_id: String,
    pub tenant: String,
}

/// A live operator token and the user it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveOperator {
    pub token_name: String,
    pub user_id: String,
    pub user_name: String,
    pub role: String,
    pub tag: Option<String>,
    /// The user's tenant.
    pub tenant_id: String,
}

/// What a check-in writes of a host: its facts, tags and name as the device reports them and
/// when it was seen (its enrolment time and the operator's labels are left as they are).
#[derive(Debug, Clone)]
pub struct HostCheckIn {
    pub id: String,
    pub facts: HostFacts,
    pub last_seen: String,
    pub device_tags: Vec<String>,
    pub device_friendly_name: Option<String>,
    /// Its site, where it shares and what (docs/delivery.md).
    pub site: Option<ferry_manifests::wire::Site>,
}

impl From<HostRow> for HostCheckIn {
    fn from(h: HostRow) -> HostCheckIn {
        HostCheckIn {
            id: h.id,
            facts: h.facts,
            last_seen: h.last_seen,
            device_tags: h.device_tags,
            device_friendly_name: h.device_friendly_name,
            site: None,
        }
    }
}

/// What storing a report did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// The report id was seen before: nothing changed (the device resent it).
    Again,
    /// It finished this job of the reporting host.
    Job(String),
    /// It is a new history entry: no job, or a job that is not the reporting host's.
    Entry,
}

/// The last finished install of an item on a host, when it failed, was rolled back or
/// refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastFailure {
    pub host_id: String,
    pub item: String,
    pub version: semver::Version,
    /// `failed`, `rolled_back` or `refused`.
    pub status: String,
    pub message: String,
}

/// An item's presentation and status, for items that have a row (others have the defaults).
#[derive(Debug, Clone)]
pub struct ItemSettings {
    pub name: String,
    pub featured: bool,
    pub icon_url: Option<String>,
    pub deactivated: bool,
}

#[derive(Debug, Clone)]
pub struct NewRelease {
    pub view: ReleaseView,
    pub envelope: String,
}

#[derive(Debug, Clone)]
pub struct PendingJob {
    pub id: String,
    pub item: String,
    pub version: semver::Version,
    /// Its hooks run in a terminal an operator attaches to.
    pub interactive: bool,
    /// A rollback to the kept backup, with its reason.
    pub rollback: Option<String>,
    /// It may download over a metered link.
    pub metered_allowed: bool,
}

/// What a report changes in the history.
#[derive(Debug, Clone)]
pub struct ReportRecord {
    pub report_id: String,
    pub host_id: String,
    pub job_id: Option<String>,
    pub item: String,
    pub version: String,
    pub from_version: Option<String>,
    pub status: UpdateStatus,
    pub message: String,
    pub output: String,
    pub started_at: String,
    pub finished_at: String,
    /// The device's own `finished_at`, when its clock disagreed with the server's (and
    /// `finished_at` was moved to the server's time).
    pub device_finished_at: Option<String>,
    /// What the device downloaded for it, as JSON.
    pub fetched: Option<String>,
    /// For a package upgrade: each package's versions before and after, as JSON.
    pub packages: Option<String>,
}

#[derive(Debug, Clone)]
pub struct BatchRow {
    pub id: String,
    pub kind: String,
    pub description: String,
    /// Who started it: `user` or `mqtt`; its installs carry it.
    pub actor: String,
    pub created_at: String,
}

#[derive(Debug, Clone)]
pub struct EntryRow {
    pub state: EntryState,
    pub hostname: String,
    pub item: String,
    pub version: String,
    /// For an upgrade of a source's packages: which (name, installed, offered).
    pub packages: Option<Vec<ferry_manifests::wire::PackageChange>>,
    pub update_id: Option<String>,
    /// The batch's actor.
    pub actor: String,
    /// The batch runs its installs in an operator's terminal.
    pub interactive: bool,
    pub message: String,
}

/// The kinds of record an operator names by id (or by a unique prefix of it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    Campaign,
    Batch,
    Update,
    Token,
    Host,
}

impl IdKind {
    /// The table holding that kind of record (a constant: safe in SQL text).
    pub fn table(self) -> &'static str {
        match self {
            IdKind::Campaign => "campaigns",
            IdKind::Batch => "batches",
            IdKind::Update => "updates",
            IdKind::Token => "tokens",
            IdKind::Host => "hosts",
        }
    }
}

/// An MQTT connection added through the API, as stored: secrets sealed.
#[derive(Debug, Clone, Default)]
pub struct StoredMqtt {
    pub name: String,
    pub url: String,
    pub username: Option<String>,
    pub password_sealed: Option<Vec<u8>>,
    pub ca_sealed: Option<Vec<u8>>,
    pub client_id: Option<String>,
    pub topic_prefix: Option<String>,
    pub discovery: Option<bool>,
    pub discovery_prefix: Option<String>,
    /// The tenant whose hosts it publishes (`None`: every host).
    pub tenant_id: Option<String>,
}

/// A certificate a device authenticates with (docs/security.md): issued by the server's
/// device CA (`source` `issued`) or made in the factory (`factory`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateRow {
    /// SHA-256 of its DER, hex.
    pub fingerprint: String,
    pub host_id: String,
    /// Its serial number, hex.
    pub serial: String,
    pub source: String,
    pub not_after: String,
    pub issued_at: String,
    /// When it stopped counting (its host was removed).
    pub revoked_at: Option<String>,
}

/// A certificate and what became of its host: `None` when the host is gone.
#[derive(Debug, Clone)]
pub struct CertificateHolder {
    pub certificate: CertificateRow,
    /// Whether the host is accepted; `None`: removed.
    pub accepted: Option<bool>,
}

/// A webhook endpoint a tenant's admin added (docs/operations.md, "Webhooks").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredWebhook {
    pub id: String,
    pub tenant_id: String,
    pub url: String,
    /// The event types it receives.
    pub events: Vec<String>,
    /// The signing secret, sealed with the secrets key.
    pub secret_sealed: Vec<u8>,
    pub description: String,
    pub created_by: String,
    pub created_at: String,
}

/// An event told to the webhooks that want it, written in the transaction of what it tells
/// of, to the webhooks of the tenant it concerns.
#[derive(Debug, Clone)]
pub struct WebhookEvent {
    pub kind: &'static str,
    pub data: serde_json::Value,
}

/// One endpoint's delivery of one event, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRow {
    pub event_id: String,
    pub event_type: String,
    pub webhook_id: String,
    pub url: String,
    /// `pending`, `delivered` or `failed` (given up).
    pub state: String,
    pub attempts: i64,
    pub created_at: String,
    pub next_attempt_at: String,
    pub last_attempt_at: Option<String>,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub delivered_at: Option<String>,
}

/// A delivery this instance claimed to send now.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub event_id: String,
    pub webhook_id: String,
    /// Attempts so far, this one included.
    pub attempts: i64,
    pub url: String,
    pub secret_sealed: Vec<u8>,
    pub payload: String,
}

/// A hawkBit DDI action: the number a DDI client knows one of its host's updates by.
#[derive(Debug, Clone)]
pub struct DdiAction {
    pub id: i64,
    pub update_id: String,
    /// The client closed it (finished, or answered its cancellation).
    pub closed: bool,
    pub item: String,
    pub version: String,
    /// The update's status (`pending`, `installed`, `cancelled`, …).
    pub status: String,
}

/// What a DDI request's token and path say, read at once (`Store::ddi_caller`).
#[derive(Debug, Clone)]
pub struct DdiCaller {
    pub tenant_id: String,
    /// The host a target token is for; `None`: the tenant's gateway token.
    pub token_host: Option<String>,
    /// The tenant's host named by the controller id: its id and kind.
    pub host: Option<(String, String)>,
    /// That host sent its attributes (`configData`).
    pub attributes_sent: bool,
}
