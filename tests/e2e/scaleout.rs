//! Several ferry-server instances on one PostgreSQL database, sharing nothing else but their
//! data directory (the artifacts): a trigger on one reaches a device long-polling on another,
//! with the install's live output followed through the first; exactly one instance serves an
//! MQTT connection and another takes over when it dies; an instance killed under a fleet's
//! installs loses no report; campaign decisions raced on two instances stay right.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::util::balancer::Balancer;
use crate::util::broker::{Broker, Watcher};
use crate::util::{eventually, http, new_postgres_database, Server, World};

/// A world on a fresh PostgreSQL database, and `more` instances beside its server on the same
/// database and data directory, each with a log of its own.
fn cluster(extra: &str, server_toml: Option<&str>, more: usize) -> (World, Vec<Server>) {
    let database = new_postgres_database();
    let w = World::with_database(extra, server_toml, Some(database.clone()));
    let config = server_toml.map(|_| w.path("server.toml"));
    let others = (0..more)
        .map(|i| {
            Server::start_instance(
                &w.server.data_dir,
                config.clone(),
                Some(database.clone()),
                &w.path(&format!("instance-{i}.log")),
            )
        })
        .collect();
    (w, others)
}

/// Points an agent config at another server.
fn point_at(w: &World, cfg: &std::path::Path, url: &str) {
    let text = std::fs::read_to_string(cfg)
        .unwrap()
        .replace(&w.server.url(), url);
    std::fs::write(cfg, text).unwrap();
}

/// `GET /api/v1/mqtt` of one instance.
fn mqtt_status(w: &World, server: &Server) -> serde_json::Value {
    let token = std::fs::read_to_string(w.server.data_dir.join("operator.token")).unwrap();
    http()
        .get(format!("{}/api/v1/mqtt", server.url()))
        .bearer_auth(token.trim())
        .send()
        .and_then(|r| r.json())
        .unwrap_or(serde_json::Value::Null)
}

#[test]
fn a_trigger_on_one_instance_reaches_a_device_long_polling_on_another_with_its_output() {
    let (mut w, others) = cluster("", None, 1);
    let b = &others[0];
    // An hour between polls and 30 s long-polls: only a wake-up crossing from the instance
    // that took the trigger to the one holding the check-in brings the job in time.
    w.write_agent_config("long_poll_secs = 30");
    let cfg = std::fs::read_to_string(&w.agent_cfg)
        .unwrap()
        .replace("poll_interval_secs = 1", "poll_interval_secs = 3600");
    std::fs::write(&w.agent_cfg, cfg).unwrap();
    point_at(&w, &w.agent_cfg, &b.url());
    let src = w.payload("1.0.0", None);
    let out = w.build(
        "1.0.0",
        &src,
        &[
            "--post-install",
            "for i in 1 2 3; do echo step $i; sleep 0.2; done",
        ],
    );
    w.publish(&out);
    let mut agent: Child = w.device().spawn("full");
    eventually(
        "enrolment through the other instance",
        Duration::from_secs(20),
        || {
            w.ctl_json(&["hosts", "list"])
                .as_array()
                .is_some_and(|a| !a.is_empty())
        },
    );
    std::thread::sleep(Duration::from_millis(500));
    // Trigger and follow on the first instance; the device long-polls the second.
    let follower = w
        .ctl_command(&[
            "update", "trigger", "--host", "device-1", "--item", "web", "--follow",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Bounded below the long-poll's 30 s: only a wake-up that crossed gets here in time.
    let mut follower = follower;
    let deadline = Instant::now() + Duration::from_secs(25);
    while follower.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = follower.kill();
            let _ = agent.kill();
            panic!("the trigger on one instance did not reach the device on the other in time");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let done = follower.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&done.stdout);
    assert!(
        done.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&done.stderr)
    );
    for line in ["step 1", "step 2", "step 3"] {
        assert!(text.contains(line), "{line:?} missing from:\n{text}");
    }
    let _ = agent.kill();
    let _ = agent.wait();
    assert_eq!(w.current().as_deref(), Some("releases/1.0.0"));
    assert_eq!(w.history()[0]["status"], "installed");
}

#[test]
fn one_instance_serves_an_mqtt_connection_and_another_takes_over_when_it_dies() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path());
    let toml = format!(
        "[[mqtt]]\nname = \"test\"\nurl = \"mqtt://127.0.0.1:{}\"\n",
        broker.port
    );
    let (mut w, mut others) = cluster("", Some(&toml), 2);
    w.release("1.0.0", &[]);
    w.agent("check").ok();
    let host = w.ctl_json(&["hosts", "list"])[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let watcher = Watcher::start(broker.port, "scaleout-watcher");
    watcher.wait_for("ferry/status", "online");
    let hostname = format!("ferry/hosts/{host}/hostname");
    watcher.wait_for(&hostname, "device-1");

    // Exactly one instance is connected; the others stand by.
    let connected = |w: &World, servers: &[&Server]| -> Vec<usize> {
        servers
            .iter()
            .enumerate()
            .filter(|(_, s)| mqtt_status(w, s)[0]["connected"] == true)
            .map(|(i, _)| i)
            .collect()
    };
    let mut owner = Vec::new();
    eventually(
        "one instance serving the connection",
        Duration::from_secs(20),
        || {
            owner = connected(&w, &[&w.server, &others[0], &others[1]]);
            owner.len() == 1
        },
    );
    let owner = owner[0];
    let standing_by = [&w.server, &others[0], &others[1]]
        .iter()
        .enumerate()
        .filter(|(i, s)| *i != owner && mqtt_status(&w, s)[0]["standby"] == true)
        .count();
    assert_eq!(standing_by, 2, "the other two stand by");

    // A retained topic goes missing from the broker; then the owner dies without a word.
    watcher
        .client
        .publish(hostname.clone(), rumqttc::QoS::AtLeastOnce, true, "")
        .unwrap();
    watcher.wait_for(&hostname, "");
    match owner {
        0 => w.server.kill(),
        i => others[i - 1].kill(),
    }
    // Another instance takes over and publishes the whole state again.
    watcher.wait_for(&hostname, "device-1");
    watcher.wait_for("ferry/status", "online");
    let alive: Vec<&Server> = [&w.server, &others[0], &others[1]]
        .into_iter()
        .enumerate()
        .filter(|(i, _)| *i != owner)
        .map(|(_, s)| s)
        .collect();
    eventually("the new owner's status", Duration::from_secs(20), || {
        connected(&w, &alive).len() == 1
    });
}

#[test]
fn an_instance_killed_while_a_fleet_installs_loses_no_report() {
    let (w, mut others) = cluster("", None, 2);
    let balancer = Balancer::start(vec![
        w.server.addr.clone(),
        others[0].addr.clone(),
        others[1].addr.clone(),
    ]);
    w.release("1.0.0", &[]);
    let devices: Vec<_> = (0..9)
        .map(|i| {
            let d = w.add_device(&format!("fleet-{i}"), "");
            point_at(&w, &d.cfg, &balancer.url());
            d
        })
        .collect();
    crate::load::trigger_each(&w, &devices, "1.0.0");
    // The whole fleet installs through the balancer; one instance dies in the middle.
    let running: Vec<_> = devices.iter().map(|d| d.spawn("once")).collect();
    std::thread::sleep(Duration::from_millis(150));
    others[0].kill();
    for mut child in running {
        let _ = child.wait();
    }
    // Each device delivers what it queued at its next run, to an instance still up.
    for d in &devices {
        d.run("once").ok();
        assert_eq!(d.current().as_deref(), Some("releases/1.0.0"), "{}", d.name);
    }
    crate::load::assert_each_installed_once(&w, &devices);
}

/// A simulated device: its credential, and the jobs it was ever handed.
struct SimDevice {
    name: String,
    token: String,
    jobs: std::collections::BTreeSet<String>,
    installed: bool,
}

fn facts(name: &str, installed: Option<&str>) -> serde_json::Value {
    serde_json::json!({
        "hostname": name, "os": "linux", "os_version": "1", "arch": "x86_64",
        "agent_version": "0", "device_class": null,
        "installed": [{"item": "web", "version": installed}]
    })
}

#[test]
fn campaign_decisions_raced_on_two_instances_dispatch_each_member_once() {
    let (w, others) = cluster("", None, 1);
    let urls = [w.server.url(), others[0].url()];
    w.release("1.0.0", &[]);
    let mut fleet = enrol_fleet(&w, &urls, 24);
    // Waves of 4, then 8, then the rest: each wave opens when the one before succeeded, and
    // the reports that complete a wave arrive on both instances at once.
    let c = w.campaign("1.0.0", &["--all", "--waves", "4,8"]);
    let id = c["id"].as_str().unwrap().to_string();

    for round in 0..40 {
        // Every device checks in at once, half on each instance; then every device with a job
        // reports it installed at once, on the other instance.
        let answers = check_in_all(&fleet, &urls, round);
        let mut reports = Vec::new();
        for (d, answer) in fleet.iter_mut().zip(&answers) {
            for job in answer["jobs"].as_array().unwrap() {
                let job = job["job_id"].as_str().unwrap().to_string();
                d.jobs.insert(job.clone());
                if !d.installed {
                    reports.push((d.token.clone(), job));
                }
            }
        }
        report_all(&reports, &urls, round);
        for d in fleet.iter_mut() {
            d.installed |= !d.jobs.is_empty();
        }
        if w.ctl_json(&["campaigns", "show", &id])["status"] == "completed" {
            break;
        }
        assert!(round < 39, "the campaign never completed");
    }
    // Every member was dispatched exactly once, whatever instance decided it.
    for d in &fleet {
        assert_eq!(d.jobs.len(), 1, "{} got jobs {:?}", d.name, d.jobs);
    }
    let history = w.history();
    assert_eq!(history.len(), fleet.len(), "{history:#?}");
    let c = w.ctl_json(&["campaigns", "show", &id]);
    assert_eq!(c["status"], "completed", "{c}");
    assert_eq!(c["counts"]["installed"], fleet.len(), "{c}");
    assert!(
        c["status_reason"].as_str().unwrap().contains("24 of 24"),
        "{c}"
    );
}

/// Enrols `n` simulated devices, alternately through each instance.
fn enrol_fleet(w: &World, urls: &[String], n: usize) -> Vec<SimDevice> {
    let enrol = std::fs::read_to_string(w.server.data_dir.join("enrol.token")).unwrap();
    (0..n)
        .map(|i| {
            let name = format!("race-{i:02}");
            let body: serde_json::Value = http()
                .post(format!("{}/api/v1/enrol", urls[i % 2]))
                .json(
                    &serde_json::json!({"enrol_token": enrol.trim(), "facts": facts(&name, None)}),
                )
                .send()
                .and_then(|r| r.error_for_status())
                .and_then(|r| r.json())
                .unwrap();
            SimDevice {
                name,
                token: body["device_token"].as_str().unwrap().to_string(),
                jobs: Default::default(),
                installed: false,
            }
        })
        .collect()
}

/// Every device checks in at once, alternately on each instance (shifted each round); the
/// answers in fleet order.
fn check_in_all(fleet: &[SimDevice], urls: &[String], round: usize) -> Vec<serde_json::Value> {
    let start = std::sync::Arc::new(std::sync::Barrier::new(fleet.len()));
    std::thread::scope(|s| {
        let handles: Vec<_> = fleet
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let start = std::sync::Arc::clone(&start);
                let url = &urls[(i + round) % 2];
                s.spawn(move || {
                    let installed = d.installed.then_some("1.0.0");
                    start.wait();
                    http()
                        .post(format!("{url}/api/v1/device/checkin"))
                        .bearer_auth(&d.token)
                        .json(&serde_json::json!({"facts": facts(&d.name, installed)}))
                        .send()
                        .and_then(|r| r.error_for_status())
                        .and_then(|r| r.json())
                        .unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// Every (device token, job) reports its install at once, on the instance the device did not
/// check in with.
fn report_all(reports: &[(String, String)], urls: &[String], round: usize) {
    let start = std::sync::Arc::new(std::sync::Barrier::new(reports.len().max(1)));
    std::thread::scope(|s| {
        for (i, (token, job)) in reports.iter().enumerate() {
            let start = std::sync::Arc::clone(&start);
            let url = &urls[(i + round + 1) % 2];
            s.spawn(move || {
                let report = serde_json::json!({"reports": [{
                    "report_id": format!("{job}-report"), "job_id": job, "item": "web",
                    "version": "1.0.0", "from_version": null, "outcome": "installed",
                    "message": "installed 1.0.0", "output": "",
                    "started_at": "2026-01-01T00:00:00.000Z",
                    "finished_at": "2026-01-01T00:00:01.000Z"
                }]});
                start.wait();
                let status = http()
                    .post(format!("{url}/api/v1/device/reports"))
                    .bearer_auth(token)
                    .json(&report)
                    .send()
                    .unwrap()
                    .status();
                assert!(status.is_success(), "{status}");
            });
        }
    });
}

#[test]
fn a_release_is_served_from_a_mirror_and_from_the_server_when_the_mirror_is_down() {
    let w = World::with_server_config("delta_from_releases = 0\n");
    w.agent("check").ok();
    // The mirror: a second web server on loopback serving the artifact.
    let site = w.path("mirror-site");
    let mirror = crate::standalone::StaticHost::start(&site);
    let src = w.payload("1.0.0", None);
    let out = w.build("1.0.0", &src, &[]);
    std::fs::create_dir_all(site.join("releases")).unwrap();
    std::fs::copy(
        out.join("web-1.0.0.tar.gz"),
        site.join("releases/web-1.0.0.tar.gz"),
    )
    .unwrap();
    let published = publish_with_mirror(&w, &out, &format!("{}/", mirror.url));
    assert!(
        published
            .stdout
            .contains(&format!("mirror {}/web-1.0.0.tar.gz", mirror.url)),
        "{published}"
    );
    let token = std::fs::read_to_string(w.server.data_dir.join("operator.token")).unwrap();
    let releases: serde_json::Value = http()
        .get(format!("{}/api/v1/releases", w.server.url()))
        .bearer_auth(token.trim())
        .send()
        .and_then(|r| r.json())
        .unwrap();
    assert_eq!(releases[0]["mirrors"][0], mirror.url.as_str(), "{releases}");
    // The server's own copy is gone: only the mirror can serve the install.
    std::fs::remove_file(w.server.data_dir.join("artifacts/web-1.0.0.tar.gz")).unwrap();
    w.trigger(Some("1.0.0"));
    w.agent("once").ok();
    assert_eq!(w.current().as_deref(), Some("releases/1.0.0"));

    // A mirror that does not answer: ferryctl says so, and devices take the server's copy.
    let src = w.payload("1.1.0", None);
    let out = w.build("1.1.0", &src, &[]);
    let dead = format!("http://127.0.0.1:{}", crate::util::free_port());
    let published = publish_with_mirror(&w, &out, &dead);
    assert!(published.stderr.contains("does not answer"), "{published}");
    w.trigger(Some("1.1.0"));
    w.agent("once").ok();
    assert_eq!(w.current().as_deref(), Some("releases/1.1.0"));

    // Mirrors are checked before anything is published: a bad URL is refused with the
    // reason, and the release is not published without it.
    let src = w.payload("1.2.0", None);
    let out = w.build("1.2.0", &src, &[]);
    let refused = w
        .ctl(&[
            "release",
            "publish",
            out.to_str().unwrap(),
            "--mirror",
            "ftp://x",
        ])
        .code(1);
    assert!(refused.stderr.contains("http:// or https://"), "{refused}");
    assert!(!w
        .ctl(&["release", "publish", out.to_str().unwrap()])
        .ok()
        .stdout
        .is_empty());
    // The server checks them too, and mirrors of a published release can change.
    let refused = w
        .ctl(&[
            "release",
            "mirrors",
            "web",
            "1.2.0",
            "--mirror",
            "https://x/?q=1",
        ])
        .code(1);
    assert!(refused.stderr.contains("without query"), "{refused}");
    let set = w
        .ctl(&[
            "release",
            "mirrors",
            "web",
            "1.1.0",
            "--mirror",
            &format!("{}/", mirror.url),
        ])
        .ok();
    assert!(
        set.stderr.contains("does not answer"),
        "1.1.0 is not on the mirror: {set}"
    );
    let cleared = w.ctl(&["release", "mirrors", "web", "1.1.0"]).ok();
    assert!(cleared.stdout.contains("no mirrors"), "{cleared}");
}

/// `ferryctl release publish OUT --mirror MIRROR`, which must succeed.
fn publish_with_mirror(w: &World, out: &std::path::Path, mirror: &str) -> crate::util::Run {
    w.ctl(&[
        "release",
        "publish",
        out.to_str().unwrap(),
        "--mirror",
        mirror,
    ])
    .ok()
}
