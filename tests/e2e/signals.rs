//! Signals while an install's hooks run: a stop (Ctrl-C, `kill -TERM -PGID`, `systemctl stop`)
//! lets the install finish within `stop_grace_secs`; past it the previous version comes back
//! and the release stays pending, to be installed at the next run. Neither is a failure.

use std::fs;
use std::process::Child;
use std::time::{Duration, Instant};

use crate::util::{signal, World};

/// 1.0.0 installed; 1.1.0 published with a post-install that marks its start, then sleeps
/// while the file `block` exists.
fn world_with_a_slow_hook(extra: &str) -> World {
    let w = World::with_agent_extra(extra);
    w.release("1.0.0", &[]);
    w.agent("check").ok();
    w.trigger(Some("1.0.0"));
    w.agent("once").ok();
    let src = w.payload("1.1.0", None);
    let started = w.path("hook-started");
    let block = w.path("block");
    let hook = format!(
        "touch {}; while [ -e {} ]; do sleep 0.1; done; echo hook done",
        started.display(),
        block.display()
    );
    let out = w.build("1.1.0", &src, &["--post-install", &hook]);
    w.publish(&out);
    w.trigger(Some("1.1.0"));
    w
}

/// Starts `once`, waits until the hook runs, then sends SIGTERM to the agent's whole process
/// group, as Ctrl-C or `kill -TERM -PGID` would.
fn stop_during_the_hook(w: &World) -> Child {
    fs::write(w.path("block"), "").unwrap();
    let child = w.device().spawn("once");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !w.path("hook-started").exists() {
        assert!(Instant::now() < deadline, "the post-install never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    signal(child.id(), "TERM", true);
    child
}

/// Waits (bounded) for the agent to exit; its exit code and log.
fn wait(child: &mut Child, limit: Duration) -> (Option<i32>, String) {
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the agent did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    (status.code(), stderr)
}

#[test]
fn a_signal_to_the_agents_group_lets_the_install_finish_within_its_grace() {
    let w = world_with_a_slow_hook("stop_grace_secs = 60");
    let mut child = stop_during_the_hook(&w);
    // The hook is in a process group of its own: the signal did not reach it. Let it end.
    std::thread::sleep(Duration::from_millis(500));
    fs::remove_file(w.path("block")).unwrap();
    let (code, stderr) = wait(&mut child, Duration::from_secs(30));
    // It says what it waits for, and a stop after a completed install is a success.
    assert!(stderr.contains("waiting up to 60 s"), "{stderr}");
    assert_eq!(code, Some(0), "exit {code:?}:\n{stderr}");
    assert_eq!(w.current().as_deref(), Some("releases/1.1.0"), "{stderr}");
    let last = w.history().pop().unwrap();
    assert_eq!(last["status"], "installed", "{last}");
    assert!(
        last["output"]
            .as_str()
            .unwrap_or_default()
            .contains("hook done"),
        "{last}"
    );
}

#[test]
fn past_the_grace_time_the_old_version_returns_and_the_next_run_installs() {
    let w = world_with_a_slow_hook("stop_grace_secs = 1");
    let mut child = stop_during_the_hook(&w);
    let (code, stderr) = wait(&mut child, Duration::from_secs(20));
    assert_eq!(code, Some(6), "{stderr}");
    assert!(stderr.contains("retried at the next run"), "{stderr}");
    assert_eq!(w.current().as_deref(), Some("releases/1.0.0"), "{stderr}");
    // Not a failed release: nothing reported as failed, still pending on the device.
    let last = w.history().pop().unwrap();
    assert_eq!(last["version"], "1.1.0");
    assert!(
        matches!(last["status"].as_str(), Some("pending" | "in_progress")),
        "{last}"
    );
    let status = w.agent("status").ok();
    assert!(status.stdout.contains("1.1.0"), "{status}");

    fs::remove_file(w.path("block")).unwrap();
    w.agent("once").ok();
    assert_eq!(w.current().as_deref(), Some("releases/1.1.0"));
    assert_eq!(w.history().pop().unwrap()["status"], "installed");
}
