//! The `apt` source on a real Debian system: a bookworm root (chroot, its own overlay) whose
//! APT points at a real repository on loopback with a `bookworm` and a `bookworm-security`
//! suite, signed with a throw-away key. The agent runs inside it.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::util::broker::{Broker, Watcher};
use crate::util::debian::{build_deb, AptRepo, Debian};
use crate::util::{bin, World};

/// A Debian system with foo 1.0 and bar 2.0 installed, whose repository offers foo 1.1 from
/// `bookworm-security` and bar 2.1 from `bookworm`; and a device inside it.
struct Host {
    debian: Debian,
    repo: AptRepo,
    device: crate::util::Device,
    debs: std::path::PathBuf,
}

/// `top` goes among the config's top-level keys, `source` into the `[[sources]]` table.
fn host(w: &World, top: &str, source: &str) -> Host {
    let debs = w.path("debs");
    std::fs::create_dir_all(&debs).unwrap();
    let foo10 = build_deb(&debs, "foo", "1.0");
    let foo11 = build_deb(&debs, "foo", "1.1");
    let bar20 = build_deb(&debs, "bar", "2.0");
    let bar21 = build_deb(&debs, "bar", "2.1");
    let repo = AptRepo::new(
        w.dir.path(),
        &[
            ("bookworm", &[&foo10, &bar20, &bar21]),
            ("bookworm-security", &[&foo11]),
        ],
    );
    let agent_dir = bin("ferry-agent");
    let debian = Debian::new(
        w.dir.path(),
        &[w.dir.path(), agent_dir.parent().unwrap_or(Path::new("/"))],
    );
    repo.configure(&debian, &["bookworm", "bookworm-security"]);
    debian.sh(&format!(
        "dpkg -i {} {} >/dev/null",
        foo10.display(),
        bar20.display()
    ));
    let device = w.add_device(
        "debian",
        &format!("{top}\n[[sources]]\nkind = \"apt\"\n{source}"),
    );
    Host {
        debian,
        repo,
        device,
        debs,
    }
}

impl Host {
    fn agent(&self, mode: &str) -> crate::util::Run {
        crate::util::run(self.debian.command(&self.device.mode(mode)))
    }
}

/// The host's history entry of its APT upgrade.
fn apt_entry(w: &World) -> serde_json::Value {
    let history = w.ctl_json(&["history", "list", "--host", "debian"]);
    history
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["item"] == "apt packages")
        .unwrap_or_else(|| panic!("no apt entry: {history}"))
        .clone()
}

/// A world whose server bridges to a real Mosquitto, and a watcher of its topics.
fn bridged(watcher: &str) -> ((tempfile::TempDir, Broker), World, Watcher) {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path());
    let w = World::with_server_config(&format!(
        "[[mqtt]]\nname = \"test\"\nurl = \"mqtt://127.0.0.1:{}\"\ntopic_prefix = \"ferry\"\n",
        broker.port
    ));
    let watcher = Watcher::start(broker.port, watcher);
    ((dir, broker), w, watcher)
}

/// Waits (bounded) until the host's security summary on the broker counts `n` pending.
fn security_pending(watcher: &Watcher, host: &str, n: u64) {
    let topic = format!("ferry/hosts/{host}/security/attributes");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now: Option<serde_json::Value> = watcher
            .get(&topic)
            .and_then(|p| serde_json::from_str(&p).ok());
        if now.as_ref().is_some_and(|a| a["pending_count"] == n) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{topic}: pending_count never became {n}: {now:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn apt_upgrades_are_reported_with_the_category_of_their_suite() {
    let (_broker, w, watcher) = bridged("apt-watcher");
    let h = host(&w, "", "");
    // A check by hand refreshes APT's lists (apt-get update inside the system) first.
    let run = h.agent("check");
    assert_eq!(run.code, Some(0), "{run}");
    assert!(run.stderr.contains("apt-get update"), "{run}");
    assert!(run.stderr.contains("sent the installed software"), "{run}");

    let hits = w.ctl_json(&["packages", "search", "foo"]);
    assert_eq!(hits[0]["hostname"], "debian", "{hits}");
    assert_eq!(hits[0]["version"], "1.0", "{hits}");
    assert_eq!(hits[0]["latest"], "1.1", "{hits}");
    assert_eq!(hits[0]["category"], "security", "{hits}");
    let bar = w.ctl_json(&["packages", "search", "bar"]);
    assert_eq!(bar[0]["latest"], "2.1", "{bar}");
    assert_eq!(bar[0]["category"], "unknown", "{bar}");

    // "Which hosts have security updates pending": foo only.
    let security = w.ctl_json(&["packages", "search", "--category", "security"]);
    let names: Vec<&str> = security
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["foo"], "{security}");
    // The same question per host, in numbers.
    let hosts = w.ctl_json(&["packages", "hosts", "--category", "security"]);
    assert_eq!(hosts[0]["hostname"], "debian", "{hosts}");
    assert_eq!(hosts[0]["security"], 1, "{hosts}");
    assert_eq!(hosts[0]["pending"], 2, "{hosts}");
    let text = w
        .ctl(&["packages", "search", "--category", "security"])
        .ok();
    assert!(text.stdout.contains("1.1"), "{text}");
    assert!(text.stdout.contains("security"), "{text}");
    // Home Assistant's "security updates" entity of the host counts it.
    let host_id = hits[0]["host_id"].as_str().unwrap().to_string();
    security_pending(&watcher, &host_id, 1);
    watcher.wait_for(
        &format!("ferry/hosts/{host_id}/security/latest_version"),
        "1 available",
    );
    // The host page lists its upgrades, security first; the Packages page answers "which
    // hosts have security updates pending".
    let token = w.operator_token();
    crate::util::browser::block_on(async {
        let b = crate::util::browser::Browser::start(&w.server.url()).await;
        b.sign_in(&token).await;
        b.goto(&format!("/hosts/{host_id}")).await;
        b.wait_text("#software-summary", "1 security").await;
        let rows = b.text("#upgrades").await;
        let foo_at = rows.find("foo").expect("foo listed");
        let bar_at = rows.find("bar").expect("bar listed");
        assert!(foo_at < bar_at, "security first: {rows}");
        b.goto("/packages?upgrade=security").await;
        b.wait_text("#pending-hosts", "debian").await;
        b.goto("/packages?name=foo&upgrade=security").await;
        b.wait_text("#packages", "debian").await;
        assert!(b.text("#packages").await.contains("1.1"));
        b.close().await;
    });

    // The host's security upgrades as one group: foo only, in one apt-get run at the
    // device's next run.
    let batch = w
        .ctl(&["update", "batch-host", "debian", "--category", "security"])
        .ok();
    assert!(batch.stdout.contains("apt packages"), "{batch}");
    let run = h.agent("once");
    assert_eq!(run.code, Some(0), "{run}");
    assert_eq!(h.debian.read("/usr/share/foo/version"), "1.1");
    assert_eq!(
        h.debian.read("/usr/share/bar/version"),
        "2.0",
        "bar is not security"
    );
    let entry = apt_entry(&w);
    assert_eq!(entry["status"], "installed", "{entry}");
    assert_eq!(entry["version"], "1 package", "{entry}");
    assert_eq!(entry["message"], "upgraded foo 1.0 → 1.1", "{entry}");
    let shown = w.ctl_json(&["history", "show", entry["id"].as_str().unwrap()]);
    assert_eq!(
        shown["packages"],
        serde_json::json!([{"name": "foo", "from": "1.0", "to": "1.1"}]),
        "{shown}"
    );
    let output = shown["output"].as_str().unwrap_or("");
    assert!(
        output.contains("Setting up foo (1.1)"),
        "apt's output: {output}"
    );
    assert!(
        output.contains("apt-get install --only-upgrade"),
        "{output}"
    );
    // Nothing pending any more: the second round of the run sent the new list.
    assert_eq!(
        w.ctl_json(&["packages", "search", "--category", "security"]),
        serde_json::json!([])
    );
    let hits = w.ctl_json(&["packages", "search", "foo"]);
    assert_eq!(hits[0]["version"], "1.1", "{hits}");
    assert_eq!(hits[0].get("latest"), None, "{hits}");
    security_pending(&watcher, &host_id, 0);
    watcher.wait_for(
        &format!("ferry/hosts/{host_id}/security/state"),
        "up-to-date",
    );
}

/// The agent's own refreshes follow `refresh_interval_secs`: a timed run within the interval
/// reads the lists as they are.
#[test]
fn timed_runs_refresh_apt_lists_only_once_per_interval() {
    let w = World::new();
    let h = host(&w, "", "refresh_interval_secs = 3600\n");
    let first = h.agent("once");
    assert!(first.stderr.contains("apt-get update"), "{first}");
    let second = h.agent("once");
    assert!(!second.stderr.contains("apt-get update"), "{second}");
    // Refreshed once: the upgrades are known.
    let bar = w.ctl_json(&["packages", "search", "bar"]);
    assert_eq!(bar[0]["latest"], "2.1", "{bar}");
}

/// Waits (bounded) until the server says `foo`'s offered upgrade is `latest`.
fn foo_latest(w: &World, latest: &str, agent_log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let hits = w.ctl_json(&["packages", "search", "foo"]);
        if hits[0]["latest"] == latest {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "foo's upgrade never became {latest}: {hits}\nagent log:\n{}",
            std::fs::read_to_string(agent_log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `ferryctl hosts check` reaches a long-polling device within a second, and it refreshes
/// APT's lists first although its own interval is far off: a fix published a minute ago is
/// on the server at once. `check item` asks about one item and refuses one the host lacks.
#[test]
fn a_check_asked_from_the_server_refreshes_the_lists_of_a_long_polling_device() {
    let w = World::new();
    let h = host(&w, "long_poll_secs = 30\npoll_interval_secs = 3600\n", "");
    let log = w.path("debian-full.log");
    let mut cmd = h.debian.command(&h.device.mode("full"));
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    let mut agent = cmd.spawn().unwrap();
    // The first cycle refreshes (never refreshed before).
    foo_latest(&w, "1.1", &log);

    // A newer security fix lands; the device's own refresh is a day away.
    let foo12 = build_deb(&h.debs, "foo", "1.2");
    h.repo.publish("bookworm-security", &[&foo12]);
    let asked = w.ctl(&["hosts", "check", "debian"]).ok();
    assert!(asked.stdout.contains("asked 1 host"), "{asked}");
    foo_latest(&w, "1.2", &log);
    assert!(
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .matches("apt-get update")
            .count()
            >= 2
    );

    w.ctl(&["check", "item", "foo", "--host", "debian"]).ok();
    let missing = w.ctl(&["check", "item", "no-such-thing", "--host", "debian"]);
    assert_ne!(missing.code, Some(0), "{missing}");
    assert!(
        missing.stderr.contains("no item or software named"),
        "{missing}"
    );
    let _ = agent.kill();
    let _ = agent.wait();
}

/// Home Assistant's Install on the host's security entity upgrades the security packages
/// only. While another apt-get holds APT's lock, the upgrade waits (the operator reads why)
/// with nothing recorded, and goes at the next run once the lock is free.
#[test]
fn a_held_apt_lock_keeps_the_security_upgrade_pending_until_it_is_free() {
    let (_broker, w, watcher) = bridged("apt-lock-watcher");
    let h = host(&w, "", "");
    assert_eq!(h.agent("check").code, Some(0));
    let host_id = w.ctl_json(&["packages", "search", "foo"])[0]["host_id"]
        .as_str()
        .unwrap()
        .to_string();
    security_pending(&watcher, &host_id, 1);
    watcher
        .client
        .publish(
            format!("ferry/hosts/{host_id}/security/set"),
            rumqttc::QoS::AtLeastOnce,
            false,
            "install",
        )
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let entry = loop {
        let history = w.ctl_json(&["history", "list", "--host", "debian"]);
        if let Some(e) = history
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["item"] == "apt packages")
        {
            break e.clone();
        }
        assert!(Instant::now() < deadline, "no upgrade queued: {history}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(entry["actor"], "mqtt:test", "{entry}");
    let id = entry["id"].as_str().unwrap().to_string();

    // Another apt-get holds the lock (its pre-invoke hook sleeps) while the agent runs.
    let agent = h.device.mode("once");
    let mut script = Command::new("/bin/sh");
    script.arg("-c").arg(
        "apt-get install -y -qq --reinstall bar=2.0 -o 'DPkg::Pre-Invoke::=touch /tmp/held; sleep 20' >/dev/null 2>&1 &\n\
         for _ in $(seq 200); do [ -e /tmp/held ] && break; sleep 0.1; done\n\
         \"$@\"; code=$?; kill %1 2>/dev/null; exit $code",
    );
    script
        .arg("sh")
        .arg(Path::new(agent.get_program()).canonicalize().unwrap())
        .args(agent.get_args());
    for (k, v) in agent.get_envs() {
        script.env(k, v.unwrap_or_default());
    }
    let held = crate::util::run(h.debian.command(&script));
    assert!(held.stderr.contains("is held by process"), "{held}");
    assert_eq!(h.debian.read("/usr/share/foo/version"), "1.0");
    let waiting = w.ctl_json(&["history", "show", &id]);
    assert_eq!(waiting["status"], "pending", "{waiting}");
    let message = waiting["message"].as_str().unwrap_or("");
    assert!(
        message.contains("APT lock") && message.contains("tried again"),
        "the operator reads why: {waiting}"
    );
    assert_eq!(waiting["output"], "", "nothing half-recorded: {waiting}");

    // The lock is free: the next run upgrades foo, and only foo.
    let run = h.agent("once");
    assert_eq!(run.code, Some(0), "{run}");
    assert_eq!(h.debian.read("/usr/share/foo/version"), "1.1");
    assert_eq!(h.debian.read("/usr/share/bar/version"), "2.0");
    let done = w.ctl_json(&["history", "show", &id]);
    assert_eq!(done["status"], "installed", "{done}");
    security_pending(&watcher, &host_id, 0);
}

/// With `--interactive`, dpkg's question about a configuration file the device edited
/// reaches the operator's terminal through ferryctl, and their answer decides; without it,
/// the device's edit is kept and nothing is asked.
#[test]
fn dpkgs_conffile_question_reaches_the_operators_terminal() {
    let w = World::new();
    let h = host(&w, "long_poll_secs = 30\n", "");
    assert_eq!(h.agent("check").code, Some(0));
    h.debian.write("/etc/foo.conf", "edited on the device\n");
    let log = w.path("debian-full.log");
    let mut cmd = h.debian.command(&h.device.mode("full"));
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    let mut agent = cmd.spawn().unwrap();
    let run = Command::new("python3")
        .arg("-c")
        .arg(crate::interactive::DRIVER)
        .arg(bin("ferryctl"))
        .args([
            "update",
            "batch-host",
            "debian",
            "--category",
            "security",
            "--interactive",
        ])
        .env("FERRY_SERVER", w.server.url())
        .env("FERRY_TOKEN", w.operator_token())
        .env("PROMPT", "(Y/I/N/O/D/Z)")
        .env("REPLY", "Y\r")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("python3");
    let _ = agent.kill();
    let _ = agent.wait();
    let text = String::from_utf8_lossy(&run.stdout);
    let result: serde_json::Value = serde_json::from_str(text.trim()).unwrap_or_else(|e| {
        panic!(
            "driver said {text:?} ({e}); agent log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        )
    });
    let shown = result["output"].as_str().unwrap_or("");
    assert_eq!(result["answered"], true, "dpkg never asked: {shown}");
    assert!(shown.contains("/etc/foo.conf"), "{shown}");
    assert_eq!(result["code"], 0, "{shown}");
    // "Y": the package's version of the file replaced the device's edit.
    assert!(
        h.debian.read("/etc/foo.conf").contains("setting = 1.1"),
        "{}",
        h.debian.read("/etc/foo.conf")
    );
    assert_eq!(h.debian.read("/usr/share/foo/version"), "1.1");
    let entry = apt_entry(&w);
    let shown = w.ctl_json(&["history", "show", entry["id"].as_str().unwrap()]);
    assert_eq!(shown["status"], "installed", "{shown}");
    assert!(
        shown["typed"].as_str().unwrap_or("").contains("Y"),
        "{shown}"
    );

    // Without --interactive: bar's conffile, edited on the device, is kept and nothing asks.
    h.debian
        .write("/etc/bar.conf", "bar edited on the device\n");
    w.ctl(&["update", "batch-host", "debian"]).ok();
    let run = h.agent("once");
    assert_eq!(run.code, Some(0), "{run}");
    assert_eq!(h.debian.read("/usr/share/bar/version"), "2.1");
    assert_eq!(h.debian.read("/etc/bar.conf"), "bar edited on the device\n");
}
