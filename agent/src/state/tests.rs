use super::*;

#[test]
fn state_round_trips_and_a_second_lock_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let sd = StateDir::open(dir.path(), Arc::new(fsops::RealFs)).unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let held = sd
        .lock("once", std::time::Duration::ZERO, &stop, &mut |_| {})
        .unwrap();
    let mut state = State::default();
    state.items.insert(
        "web".into(),
        ItemState {
            installed: Some(semver::Version::new(1, 0, 0)),
            ..Default::default()
        },
    );
    sd.save_state(&state).unwrap();
    assert_eq!(sd.load_state().unwrap().items, state.items);
    let other = StateDir::open(dir.path(), Arc::new(fsops::RealFs)).unwrap();
    assert!(matches!(
        other.lock("check", std::time::Duration::ZERO, &stop, &mut |_| {}),
        Err(Error::Locked { .. })
    ));
    drop(held);
    assert!(other
        .lock("check", std::time::Duration::ZERO, &stop, &mut |_| {})
        .is_ok());
}

#[test]
fn a_corrupt_state_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let sd = StateDir::open(dir.path(), Arc::new(fsops::RealFs)).unwrap();
    fs::write(dir.path().join("state.json"), b"{not json").unwrap();
    let err = sd.load_state().unwrap_err().to_string();
    assert!(err.contains("state.json"), "{err}");
}

fn v(s: &str) -> semver::Version {
    s.parse().unwrap()
}

fn pending(version: &str) -> Pending {
    Pending {
        version: v(version),
        job_id: None,
        envelope: "e.json".into(),
        downloaded: true,
        source: None,
        interactive: false,
        delta: None,
        mirrors: vec![],
        fetched: None,
        metered_allowed: false,
        peers: vec![],
        waiting: None,
    }
}

#[test]
fn a_commit_moves_installed_to_previous_and_clears_what_it_settles() {
    let mut st = ItemState {
        installed: Some(v("1.0.0")),
        highest: Some(v("1.0.0")),
        available: Some(v("1.1.0")),
        pending: Some(pending("1.1.0")),
        last_failed: Some(v("1.1.0")),
        interrupted: 2,
        ..Default::default()
    };
    st.commit(&v("1.1.0"), Some(&v("1.0.0")), None);
    assert_eq!(st.installed, Some(v("1.1.0")));
    assert_eq!(st.previous, Some(v("1.0.0")));
    assert_eq!(st.highest, Some(v("1.1.0")));
    assert_eq!(
        (st.available, st.pending, st.last_failed),
        (None, None, None)
    );
    assert_eq!(st.interrupted, 0);

    // A newer offer survives; reinstalling the same version keeps the backup.
    let mut st = ItemState {
        installed: Some(v("1.1.0")),
        previous: Some(v("1.0.0")),
        highest: Some(v("2.0.0")),
        available: Some(v("2.0.0")),
        ..Default::default()
    };
    st.commit(&v("1.1.0"), Some(&v("1.1.0")), Some(vec!["a".into()]));
    assert_eq!(st.previous, Some(v("1.0.0")));
    assert_eq!(st.highest, Some(v("2.0.0")));
    assert_eq!(st.available, Some(v("2.0.0")));
    assert_eq!(st.files, vec!["a".to_string()]);
}

#[test]
fn a_rollback_marks_the_version_failed_and_a_rollback_by_hand_moves_installed_back() {
    let mut st = ItemState {
        installed: Some(v("1.0.0")),
        highest: Some(v("1.0.0")),
        pending: Some(pending("1.1.0")),
        ..Default::default()
    };
    st.roll_back(&v("1.1.0"), None);
    assert_eq!(st.installed, Some(v("1.0.0")));
    assert_eq!(st.pending, None);
    assert_eq!(st.last_failed, Some(v("1.1.0")));

    let mut st = ItemState {
        installed: Some(v("1.1.0")),
        previous: Some(v("1.0.0")),
        highest: Some(v("1.1.0")),
        files: vec!["new".into()],
        ..Default::default()
    };
    st.roll_back(&v("1.1.0"), Some((v("1.0.0"), Some(vec!["old".into()]))));
    assert_eq!(st.installed, Some(v("1.0.0")));
    assert_eq!(st.previous, None);
    assert_eq!(
        st.highest,
        Some(v("1.1.0")),
        "anti-rollback keeps the highest"
    );
    assert_eq!(st.files, vec!["old".to_string()]);
    assert_eq!(st.last_failed, None, "a rollback by hand is not a failure");
    assert_eq!(st.rolled_back_by_hand, Some(v("1.1.0")));
    assert!(st.held_back(&v("1.1.0")), "auto_install leaves it alone");
    st.release_hold(&v("1.1.0"));
    assert!(!st.held_back(&v("1.1.0")));
}

#[test]
fn interruptions_are_counted_until_the_limit_gives_up() {
    let mut st = ItemState {
        pending: Some(pending("1.1.0")),
        ..Default::default()
    };
    assert_eq!(st.interrupt(&v("1.1.0"), 3), None);
    assert_eq!(st.interrupt(&v("1.1.0"), 3), None);
    assert!(st.pending.is_some());
    assert_eq!(st.interrupt(&v("1.1.0"), 3), Some(3));
    assert_eq!(st.pending, None);
    assert_eq!(st.last_failed, Some(v("1.1.0")));
    assert_eq!(st.interrupted, 0);
}

#[test]
fn finishing_clears_only_the_same_pending_install() {
    let mut st = ItemState {
        pending: Some(pending("1.2.0")),
        ..Default::default()
    };
    st.finish(&pending("1.1.0"), false);
    assert_eq!(st.pending, Some(pending("1.2.0")), "a newer pending stays");
    assert_eq!(st.last_failed, Some(v("1.1.0")));
    st.finish(&pending("1.2.0"), true);
    assert_eq!(st.pending, None);
    assert_eq!(st.last_failed, Some(v("1.1.0")));
}
