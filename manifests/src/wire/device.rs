//! The device protocol: enrolment, check-in, jobs, hook output and reports.

use serde::{Deserialize, Serialize};

use crate::invalid::Invalid;

/// What a device has installed of one item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InstalledItem {
    #[cfg_attr(feature = "openapi", schema(pattern = "^[a-z0-9][a-z0-9._-]{0,63}$"))]
    pub item: String,
    /// `None` when the item is configured but nothing is installed yet.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, pattern = "^(0|[1-9][0-9]{0,15})\\.(0|[1-9][0-9]{0,15})\\.(0|[1-9][0-9]{0,15})(-(0|[1-9][0-9]{0,15}|[0-9]*[A-Za-z-][0-9A-Za-z-]*)(\\.(0|[1-9][0-9]{0,15}|[0-9]*[A-Za-z-][0-9A-Za-z-]*))*)?(\\+[0-9A-Za-z-]+(\\.[0-9A-Za-z-]+)*)?$"))]
    pub version: Option<semver::Version>,
}

/// Facts about a device, sent at enrolment and on every check-in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeviceFacts {
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 255,
            pattern = "[^ \\t\\n\\u000b\\f\\r\\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]"
        )
    )]
    pub hostname: String,
    pub os: String,
    #[serde(default)]
    pub os_version: String,
    pub arch: String,
    pub agent_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_class: Option<String>,
    /// Release date of the newest validly signed manifest the device has seen (freeze
    /// detection: a device whose newest manifest is old is not hearing of new releases).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newest_manifest_at: Option<String>,
    /// Tags from the device's config (`tags = [...]`); an operator's tags replace them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<crate::wire::Tag>, max_items = 32))]
    pub tags: Vec<String>,
    /// A friendly name from the device's config; an operator's name replaces it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(max_length = 128, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$")
    )]
    pub friendly_name: Option<String>,
    /// The device's offset from UTC, for maintenance windows in its local time.
    #[serde(
        default,
        deserialize_with = "whole_number",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(minimum = -86400, maximum = 86400))]
    pub utc_offset_secs: Option<i32>,
    #[cfg_attr(feature = "openapi", schema(max_items = 1000))]
    pub installed: Vec<InstalledItem>,
    /// Where the device sits and what it shares with the devices beside it (docs/delivery.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<Site>,
}

/// A device's site: devices of one site may take artifacts from each other (peers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Site {
    /// `site` in agent.toml, or `gateway-MAC` of the device's default gateway.
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = "^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
    )]
    pub name: String,
    /// Where the device serves the verified artifacts it keeps (`share_listen`):
    /// `http://ADDRESS:PORT`, an IP address, no path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_length = 64))]
    pub share: Option<String>,
    /// The sha256 of each artifact it serves there.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(max_items = 64))]
    pub holds: Vec<String>,
}

/// At most this many artifacts are listed as held by one device.
pub const MAX_HELD: usize = 64;

/// Checks a site's name (1-64 of letters, digits, '.', '_', ':', '-'), its share address
/// (`http://IP:PORT`) and what it holds (at most [`MAX_HELD`] sha256 digests).
pub fn validate_site(site: &Site) -> Result<(), Invalid> {
    let n = &site.name;
    let name_ok = !n.is_empty()
        && n.len() <= 64
        && n.as_bytes()[0].is_ascii_alphanumeric()
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b));
    if !name_ok {
        return Err(Invalid::Site(n.clone()));
    }
    if let Some(url) = &site.share {
        if share_address(url).is_none() {
            return Err(Invalid::ShareUrl(url.clone()));
        }
    }
    if site.holds.len() > MAX_HELD {
        return Err(Invalid::TooManyHeld(site.holds.len()));
    }
    if let Some(h) = site
        .holds
        .iter()
        .find(|h| !crate::invalid::is_sha256_hex(h))
    {
        return Err(Invalid::ArtifactSha256(h.clone()));
    }
    Ok(())
}

/// The socket address of a share URL `http://IP:PORT` (nothing else is one).
pub fn share_address(url: &str) -> Option<std::net::SocketAddr> {
    let rest = url.strip_prefix("http://")?;
    let addr: std::net::SocketAddr = rest.parse().ok()?;
    (addr.port() != 0 && !addr.ip().is_unspecified()).then_some(addr)
}

/// Where a peer serves the artifact of digest `sha256`.
pub fn peer_artifact_url(share: &str, sha256: &str) -> String {
    format!("{share}/artifacts/{sha256}")
}

/// An optional integer that may also be written as a number with no fraction (`855.0`), as
/// JSON Schema's `integer` allows.
fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i32>, D::Error> {
    let Some(n) = Option::<f64>::deserialize(d)? else {
        return Ok(None);
    };
    if n.fract() != 0.0 || n < f64::from(i32::MIN) || n > f64::from(i32::MAX) {
        return Err(serde::de::Error::custom(format!(
            "{n} is not a whole number that fits 32 bits"
        )));
    }
    Ok(Some(n as i32))
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

/// A campaign offered to a device that must accept it (`--running-mode=campaign_check`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CampaignOffer {
    pub campaign_id: String,
    pub name: String,
    pub item: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub version: semver::Version,
    pub accepted: bool,
}

/// `POST /api/v1/enrol`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnrolRequest {
    /// The fleet's enrolment token; empty for a device with a factory certificate, which
    /// proves itself with that certificate instead.
    #[serde(default)]
    pub enrol_token: String,
    pub facts: DeviceFacts,
    /// A certificate signing request (PEM) for the key the device made: the server's device
    /// CA certifies it, bound to the new host's id (docs/security.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csr: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnrolResponse {
    pub host_id: String,
    /// The device's own bearer credential, sent as `Authorization: Bearer` from now on;
    /// empty when the device authenticates by certificate.
    #[serde(default)]
    pub device_token: String,
    /// The device's certificate (PEM), issued for its CSR.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    /// When the certificate expires (RFC 3339, the server's clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_not_after: Option<String>,
}

/// `POST /api/v1/device/certificate`: a certificate for the device's key, to renew the one it
/// has or to move from a bearer token to a certificate.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CertificateRequest {
    /// A certificate signing request (PEM).
    pub csr: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CertificateResponse {
    /// The new certificate (PEM).
    pub certificate: String,
    /// When it expires (RFC 3339, the server's clock).
    pub not_after: String,
}

/// Most seconds a check-in may ask to be held (the agent's `long_poll_secs` and the server's
/// `long_poll_max_secs` have the same bound).
pub const MAX_LONG_POLL_SECS: u64 = 300;

fn long_poll_secs<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let secs = u64::deserialize(d)?;
    if secs > MAX_LONG_POLL_SECS {
        return Err(serde::de::Error::custom(format!(
            "wait_secs is {secs}; a check-in may be held at most {MAX_LONG_POLL_SECS} seconds"
        )));
    }
    Ok(secs)
}

/// `POST /api/v1/device/checkin`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CheckInRequest {
    pub facts: DeviceFacts,
    /// Long-poll: when there is no job, wait up to this many seconds for one before answering
    /// (the server caps it).
    #[serde(default, deserialize_with = "long_poll_secs")]
    #[cfg_attr(feature = "openapi", schema(maximum = 300))]
    pub wait_secs: u64,
    /// The digest of the software the device's sources found ([`inventory_digest`]); the
    /// server asks for the list (`inventory_wanted`) only when it differs from what it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = "^[0-9a-f]{64}$"))]
    pub inventory_digest: Option<String>,
    /// Health samples taken since the last check-in, for the campaigns observing this device
    /// (`observe` in the answer); none outside a window.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(max_items = 100))]
    pub health: Vec<HealthSample>,
}

/// One look at a device's health during a campaign's observation window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HealthSample {
    pub campaign_id: String,
    /// When it was taken (the device's clock, moved into the server's by the check-in's
    /// clock skew).
    pub at: String,
    /// The probes that failed: `health` (the release's health check), `unit:NAME` (a unit
    /// not active, or restarted), `reboot` (the boot id changed), `probe` (agent.toml's
    /// `health_probe`). Empty: healthy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(max_items = 20))]
    pub failed: Vec<String>,
}

/// A campaign asks the device to watch itself until `until` and send samples every
/// `interval_secs`: after installing the campaign's release, or as part of its control group
/// (`control`: a member that has not installed; the probes that do not depend on the release).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ObserveOrder {
    pub campaign_id: String,
    pub item: String,
    /// The end of the window, in the server's time.
    pub until: String,
    pub interval_secs: u64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub control: bool,
}

/// One piece of software a device's source found installed (`[[sources]]` in agent.toml).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct InventoryPackage {
    /// The source that found it: `apt`.
    #[cfg_attr(feature = "openapi", schema(pattern = "^[a-z]{1,16}$"))]
    pub source: String,
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 256))]
    pub name: String,
    /// The installed version.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 256))]
    pub version: String,
    /// The newer version the source offers, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 256))]
    pub latest: Option<String>,
    /// What the upgrade is, from where it comes (an APT suite ending in `-security` is
    /// `security`); with `latest` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<crate::manifest::Category>,
    /// The upstream release `latest` is, where the source is a forge's releases; with
    /// `latest` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<UpstreamRelease>,
}

/// An upstream project's release as its forge (GitHub, Gitea, Forgejo) publishes it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpstreamRelease {
    /// The release's page.
    #[cfg_attr(feature = "openapi", schema(max_length = 2048))]
    pub url: String,
    /// When it was published, as the forge says (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_length = 64))]
    pub published_at: Option<String>,
    /// The start of its notes: at most [`MAX_RELEASE_SUMMARY`] characters.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[cfg_attr(feature = "openapi", schema(max_length = 500))]
    pub summary: String,
}

/// Most characters of a release's notes a device reports.
pub const MAX_RELEASE_SUMMARY: usize = 500;

/// Most packages one device may report.
pub const MAX_INVENTORY: usize = 50_000;

/// `POST /api/v1/device/inventory`, when the server asked for it: the whole list, or (with
/// `base`) what changed since the list the server has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct InventoryUpload {
    /// The whole list; with `base`, the packages that are new or changed since it.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_items = 50000))]
    pub packages: Vec<InventoryPackage>,
    /// A delta: the digest of the list it applies to (the server's, from the check-in's
    /// `inventory_base`). The server refuses it with 409 when it no longer has that list;
    /// the device then sends the whole list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = "^[0-9a-f]{64}$"))]
    pub base: Option<String>,
    /// With `base`: the packages gone since it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(max_items = 50000))]
    pub removed: Vec<PackageKey>,
    /// With `base`: the digest of the list after the delta, which the server checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = "^[0-9a-f]{64}$"))]
    pub digest: Option<String>,
}

/// Which package: a source's package is one per name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PackageKey {
    #[cfg_attr(feature = "openapi", schema(pattern = "^[a-z]{1,16}$"))]
    pub source: String,
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 256))]
    pub name: String,
}

impl InventoryPackage {
    pub fn key(&self) -> PackageKey {
        PackageKey {
            source: self.source.clone(),
            name: self.name.clone(),
        }
    }
}

/// What changed from the list `old` to `new` (each sorted): the packages new or different in
/// `new`, and the keys of those gone.
pub fn inventory_delta(
    old: &[InventoryPackage],
    new: &[InventoryPackage],
) -> (Vec<InventoryPackage>, Vec<PackageKey>) {
    let before: std::collections::BTreeMap<PackageKey, &InventoryPackage> =
        old.iter().map(|p| (p.key(), p)).collect();
    let after: std::collections::BTreeSet<PackageKey> = new.iter().map(|p| p.key()).collect();
    let changed = new
        .iter()
        .filter(|p| before.get(&p.key()) != Some(p))
        .cloned()
        .collect();
    let removed = before
        .keys()
        .filter(|k| !after.contains(*k))
        .cloned()
        .collect();
    (changed, removed)
}

/// `list` with a delta applied: `removed` taken out, `changed` put in place of the package of
/// the same key (or added); sorted.
pub fn apply_inventory_delta(
    list: Vec<InventoryPackage>,
    changed: &[InventoryPackage],
    removed: &[PackageKey],
) -> Vec<InventoryPackage> {
    let mut by_key: std::collections::BTreeMap<PackageKey, InventoryPackage> =
        list.into_iter().map(|p| (p.key(), p)).collect();
    for k in removed {
        by_key.remove(k);
    }
    for p in changed {
        by_key.insert(p.key(), p.clone());
    }
    let mut out: Vec<InventoryPackage> = by_key.into_values().collect();
    out.sort();
    out
}

/// The answer to an inventory upload: how many packages the server stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InventoryAck {
    pub stored: usize,
}

/// The digest a device sends with each check-in: sha256 over the packages in order, each as
/// `source NUL name NUL version NUL latest NUL category LF` (an absent field empty; a package
/// with an upstream `release` has `NUL` and the release as JSON before the `LF`). The list
/// must be sorted ([`InventoryPackage`]'s order).
pub fn inventory_digest(packages: &[InventoryPackage]) -> String {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    for p in packages {
        h.update(p.source.as_bytes());
        h.update([0]);
        h.update(p.name.as_bytes());
        h.update([0]);
        h.update(p.version.as_bytes());
        h.update([0]);
        h.update(p.latest.as_deref().unwrap_or("").as_bytes());
        h.update([0]);
        h.update(p.category.map_or("", |c| c.as_str()).as_bytes());
        // Only software with an upstream release adds it (as JSON, which escapes newlines):
        // a list without one digests as it always did.
        if let Some(r) = &p.release {
            h.update([0]);
            h.update(serde_json::to_string(r).unwrap_or_default().as_bytes());
        }
        h.update(b"\n");
    }
    hex::encode(h.finalize())
}

/// `GET /api/v1/packages?name=…&older_than=…`: a host that has the package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PackageHit {
    pub host_id: String,
    pub hostname: String,
    pub source: String,
    pub name: String,
    pub version: String,
    /// The upgrade the host's source offers, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<crate::manifest::Category>,
    /// The upstream release the upgrade is, where the source is a forge's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<UpstreamRelease>,
}

/// `GET /api/v1/packages/hosts?category=…`: a host with upgrades pending, in numbers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HostPending {
    pub host_id: String,
    pub hostname: String,
    /// Packages its sources found.
    pub total: u64,
    /// Of those, with an upgrade offered.
    pub pending: u64,
    pub security: u64,
    pub bugfix: u64,
    pub feature: u64,
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
    /// The release notes, for display (the signed manifest is what counts).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub notes: String,
    /// Link to the release page, for display.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_url: Option<String>,
    /// A delta from the version this device has installed, when the server has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<DeltaOffer>,
    /// More places that serve the release's artifact (mirrors, a CDN), recorded at publish:
    /// tried after the signed manifest's own absolute URLs and before the server's copy. The
    /// signed hash decides what is accepted, wherever the bytes come from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mirrors: Vec<String>,
    /// Devices of this device's site that hold the artifact, nearest first
    /// (`http://IP:PORT/artifacts/SHA256`): tried before anything else, with no credential.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<String>,
}

/// A file-level delta from the installed version (`ferry_manifests::delta`): unsigned, used
/// only when the device has exactly `from_version` installed and intact; every file is
/// checked against the release's signed manifest, and anything wrong falls back to the full
/// artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeltaOffer {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub from_version: semver::Version,
    /// Where the server serves it, relative to the server URL.
    pub path: String,
    pub size: u64,
    pub sha256: String,
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
    /// Run this install's hooks in a terminal an operator attaches to (`ferryctl update
    /// trigger --interactive`): their input comes from `GET /api/v1/device/terminal/{job}`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub interactive: bool,
    /// A delta from the version this device has installed, when the server has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<DeltaOffer>,
    /// More places that serve the release's artifact (mirrors, a CDN), recorded at publish:
    /// tried after the signed manifest's own absolute URLs and before the server's copy. The
    /// signed hash decides what is accepted, wherever the bytes come from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mirrors: Vec<String>,
    /// A rollback to `version` from the backup the device kept, with the reason (a campaign
    /// whose wave regressed); nothing is downloaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<String>,
    /// May download over a metered link (`ferryctl update trigger --metered-allowed`: an
    /// urgent fix); other jobs wait on such a link (docs/delivery.md).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub metered_allowed: bool,
    /// Devices of this device's site that hold the artifact, nearest first
    /// (`http://IP:PORT/artifacts/SHA256`): tried before anything else, with no credential.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<String>,
}

/// An upgrade of software a device's source found (`ferryctl update batch-host HOST
/// --category security`): one run of that source's installer for all of the packages (for
/// `apt`, one `apt-get install --only-upgrade`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PackageJob {
    pub job_id: String,
    /// The source (`apt`, or a command source's name).
    pub source: String,
    /// The packages to upgrade to what the source offers now.
    pub packages: Vec<String>,
    /// Run the installer in a terminal an operator attaches to, so a prompt (dpkg's
    /// conffile question) reaches them.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub interactive: bool,
}

/// The item name the history shows for a source's package upgrades: `apt packages` (an item
/// name never holds a space, so it names no Ferry item).
pub fn packages_item(source: &str) -> String {
    format!("{source} packages")
}

/// One package of a [`PackageJob`]: its version before and after (absent: not installed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PackageChange {
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 256))]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_length = 256))]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_length = 256))]
    pub to: Option<String>,
}

/// The outcome of a [`PackageJob`], queued and retried like a [`Report`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PackageReport {
    pub report_id: String,
    pub job_id: String,
    #[cfg_attr(feature = "openapi", schema(pattern = "^[a-z]{1,16}$"))]
    pub source: String,
    /// `installed` (the installer succeeded) or `failed`; nothing is rolled back.
    pub outcome: Outcome,
    pub message: String,
    /// The installer's output.
    #[serde(default)]
    pub output: String,
    /// Each package's version before and after.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_items = 50000))]
    pub changes: Vec<PackageChange>,
    pub started_at: String,
    pub finished_at: String,
}

/// One thing an operator's terminal sent to an interactive install: keystrokes, or a new
/// window size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TerminalEvent {
    /// Increases by one per event of the session; the device asks for events after the last
    /// one it took.
    pub seq: u64,
    /// What the operator typed (a Ctrl-C is `\u0003`: the device interrupts the hook).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1000))]
    pub cols: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1000))]
    pub rows: Option<u16>,
}

/// `GET /api/v1/device/terminal/{job}`: what the operator's terminal sent since `after`, held
/// open until there is some (or the wait runs out), and whether an operator holds the
/// terminal now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TerminalPoll {
    pub events: Vec<TerminalEvent>,
    pub attached: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CheckInResponse {
    pub host_id: String,
    pub available: Vec<Available>,
    pub jobs: Vec<Job>,
    /// Report ids the server has stored; the device may drop them from its queue.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub acked_reports: Vec<String>,
    /// The newest trust root version the server holds; a device on an older one fetches
    /// `api/v1/trust-roots/{version}` for each version after its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_root_version: Option<u64>,
    /// The poll interval the server suggests; the device keeps it within its own bounds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll_interval_secs: Option<u64>,
    /// Campaigns that target this device and need its acceptance.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub campaigns: Vec<CampaignOffer>,
    /// Jobs cancelled since they were handed out; the device drops them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cancelled_jobs: Vec<String>,
    /// The host waits for an operator's acceptance (`ferryctl hosts accept`): it is given
    /// nothing until then.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub awaiting_acceptance: bool,
    /// The server's clock when it answered: the device keeps the time it trusts no earlier,
    /// and says when its own clock disagrees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_time: Option<String>,
    /// The server's copy of the device's software differs from the digest it sent: the
    /// device posts the list (`POST /api/v1/device/inventory`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub inventory_wanted: bool,
    /// With `inventory_wanted`: the digest of the list the server has, when it has one; a
    /// device that sent that list may send only what changed since (`base`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inventory_base: Option<String>,
    /// An operator asked for a check now (`ferryctl hosts check`): the device refreshes what
    /// its sources know (APT's lists) and reports at once, as a check run by hand does.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub check_requested: bool,
    /// Upgrades of software the device's sources found, asked by an operator.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub package_jobs: Vec<PackageJob>,
    /// The server's device CA issues certificates (`POST /api/v1/device/certificate`): a
    /// device talking https takes one, and renews it before it expires.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub issues_certificates: bool,
    /// Campaigns observing this device now: it samples its health and sends the samples
    /// with its check-ins until each window ends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub observe: Vec<ObserveOrder>,
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

/// `POST /api/v1/device/waiting`: a job the device cannot start yet, for a cause that is not
/// the release's and not final (no disk space, a root it may not write): it stays pending and
/// the operator reads why.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Waiting {
    pub job_id: String,
    #[cfg_attr(feature = "openapi", schema(max_length = 1024))]
    pub message: String,
}

/// `POST /api/v1/device/reports`: the outcome of one install attempt. Reports are queued on
/// the device and retried; `report_id` makes a retry idempotent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Report {
    pub report_id: String,
    #[serde(default)]
    pub job_id: Option<String>,
    #[cfg_attr(feature = "openapi", schema(pattern = "^[a-z0-9][a-z0-9._-]{0,63}$"))]
    pub item: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^(0|[1-9][0-9]{0,15})\\.(0|[1-9][0-9]{0,15})\\.(0|[1-9][0-9]{0,15})(-(0|[1-9][0-9]{0,15}|[0-9]*[A-Za-z-][0-9A-Za-z-]*)(\\.(0|[1-9][0-9]{0,15}|[0-9]*[A-Za-z-][0-9A-Za-z-]*))*)?(\\+[0-9A-Za-z-]+(\\.[0-9A-Za-z-]+)*)?$"))]
    pub version: semver::Version,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, pattern = "^(0|[1-9][0-9]{0,15})\\.(0|[1-9][0-9]{0,15})\\.(0|[1-9][0-9]{0,15})(-(0|[1-9][0-9]{0,15}|[0-9]*[A-Za-z-][0-9A-Za-z-]*)(\\.(0|[1-9][0-9]{0,15}|[0-9]*[A-Za-z-][0-9A-Za-z-]*))*)?(\\+[0-9A-Za-z-]+(\\.[0-9A-Za-z-]+)*)?$"))]
    pub from_version: Option<semver::Version>,
    pub outcome: Outcome,
    /// One line saying what happened, for lists.
    pub message: String,
    /// Output of post-install and health-check commands.
    #[serde(default)]
    pub output: String,
    pub started_at: String,
    pub finished_at: String,
    /// What the device downloaded for this install.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetched: Option<Fetched>,
}

/// What a device downloaded for an install: how many bytes, and whether from a delta.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Fetched {
    pub bytes: u64,
    /// The installed version a delta started from; absent: the full artifact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::wire::SemverText>))]
    pub delta_from: Option<semver::Version>,
    /// A delta was tried and could not be used; the full artifact was fetched after it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fell_back: bool,
    /// Of `bytes`, how many came from peers at the device's site.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub from_peers: u64,
    /// Peers whose bytes failed the signed hash (their share URLs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(max_items = 16))]
    pub bad_peers: Vec<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl std::fmt::Display for Fetched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.delta_from, self.fell_back) {
            (Some(v), _) => write!(f, "{} bytes, a delta from {v}", self.bytes),
            (None, true) => write!(
                f,
                "{} bytes, the full artifact after a delta that could not be used",
                self.bytes
            ),
            (None, false) => write!(f, "{} bytes, the full artifact", self.bytes),
        }?;
        if self.from_peers > 0 {
            write!(f, " ({} from peers at its site)", self.from_peers)?;
        }
        if !self.bad_peers.is_empty() {
            write!(
                f,
                "; bad bytes from {} (no longer offered)",
                self.bad_peers.join(", ")
            )?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReportBatch {
    pub reports: Vec<Report>,
    /// Outcomes of package upgrades ([`PackageJob`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub package_reports: Vec<PackageReport>,
    /// The device's clock when it sent the batch: the server moves the reports' times by
    /// how far that is from its own, so history reads in the server's time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReportAck {
    pub acked: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg(name: &str, version: &str, latest: Option<&str>) -> InventoryPackage {
        InventoryPackage {
            source: "apt".into(),
            name: name.into(),
            version: version.into(),
            latest: latest.map(Into::into),
            category: latest.map(|_| crate::manifest::Category::Security),
            release: None,
        }
    }

    #[test]
    fn a_delta_applied_to_the_old_list_gives_the_new_one() {
        let old = vec![
            pkg("bar", "2.0", None),
            pkg("foo", "1.0", Some("1.1")),
            pkg("gone", "1", None),
        ];
        let new = vec![
            pkg("bar", "2.0", None),
            pkg("baz", "0.1", None),
            pkg("foo", "1.1", None),
        ];
        let (changed, removed) = inventory_delta(&old, &new);
        assert_eq!(
            changed,
            vec![pkg("baz", "0.1", None), pkg("foo", "1.1", None)]
        );
        assert_eq!(
            removed,
            vec![PackageKey {
                source: "apt".into(),
                name: "gone".into()
            }]
        );
        let rebuilt = apply_inventory_delta(old.clone(), &changed, &removed);
        assert_eq!(rebuilt, new);
        assert_eq!(inventory_digest(&rebuilt), inventory_digest(&new));
        // Nothing changed: an empty delta.
        assert_eq!(inventory_delta(&new, &new), (vec![], vec![]));
    }
}
