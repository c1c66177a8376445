//! Enumerate, don't sample: stop an install after filesystem operation 1, 2, … N in turn (as
//! SQLite's crash-test VFS does), run recovery each time, and check that the install root is
//! exactly the old or the new version, that the state agrees with it, and that exactly one
//! report of the outcome is queued.

// A test: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::sync::Arc;

use ferry_agent::fsops::{CrashFs, RealFs};

mod device;

use device::{device_at, device_at_v1, expected_trees, release, tree, Release};

fn count_ops(next: &Release) -> usize {
    let d = device_at_v1(next);
    let counter = Arc::new(CrashFs::new(usize::MAX));
    d.install(counter.clone()).unwrap();
    counter.ops()
}

/// Crashes the install of `next` at every operation in turn; returns how many runs ended at
/// the old and at the new version. `healthy` says whether `next` passes its health check.
fn enumerate(next: Release, healthy: bool) -> (usize, usize) {
    let (old, new) = expected_trees(&next);
    if !healthy {
        assert_eq!(old, new, "a failing release must leave the old tree");
    } else {
        let kept = |t: &[String]| {
            t.iter().any(|l| l.contains("app.conf.ferry-new"))
                && t.iter().any(|l| l.contains("edited by hand"))
        };
        assert!(kept(&new), "the edited configuration is kept: {new:#?}");
        let link = |t: &[String], l: &str| t.iter().any(|x| x.ends_with(l));
        assert!(
            link(&new, "lib/libweb.so -> libweb.so.2.0.0") && link(&new, "bin/start -> web"),
            "the new release's links are in place: {new:#?}"
        );
        assert!(
            link(&old, "static/old -> ../only-in-1"),
            "the old release's links were in place: {old:#?}"
        );
    }
    let total = count_ops(&next);
    assert!(total > 10, "suspiciously few operations: {total}");
    let (mut ended_old, mut ended_new) = (0, 0);
    for crash_at in 1..=total + 1 {
        let d = device_at_v1(&next);
        let crash = Arc::new(CrashFs::new(crash_at));
        let result = d.install(crash.clone());
        if crash_at <= total {
            assert!(crash.crashed(), "operation {crash_at} was never reached");
        } else {
            result.unwrap();
        }
        // The next run recovers; a release left pending (interrupted while unpacking) is
        // installed by that same run, as the next cycle would.
        d.install(Arc::new(RealFs))
            .unwrap_or_else(|e| panic!("recovery after op {crash_at}: {e}"));
        let agent = d.open(Arc::new(RealFs)).unwrap();
        let st = agent.state.items.get("web").cloned().unwrap_or_default();
        drop(agent);

        let t = tree(&d.root());
        let reports = d.reports();
        assert_eq!(
            reports.len(),
            1,
            "crash at op {crash_at}: reports {reports:?}"
        );
        let report = &reports[0];
        assert_eq!(report.version.to_string(), next.version);
        let job = format!("job-{}", next.version);
        assert_eq!(report.job_id.as_deref(), Some(job.as_str()));
        assert!(
            st.pending.is_none(),
            "crash at op {crash_at}: still pending"
        );
        let journal: Vec<_> = fs::read_dir(d.dir.path().join("state/journal"))
            .unwrap()
            .flatten()
            .collect();
        assert!(
            journal.is_empty(),
            "crash at op {crash_at}: journal left {journal:?}"
        );
        let version = |v: &Option<semver::Version>| v.as_ref().map(|v| v.to_string());
        if t == new && healthy {
            ended_new += 1;
            assert_eq!(
                report.outcome.as_str(),
                "installed",
                "crash at op {crash_at}"
            );
            assert_eq!(version(&st.installed).as_deref(), Some(next.version));
            assert_eq!(version(&st.highest).as_deref(), Some(next.version));
        } else if t == old {
            ended_old += 1;
            assert_ne!(
                report.outcome.as_str(),
                "installed",
                "crash at op {crash_at}"
            );
            assert_eq!(version(&st.installed).as_deref(), Some("1.0.0"));
            assert_eq!(
                version(&st.highest).as_deref(),
                Some("1.0.0"),
                "rollback protection raised by an install that was not committed"
            );
        } else {
            panic!(
                "crash at op {crash_at} of {total}: mixed tree\n{t:#?}\nold:\n{old:#?}\nnew:\n{new:#?}"
            );
        }
    }
    eprintln!(
        "{total} operations: {ended_old} crashes ended at the old version, {ended_new} at the new"
    );
    (ended_old, ended_new)
}

use ferry_manifests::Layout::{Overlay, Symlink};

#[test]
fn a_crash_after_any_operation_of_an_upgrade_ends_at_exactly_one_version() {
    let (old, new) = enumerate(release(Symlink, "2.0.0", Some("./bin/web")), true);
    // Crashes before the switch are undone and retried, so they end new; crashes after the
    // switch but before the health check passed roll back; crashes after it passed commit.
    assert!(old > 0 && new > 0, "old {old}, new {new}");
}

#[test]
fn a_crash_after_any_operation_of_a_failing_upgrade_ends_at_the_old_version() {
    let (old, new) = enumerate(release(Symlink, "2.0.0", Some("exit 1")), false);
    assert!(old > 0);
    assert_eq!(
        new, 0,
        "a release whose health check fails must never stay installed"
    );
}

#[test]
fn a_crash_after_any_operation_of_an_upgrade_from_a_delta_ends_at_exactly_one_version() {
    for layout in [Symlink, Overlay] {
        let mut next = release(layout, "2.0.0", Some("./bin/web"));
        next.via_delta = true;
        let (old, new) = enumerate(next, true);
        assert!(old > 0 && new > 0, "{layout:?}: old {old}, new {new}");
    }
}

#[test]
fn a_crash_after_any_operation_of_an_overlay_upgrade_ends_at_exactly_one_version() {
    let (old, new) = enumerate(release(Overlay, "2.0.0", Some("./bin/web")), true);
    assert!(old > 0 && new > 0, "old {old}, new {new}");
}

#[test]
fn a_crash_after_any_operation_of_a_failing_overlay_upgrade_ends_at_the_old_version() {
    let (old, new) = enumerate(release(Overlay, "2.0.0", Some("exit 1")), false);
    assert!(old > 0);
    assert_eq!(new, 0);
}

mod property {
    //! The same invariant over generated releases: random file sets for both versions, either
    //! layout, a healthy or failing release, and a crash at a random operation.
    use super::*;
    use proptest::prelude::*;

    const PATHS: &[&str] = &["a", "b/c", "b/d", "e/f/g", "bin/web"];

    fn files() -> impl Strategy<Value = Vec<(String, String, u32)>> {
        proptest::sample::subsequence(PATHS.to_vec(), 1..=PATHS.len()).prop_flat_map(|paths| {
            let n = paths.len();
            (
                Just(paths),
                proptest::collection::vec("[a-z]{0,12}", n),
                proptest::collection::vec(prop_oneof![Just(0o644u32), Just(0o755), Just(0o600)], n),
            )
                .prop_map(|(paths, contents, modes)| {
                    paths
                        .into_iter()
                        .zip(contents)
                        .zip(modes)
                        .map(|((p, c), m)| (p.to_string(), c, m))
                        .collect()
                })
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        #[test]
        fn any_crash_in_any_install_ends_at_exactly_one_version(
            overlay in any::<bool>(),
            healthy in any::<bool>(),
            v1 in files(),
            v2 in files(),
            crash_at in 1usize..60,
        ) {
            let layout = if overlay { Overlay } else { Symlink };
            let first = Release { layout, version: "1.0.0", files: v1, links: vec![], health_check: None, via_delta: false };
            let check = if healthy { Some("true") } else { Some("false") };
            let next = Release { layout, version: "2.0.0", files: v2, links: vec![], health_check: check, via_delta: false };

            let reference = device_at(&first, &next);
            let old = tree(&reference.root());
            reference.install(Arc::new(RealFs)).unwrap();
            let new = if healthy { tree(&reference.root()) } else { old.clone() };

            let d = device_at(&first, &next);
            let _ = d.install(Arc::new(CrashFs::new(crash_at)));
            d.install(Arc::new(RealFs)).unwrap();
            let t = tree(&d.root());
            prop_assert!(t == old || t == new, "mixed tree after a crash at op {}: {:#?}", crash_at, t);
            if !healthy {
                prop_assert_eq!(&t, &old);
            }
            prop_assert_eq!(d.reports().len(), 1);
        }
    }
}
