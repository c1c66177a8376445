use super::*;

fn env(dir: &Path) -> HookEnv<'_> {
    HookEnv {
        item: "web",
        version: "1.1.0",
        previous_version: Some("1.0.0"),
        root: dir,
        release_dir: dir,
        terminal: None,
    }
}

#[test]
fn output_is_merged_passed_on_and_the_environment_is_set() {
    let dir = tempfile::tempdir().unwrap();
    let mut streamed = String::new();
    let r = run(
        "echo out $FERRY_VERSION; echo err $FERRY_PREVIOUS_VERSION >&2",
        &env(dir.path()),
        Duration::from_secs(10),
        None,
        &mut |s| streamed.push_str(s),
    );
    assert!(r.success, "{r:?}");
    assert_eq!(r.output, "out 1.1.0\nerr 1.0.0\n");
    assert_eq!(streamed, r.output);
}

#[test]
fn failure_and_timeout_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let r = run(
        "echo broken; exit 3",
        &env(dir.path()),
        Duration::from_secs(10),
        None,
        &mut |_| {},
    );
    assert!(!r.success);
    assert_eq!(r.status, "exited with 3");
    assert_eq!(r.output, "broken\n");
    let r = run(
        "sleep 5",
        &env(dir.path()),
        Duration::from_millis(200),
        None,
        &mut |_| {},
    );
    assert!(!r.success);
    assert!(r.status.contains("timed out"), "{}", r.status);
}

#[test]
fn a_stop_lets_a_hook_run_out_its_grace_then_kills_its_whole_group() {
    let dir = tempfile::tempdir().unwrap();
    let flag = AtomicBool::new(true);
    let stop = Stop {
        flag: &flag,
        grace: Duration::from_millis(300),
        since: Cell::new(None),
    };
    let marker = dir.path().join("survived");
    let started = Instant::now();
    // A background child of the hook must die with it.
    let r = run(
        &format!("(sleep 2; touch {}) & sleep 30", marker.display()),
        &env(dir.path()),
        Duration::from_secs(60),
        Some(&stop),
        &mut |_| {},
    );
    assert!(!r.success && r.interrupted, "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(2500));
    assert!(!marker.exists(), "the hook's background child outlived it");

    // Within its grace a hook finishes normally.
    let stop = Stop {
        flag: &flag,
        grace: Duration::from_secs(30),
        since: Cell::new(None),
    };
    let r = run(
        "sleep 0.3; echo done",
        &env(dir.path()),
        Duration::from_secs(60),
        Some(&stop),
        &mut |_| {},
    );
    assert!(r.success && !r.interrupted, "{r:?}");
}
