use super::*;
use crate::mqtt::model::SoftwareCounts;

fn host() -> HostState {
    HostState {
        id: "0b6f-42".into(),
        tenant: "7e57".into(),
        hostname: "kiosk-1".into(),
        friendly_name: Some("Kiosk 1 (Hall)".into()),
        os: "Debian GNU/Linux".into(),
        os_version: "12".into(),
        arch: "x86_64".into(),
        agent_version: "0.1.0".into(),
        last_seen: "2026-01-02T03:04:05.000Z".into(),
        online: true,
        tags: vec!["lab".into()],
        items: vec![
            ItemState {
                name: "web".into(),
                featured: true,
                icon_url: Some("https://cdn.example.org/web.svg".into()),
                installed: Some("1.0.0".into()),
                latest: Some("1.1.0".into()),
                category: Some("security".into()),
                release_date: Some("2026-01-01".into()),
                release_url: None,
                notes: "Fixes a bug.".into(),
                in_progress: false,
                last_checked_at: Some("2026-01-02T03:04:05.000Z".into()),
                failed_here: None,
            },
            ItemState {
                name: "libfoo".into(),
                installed: Some("2.0.0".into()),
                latest: Some("2.0.1".into()),
                category: Some("security".into()),
                ..Default::default()
            },
            ItemState {
                name: "libbar".into(),
                installed: Some("3.0.0".into()),
                ..Default::default()
            },
        ],
        batch_in_progress: false,
        software: None,
    }
}

fn find<'a>(messages: &'a [Message], topic: &str) -> &'a str {
    &messages
        .iter()
        .find(|m| m.topic == topic)
        .unwrap_or_else(|| panic!("no {topic} in {messages:#?}"))
        .payload
}

/// A release that already failed on the host still shows as its latest (it is what is
/// published), and its entity says so: in the attributes and at the head of the summary.
#[test]
fn a_release_that_failed_on_the_host_says_so() {
    let mut h = host();
    h.items[0].failed_here = Some(("rolled_back".into(), "health check failed.".into()));
    let p = Publishing::default();
    let m = state_messages(&p, &Snapshot { hosts: vec![h] });
    let json_of = |topic: &str| serde_json::from_str::<Value>(find(&m, topic)).unwrap();
    assert_eq!(
        json_of("ferry/hosts/0b6f-42/items/web/attributes")["last_failure"],
        json!({"version": "1.1.0", "outcome": "rolled_back", "message": "health check failed."})
    );
    assert_eq!(
        json_of("ferry/hosts/0b6f-42/items/web/json")["release_summary"],
        "1.1.0 rolled back on this host: health check failed. Fixes a bug."
    );
}

#[test]
fn ids_and_slugs() {
    assert_eq!(host_hex("a1-b2-c3"), "a1b2c3");
    assert_eq!(item_hex("web"), "776562");
    assert_eq!(
        slug("pangolin.uk.home.yantsen.su"),
        "pangolin_uk_home_yantsen_su"
    );
    assert_eq!(slug("Kiosk 1 (Hall)"), "kiosk_1_hall");
}

#[test]
fn state_topics_follow_the_reference_layout() {
    let p = Publishing::default();
    let m = state_messages(
        &p,
        &Snapshot {
            hosts: vec![host()],
        },
    );
    assert!(m.iter().all(|m| m.retain));
    assert_eq!(find(&m, "ferry/hosts/0b6f-42/items/web/state"), "1.0.0");
    assert_eq!(
        find(&m, "ferry/hosts/0b6f-42/items/web/latest_version"),
        "1.1.0"
    );
    let json_of = |topic: &str| serde_json::from_str::<Value>(find(&m, topic)).unwrap();
    assert_eq!(
        json_of("ferry/hosts/0b6f-42/items/web/attributes"),
        json!({"in_progress": false, "last_checked_at": "2026-01-02T03:04:05.000Z",
               "release_date": "2026-01-01", "update_category": "security"})
    );
    let state = json_of("ferry/hosts/0b6f-42/items/web/json");
    let mut keys: Vec<&String> = state.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "in_progress",
            "installed_version",
            "latest_version",
            "release_summary",
            "title"
        ]
    );
    assert_eq!(find(&m, "ferry/hosts/0b6f-42/hostname"), "kiosk-1");
    assert_eq!(
        find(&m, "ferry/hosts/0b6f-42/friendly_name"),
        "Kiosk 1 (Hall)"
    );
    assert_eq!(json_of("ferry/hosts/0b6f-42/tags"), json!(["lab"]));
    assert_eq!(find(&m, "ferry/hosts/0b6f-42/connectivity/state"), "online");
    // Two non-featured items, one outdated (a security one).
    assert_eq!(find(&m, "ferry/hosts/0b6f-42/state"), "unknown");
    assert_eq!(
        find(&m, "ferry/hosts/0b6f-42/latest_version"),
        "1 available"
    );
    assert_eq!(
        json_of("ferry/hosts/0b6f-42/attributes"),
        json!({"bugfix_count": 0, "feature_count": 0, "in_progress": false,
               "pending_count": 1, "total_count": 2})
    );
    assert_eq!(
        find(&m, "ferry/hosts/0b6f-42/security/latest_version"),
        "1 available"
    );
}

#[test]
fn the_host_summary_counts_the_software_its_sources_found() {
    let mut h = host();
    let items = summarise(&h).unwrap();
    h.software = Some(SoftwareCounts {
        total: 900,
        pending: 12,
        security: 3,
        bugfix: 7,
        feature: 0,
    });
    let s = summarise(&h).unwrap();
    assert_eq!(s.total, items.total + 900);
    assert_eq!(s.pending, items.pending + 12);
    assert_eq!(s.security, items.security + 3);
    assert_eq!(s.bugfix, items.bugfix + 7);
    // A host with only an APT source still has its summaries.
    let bare = HostState {
        items: Vec::new(),
        software: Some(SoftwareCounts {
            total: 5,
            pending: 1,
            security: 1,
            ..Default::default()
        }),
        ..host()
    };
    let s = summarise(&bare).unwrap();
    assert_eq!((s.total, s.pending, s.security), (5, 1, 1));
    let m = state_messages(
        &Publishing::default(),
        &Snapshot {
            hosts: vec![bare.clone()],
        },
    );
    let attributes: serde_json::Value =
        serde_json::from_str(find(&m, "ferry/hosts/0b6f-42/security/attributes")).unwrap();
    assert_eq!(attributes["pending_count"], 1);
    assert_eq!(
        find(&m, "ferry/hosts/0b6f-42/security/latest_version"),
        "1 available"
    );
    let nothing = HostState {
        items: Vec::new(),
        software: None,
        ..host()
    };
    assert_eq!(summarise(&nothing), None);
}

#[test]
fn discovery_configs_group_a_host_under_one_device_with_dual_availability() {
    let p = Publishing::default();
    let m = discovery_messages(
        &p,
        &Snapshot {
            hosts: vec![host()],
        },
    );
    let web: Value = serde_json::from_str(find(
        &m,
        "homeassistant/update/ferry_7e57_0b6f42_776562/config",
    ))
    .unwrap();
    assert_eq!(web["default_entity_id"], "update.ferry_kiosk_1_hall_web");
    assert_eq!(web["object_id"], "ferry_kiosk_1_hall_web");
    assert_eq!(web["state_topic"], "ferry/hosts/0b6f-42/items/web/json");
    assert_eq!(web["availability_mode"], "all");
    assert_eq!(
        web["availability"][1]["topic"],
        "ferry/hosts/0b6f-42/connectivity/state"
    );
    assert_eq!(web["device"]["identifiers"][0], "ferry_7e57_0b6f42");
    assert_eq!(web["unique_id"], "ferry_7e57_0b6f42_776562");
    assert_eq!(web["device"]["name"], "Kiosk 1 (Hall)");
    assert_eq!(web["entity_picture"], "https://cdn.example.org/web.svg");
    let pkgs: Value = serde_json::from_str(find(
        &m,
        "homeassistant/update/ferry_7e57_0b6f42_pkgs/config",
    ))
    .unwrap();
    assert_eq!(pkgs["enabled_by_default"], false);
    assert_eq!(pkgs["name"], "Kiosk 1 (Hall) packages");
    let sec: Value = serde_json::from_str(find(
        &m,
        "homeassistant/update/ferry_7e57_0b6f42_sec/config",
    ))
    .unwrap();
    assert_eq!(
        sec["default_entity_id"],
        "update.ferry_kiosk_1_hall_security_updates"
    );
    let conn: Value = serde_json::from_str(find(
        &m,
        "homeassistant/binary_sensor/ferry_7e57_0b6f42_conn/config",
    ))
    .unwrap();
    assert_eq!(conn["enabled_by_default"], true);
    assert_eq!(conn["availability_topic"], "ferry/status");
    assert!(conn.get("availability").is_none());
    // Discovery off: none.
    let off = Publishing {
        discovery: false,
        ..Publishing::default()
    };
    assert!(discovery_messages(
        &off,
        &Snapshot {
            hosts: vec![host()]
        }
    )
    .is_empty());
}

#[test]
fn a_long_release_note_is_cut_to_what_home_assistant_shows() {
    let long = "x".repeat(400);
    let s = summary(&long);
    assert_eq!(s.chars().count(), RELEASE_SUMMARY_MAX);
    assert!(s.ends_with('…'));
    assert_eq!(summary("  short  "), "short");
}

#[test]
fn removed_topics_are_cleared_with_empty_retained_payloads() {
    let p = Publishing::default();
    let mut snapshot = Snapshot {
        hosts: vec![host()],
    };
    let before: BTreeSet<String> = state_messages(&p, &snapshot)
        .into_iter()
        .map(|m| m.topic)
        .collect();
    snapshot.hosts[0].items.retain(|i| i.name != "web");
    let now = state_messages(&p, &snapshot)
        .into_iter()
        .map(|m| m.topic)
        .collect();
    let gone = cleared(&before, &now);
    let topics: Vec<&str> = gone.iter().map(|m| m.topic.as_str()).collect();
    assert_eq!(
        topics,
        [
            "ferry/hosts/0b6f-42/items/web/attributes",
            "ferry/hosts/0b6f-42/items/web/json",
            "ferry/hosts/0b6f-42/items/web/latest_version",
            "ferry/hosts/0b6f-42/items/web/state",
        ]
    );
    assert!(gone.iter().all(|m| m.retain && m.payload.is_empty()));
}

#[test]
fn commands_are_read_and_garbage_is_refused_with_a_reason() {
    let p = Publishing::default();
    assert_eq!(
        parse_inbound(&p, "ferry/hosts/h1/items/web/set", b"install"),
        Ok(Inbound::InstallItem {
            host_id: "h1".into(),
            item: "web".into()
        })
    );
    assert_eq!(
        parse_inbound(&p, "ferry/hosts/h1/set", b" install\n"),
        Ok(Inbound::InstallAll {
            host_id: "h1".into()
        })
    );
    assert_eq!(
        parse_inbound(&p, "ferry/hosts/h1/security/set", b"install"),
        Ok(Inbound::InstallSecurity {
            host_id: "h1".into()
        })
    );
    assert_eq!(
        parse_inbound(&p, "homeassistant/status", b"online"),
        Ok(Inbound::HomeAssistantOnline)
    );
    assert!(parse_inbound(&p, "ferry/hosts/h1/set", b"reboot")
        .unwrap_err()
        .to_string()
        .contains("not a command"));
    assert!(parse_inbound(&p, "ferry/hosts/h1/set", &[0xff, 0xfe]).is_err());
    assert!(parse_inbound(&p, "other/hosts/h1/set", b"install").is_err());
    assert!(parse_inbound(&p, "ferry/hosts//set", b"install").is_err());
    assert_eq!(subscriptions(&p).len(), 4);
}

#[test]
fn a_full_publish_clears_the_identifiers_from_before_tenants_and_never_the_new_ones() {
    let p = Publishing::default();
    let s = Snapshot {
        hosts: vec![host()],
    };
    let old = legacy_cleared(&p, &s);
    let topics: Vec<&str> = old.iter().map(|m| m.topic.as_str()).collect();
    assert!(
        topics.contains(&"homeassistant/update/ferry_0b6f42_776562/config"),
        "{topics:?}"
    );
    assert!(topics.contains(&"homeassistant/update/ferry_0b6f42_pkgs/config"));
    assert!(topics.contains(&"homeassistant/update/ferry_0b6f42_sec/config"));
    assert!(topics.contains(&"homeassistant/binary_sensor/ferry_0b6f42_conn/config"));
    assert!(old.iter().all(|m| m.payload.is_empty() && m.retain));
    let new: Vec<String> = discovery_messages(&p, &s)
        .into_iter()
        .map(|m| m.topic)
        .collect();
    assert!(
        topics.iter().all(|t| !new.iter().any(|n| n == t)),
        "{topics:?} {new:?}"
    );
    let off = Publishing {
        discovery: false,
        ..Publishing::default()
    };
    assert!(legacy_cleared(&off, &s).is_empty());
}

#[test]
fn a_campaign_topic_says_observing_while_a_window_is_open_and_regressed_when_one_stopped_it() {
    assert_eq!(campaign_state("running", "", true), "observing");
    assert_eq!(campaign_state("running", "", false), "running");
    assert_eq!(
        campaign_state(
            "paused",
            "regressed in wave 1: 1 of 1 updated hosts failing",
            true
        ),
        "regressed"
    );
    assert_eq!(campaign_state("paused", "paused by alice", false), "paused");
    assert_eq!(campaign_state("completed", "succeeded", false), "completed");
    let p = Publishing::default();
    let m = campaign_messages(
        &p,
        &[crate::mqtt::model::CampaignState {
            id: "c1".into(),
            name: "web 1.1.0".into(),
            item: "web".into(),
            version: "1.1.0".into(),
            state: "observing".into(),
            reason: String::new(),
            observing: Some((1, "2026-01-02T03:34:05.000Z".into())),
        }],
    );
    assert_eq!(find(&m, "ferry/campaigns/c1/state"), "observing");
    let attributes: Value =
        serde_json::from_str(find(&m, "ferry/campaigns/c1/attributes")).unwrap();
    assert_eq!(attributes["observing"]["wave"], 1);
    assert_eq!(attributes["version"], "1.1.0");
    assert!(m.iter().all(|m| m.retain));
}
