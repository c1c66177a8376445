//! The operator API: hosts as the operator sees and edits them, and asking them to check in now.

use serde::{Deserialize, Serialize};

use super::device::{Available, DeviceFacts, InstalledItem};

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
    /// Offer the host to its site's devices as a peer again, after a bad-bytes report
    /// (`share_fault`) was looked into.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub share_ok: bool,
}

/// `POST /api/v1/check`: ask hosts for a check now (those long-polling answer at once):
/// one host, every host with an item, or one host about one of its items.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CheckRequest {
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub item: Option<String>,
}

/// `host`, `item`, or both, as the server requires.
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
            .item(
                ObjectBuilder::new()
                    .property(
                        "host",
                        ObjectBuilder::new()
                            .schema_type(Type::String)
                            .min_length(Some(1))
                            .description(Some("a host id (or unique prefix) or hostname")),
                    )
                    .property(
                        "item",
                        ObjectBuilder::new()
                            .schema_type(Type::String)
                            .min_length(Some(1))
                            .description(Some(
                                "one of the host's items, or software its sources found",
                            )),
                    )
                    .required("host")
                    .required("item"),
            )
            .description(Some(
                "Give `host`, `item` (every host that has it), or both (the host, about that item).",
            ))
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
    /// The tags campaigns target: the operator's (`ferryctl hosts edit --tag`); the device's
    /// own only on a server with `trust_device_tags`.
    pub tags: Vec<String>,
    /// The tags the device reports of itself (agent.toml `tags`), shown, never trusted.
    #[serde(default)]
    pub reported_tags: Vec<String>,
    /// False while it waits for an operator's acceptance (`ferryctl hosts accept`).
    #[serde(default = "accepted_by_default")]
    pub accepted: bool,
    /// Effective friendly name: the operator's if set, else the device's.
    pub friendly_name: Option<String>,
    pub installed: Vec<InstalledItem>,
    /// Newer releases of the items this host has (deactivated items left out).
    #[serde(default)]
    pub available: Vec<Available>,
    /// How the device proves who it is: `certificate` (a client certificate) or `token` (a
    /// bearer token).
    #[serde(default = "token_auth")]
    pub auth: String,
    /// When two devices last used this host's identity at once, and from where.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clone_seen: Option<String>,
    /// What updates it: `agent` (the Ferry agent) or `ddi` (a hawkBit DDI client such as
    /// SWUpdate or rauc-hawkbit-updater; docs/ddi.md).
    #[serde(default = "agent_kind")]
    pub kind: String,
    /// The attributes a DDI client sent of itself (`configData`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub attributes: std::collections::BTreeMap<String, String>,
    /// The site it reports (docs/delivery.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    /// Where it shares verified artifacts with its site (`share_listen`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share: Option<String>,
    /// Why it is offered to its site's devices no more (it served bytes that failed the
    /// signed hash); `ferryctl hosts edit HOST --share-ok` clears it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_fault: Option<String>,
}

fn token_auth() -> String {
    "token".into()
}

fn agent_kind() -> String {
    "agent".into()
}

/// `GET /api/v1/hosts/{host}`: a host and how it proves who it is.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HostDetail {
    #[serde(flatten)]
    pub host: HostView,
    /// Its certificates, newest first: issued by the server's device CA, or made in the
    /// factory.
    #[serde(default)]
    pub certificates: Vec<CertificateView>,
}

/// A device certificate as the server keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CertificateView {
    /// SHA-256 of its DER, hex.
    pub fingerprint: String,
    pub serial: String,
    /// `issued` (by the server's device CA) or `factory`.
    pub source: String,
    pub issued_at: String,
    pub not_after: String,
    /// When it stopped counting (its host was removed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
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

fn accepted_by_default() -> bool {
    true
}
