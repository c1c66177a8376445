//! Fast while pull-only: a device in `full` mode with long-poll hears of a job or a
//! `ferryctl check` while its check-in is open, without any inbound connection.

use std::process::Child;
use std::time::{Duration, Instant};

use crate::util::{eventually, World};

fn full_mode(w: &World) -> Child {
    w.device().spawn("full")
}

fn long_polling_world(extra: &str) -> World {
    let mut w = World::new();
    // An hour between polls: only long-poll can bring the news in time.
    w.write_agent_config(&format!("long_poll_secs = 30\n{extra}"));
    let cfg = std::fs::read_to_string(&w.agent_cfg)
        .unwrap()
        .replace("poll_interval_secs = 1", "poll_interval_secs = 3600");
    std::fs::write(&w.agent_cfg, cfg).unwrap();
    w
}

#[test]
fn a_trigger_reaches_a_long_polling_device_while_its_check_in_is_open() {
    let w = long_polling_world("");
    w.release("1.0.0", &[]);
    let mut agent = full_mode(&w);
    eventually("enrolment", Duration::from_secs(20), || {
        w.ctl_json(&["hosts", "list"])
            .as_array()
            .is_some_and(|a| !a.is_empty())
    });
    // Let the device settle into a waiting check-in.
    std::thread::sleep(Duration::from_millis(500));
    w.trigger(None);
    // The report, not just the files: the device tells the server within the same cycle.
    eventually("the install's report", Duration::from_secs(20), || {
        w.history()[0]["status"] == "installed"
    });
    let _ = agent.kill();
    let _ = agent.wait();
    assert_eq!(w.current().as_deref(), Some("releases/1.0.0"));
}

#[test]
fn ferryctl_check_makes_a_long_polling_device_look_now() {
    let w = long_polling_world("auto_install = true");
    let mut agent = full_mode(&w);
    eventually("enrolment", Duration::from_secs(20), || {
        w.ctl_json(&["hosts", "list"])
            .as_array()
            .is_some_and(|a| !a.is_empty())
    });
    std::thread::sleep(Duration::from_millis(500));
    // A new release, no trigger: the device would only notice at its next poll.
    w.release("1.0.0", &[]);
    let asked = w.ctl(&["check", "--host", "device-1"]).ok();
    assert!(asked.stdout.contains("asked 1 host"), "{asked}");
    eventually("the auto-install", Duration::from_secs(20), || {
        w.current().is_some()
    });
    let _ = agent.kill();
    let _ = agent.wait();
    let none = w.ctl(&["check", "--item", "nothing-has-this"]).ok();
    assert!(none.stdout.contains("asked 0 host"), "{none}");
}

#[test]
fn full_mode_long_polls_by_default_and_leaves_the_lock_free_between_cycles() {
    let mut w = World::new();
    // No long_poll_secs: full mode long-polls anyway. An hour between polls.
    w.write_agent_config("");
    let cfg = std::fs::read_to_string(&w.agent_cfg)
        .unwrap()
        .replace("poll_interval_secs = 1", "poll_interval_secs = 3600");
    std::fs::write(&w.agent_cfg, cfg).unwrap();
    w.release("1.0.0", &[]);
    let mut agent = full_mode(&w);
    eventually("enrolment", Duration::from_secs(20), || {
        w.ctl_json(&["hosts", "list"])
            .as_array()
            .is_some_and(|a| !a.is_empty())
    });
    std::thread::sleep(Duration::from_millis(500));
    // While the service waits, `status` and staged commands by hand just work.
    let status = w.agent("status").ok();
    assert!(
        status.stdout.contains("run:         none under way"),
        "{status}"
    );
    w.agent("check").ok();
    // A second full-mode agent on the same state directory refuses to start, naming the first.
    let second = w.agent("full").code(4);
    assert!(
        second.stderr.contains(&format!("pid {}", agent.id())),
        "{second}"
    );
    assert!(second.stderr.contains("one full-mode agent"), "{second}");
    assert!(
        w.path("agent-state/service.pid").exists(),
        "the first one's pid file went"
    );
    w.trigger(None);
    eventually("the install", Duration::from_secs(20), || {
        w.current().is_some()
    });
    // SIGTERM ends the open check-in at once.
    std::thread::sleep(Duration::from_millis(500));
    let signalled = Instant::now();
    crate::util::signal(agent.id(), "TERM", false);
    let status = loop {
        if let Some(s) = agent.try_wait().unwrap() {
            break s;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(5),
            "SIGTERM waited out the open check-in"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
    assert_eq!(w.history()[0]["status"], "installed");
}
