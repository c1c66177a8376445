//! The operator API: items and their releases: publishing, mirrors, how an item is presented.

use serde::{Deserialize, Serialize};

use crate::invalid::Invalid;

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
    /// When an operator withdrew it (`ferryctl releases withdraw`): no longer offered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub withdrawn_at: Option<String>,
    /// Why it was withdrawn, as the operator said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub withdrawn_reason: Option<String>,
    /// `swupdate` or `rauc` when the artifact is that installer's bundle: offered to DDI
    /// devices only (docs/ddi.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle: Option<String>,
    /// Installs of it may download over a metered link (`ferryctl release metered-allowed`:
    /// an urgent fix); other jobs wait on such a link (docs/delivery.md).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub metered_allowed: bool,
}

/// `PUT /api/v1/releases/{item}/{version}/mirrors`: the base URLs that serve the release's
/// artifact besides the server (replacing those recorded before; empty removes them).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MirrorsRequest {
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<MirrorBase>, max_items = 16))]
    pub mirrors: Vec<String>,
}

/// `PUT /api/v1/releases/{item}/{version}/metered-allowed`: whether installs of the release
/// may download over a metered link.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MeteredAllowedRequest {
    pub metered_allowed: bool,
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

/// `POST /api/v1/releases/{item}/{version}/withdraw`: why (shown with the release, and on
/// the installs and campaigns it cancels).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WithdrawRequest {
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(max_length = 512, pattern = "^[^\\u0000-\\u001f\\u007f]*$")
    )]
    pub reason: Option<String>,
}
