//! Every topic and payload the bridge publishes, the Home Assistant discovery configs, the
//! cleanup of stale retained topics and the parsing of commands: pure functions of a
//! [`Snapshot`] and a connection's [`Publishing`] settings.
//!
//! Identifiers follow the reference layout: the device is `ferry_{tenant_hex}_{host_hex}`,
//! entities are `ferry_{tenant_hex}_{host_hex}_{item_hex}`, `…_pkgs`, `…_sec` and `…_conn`,
//! where `tenant_hex` is the host's tenant id, `host_hex` the host id without dashes and
//! `item_hex` the item's name in hex (names are Ferry's item ids). The identifiers before
//! tenants (`ferry_{host_hex}_…`, device `ferry_host_{host_hex}`) are cleared on every full
//! publish ([`legacy_cleared`]), so Home Assistant keeps no ghost of them.

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

use super::model::{HostState, ItemState, Publishing, Snapshot};

/// Home Assistant shows at most this many characters of a release summary.
pub const RELEASE_SUMMARY_MAX: usize = 255;

/// One message to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub topic: String,
    pub payload: String,
    pub retain: bool,
}

fn retained(topic: String, payload: impl Into<String>) -> Message {
    Message {
        topic,
        payload: payload.into(),
        retain: true,
    }
}

/// A host id without dashes.
pub fn host_hex(id: &str) -> String {
    id.chars().filter(|c| *c != '-').collect()
}

/// A host's identifier prefix: `ferry_{tenant_hex}_{host_hex}`.
pub fn host_uid(h: &HostState) -> String {
    let tenant: String = h.tenant.chars().filter(char::is_ascii_hexdigit).collect();
    format!(
        "ferry_{}_{}",
        if tenant.is_empty() { "0" } else { &tenant },
        host_hex(&h.id)
    )
}

/// An item name in hex, so any name gives a stable, unique identifier.
pub fn item_hex(name: &str) -> String {
    hex::encode(name.as_bytes())
}

/// Lowercase, every run of other characters than a-z and 0-9 one `_`, none at the ends.
pub fn slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    out.trim_matches('_').to_string()
}

/// `{prefix}/status`: the bridge's birth (`online`) and last will (`offline`).
pub fn status_topic(p: &Publishing) -> String {
    format!("{}/status", p.prefix)
}

fn host_topic(p: &Publishing, host: &HostState, rest: &str) -> String {
    format!("{}/hosts/{}/{rest}", p.prefix, host.id)
}

fn item_topic(p: &Publishing, host: &HostState, item: &ItemState, rest: &str) -> String {
    format!("{}/hosts/{}/items/{}/{rest}", p.prefix, host.id, item.name)
}

/// The state topics of the whole snapshot (always published, discovery or not).
pub fn state_messages(p: &Publishing, s: &Snapshot) -> Vec<Message> {
    let mut out = Vec::new();
    for host in &s.hosts {
        out.extend(host_messages(p, host));
        for item in &host.items {
            out.extend(item_messages(p, host, item));
        }
        out.extend(summary_messages(p, host));
    }
    out
}

/// A campaign's state as its topic says it: `observing` while a wave's window is open,
/// `regressed` once a wave's regression paused it, else its status.
pub fn campaign_state(status: &str, reason: &str, watching: bool) -> &'static str {
    match status {
        "running" if watching => "observing",
        "running" => "running",
        "paused" if reason.starts_with("regressed") => "regressed",
        "paused" => "paused",
        "cancelled" => "cancelled",
        _ => "completed",
    }
}

/// `{prefix}/campaigns/{id}/state` and `…/attributes` of each campaign.
pub fn campaign_messages(
    p: &Publishing,
    campaigns: &[super::model::CampaignState],
) -> Vec<Message> {
    campaigns
        .iter()
        .flat_map(|c| {
            let base = format!("{}/campaigns/{}", p.prefix, c.id);
            let mut attributes = json!({
                "name": c.name,
                "item": c.item,
                "version": c.version,
                "reason": c.reason,
            });
            if let Some((wave, ends_at)) = &c.observing {
                attributes["observing"] = json!({"wave": wave, "ends_at": ends_at});
            }
            [
                retained(format!("{base}/state"), c.state.clone()),
                retained(format!("{base}/attributes"), attributes.to_string()),
            ]
        })
        .collect()
}

fn host_messages(p: &Publishing, h: &HostState) -> Vec<Message> {
    let agent = json!({"last_seen": h.last_seen, "version": h.agent_version}).to_string();
    vec![
        retained(host_topic(p, h, "hostname"), h.hostname.clone()),
        retained(host_topic(p, h, "friendly_name"), h.display_name()),
        retained(
            host_topic(p, h, "info"),
            json!({
                "os_type": "linux",
                "os_version": format!("{} {}", h.os, h.os_version).trim().to_string(),
                "architecture": h.arch,
            })
            .to_string(),
        ),
        retained(host_topic(p, h, "tags"), json!(h.tags).to_string()),
        retained(host_topic(p, h, "agent"), agent.clone()),
        retained(
            host_topic(p, h, "connectivity/state"),
            if h.online { "online" } else { "offline" },
        ),
        retained(host_topic(p, h, "connectivity/attributes"), agent),
    ]
}

/// The attributes of an item: `in_progress` always; the others only when known.
pub fn item_attributes(item: &ItemState) -> Value {
    let mut a = Map::new();
    a.insert("in_progress".into(), json!(item.in_progress));
    if item.outdated() {
        if let Some(c) = &item.category {
            a.insert("update_category".into(), json!(c));
        }
    }
    if let Some(d) = &item.release_date {
        a.insert("release_date".into(), json!(d));
    }
    if let Some(t) = &item.last_checked_at {
        a.insert("last_checked_at".into(), json!(t));
    }
    if let (Some((outcome, message)), Some(latest)) = (&item.failed_here, &item.latest) {
        a.insert(
            "last_failure".into(),
            json!({"version": latest, "outcome": outcome, "message": message}),
        );
    }
    Value::Object(a)
}

/// The JSON state Home Assistant reads an update entity from (`in_progress` shows only from
/// here): exactly the keys it knows, no nulls in string fields.
pub fn item_json_state(item: &ItemState) -> Value {
    let mut a = Map::new();
    a.insert(
        "installed_version".into(),
        json!(item.installed.clone().unwrap_or_default()),
    );
    a.insert(
        "latest_version".into(),
        json!(item.latest_or_installed().unwrap_or_default()),
    );
    a.insert("in_progress".into(), json!(item.in_progress));
    a.insert("title".into(), json!(item.name));
    let failed = match (&item.failed_here, &item.latest) {
        (Some((outcome, message)), Some(latest)) => format!(
            "{latest} {} on this host: {}. ",
            outcome.replace('_', " "),
            message.trim().trim_end_matches('.')
        ),
        _ => String::new(),
    };
    let text = format!("{failed}{}", item.notes.trim());
    if !text.trim().is_empty() {
        a.insert("release_summary".into(), json!(summary(&text)));
    }
    if let Some(u) = &item.release_url {
        a.insert("release_url".into(), json!(u));
    }
    Value::Object(a)
}

/// At most [`RELEASE_SUMMARY_MAX`] characters, cut with an ellipsis.
pub fn summary(notes: &str) -> String {
    let notes = notes.trim();
    if notes.chars().count() <= RELEASE_SUMMARY_MAX {
        return notes.to_string();
    }
    let mut cut: String = notes.chars().take(RELEASE_SUMMARY_MAX - 1).collect();
    cut.push('…');
    cut
}

fn item_messages(p: &Publishing, h: &HostState, item: &ItemState) -> Vec<Message> {
    vec![
        retained(
            item_topic(p, h, item, "state"),
            item.installed.clone().unwrap_or_default(),
        ),
        retained(
            item_topic(p, h, item, "latest_version"),
            item.latest_or_installed().unwrap_or_default(),
        ),
        retained(
            item_topic(p, h, item, "attributes"),
            item_attributes(item).to_string(),
        ),
        retained(
            item_topic(p, h, item, "json"),
            item_json_state(item).to_string(),
        ),
    ]
}

/// Counts of a host's non-featured items and the software its sources found, for its two
/// summary entities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    pub total: usize,
    pub pending: usize,
    pub security: usize,
    pub bugfix: usize,
    pub feature: usize,
}

/// The host's summary: its items that are not featured, and everything its sources found
/// (an APT package is never featured); `None` when it has neither.
pub fn summarise(h: &HostState) -> Option<Summary> {
    let plain: Vec<&ItemState> = h.items.iter().filter(|i| !i.featured).collect();
    if plain.is_empty() && h.software.is_none() {
        return None;
    }
    let pending: Vec<&&ItemState> = plain.iter().filter(|i| i.outdated()).collect();
    let count = |c: &str| {
        pending
            .iter()
            .filter(|i| i.category.as_deref() == Some(c))
            .count()
    };
    let sw = h.software.unwrap_or_default();
    Some(Summary {
        total: plain.len() + sw.total,
        pending: pending.len() + sw.pending,
        security: count("security") + sw.security,
        bugfix: count("bugfix") + sw.bugfix,
        feature: count("feature") + sw.feature,
    })
}

fn pending_words(n: usize) -> (String, String) {
    if n == 0 {
        ("up-to-date".into(), "up-to-date".into())
    } else {
        ("unknown".into(), format!("{n} available"))
    }
}

fn summary_messages(p: &Publishing, h: &HostState) -> Vec<Message> {
    let Some(s) = summarise(h) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (base, pending, attributes, title) in [
        (
            "",
            s.pending,
            json!({
                "in_progress": h.batch_in_progress,
                "pending_count": s.pending,
                "total_count": s.total,
                "bugfix_count": s.bugfix,
                "feature_count": s.feature,
            }),
            format!("{} packages", h.display_name()),
        ),
        (
            "security/",
            s.security,
            json!({"in_progress": h.batch_in_progress, "pending_count": s.security}),
            format!("{} security updates", h.display_name()),
        ),
    ] {
        let (state, latest) = pending_words(pending);
        out.push(retained(
            host_topic(p, h, &format!("{base}state")),
            state.clone(),
        ));
        out.push(retained(
            host_topic(p, h, &format!("{base}latest_version")),
            latest.clone(),
        ));
        out.push(retained(
            host_topic(p, h, &format!("{base}attributes")),
            attributes.to_string(),
        ));
        out.push(retained(
            host_topic(p, h, &format!("{base}json")),
            json!({
                "installed_version": state,
                "latest_version": latest,
                "in_progress": h.batch_in_progress,
                "title": title,
            })
            .to_string(),
        ));
    }
    out
}

fn device(h: &HostState) -> Value {
    json!({
        "identifiers": [host_uid(h)],
        "name": h.display_name(),
    })
}

fn availability(p: &Publishing, h: &HostState) -> Value {
    json!([
        {"topic": status_topic(p), "payload_available": "online", "payload_not_available": "offline"},
        {"topic": host_topic(p, h, "connectivity/state"), "payload_available": "online", "payload_not_available": "offline"},
    ])
}

/// The discovery config topic of an entity.
pub fn config_topic(p: &Publishing, component: &str, unique_id: &str) -> String {
    format!("{}/{component}/{unique_id}/config", p.discovery_prefix)
}

/// Home Assistant discovery configs: an update entity per featured item, the two summary
/// update entities (disabled by default) and the connectivity sensor, one device per host.
/// Entity ids are given both as `default_entity_id` and, for Home Assistant before 2025.10,
/// as `object_id`.
pub fn discovery_messages(p: &Publishing, s: &Snapshot) -> Vec<Message> {
    if !p.discovery {
        return Vec::new();
    }
    let mut out = Vec::new();
    for h in &s.hosts {
        let hh = host_uid(h);
        let fn_slug = slug(h.display_name());
        for item in h.items.iter().filter(|i| i.featured) {
            let unique_id = format!("{hh}_{}", item_hex(&item.name));
            let object_id = format!("ferry_{fn_slug}_{}", slug(&item.name));
            let mut c = json!({
                "name": item.name,
                "unique_id": unique_id,
                "object_id": object_id,
                "default_entity_id": format!("update.{object_id}"),
                "state_topic": item_topic(p, h, item, "json"),
                "json_attributes_topic": item_topic(p, h, item, "attributes"),
                "command_topic": item_topic(p, h, item, "set"),
                "payload_install": "install",
                "availability": availability(p, h),
                "availability_mode": "all",
                "device": device(h),
                "enabled_by_default": true,
            });
            if let Some(icon) = &item.icon_url {
                c["entity_picture"] = json!(icon);
            }
            if let Some(url) = &item.release_url {
                c["release_url"] = json!(url);
            }
            if !item.notes.trim().is_empty() {
                c["release_summary"] = json!(summary(&item.notes));
            }
            out.push(retained(
                config_topic(p, "update", &unique_id),
                c.to_string(),
            ));
        }
        if summarise(h).is_some() {
            for (suffix, base, name_suffix, slug_suffix) in [
                ("pkgs", "", "packages", "packages"),
                ("sec", "security/", "security updates", "security_updates"),
            ] {
                let unique_id = format!("{hh}_{suffix}");
                let object_id = format!("ferry_{fn_slug}_{slug_suffix}");
                let c = json!({
                    "name": format!("{} {name_suffix}", h.display_name()),
                    "unique_id": unique_id,
                    "object_id": object_id,
                    "default_entity_id": format!("update.{object_id}"),
                    "state_topic": host_topic(p, h, &format!("{base}json")),
                    "json_attributes_topic": host_topic(p, h, &format!("{base}attributes")),
                    "command_topic": host_topic(p, h, &format!("{base}set")),
                    "payload_install": "install",
                    "availability": availability(p, h),
                    "availability_mode": "all",
                    "device": device(h),
                    "enabled_by_default": false,
                });
                out.push(retained(
                    config_topic(p, "update", &unique_id),
                    c.to_string(),
                ));
            }
        }
        let unique_id = format!("{hh}_conn");
        let object_id = format!("ferry_{fn_slug}_agent");
        let c = json!({
            "name": format!("{} agent", h.display_name()),
            "unique_id": unique_id,
            "object_id": object_id,
            "default_entity_id": format!("binary_sensor.{object_id}"),
            "device_class": "connectivity",
            "state_topic": host_topic(p, h, "connectivity/state"),
            "payload_on": "online",
            "payload_off": "offline",
            "json_attributes_topic": host_topic(p, h, "connectivity/attributes"),
            // Not the host's own connectivity: that would be circular.
            "availability_topic": status_topic(p),
            "payload_available": "online",
            "payload_not_available": "offline",
            "device": device(h),
            "enabled_by_default": true,
        });
        out.push(retained(
            config_topic(p, "binary_sensor", &unique_id),
            c.to_string(),
        ));
    }
    out
}

/// Empty retained payloads for the discovery configs the identifiers before tenants named
/// (`ferry_{host_hex}_…`): sent before the configs of a full publish, so that Home Assistant
/// drops the old entities (and their devices) first and the new ones keep their entity ids.
pub fn legacy_cleared(p: &Publishing, s: &Snapshot) -> Vec<Message> {
    if !p.discovery {
        return Vec::new();
    }
    let mut out = Vec::new();
    for h in &s.hosts {
        let hh = host_hex(&h.id);
        for item in &h.items {
            out.push(retained(
                config_topic(p, "update", &format!("ferry_{hh}_{}", item_hex(&item.name))),
                "",
            ));
        }
        for suffix in ["pkgs", "sec"] {
            out.push(retained(
                config_topic(p, "update", &format!("ferry_{hh}_{suffix}")),
                "",
            ));
        }
        out.push(retained(
            config_topic(p, "binary_sensor", &format!("ferry_{hh}_conn")),
            "",
        ));
    }
    out
}

/// Empty retained payloads for every topic published before and not now: Home Assistant
/// removes the entities, and the broker forgets the state of removed items and hosts.
pub fn cleared(previous: &BTreeSet<String>, current: &BTreeSet<String>) -> Vec<Message> {
    previous
        .difference(current)
        .map(|t| retained(t.clone(), ""))
        .collect()
}

/// What arrived on a subscribed topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// `{prefix}/hosts/{host}/items/{item}/set`: install the item's newest release.
    InstallItem { host_id: String, item: String },
    /// `{prefix}/hosts/{host}/set`: a batch of every outdated non-featured item.
    InstallAll { host_id: String },
    /// `{prefix}/hosts/{host}/security/set`: the same, security updates only.
    InstallSecurity { host_id: String },
    /// Home Assistant came online (`{discovery_prefix}/status` `online`): republish
    /// discovery.
    HomeAssistantOnline,
}

/// The topic filters the bridge subscribes to.
pub fn subscriptions(p: &Publishing) -> Vec<String> {
    let mut out = vec![
        format!("{}/hosts/+/items/+/set", p.prefix),
        format!("{}/hosts/+/set", p.prefix),
        format!("{}/hosts/+/security/set", p.prefix),
    ];
    if p.discovery {
        out.push(format!("{}/status", p.discovery_prefix));
    }
    out
}

/// Why an inbound message was not a command: the bridge logs it and goes on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InboundError {
    #[error("{topic}: the payload is not text")]
    NotText { topic: String },
    #[error("{topic}: {text:?} is not a birth message")]
    NotBirth { topic: String, text: String },
    #[error("{topic}: not a command topic of this bridge")]
    NotCommandTopic { topic: String },
    #[error("{topic}: {text:?} is not a command (publish \"install\")")]
    NotCommand { topic: String, text: String },
}

/// Reads one inbound message. Anything else (another payload than `install`, a topic the
/// bridge does not own) is an error that says why.
pub fn parse_inbound(p: &Publishing, topic: &str, payload: &[u8]) -> Result<Inbound, InboundError> {
    let text = std::str::from_utf8(payload)
        .map_err(|_| InboundError::NotText {
            topic: topic.to_string(),
        })?
        .trim();
    if p.discovery && topic == format!("{}/status", p.discovery_prefix) {
        return if text == "online" {
            Ok(Inbound::HomeAssistantOnline)
        } else {
            Err(InboundError::NotBirth {
                topic: topic.to_string(),
                text: text.to_string(),
            })
        };
    }
    let not_ours = || InboundError::NotCommandTopic {
        topic: topic.to_string(),
    };
    let rest = topic
        .strip_prefix(&format!("{}/hosts/", p.prefix))
        .ok_or_else(not_ours)?;
    let parts: Vec<&str> = rest.split('/').collect();
    let command = match parts.as_slice() {
        [host, "items", item, "set"] if !host.is_empty() && !item.is_empty() => {
            Inbound::InstallItem {
                host_id: host.to_string(),
                item: item.to_string(),
            }
        }
        [host, "set"] if !host.is_empty() => Inbound::InstallAll {
            host_id: host.to_string(),
        },
        [host, "security", "set"] if !host.is_empty() => Inbound::InstallSecurity {
            host_id: host.to_string(),
        },
        _ => return Err(not_ours()),
    };
    if text != "install" {
        return Err(InboundError::NotCommand {
            topic: topic.to_string(),
            text: text.to_string(),
        });
    }
    Ok(command)
}

#[cfg(test)]
mod tests;
