//! What one device token, and enrolment, may ask of the server: a device holds at most
//! `device_long_polls_max` long-polls (more are answered at once), spends a request budget
//! (then 429 with Retry-After, logged once), and enrolments are limited fleet-wide. Another
//! device is never affected.

use std::time::{Duration, Instant};

use crate::load::{enrol_by_hand, facts};
use crate::util::{http, World};

/// A check-in of `token` asking to be held `wait` seconds: (status, Retry-After, time taken).
fn check_in(w: &World, token: &str, wait: u64) -> (u16, Option<String>, Duration) {
    let started = Instant::now();
    let resp = http()
        .post(format!("{}/api/v1/device/checkin", w.server.url()))
        .bearer_auth(token)
        .json(&serde_json::json!({"facts": facts("budget"), "wait_secs": wait}))
        .timeout(Duration::from_secs(60))
        .send()
        .unwrap();
    let retry = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    (resp.status().as_u16(), retry, started.elapsed())
}

#[test]
fn one_device_token_holds_two_long_polls_and_spends_a_budget_that_is_its_own() {
    let w = World::with_server_config(
        "long_poll_max_secs = 6\ndevice_long_polls_max = 2\ndevice_request_burst = 30\ndevice_requests_per_sec = 1\n",
    );
    let rogue = enrol_by_hand(&w, "rogue").unwrap();
    let other = enrol_by_hand(&w, "other").unwrap();

    // Ten long-polls at once: two are held for the whole wait, the rest answered at once.
    let threads: Vec<_> = (0..10)
        .map(|_| {
            let (w_url, token) = (w.server.url(), rogue.clone());
            std::thread::spawn(move || {
                let started = Instant::now();
                let resp = http()
                    .post(format!("{w_url}/api/v1/device/checkin"))
                    .bearer_auth(token)
                    .json(&serde_json::json!({"facts": facts("budget"), "wait_secs": 6}))
                    .timeout(Duration::from_secs(60))
                    .send()
                    .unwrap();
                (resp.status().as_u16(), started.elapsed())
            })
        })
        .collect();
    let answers: Vec<(u16, Duration)> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(answers.iter().all(|(s, _)| *s == 200), "{answers:?}");
    let held = answers
        .iter()
        .filter(|(_, took)| *took >= Duration::from_secs(5))
        .count();
    assert_eq!(held, 2, "held long-polls: {answers:?}");
    // Another device still long-polls.
    let (status, _, took) = check_in(&w, &other, 1);
    assert_eq!(status, 200);
    assert!(took >= Duration::from_millis(900), "{took:?}");

    // The rogue token's burst runs out: 429 with Retry-After, logged once.
    let mut refused = Vec::new();
    for _ in 0..40 {
        let (status, retry, _) = check_in(&w, &rogue, 0);
        if status == 429 {
            refused.push(retry);
        }
    }
    // 30 a burst, plus what refilled (1 a second) during the long-polls.
    assert!(refused.len() >= 5, "{} refused", refused.len());
    assert!(
        refused.iter().all(|r| r
            .as_deref()
            .is_some_and(|s| s.parse::<u64>().is_ok_and(|n| n >= 1))),
        "{refused:?}"
    );
    let log = w.server.log_text();
    assert_eq!(
        log.matches("over its request budget").count(),
        1,
        "one log line for a run of refusals"
    );
    // The other device is not touched; the rogue one is allowed again once it slows down.
    assert_eq!(check_in(&w, &other, 0).0, 200);
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(check_in(&w, &rogue, 0).0, 200);
}

#[test]
fn enrolments_are_limited_fleet_wide_with_a_reason() {
    let w = World::with_server_config("enrolments_per_minute = 5\n");
    for i in 0..5 {
        enrol_by_hand(&w, &format!("new-{i}")).unwrap();
    }
    let (status, body) = enrol_by_hand(&w, "one-too-many").unwrap_err();
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("enrolments_per_minute"), "{body}");
    let hosts = w.ctl_json(&["hosts", "list"]);
    assert_eq!(hosts.as_array().unwrap().len(), 5, "{hosts}");
}
