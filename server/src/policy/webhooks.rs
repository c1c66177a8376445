//! Webhooks as plain code (docs/operations.md, "Webhooks"): the event types, what an
//! endpoint and a secret must be, when a failed delivery is tried again, and the signature
//! in the Standard Webhooks style (`webhook-id`, `webhook-timestamp`, `webhook-signature`).

use std::time::Duration;

use base64::Engine as _;

/// Every event type a webhook may ask for.
pub const EVENTS: [&str; 7] = [
    "install.finished",
    "campaign.paused",
    "campaign.resumed",
    "campaign.completed",
    "campaign.cancelled",
    "release.published",
    "release.withdrawn",
];

/// Waits before each retry: the n-th entry after the n-th failed attempt. Eleven attempts
/// over about a day and a half; then the delivery is given up (listed as failed).
const RETRY_DELAYS: [Duration; 10] = [
    Duration::from_secs(5),
    Duration::from_secs(30),
    Duration::from_secs(2 * 60),
    Duration::from_secs(10 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(60 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(4 * 3600),
    Duration::from_secs(8 * 3600),
    Duration::from_secs(16 * 3600),
];

/// How long after its `attempts`-th failed attempt a delivery is tried again; `None`: give up.
pub fn retry_delay(attempts: i64) -> Option<Duration> {
    let i = usize::try_from(attempts.checked_sub(1)?).ok()?;
    RETRY_DELAYS.get(i).copied()
}

/// The event types of `--events a,b` (`all` for every one), checked and without repeats.
pub fn parse_events(text: &str) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for e in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        if e == "all" {
            return Ok(EVENTS.iter().map(|e| e.to_string()).collect());
        }
        if !EVENTS.contains(&e) {
            return Err(format!(
                "unknown event {e:?}: the events are {} (or all)",
                EVENTS.join(", ")
            ));
        }
        if !out.iter().any(|o| o == e) {
            out.push(e.to_string());
        }
    }
    if out.is_empty() {
        return Err(format!(
            "name the events to send: {} (or all)",
            EVENTS.join(", ")
        ));
    }
    Ok(out)
}

/// An endpoint: an `http` or `https` URL with a host, no credentials in it.
pub fn check_url(text: &str) -> Result<url::Url, String> {
    let u = url::Url::parse(text).map_err(|e| format!("{text:?} is not a URL: {e}"))?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
        return Err(format!(
            "{text:?}: a webhook is an http:// or https:// URL with a host"
        ));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err("a webhook URL carries no credentials: the signature proves the sender".into());
    }
    Ok(u)
}

/// The key of a secret as Standard Webhooks writes it: `whsec_` and base64 of 24 to 64 bytes.
pub fn parse_secret(text: &str) -> Result<Vec<u8>, String> {
    let hint = "a secret is whsec_ followed by base64 of 24 to 64 random bytes (e.g. echo \"whsec_$(openssl rand -base64 32)\")";
    let b64 = text
        .trim()
        .strip_prefix("whsec_")
        .ok_or_else(|| format!("the secret does not start with whsec_: {hint}"))?;
    let key = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| format!("the secret is not base64 ({e}): {hint}"))?;
    if !(24..=64).contains(&key.len()) {
        return Err(format!("the secret's key is {} bytes: {hint}", key.len()));
    }
    Ok(key)
}

/// `webhook-signature`: `v1,` and base64 of HMAC-SHA256 over `{id}.{timestamp}.{body}`.
pub fn signature(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    let mut ctx = ring::hmac::Context::with_key(&key);
    ctx.update(id.as_bytes());
    ctx.update(b".");
    ctx.update(timestamp.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(ctx.sign().as_ref())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_standard_webhooks_example() {
        // The example of the Standard Webhooks specification (and its reference libraries).
        let key = parse_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            signature(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn retries_back_off_then_give_up() {
        assert_eq!(retry_delay(1), Some(Duration::from_secs(5)));
        assert_eq!(retry_delay(2), Some(Duration::from_secs(30)));
        assert_eq!(retry_delay(10), Some(Duration::from_secs(16 * 3600)));
        assert_eq!(retry_delay(11), None);
        assert_eq!(retry_delay(0), None);
        let total: u64 = (1..=10).filter_map(retry_delay).map(|d| d.as_secs()).sum();
        assert!((24 * 3600..48 * 3600).contains(&total), "{total}");
    }

    #[test]
    fn events_urls_and_secrets_are_checked() {
        assert_eq!(
            parse_events("install.finished, campaign.paused,install.finished").unwrap(),
            ["install.finished", "campaign.paused"]
        );
        assert_eq!(parse_events("all").unwrap().len(), EVENTS.len());
        assert!(parse_events("install.done")
            .unwrap_err()
            .contains("install.finished"));
        assert!(parse_events(" , ").is_err());
        assert!(check_url("https://hooks.example.org/ferry").is_ok());
        assert!(check_url("ftp://x/").is_err());
        assert!(check_url("https://user:pw@x/").is_err());
        assert!(check_url("not a url").is_err());
        assert!(parse_secret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
        assert!(parse_secret("whsec_c2hvcnQ=")
            .unwrap_err()
            .contains("bytes"));
    }
}
