//! The checks of the agent's configuration, a part at a time; each error names its key.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use ferry_manifests::manifest::validate_item_name;
use ferry_manifests::{PublicKey, TrustedKeys};

use super::{EnrolToken, ItemConfig, RawConfig};

/// `enrol_token` or `enrol_token_file`, not both.
pub(super) fn enrol_token(
    token: Option<String>,
    file: Option<PathBuf>,
    resolve: &dyn Fn(&Path) -> PathBuf,
) -> Result<Option<EnrolToken>, String> {
    Ok(match (token, file) {
        (Some(_), Some(_)) => {
            return Err("set either `enrol_token` or `enrol_token_file`, not both".into())
        }
        (Some(token), None) if token.trim().is_empty() => {
            return Err("key `enrol_token`: the token is empty".into())
        }
        (Some(token), None) => Some(EnrolToken::Inline(token.trim().to_string())),
        // Read only when the device enrols: the file may be provisioned after the image is
        // built, and removed once the device has its own credential.
        (None, Some(file)) => Some(EnrolToken::File(resolve(&file))),
        (None, None) => None,
    })
}

/// A path from the config as written, and where it resolved when that differs (a relative
/// path is taken from the config file's directory).
fn as_written(written: &Path, resolved: &Path) -> String {
    if written == resolved {
        format!("{:?}", written.display().to_string())
    } else {
        format!(
            "{:?} (relative to the config file: {})",
            written.display().to_string(),
            resolved.display()
        )
    }
}

/// The keys manifests are verified against: pinned `trusted_keys` with their threshold, or
/// a signed `trust_root` (checked here) that names them.
pub(super) fn trust(
    raw: &RawConfig,
    resolve: &dyn Fn(&Path) -> PathBuf,
) -> Result<(TrustedKeys, usize, Option<PathBuf>), String> {
    let trust_root = raw.trust_root.as_deref().map(resolve);
    match (&trust_root, raw.trusted_keys.is_empty()) {
        (None, true) => {
            return Err(
                "key `trusted_keys`: list at least one release public key (.pub file), or set `trust_root`"
                    .into()
            )
        }
        (Some(_), false) => {
            return Err(
                "set either `trusted_keys` or `trust_root`, not both (the trust root names the release keys)"
                    .into()
            )
        }
        _ => {}
    }
    if let (Some(path), Some(written)) = (&trust_root, &raw.trust_root) {
        let key = format!("key `trust_root` = {}", as_written(written, path));
        let bytes = std::fs::read(path)
            .map_err(|e| format!("{key}: cannot read {}: {e}", path.display()))?;
        ferry_manifests::root::TrustRoot::verify_initial(&bytes)
            .map_err(|e| format!("{key}: {}: {e}", path.display()))?;
        if raw.signature_threshold.is_some() {
            return Err(
                "key `signature_threshold`: with `trust_root` the root sets the release threshold"
                    .into(),
            );
        }
    }
    let mut keys = Vec::new();
    for key_path in &raw.trusted_keys {
        let path = resolve(key_path);
        let key = PublicKey::load(&path).map_err(|e| {
            format!(
                "key `trusted_keys` entry {}: {e}",
                as_written(key_path, &path)
            )
        })?;
        keys.push(key);
    }
    let trusted = TrustedKeys::new(keys);
    let signature_threshold = raw.signature_threshold.unwrap_or(1);
    if trust_root.is_none() && (signature_threshold == 0 || signature_threshold > trusted.len()) {
        return Err(format!(
            "key `signature_threshold`: {signature_threshold} must be between 1 and the number of distinct trusted keys ({})",
            trusted.len()
        ));
    }
    Ok((trusted, signature_threshold, trust_root))
}

/// The PEM certificate(s) `server_ca` names, checked.
pub(super) fn server_ca(
    file: Option<&Path>,
    resolve: &dyn Fn(&Path) -> PathBuf,
) -> Result<Option<Vec<u8>>, String> {
    let server_ca = match file {
        Some(written) => {
            let p = resolve(written);
            let key = format!("key `server_ca` = {}", as_written(written, &p));
            let pem = std::fs::read(&p).map_err(|e| format!("{key}: cannot read it: {e}"))?;
            reqwest::Certificate::from_pem(&pem)
                .map_err(|e| format!("{key}: not a PEM certificate: {e}"))?;
            Some(pem)
        }
        None => None,
    };
    Ok(server_ca)
}

/// The `[[items]]`: names valid and unique, roots absolute.
pub(super) fn items(raw: Vec<ItemConfig>) -> Result<Vec<ItemConfig>, String> {
    let mut names = BTreeSet::new();
    let mut items = Vec::new();
    for item in raw {
        validate_item_name(&item.name).map_err(|e| format!("[[items]] `name`: {e}"))?;
        if !names.insert(item.name.clone()) {
            return Err(format!(
                "[[items]] `name`: item {:?} is listed twice",
                item.name
            ));
        }
        if !item.root.is_absolute() {
            return Err(format!(
                "[[items]] `root` of {:?}: {} must be an absolute path",
                item.name,
                item.root.display()
            ));
        }
        items.push(item);
    }
    Ok(items)
}

/// The numeric settings, defaults filled in and ranges checked.
pub(super) struct Numbers {
    pub(super) poll_interval_secs: u64,
    pub(super) interactive_timeout_secs: u64,
    pub(super) hook_timeout_secs: u64,
    pub(super) stop_grace_secs: u64,
    pub(super) keep_releases: usize,
    pub(super) connect_timeout_secs: u64,
    pub(super) read_timeout_secs: u64,
    pub(super) download_retries: u32,
    pub(super) min_download_rate: u64,
    pub(super) max_download_rate: Option<crate::delivery::Rate>,
    pub(super) download_window: Option<crate::delivery::Window>,
    pub(super) metered: crate::delivery::Metered,
    pub(super) share_listen: Option<std::net::SocketAddr>,
    pub(super) long_poll_secs: u64,
    pub(super) lock_wait_secs: u64,
    pub(super) poll_interval_min_secs: u64,
    pub(super) poll_interval_max_secs: u64,
}

impl Numbers {
    pub(super) fn check(raw: &RawConfig) -> Result<Numbers, String> {
        let poll_interval_secs = raw.poll_interval_secs.unwrap_or(3600);
        if !(1..=7 * 24 * 3600).contains(&poll_interval_secs) {
            return Err(format!(
                "key `poll_interval_secs`: {poll_interval_secs} must be between 1 and 604800"
            ));
        }
        let interactive_timeout_secs = raw.interactive_timeout_secs.unwrap_or(300);
        if !(1..=86_400).contains(&interactive_timeout_secs) {
            return Err("key `interactive_timeout_secs`: must be 1 to 86400".into());
        }
        let hook_timeout_secs = raw.hook_timeout_secs.unwrap_or(300);
        if hook_timeout_secs == 0 {
            return Err("key `hook_timeout_secs`: must be at least 1".into());
        }
        let stop_grace_secs = raw.stop_grace_secs.unwrap_or(60);
        if stop_grace_secs > 3600 {
            return Err(format!(
                "key `stop_grace_secs`: {stop_grace_secs} must be at most 3600"
            ));
        }
        let keep_releases = raw.keep_releases.unwrap_or(2);
        if keep_releases < 2 {
            return Err(
                "key `keep_releases`: must be at least 2 (the current release and its backup)"
                    .into(),
            );
        }

        let connect_timeout_secs = raw.connect_timeout_secs.unwrap_or(10);
        let read_timeout_secs = raw.read_timeout_secs.unwrap_or(30);
        for (key, value) in [
            ("connect_timeout_secs", connect_timeout_secs),
            ("read_timeout_secs", read_timeout_secs),
        ] {
            if !(1..=3600).contains(&value) {
                return Err(format!("key `{key}`: {value} must be between 1 and 3600"));
            }
        }
        let download_retries = raw.download_retries.unwrap_or(3);
        if download_retries > 10 {
            return Err(format!(
                "key `download_retries`: {download_retries} must be at most 10"
            ));
        }

        let long_poll_secs = raw.long_poll_secs.unwrap_or(30);
        if raw.lock_wait_secs.is_some_and(|w| w > 3600) {
            return Err("key `lock_wait_secs`: must be at most 3600".into());
        }
        if long_poll_secs > 300 {
            return Err(format!(
                "key `long_poll_secs`: {long_poll_secs} must be at most 300"
            ));
        }
        let poll_interval_min_secs = raw.poll_interval_min_secs.unwrap_or(60);
        let poll_interval_max_secs = raw.poll_interval_max_secs.unwrap_or(86_400);
        if poll_interval_min_secs == 0 || poll_interval_min_secs > poll_interval_max_secs {
            return Err(format!(
                "keys `poll_interval_min_secs` ({poll_interval_min_secs}) and `poll_interval_max_secs` ({poll_interval_max_secs}): need 1 <= min <= max"
            ));
        }
        let min_download_rate = raw.min_download_rate.unwrap_or(1024);
        let max_download_rate = raw
            .max_download_rate
            .as_deref()
            .map(str::parse::<crate::delivery::Rate>)
            .transpose()
            .map_err(|e| format!("key `max_download_rate`: {e}"))?;
        if let Some(cap) = max_download_rate {
            if min_download_rate >= cap.0 {
                return Err(format!(
                    "key `max_download_rate`: {cap} is not above `min_download_rate` ({min_download_rate} bytes/s), so every capped download would be abandoned as too slow; lower min_download_rate (0 turns it off)"
                ));
            }
        }
        let download_window = raw
            .download_window
            .as_deref()
            .map(str::parse::<crate::delivery::Window>)
            .transpose()
            .map_err(|e| format!("key `download_window`: {e}"))?;
        let metered = raw
            .metered
            .as_ref()
            .map(crate::delivery::Metered::from_toml)
            .transpose()
            .map_err(|e| format!("key `metered`: {e}"))?
            .unwrap_or_default();
        let share_listen = raw
            .share_listen
            .as_deref()
            .map(|s| {
                s.parse::<std::net::SocketAddr>().map_err(|_| {
                    format!("key `share_listen`: {s:?} must be ADDRESS:PORT, e.g. \"0.0.0.0:8089\" (every address) or \"192.168.1.20:8089\"")
                })
            })
            .transpose()?;
        if let Some(site) = &raw.site {
            let probe = ferry_manifests::wire::Site {
                name: site.clone(),
                share: None,
                holds: vec![],
            };
            ferry_manifests::wire::validate_site(&probe).map_err(|e| format!("key `site`: {e}"))?;
        }
        Ok(Numbers {
            poll_interval_secs,
            interactive_timeout_secs,
            hook_timeout_secs,
            stop_grace_secs,
            keep_releases,
            connect_timeout_secs,
            read_timeout_secs,
            download_retries,
            min_download_rate,
            max_download_rate,
            download_window,
            metered,
            share_listen,
            long_poll_secs,
            lock_wait_secs: raw.lock_wait_secs.unwrap_or(60),
            poll_interval_min_secs,
            poll_interval_max_secs,
        })
    }
}
