//! Webhooks: events signed in the Standard Webhooks style (checked here with Python's own
//! hmac), retried with backoff past a receiver that is down, slow or answers 500, kept
//! across a server killed with SIGKILL, each taken once; and on several instances sharing a
//! database, each event sent by one of them only.

use std::fs;
use std::process::Command;
use std::time::Duration;

use crate::util::receiver::{Answer, Received, Receiver};
use crate::util::{eventually, free_port, new_postgres_database, Server, World};

/// A secret as the docs say to make one.
fn make_secret(w: &World, name: &str) -> (String, std::path::PathBuf) {
    let out = Command::new("openssl")
        .args(["rand", "-base64", "32"])
        .output()
        .expect("openssl");
    let secret = format!("whsec_{}", String::from_utf8(out.stdout).unwrap().trim());
    let path = w.path(name);
    fs::write(&path, format!("{secret}\n")).unwrap();
    (secret, path)
}

/// The signature of `r` as an independent implementation (Python's hmac) computes it.
fn expected_signature(secret: &str, r: &Received) -> String {
    let script = "import base64, hashlib, hmac, sys\n\
        key = base64.b64decode(sys.argv[1].split('_', 1)[1])\n\
        msg = (sys.argv[2] + '.' + sys.argv[3] + '.').encode() + sys.stdin.buffer.read()\n\
        print('v1,' + base64.b64encode(hmac.new(key, msg, hashlib.sha256).digest()).decode())";
    let mut child = Command::new("python3")
        .args(["-c", script, secret, &r.id, &r.timestamp])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(r.body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn deliveries(w: &World, failing: bool) -> Vec<serde_json::Value> {
    let mut args = vec!["webhooks", "deliveries"];
    if failing {
        args.push("--failing");
    }
    w.ctl_json(&args).as_array().cloned().unwrap_or_default()
}

#[test]
fn events_arrive_signed_and_once_past_a_receiver_down_slow_or_failing_and_a_server_killed() {
    let mut w = World::with_server_config("webhook_timeout_secs = 2\n");
    let (secret, secret_file) = make_secret(&w, "hook.secret");
    let down = free_port();
    let slow = Receiver::start(free_port(), &[Answer::Slow(Duration::from_secs(4))]);
    let hook = |port: u16, events: &str| {
        w.ctl_json(&[
            "webhooks",
            "add",
            &format!("http://127.0.0.1:{port}/hook?token=receiver-secret"),
            "--events",
            events,
            "--secret-file",
            secret_file.to_str().unwrap(),
        ])
    };
    let first = hook(down, "release.published,install.finished");
    let second = hook(slow.port, "release.published");
    let listed = w.ctl_json(&["webhooks", "list"]);
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed:#}");
    let text = listed.to_string();
    assert!(
        !text.contains(&secret) && !text.contains("receiver-secret"),
        "{text}"
    );
    // A secret not in the Standard Webhooks form is refused, saying what it should be.
    fs::write(w.path("bad.secret"), "hunter2\n").unwrap();
    let bad = w
        .ctl(&[
            "webhooks",
            "add",
            "http://127.0.0.1:1/x",
            "--events",
            "all",
            "--secret-file",
            w.path("bad.secret").to_str().unwrap(),
        ])
        .code(1);
    assert!(bad.stderr.contains("whsec_"), "{bad}");

    // The release: the first receiver is down, the second too slow.
    w.release("1.0.0", &[]);
    eventually(
        "both first attempts failed",
        Duration::from_secs(20),
        || {
            let d = deliveries(&w, true);
            d.len() == 2
                && d.iter()
                    .all(|d| d["attempts"] == 1 && d["last_error"].is_string())
        },
    );
    let failing = deliveries(&w, true);
    let refused = failing
        .iter()
        .find(|d| d["webhook_id"] == first["id"])
        .unwrap();
    assert!(
        refused["last_error"].as_str().unwrap().contains("connect"),
        "{refused}"
    );
    let timed_out = failing
        .iter()
        .find(|d| d["webhook_id"] == second["id"])
        .unwrap();
    assert!(
        timed_out["last_error"]
            .as_str()
            .unwrap()
            .contains("no answer within 2 s"),
        "{timed_out}"
    );
    assert_eq!(refused["state"], "pending");
    assert!(refused["next_attempt_at"].is_string());

    // Killed with SIGKILL; the outbox is in the database. The first receiver comes up
    // answering 500 once.
    w.server.kill();
    let first_receiver = Receiver::start(down, &[Answer::Status(500)]);
    w.server.restart_same_port();
    eventually(
        "the slow receiver took the release on its second attempt",
        Duration::from_secs(30),
        || slow.taken("release.published").len() == 1,
    );
    eventually(
        "the first receiver took it on its third (after a 500)",
        Duration::from_secs(60),
        || first_receiver.taken("release.published").len() == 1,
    );
    let got = &first_receiver.taken("release.published")[0];
    let attempts = first_receiver.received();
    assert_eq!(attempts.len(), 2, "{attempts:#?}");
    assert_eq!(attempts[0].status, 500);
    assert_eq!(attempts[0].id, got.id, "a retry carries the event's id");
    assert_eq!(
        slow.received()[0].id,
        got.id,
        "every endpoint gets the same id"
    );
    assert!(got.id.starts_with("msg_"));
    assert_eq!(expected_signature(&secret, got), got.signature);
    let body = got.json();
    assert_eq!(body["data"]["item"], "web", "{body}");
    assert_eq!(body["data"]["version"], "1.0.0", "{body}");

    // An install: told at once, signed.
    w.agent("once").ok();
    w.trigger(Some("1.0.0"));
    w.agent("once").ok();
    eventually("install.finished arrived", Duration::from_secs(10), || {
        first_receiver.taken("install.finished").len() == 1
    });
    let installed = &first_receiver.taken("install.finished")[0];
    assert_eq!(expected_signature(&secret, installed), installed.signature);
    let data = &installed.json()["data"];
    assert_eq!(data["hostname"], "device-1", "{data}");
    assert_eq!(data["outcome"], "installed", "{data}");
    assert_eq!(data["version"], "1.0.0", "{data}");
    let age = time_since(&installed.timestamp);
    assert!(
        age < 60,
        "the signature's timestamp is now, not {age} s ago"
    );
    // The slow receiver did not ask for installs.
    assert!(slow.taken("install.finished").is_empty());

    // Each event taken once; the deliveries say so.
    std::thread::sleep(Duration::from_secs(2));
    for r in [&first_receiver, &slow] {
        let ok: Vec<String> = r
            .received()
            .into_iter()
            .filter(|x| x.status == 200 && !x.slow)
            .map(|x| x.id)
            .collect();
        let mut unique = ok.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(ok.len(), unique.len(), "an event taken twice: {ok:?}");
    }
    assert!(
        deliveries(&w, true).is_empty(),
        "{:#?}",
        deliveries(&w, true)
    );
    let all = deliveries(&w, false);
    assert_eq!(all.len(), 3, "{all:#?}");
    let release_to_first = all
        .iter()
        .find(|d| d["webhook_id"] == first["id"] && d["event"] == "release.published")
        .unwrap();
    assert_eq!(release_to_first["state"], "delivered");
    assert_eq!(release_to_first["attempts"], 3, "{release_to_first}");

    // Removed: nothing more is sent to it.
    w.ctl(&["webhooks", "remove", first["id"].as_str().unwrap()])
        .ok();
    w.release("1.1.0", &[]);
    eventually(
        "the remaining webhook took 1.1.0",
        Duration::from_secs(10),
        || slow.taken("release.published").len() == 2,
    );
    assert_eq!(first_receiver.taken("release.published").len(), 1);
}

/// Seconds since a `webhook-timestamp`.
fn time_since(unix: &str) -> i64 {
    let t: i64 = unix.parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    now - t
}

#[test]
fn on_several_instances_each_event_is_sent_by_one() {
    let database = new_postgres_database();
    let w = World::with_database("", None, Some(database.clone()));
    let _others: Vec<Server> = (0..2)
        .map(|i| {
            Server::start_instance(
                &w.server.data_dir,
                None,
                Some(database.clone()),
                &w.path(&format!("instance-{i}.log")),
            )
        })
        .collect();
    let (_, secret_file) = make_secret(&w, "hook.secret");
    // A receiver that takes its time widens any window two senders could share.
    let plan: Vec<Answer> = (0..40)
        .map(|_| Answer::Slow(Duration::from_millis(300)))
        .collect();
    let receiver = Receiver::start(free_port(), &plan);
    w.ctl(&[
        "webhooks",
        "add",
        &format!("http://127.0.0.1:{}/", receiver.port),
        "--events",
        "release.published",
        "--secret-file",
        secret_file.to_str().unwrap(),
    ])
    .ok();
    let versions: Vec<String> = (0..8).map(|i| format!("1.0.{i}")).collect();
    for v in &versions {
        w.release(v, &[]);
    }
    eventually("every release told", Duration::from_secs(30), || {
        receiver.received().len() >= versions.len()
    });
    std::thread::sleep(Duration::from_secs(3));
    let got = receiver.received();
    let mut ids: Vec<&str> = got.iter().map(|r| r.id.as_str()).collect();
    ids.sort();
    let before = ids.len();
    ids.dedup();
    assert_eq!(before, ids.len(), "an event sent twice: {got:#?}");
    assert_eq!(ids.len(), versions.len());
    let all = deliveries(&w, false);
    assert!(
        all.iter()
            .all(|d| d["state"] == "delivered" && d["attempts"] == 1),
        "{all:#?}"
    );
}
