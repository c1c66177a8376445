//! JSON wire types of the HTTP API (`/api/v1`), shared by ferry-agent, ferry-server and
//! ferryctl. docs/protocol.md describes each endpoint that carries them. [`device`] is what a
//! device sends and receives; what ferryctl and the web UI do is one module per resource:
//! [`fleet`] (hosts), [`releases`] (items and releases), [`updates`] (installs, history,
//! terminals), [`rollout`] (batches and campaigns), [`admin`] (tokens, MQTT connections).
//! All are re-exported here, so every type is `ferry_manifests::wire::Name`.

use serde::{Deserialize, Serialize};

pub mod admin;
pub mod device;
pub mod fleet;
pub mod releases;
pub mod rollout;
pub mod updates;

pub use admin::*;
pub use device::*;
pub use fleet::*;
pub use releases::*;
pub use rollout::*;
pub use updates::*;

/// A tag, for the API document: 1-64 characters of a-z, 0-9, `.`, `_`, `-`, `:`.
#[cfg(feature = "openapi")]
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, pattern = "^[a-z0-9._:-]{1,64}$")]
pub struct Tag(pub String);

/// An item name, for the API document.
#[cfg(feature = "openapi")]
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, pattern = "^[a-z0-9][a-z0-9._-]{0,63}$")]
pub struct ItemName(pub String);

/// A semantic version, for the API document.
#[cfg(feature = "openapi")]
#[derive(utoipa::ToSchema)]
#[schema(
    value_type = String,
    pattern = "^(0|[1-9][0-9]{0,15})\\.(0|[1-9][0-9]{0,15})\\.(0|[1-9][0-9]{0,15})(-(0|[1-9][0-9]{0,15}|[0-9]*[A-Za-z-][0-9A-Za-z-]*)(\\.(0|[1-9][0-9]{0,15}|[0-9]*[A-Za-z-][0-9A-Za-z-]*))*)?(\\+[0-9A-Za-z-]+(\\.[0-9A-Za-z-]+)*)?$"
)]
pub struct SemverText(pub String);

/// Error body of every non-2xx API response.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiError {
    pub code: String,
    pub message: String,
    /// The request's id, as in the `x-request-id` header and the server's log lines of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
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

/// A duration as operators write it: `90s`, `30m`, `2h`, `1d`, or plain seconds (`600`).
pub fn parse_duration_secs(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (digits, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 90s, 30m, 2h or 1d"))?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "{text:?} is not a duration such as 90s, 30m, 2h or 1d"
            ))
        }
    };
    n.checked_mul(unit)
        .ok_or_else(|| format!("{text:?} is too long"))
}

/// A wire timestamp (or any RFC 3339 instant) read back; `None` when it is not one.
pub fn parse_timestamp(text: &str) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn icon_urls_are_https_and_bounded() {
        assert!(super::releases::validate_icon_url("https://cdn.example.org/web.svg").is_ok());
        assert!(super::releases::validate_icon_url("http://cdn.example.org/web.svg").is_err());
        assert!(super::releases::validate_icon_url("javascript:alert(1)").is_err());
        assert!(super::releases::validate_icon_url("https://").is_err());
        let long = format!("https://x.org/{}", "a".repeat(2040));
        assert!(super::releases::validate_icon_url(&long).is_err());
    }

    #[test]
    fn timestamps_are_fixed_width_so_text_order_is_time_order() {
        let t = time::macros::datetime!(2026-01-02 03:04:05 UTC);
        assert_eq!(super::timestamp(t), "2026-01-02T03:04:05.000Z");
        let later = t + time::Duration::milliseconds(500);
        assert!(super::timestamp(later) > super::timestamp(t));
    }
}

#[cfg(test)]
mod duration_tests {
    #[test]
    fn durations_read_as_operators_write_them() {
        for (text, secs) in [
            ("90s", 90),
            ("30m", 1800),
            ("2h", 7200),
            ("1d", 86400),
            ("600", 600),
        ] {
            assert_eq!(super::parse_duration_secs(text), Ok(secs), "{text}");
        }
        for bad in ["", "m", "30x", "3.5h", "-1m"] {
            assert!(super::parse_duration_secs(bad).is_err(), "{bad}");
        }
    }
}
