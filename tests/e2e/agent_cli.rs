//! The agent's command line contract: exit codes and one-line errors.

use std::fs;

use crate::util::World;

#[test]
fn a_bad_config_names_the_key_and_the_file_and_exits_2() {
    let mut w = World::new();
    w.write_agent_config("pol_interval_secs = 5");
    let run = w.agent("once").code(2);
    assert!(run.stderr.contains("pol_interval_secs"), "{run}");
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
