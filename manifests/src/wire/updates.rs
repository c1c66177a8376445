//! The operator API: installs a person asks for, their history and an interactive install's terminal.

use serde::{Deserialize, Serialize};

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
    /// The device may download it over a metered link (an urgent fix).
    #[serde(default)]
    pub metered_allowed: bool,
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
    /// The item, or for an upgrade of a source's packages `SOURCE packages` (`apt
    /// packages`).
    pub item: String,
    /// The release's version, or for packages how many (`2 packages`).
    pub version: String,
    pub from_version: Option<String>,
    /// For packages: each one's version before and after (as planned until the device
    /// reports).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<crate::wire::PackageChange>,
    /// pending, installed, failed, rolled_back, refused
    pub status: String,
    /// Who asked: `token:NAME` (an operator, by the name of the token it used), `mqtt`,
    /// `campaign`, or `device` for an install the device chose (auto_install).
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
    /// The campaign that dispatched it, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<String>,
    /// The device's own reading of `finished_at` when its clock disagreed with the server's
    /// by more than a minute (`finished_at` is then the server's time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_finished_at: Option<String>,
}
