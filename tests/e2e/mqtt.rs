//! The MQTT bridge against a real Mosquitto broker started on a free loopback port: the
//! retained state after enrolment and a check, Install pressed on a command topic followed
//! through a real agent, everything republished after a broker restart, discovery
//! republished on Home Assistant's birth message, and a removed item's topics cleared.

use std::fs;
use std::process::Command;
use std::time::{Duration, Instant};

use rumqttc::QoS;

use crate::util::broker::{Broker, Watcher};
use crate::util::World;

#[test]
fn the_bridge_publishes_the_fleet_takes_installs_and_survives_a_broker_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Broker::start(dir.path());
    let w = World::with_server_config(&format!(
        "[[mqtt]]\nname = \"test\"\nurl = \"mqtt://127.0.0.1:{}\"\n",
        broker.port
    ));
    w.release("1.0.0", &[]);
    w.ctl(&["items", "edit", "web", "--featured", "true"]).ok();
    w.agent("check").ok();
    let host = w.ctl_json(&["hosts", "list"])[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Identifiers name the tenant: `ferry_{tenant_hex}_{host_hex}_…`.
    let tenant = w.ctl_json(&["tenants", "list"])[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let old_hh = host.replace('-', "");
    let hh = format!("{tenant}_{old_hh}");
    let item = format!("ferry/hosts/{host}/items/web");
    let watcher = Watcher::start(broker.port, "test-watcher");

    let config = format!("homeassistant/update/ferry_{hh}_776562/config");
    enrolment_and_check_are_published(&watcher, &host, &item, &hh, &config);
    install_pressed_in_home_assistant(&w, &watcher, &item);

    // A release that rolls back on the host is still what is published, and Home Assistant
    // is told it failed there: in the entity's attributes and at the head of its summary.
    w.release("1.1.0", &["--health-check", "false", "--notes", "Faster."]);
    w.agent("check").ok();
    w.trigger(Some("1.1.0"));
    w.agent("once").code(1);
    let deadline = Instant::now() + Duration::from_secs(20);
    while watcher.json(&format!("{item}/attributes"))["last_failure"]["outcome"] != "rolled_back" {
        assert!(
            Instant::now() < deadline,
            "the rollback never reached the attributes"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let json = watcher.json(&format!("{item}/json"));
    let summary = json["release_summary"].as_str().unwrap_or_default();
    assert!(
        summary.starts_with("1.1.0 rolled back on this host") && summary.ends_with("Faster."),
        "{json}"
    );

    // The broker restarts empty: everything comes back.
    drop(watcher);
    broker.restart();
    let watcher = Watcher::start(broker.port, "test-watcher-2");
    watcher.wait_for(&format!("{item}/state"), "1.0.0");
    watcher.wait_for("ferry/status", "online");
    assert_eq!(
        watcher.json(&config)["unique_id"],
        format!("ferry_{hh}_776562")
    );

    // Home Assistant's birth message brings the discovery configs again, and clears a
    // config of the identifiers before tenants (as an older server left it), so Home
    // Assistant keeps no ghost entity.
    watcher
        .client
        .publish(config.clone(), QoS::AtLeastOnce, true, "")
        .unwrap();
    watcher.wait_for(&config, "");
    let ghost = format!("homeassistant/update/ferry_{old_hh}_776562/config");
    watcher
        .client
        .publish(ghost.clone(), QoS::AtLeastOnce, true, r#"{"name":"web"}"#)
        .unwrap();
    watcher.wait_for(&ghost, r#"{"name":"web"}"#);
    watcher
        .client
        .publish("homeassistant/status", QoS::AtLeastOnce, false, "online")
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while watcher.get(&config).unwrap_or_default().is_empty() {
        assert!(Instant::now() < deadline, "discovery was not republished");
        std::thread::sleep(Duration::from_millis(50));
    }
    watcher.wait_for(&ghost, "");

    // The item goes away (deactivated): its topics are cleared.
    w.ctl(&["items", "edit", "web", "--deactivate"]).ok();
    watcher.wait_for(&format!("{item}/state"), "");
    watcher.wait_for(&config, "");
    assert!(!w.server.log_text().contains("panicked"));
}

/// Enrolment and a check: identity, connectivity and the item's state, retained, and its
/// Home Assistant discovery config.
fn enrolment_and_check_are_published(
    watcher: &Watcher,
    host: &str,
    item: &str,
    hh: &str,
    config: &str,
) {
    watcher.wait_for("ferry/status", "online");
    watcher.wait_for(&format!("{item}/latest_version"), "1.0.0");
    // Nothing installed: an empty state. Retained and empty is a deletion in MQTT, which a
    // subscriber that came after it never receives, so it reads as absent or empty.
    let state = watcher.get(&format!("{item}/state"));
    assert!(matches!(state.as_deref(), None | Some("")), "{state:?}");
    assert_eq!(
        watcher
            .get(&format!("ferry/hosts/{host}/hostname"))
            .as_deref(),
        Some("device-1")
    );
    watcher.wait_for(&format!("ferry/hosts/{host}/connectivity/state"), "online");
    let json = watcher.json(&format!("{item}/json"));
    assert_eq!(json["latest_version"], "1.0.0");
    assert_eq!(json["in_progress"], false);
    let c = watcher.json(config);
    assert_eq!(c["state_topic"], format!("{item}/json"));
    assert_eq!(c["command_topic"], format!("{item}/set"));
    assert_eq!(c["default_entity_id"], "update.ferry_device_1_web");
    // Waited for, as every retained topic above: it may arrive after the item's.
    let conn = watcher.json(&format!(
        "homeassistant/binary_sensor/ferry_{hh}_conn/config"
    ));
    assert_eq!(
        conn["state_topic"],
        format!("ferry/hosts/{host}/connectivity/state"),
        "{conn}"
    );
}

/// Install pressed in Home Assistant: an update with actor mqtt, in progress at once, then
/// through a real agent to the new state; garbage on a command topic is ignored.
fn install_pressed_in_home_assistant(w: &World, watcher: &Watcher, item: &str) {
    watcher
        .client
        .publish(format!("{item}/set"), QoS::AtLeastOnce, false, "install")
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while w.history().is_empty() {
        assert!(Instant::now() < deadline, "the install was never queued");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(w.history()[0]["actor"], "mqtt:test");
    let deadline = Instant::now() + Duration::from_secs(20);
    while watcher.json(&format!("{item}/json"))["in_progress"] != true {
        assert!(Instant::now() < deadline, "in_progress never showed");
        std::thread::sleep(Duration::from_millis(50));
    }
    w.agent("once").ok();
    watcher.wait_for(&format!("{item}/state"), "1.0.0");
    let deadline = Instant::now() + Duration::from_secs(20);
    while watcher.json(&format!("{item}/json"))["in_progress"] != false {
        assert!(Instant::now() < deadline, "in_progress never cleared");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Garbage on a command topic is ignored; the bridge goes on.
    watcher
        .client
        .publish(format!("{item}/set"), QoS::AtLeastOnce, false, "reboot now")
        .unwrap();
}

#[test]
fn the_host_install_button_starts_a_batch_of_its_packages() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path());
    let w = World::with_server_config(&format!(
        "[[mqtt]]\nname = \"test\"\nurl = \"mqtt://127.0.0.1:{}\"\ntopic_prefix = \"ferry\"\n",
        broker.port
    ));
    w.release("1.0.0", &["--category", "security"]);
    w.agent("check").ok();
    let host = w.ctl_json(&["hosts", "list"])[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let watcher = Watcher::start(broker.port, "host-watcher");
    // `web` is not featured: it is one of the host's packages.
    watcher.wait_for(&format!("ferry/hosts/{host}/latest_version"), "1 available");
    watcher.wait_for(
        &format!("ferry/hosts/{host}/security/latest_version"),
        "1 available",
    );
    let tenant = w.ctl_json(&["tenants", "list"])[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let hh = format!("{tenant}_{}", host.replace('-', ""));
    let pkgs = watcher.json(&format!("homeassistant/update/ferry_{hh}_pkgs/config"));
    assert_eq!(pkgs["enabled_by_default"], false);
    watcher
        .client
        .publish(
            format!("ferry/hosts/{host}/security/set"),
            QoS::AtLeastOnce,
            false,
            "install",
        )
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while w
        .ctl_json(&["update-batches", "list"])
        .as_array()
        .unwrap()
        .is_empty()
    {
        assert!(Instant::now() < deadline, "no batch was started");
        std::thread::sleep(Duration::from_millis(50));
    }
    w.agent("once").ok();
    watcher.wait_for(&format!("ferry/hosts/{host}/latest_version"), "up-to-date");
    watcher.wait_for(&format!("ferry/hosts/{host}/security/state"), "up-to-date");
    assert_eq!(w.current().as_deref(), Some("releases/1.0.0"));
    // The batch and its install say who pressed the button.
    let batches = w.ctl_json(&["update-batches", "list"]);
    assert_eq!(batches[0]["actor"], "mqtt:test", "{batches}");
    let history = w.history();
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(history[0]["actor"], "mqtt:test", "{history:?}");
}

#[test]
fn over_tls_the_bridge_trusts_its_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    crate::util::certs::issue(d);
    let broker = Broker::start_with(
        d,
        &format!(
            "cafile {}\ncertfile {}\nkeyfile {}\n",
            d.join("ca.pem").display(),
            d.join("server.pem").display(),
            d.join("server.key").display()
        ),
    );
    // Another CA, which did not sign the broker's certificate.
    let other = d.join("other");
    fs::create_dir_all(&other).unwrap();
    crate::util::certs::issue(&other);
    let w = World::with_server_config(&format!(
        "[[mqtt]]\nname = \"tls\"\nurl = \"mqtts://127.0.0.1:{port}\"\nca_file = \"{}\"\n\n\
         [[mqtt]]\nname = \"wrong-ca\"\nurl = \"mqtts://127.0.0.1:{port}\"\nca_file = \"{}\"\n",
        d.join("ca.pem").display(),
        other.join("ca.pem").display(),
        port = broker.port,
    ));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let c = w.ctl_json(&["mqtt", "list"]);
        let by = |name: &str| {
            c.as_array()
                .unwrap()
                .iter()
                .find(|x| x["name"] == name)
                .cloned()
                .unwrap_or_default()
        };
        let (good, bad) = (by("tls"), by("wrong-ca"));
        // Connected comes a moment before the first publish is counted: wait for both.
        let published = good["published"].as_u64().unwrap_or(0) > 0;
        if good["connected"] == true && published && !bad["last_error"].is_null() {
            assert_eq!(bad["connected"], false, "{c}");
            assert!(
                bad["last_error"]
                    .as_str()
                    .unwrap()
                    .to_lowercase()
                    .contains("certificate"),
                "{c}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "{c}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Connections added, edited, tested and removed with ferryctl: stored with the password
/// sealed (never in an answer, the log or the database file), refused credentials shown as
/// the last error, kept across a server restart, and server.toml's left alone.
#[test]
fn connections_added_through_ferryctl_keep_their_password_secret() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let secret = "hunter2-the-broker-password-7f3a";
    let passwd = d.join("passwd");
    fs::write(&passwd, "").unwrap();
    let made = Command::new("mosquitto_passwd")
        .args(["-b", passwd.to_str().unwrap(), "ferry", secret])
        .status()
        .expect("mosquitto_passwd (from the mosquitto package)");
    assert!(made.success());
    let broker = Broker::start_with(d, &format!("password_file {}\n", passwd.display()));
    let mut w =
        World::with_server_config("[[mqtt]]\nname = \"from-file\"\nurl = \"mqtt://127.0.0.1:1\"\n");
    let url = format!("mqtt://127.0.0.1:{}", broker.port);
    let right = d.join("right");
    fs::write(&right, format!("{secret}\n")).unwrap();
    let wrong = d.join("wrong");
    fs::write(&wrong, "not-it\n").unwrap();

    password_refused_then_accepted(&w, &url, &wrong, &right);
    taken_names_refused_and_kept_across_a_restart(&mut w, &url);
    the_password_is_nowhere_to_be_read(&w, secret);
    w.ctl(&["mqtt", "remove", "home"]).ok();
    let left = w.ctl_json(&["mqtt", "list"]);
    assert_eq!(left.as_array().unwrap().len(), 1, "{left}");
    assert_eq!(left[0]["name"], "from-file");
    assert_eq!(left[0]["source"], "server.toml");
}

/// A wrong password: stored, and `test` fails naming the refusal; the right one through
/// edit: connected and publishing.
fn password_refused_then_accepted(
    w: &World,
    url: &str,
    wrong: &std::path::Path,
    right: &std::path::Path,
) {
    // A wrong password: stored, and `test` fails naming the refusal.
    w.ctl(&[
        "mqtt",
        "add",
        "home",
        "--url",
        url,
        "--username",
        "ferry",
        "--password-file",
        wrong.to_str().unwrap(),
    ])
    .ok();
    let refused = w.ctl(&["mqtt", "test", "home"]).code(1);
    assert!(
        refused.stderr.contains("home is not connected"),
        "{}",
        refused.stderr
    );

    // The right one through edit: connected and publishing.
    w.ctl(&[
        "mqtt",
        "edit",
        "home",
        "--password-file",
        right.to_str().unwrap(),
    ])
    .ok();
    let ok = w.ctl_json(&["mqtt", "test", "home"]);
    assert_eq!(ok["connected"], true, "{ok}");
    assert_eq!(ok["source"], "api", "{ok}");
    let listed = w.ctl_json(&["mqtt", "list"]);
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["from-file", "home"], "{listed}");
}

fn taken_names_refused_and_kept_across_a_restart(w: &mut World, url: &str) {
    // A name taken, and server.toml's connection, are refused with what to do.
    let taken = w.ctl(&["mqtt", "add", "from-file", "--url", url]).code(1);
    assert!(taken.stderr.contains("edit it instead"), "{}", taken.stderr);
    let file_owned = w.ctl(&["mqtt", "remove", "from-file"]).code(1);
    assert!(
        file_owned.stderr.contains("server.toml"),
        "{}",
        file_owned.stderr
    );

    // Kept across a restart (the secrets key is in the data directory).
    w.server.kill();
    w.server.restart_same_port();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let c = w.ctl_json(&["mqtt", "list"]);
        let home = c
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == "home")
            .cloned();
        if home.as_ref().is_some_and(|h| h["connected"] == true) {
            break;
        }
        assert!(Instant::now() < deadline, "home did not come back: {c}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn the_password_is_nowhere_to_be_read(w: &World, secret: &str) {
    // The password is nowhere to be read.
    let answers = format!(
        "{}{}",
        w.ctl(&["mqtt", "list", "--json"]).stdout,
        w.ctl(&["mqtt", "list"]).stdout
    );
    assert!(!answers.contains(secret));
    assert!(!w.server.log_text().contains(secret));
    for file in fs::read_dir(w.path("server-data")).unwrap() {
        let path = file.unwrap().path();
        if path.is_file() {
            let bytes = fs::read(&path).unwrap();
            assert!(
                !bytes.windows(secret.len()).any(|x| x == secret.as_bytes()),
                "{} holds the password",
                path.display()
            );
        }
    }
}

/// Connectivity is live: online while the agent holds its long-poll, offline as soon as the
/// agent is gone (killed: its connection closes), online again when it is back; the API's
/// host list says the same.
#[test]
fn connectivity_follows_the_agents_long_poll() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path());
    let w = World::with_server_config(&format!(
        "[[mqtt]]\nname = \"test\"\nurl = \"mqtt://127.0.0.1:{}\"\n",
        broker.port
    ));
    w.release("1.0.0", &[]);
    w.agent("check").ok();
    let host = w.ctl_json(&["hosts", "list"])[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let watcher = Watcher::start(broker.port, "presence-watcher");
    let topic = format!("ferry/hosts/{host}/connectivity/state");
    let long_polling = |want: bool| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let h = w.ctl_json(&["hosts", "list"])[0].clone();
            if h["long_polling"] == want {
                return h;
            }
            assert!(
                Instant::now() < deadline,
                "long_polling never became {want}: {h}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    for _ in 0..2 {
        let mut agent = w.device().spawn("full");
        let h = long_polling(true);
        assert_eq!(h["online"], true, "{h}");
        watcher.wait_for(&topic, "online");
        // kill -9: no goodbye, only the closed connection. The server's offline_after_secs
        // (two hours by default) has nothing to do with it.
        agent.kill().unwrap();
        agent.wait().unwrap();
        watcher.wait_for(&topic, "offline");
        let h = long_polling(false);
        assert_eq!(h["online"], false, "{h}");
    }
}

/// ferryctl as another user (`FERRY_TOKEN`).
fn ctl_as(w: &World, token: &str, args: &[&str]) -> crate::util::Run {
    let mut cmd = w.ctl_command(args);
    cmd.env("FERRY_TOKEN", token);
    crate::util::run(cmd)
}

#[test]
fn a_tenants_connection_publishes_its_own_hosts_only() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path());
    let w = World::new();
    w.release("1.0.0", &[]);
    w.agent("check").ok();
    let (ada, _acme) = w.second_tenant("acme", "ada", "acme-1");
    let id_of = |list: serde_json::Value| list[0]["id"].as_str().unwrap().to_string();
    let home = id_of(w.ctl_json(&["hosts", "list"]));
    let mut cmd = w.ctl_command(&["hosts", "list", "--json"]);
    cmd.env("FERRY_TOKEN", &ada);
    let theirs = id_of(serde_json::from_str(&crate::util::run(cmd).ok().stdout).unwrap());

    // Ada's connection: acme's hosts, nothing of the default tenant's.
    let url = format!("mqtt://127.0.0.1:{}", broker.port);
    let added = ctl_as(&w, &ada, &["mqtt", "add", "acme-broker", "--url", &url]);
    assert_eq!(added.code, Some(0), "{added}");
    let watcher = Watcher::start(broker.port, "tenant-watcher");
    watcher.wait_for(&format!("ferry/hosts/{theirs}/hostname"), "acme-1");
    watcher.wait_for("ferry/status", "online");
    assert_eq!(watcher.get(&format!("ferry/hosts/{home}/hostname")), None);
    // The default tenant lists none of acme's connections; acme none of the install's.
    let listed = w.ctl_json(&["mqtt", "list"]);
    assert!(listed.as_array().unwrap().is_empty(), "{listed}");
    let refused = w.ctl(&["mqtt", "remove", "acme-broker"]);
    assert_ne!(refused.code, Some(0), "{refused}");
    // A command for another tenant's host through acme's broker does nothing.
    watcher
        .client
        .publish(
            format!("ferry/hosts/{home}/items/web/set"),
            QoS::AtLeastOnce,
            false,
            "install",
        )
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        w.ctl_json(&["history", "list"])
            .as_array()
            .unwrap()
            .is_empty(),
        "a tenant's broker installed on another tenant's host"
    );
    assert!(w
        .server
        .log_text()
        .contains("MQTT command for a host of another tenant"));
}
