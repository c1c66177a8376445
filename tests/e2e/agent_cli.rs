//! The agent's command line contract: exit codes and one-line errors.

use std::fs;

use crate::util::World;

#[test]
fn a_bad_config_names_the_key_and_the_file_and_exits_2() {
    let mut w = World::new();
    w.write_agent_config("pol_interval_secs = 5");
    let run = w.agent("once").code(2);
    assert!(
        run.stderr.contains("did you mean `poll_interval_secs`?"),
        "{run}"
    );
    assert!(run.stderr.contains("agent.toml"), "{run}");
    assert!(
        !w.path("agent-state").exists(),
        "a bad config must change nothing"
    );
}

#[test]
fn a_run_waits_for_the_lock_then_exits_4_naming_the_holder() {
    let w = World::with_agent_extra("lock_wait_secs = 1");
    w.agent("check").ok();
    let lock = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(w.path("agent-state/lock"))
        .unwrap();
    fs2::FileExt::lock_exclusive(&lock).unwrap();
    // What a holder in `full` mode writes into the lock file.
    fs::write(
        w.path("agent-state/lock"),
        format!("{} full\n", std::process::id()),
    )
    .unwrap();
    let run = w.agent("once").code(4);
    assert!(run.stderr.contains("holds the lock"), "{run}");
    assert!(run.stderr.contains("waiting up to 1 s"), "{run}");
    assert!(
        run.stderr
            .contains(&format!("pid {}, running mode full", std::process::id())),
        "{run}"
    );
    assert!(run.stderr.contains("lets go between cycles"), "{run}");
    // `status` needs no lock at all, and says who is working.
    let status = w.agent("status").ok();
    assert!(
        status.stdout.contains("running mode full) is working"),
        "{status}"
    );
    fs2::FileExt::unlock(&lock).unwrap();
    w.agent("once").ok();
}

#[test]
fn an_unreachable_server_is_one_line_and_exit_3() {
    let mut w = World::new();
    w.server.kill();
    let run = w.agent("once").code(3);
    assert_eq!(run.stderr.trim().lines().count(), 1, "{run}");
    assert!(run.stderr.contains("server unreachable"), "{run}");
}

#[test]
fn a_device_keeps_its_identity_when_server_url_changes_and_re_enrols_once_removed() {
    let w = World::new();
    w.agent("once").ok();
    let hosts = w.ctl_json(&["hosts", "list"]);
    let id = hosts[0]["id"].as_str().unwrap().to_string();

    // The same server under another name: still one host, the same one.
    let cfg = fs::read_to_string(&w.agent_cfg).unwrap();
    let port = w
        .server
        .url()
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .to_string();
    fs::write(
        &w.agent_cfg,
        cfg.replace(&w.server.url(), &format!("http://localhost:{port}")),
    )
    .unwrap();
    w.agent("once").ok();
    let hosts = w.ctl_json(&["hosts", "list"]);
    assert_eq!(hosts.as_array().unwrap().len(), 1, "{hosts}");
    assert_eq!(hosts[0]["id"], id.as_str());
    // Triggers by hostname still find exactly one host.
    w.release("1.0.0", &[]);
    w.trigger(Some("1.0.0"));

    // Removed by an operator: the next run enrols again by itself.
    w.ctl(&["hosts", "remove", &id]).ok();
    let run = w.agent("once").ok();
    assert!(run.stderr.contains("enrolling again"), "{run}");
    let hosts = w.ctl_json(&["hosts", "list"]);
    assert_eq!(hosts.as_array().unwrap().len(), 1, "{hosts}");
    assert_ne!(hosts[0]["id"], id.as_str());
}

#[test]
fn a_bad_command_line_or_enrolment_token_exits_2() {
    let w = World::new();
    w.agent("once").ok();
    let run = w
        .device()
        .run_args(&["--running-mode=rollback", "--item", "nope"])
        .code(2);
    assert!(run.stderr.contains("\"nope\" is not configured"), "{run}");

    let mut w = World::new();
    w.write_agent_config("");
    let cfg = fs::read_to_string(&w.agent_cfg).unwrap().replace(
        "enrol_token_file = \"server-data/enrol.token\"",
        "enrol_token = \"fen_wrong\"",
    );
    fs::write(&w.agent_cfg, cfg).unwrap();
    let run = w.agent("once").code(2);
    assert!(run.stderr.contains("refused the enrolment token"), "{run}");
    assert!(run.stderr.contains("enrol_token"), "{run}");
}

#[test]
fn a_cron_run_with_nothing_new_prints_nothing() {
    let w = World::with_agent_extra("auto_install = true");
    let src = w.payload("1.0.0", Some("#!/bin/sh\nexit 3\n"));
    let out = w.build("1.0.0", &src, &["--health-check", "./bin/web"]);
    w.publish(&out);
    // The first run installs, fails the health check and rolls back: that is news.
    let first = w.agent("once").code(1);
    assert!(
        first.stderr.contains("newly available: web 1.0.0"),
        "{first}"
    );
    assert!(first.stderr.contains("rolled back"), "{first}");
    // The next runs have nothing new to say (the rolled-back version is not retried), so
    // cron has nothing to mail.
    for _ in 0..2 {
        let quiet = w.agent("once").ok();
        assert_eq!(quiet.stderr, "", "{quiet}");
    }
}
