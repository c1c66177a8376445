//! Live install output: the agent streams its hooks' output, the server relays it as
//! Server-Sent Events, and `ferryctl ... --follow` prints it as it comes and exits with the
//! update's outcome.

use std::process::{Command, Stdio};

use crate::util::World;

/// ferryctl with the token given as `@FILE`, as an operator's script would.
fn ferryctl(w: &World, args: &[&str]) -> Command {
    let mut cmd = w.ctl_command(args);
    cmd.env(
        "FERRY_TOKEN",
        format!("@{}", w.server.data_dir.join("operator.token").display()),
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    cmd
}

#[test]
fn trigger_follow_prints_the_output_live_with_colours_and_exits_with_the_outcome() {
    let w = World::new();
    let src = w.payload("1.0.0", None);
    let out = w.build(
        "1.0.0",
        &src,
        &[
            "--post-install",
            r"for i in 1 2 3; do echo step $i; sleep 0.2; done; printf '\033[31mred\033[0m\n'",
            "--health-check",
            "./bin/web",
        ],
    );
    w.publish(&out);
    w.agent("check").ok();
    let follower = ferryctl(
        &w,
        &[
            "update", "trigger", "--host", "device-1", "--item", "web", "--follow",
        ],
    )
    .spawn()
    .unwrap();
    // Let the follower attach, then install.
    std::thread::sleep(std::time::Duration::from_millis(300));
    w.agent("once").ok();
    let done = follower.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&done.stdout);
    assert!(
        done.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&done.stderr)
    );
    for line in [
        "step 1",
        "step 2",
        "step 3",
        "\u{1b}[31mred\u{1b}[0m",
        "web 1.0.0",
        "[health check exited with 0]",
    ] {
        assert!(text.contains(line), "missing {line:?} in {text:?}");
    }

    // The pieces went through the live endpoint while the hooks ran (not only in the report).
    assert!(
        w.server.log_text().contains("uri=/api/v1/device/output"),
        "no live output was posted"
    );

    // Attaching after the end replays the output and the outcome.
    let id = w.history()[0]["id"].as_str().unwrap().to_string();
    let late = ferryctl(&w, &["history", "tail", &id, "--follow"])
        .output()
        .unwrap();
    assert!(late.status.success());
    assert!(String::from_utf8_lossy(&late.stdout).contains("step 3"));
}

#[test]
fn following_a_failing_install_exits_non_zero() {
    let w = World::new();
    let src = w.payload("1.0.0", Some("#!/bin/sh\necho 'cannot start'\nexit 4\n"));
    let out = w.build("1.0.0", &src, &["--health-check", "./bin/web"]);
    w.publish(&out);
    w.agent("check").ok();
    let follower = ferryctl(
        &w,
        &[
            "update", "trigger", "--host", "device-1", "--item", "web", "--follow",
        ],
    )
    .spawn()
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    w.agent("once").code(1);
    let done = follower.wait_with_output().unwrap();
    assert_eq!(done.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&done.stdout).contains("cannot start"));
    assert!(String::from_utf8_lossy(&done.stderr).contains("rolled_back"));

    // Without --follow too: the output, and success only for an installed update.
    let id = w.history()[0]["id"].as_str().unwrap().to_string();
    let tail = crate::util::run(ferryctl(&w, &["history", "tail", &id])).code(1);
    assert!(tail.stdout.contains("cannot start"), "{tail}");
    assert!(tail.stderr.contains("rolled_back"), "{tail}");
}

#[test]
fn json_with_follow_prints_one_event_a_line() {
    let w = World::new();
    let src = w.payload("1.0.0", None);
    // A progress bar's carriage returns pass through the stream untouched.
    let out = w.build(
        "1.0.0",
        &src,
        &[
            "--post-install",
            "printf 'copying 50%%\\rcopying 100%%\\r\\n'; echo hello from the hook",
        ],
    );
    w.publish(&out);
    w.agent("check").ok();
    let follower = ferryctl(
        &w,
        &[
            "update", "trigger", "--host", "device-1", "--item", "web", "--follow", "--json",
        ],
    )
    .spawn()
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    w.agent("once").ok();
    let done = follower.wait_with_output().unwrap();
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&done.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert_eq!(events[0]["event"], "queued", "{events:?}");
    assert_eq!(events.last().unwrap()["event"], "end");
    assert_eq!(events.last().unwrap()["status"], "installed");
    let text: String = events
        .iter()
        .filter(|e| e["event"] == "output")
        .map(|e| e["text"].as_str().unwrap().to_string())
        .collect();
    assert!(text.contains("hello from the hook"), "{text}");
    assert!(
        text.contains("copying 50%\rcopying 100%\r\n"),
        "the carriage returns were lost: {text:?}"
    );

    // The commands that had no --json have it now.
    let checked = w.ctl_json(&["check", "--host", "device-1"]);
    assert_eq!(checked["hosts"], 1, "{checked}");
    let id = w.history()[0]["id"].as_str().unwrap().to_string();
    let tail = w.ctl_json(&["history", "tail", &id]);
    assert_eq!(tail["status"], "installed");
    let host = w.ctl_json(&["hosts", "list"])[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let removed = w.ctl_json(&["hosts", "remove", &host]);
    assert_eq!(removed["removed"], host.as_str());
}

#[test]
fn a_line_reaches_the_follower_while_the_hook_is_still_running() {
    use std::io::BufRead;
    let w = World::new();
    let src = w.payload("1.0.0", None);
    let go = w.path("go");
    let hook = format!(
        "printf 'line-%s\\n' one; while [ ! -e {} ]; do sleep 0.05; done; printf 'line-%s\\n' two",
        go.display()
    );
    let out = w.build("1.0.0", &src, &["--post-install", &hook]);
    w.publish(&out);
    w.agent("check").ok();
    let mut follower = ferryctl(
        &w,
        &[
            "update", "trigger", "--host", "device-1", "--item", "web", "--follow",
        ],
    )
    .spawn()
    .unwrap();
    // The follower queues the update; start the device once it is queued.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while w.history().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the update was never queued"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let mut agent = w.device().spawn("once");
    // The hook waits for `go`, which only comes once the follower has printed the first
    // line: held output would hang here until the reader gives up.
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = follower.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    // (The command itself is echoed first; its output lines are `line-one` and `line-two`.)
    while !seen.iter().any(|l: &String| l == "line-one") {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(_) => {
                let _ = agent.kill();
                let mut log = String::new();
                let _ = std::io::Read::read_to_string(agent.stderr.as_mut().unwrap(), &mut log);
                panic!("the first line never reached the follower: {seen:?}\nagent:\n{log}")
            }
        }
    }
    assert!(!seen.iter().any(|l| l == "line-two"), "{seen:?}");
    std::fs::write(&go, "").unwrap();
    let done = agent.wait_with_output().unwrap();
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert!(follower.wait().unwrap().success());
}

/// Revoking a token ends the live output streams open with it, within a second or so: a
/// `history tail --follow` of a pending update stops.
#[test]
fn revoking_a_token_ends_the_live_output_it_follows() {
    let w = World::new();
    w.release("1.0.0", &[]);
    w.agent("check").ok();
    let id = w.trigger(Some("1.0.0"))["id"].as_str().unwrap().to_string();
    let token = w.ctl_json(&["tokens", "create", "--name", "watcher"]);
    let secret = token["token"].as_str().unwrap().to_string();
    let mut follower = ferryctl(&w, &["history", "tail", &id, "--follow"])
        .env("FERRY_TOKEN", &secret)
        .spawn()
        .unwrap();
    // Following (the update stays pending: no device runs it).
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(
        follower.try_wait().unwrap().is_none(),
        "the follow ended by itself"
    );
    w.ctl(&["tokens", "revoke", token["id"].as_str().unwrap()])
        .ok();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while follower.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = follower.kill();
            panic!("the stream outlived its revoked token");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
