//! The service layer in process, over a fresh SQLite database: a check-in's long-poll and
//! its wake-up, and the rules an install asked for must pass, whoever asks.

use std::time::{Duration, Instant};

use ferry_manifests::wire::CheckInRequest;

use super::updates::{trigger, Install};
use super::ServiceError;
use super::{checkin, Actor};
use crate::testing::TestServer;

/// Enrols a host through the store as the enrol endpoint does; returns its id.
async fn enrolled(s: &TestServer, hostname: &str, items: &[(&str, Option<&str>)]) -> String {
    let facts = serde_json::from_value(TestServer::facts(hostname, items)).unwrap();
    let req = CheckInRequest {
        facts,
        wait_secs: 0,
        inventory_digest: None,
        health: vec![],
    };
    let id = uuid::Uuid::new_v4().to_string();
    let now = ferry_manifests::wire::now();
    let row = checkin::host_row(id.clone(), &req.facts, now.clone(), now);
    s.state.store.create_host(&row, &id).await.unwrap();
    checkin::check_in(&s.state, id.clone(), true, None, req)
        .await
        .unwrap();
    id
}

fn install<'a>(host_id: &'a str, item: &'a str) -> Install<'a> {
    Install {
        host_id,
        item,
        version: None,
        force: false,
        interactive: None,
        actor: Actor::User("admin".into()),
        metered_allowed: false,
    }
}

fn refusal(result: Result<String, ServiceError>) -> ServiceError {
    match result {
        Ok(id) => panic!("queued update {id}; a refusal was expected"),
        Err(e) => e,
    }
}

#[tokio::test]
async fn an_install_of_an_unknown_release_or_host_is_refused_and_nothing_is_queued() {
    let s = TestServer::start().await;
    let host = enrolled(&s, "pump-1", &[("web", Some("1.0.0"))]).await;
    let e = refusal(trigger(&s.state, install(&host, "web")).await);
    assert!(
        matches!(&e, ServiceError::NotFound(m) if m.contains("no release of web")),
        "{e:?}"
    );
    let e = refusal(trigger(&s.state, install("no-such-host", "web")).await);
    assert!(matches!(e, ServiceError::NotFound(_)), "{e:?}");
    assert!(s
        .state
        .store
        .history(None, None, None)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn a_long_poll_waits_for_work_and_a_wake_up_ends_it_at_once() {
    let s = TestServer::start().await;
    let host = enrolled(&s, "pump-2", &[]).await;
    let facts = serde_json::from_value(TestServer::facts("pump-2", &[])).unwrap();
    let started = Instant::now();
    let waiting = tokio::spawn({
        let state = s.state.clone();
        let host = host.clone();
        async move {
            let req = CheckInRequest {
                facts,
                wait_secs: 20,
                inventory_digest: None,
                health: vec![],
            };
            checkin::check_in(&state, host, true, None, req).await
        }
    });
    // The long-poll is held until something wakes it.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !matches!(
        s.state.presence.get(&host).map(|(c, _)| c),
        Some(crate::policy::fleet::Contact::Holding)
    ) {
        assert!(
            Instant::now() < deadline,
            "the check-in never held its long-poll"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!waiting.is_finished());
    s.state.wake(&host);
    let answer = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("a wake-up answers the long-poll")
        .unwrap()
        .unwrap();
    assert!(answer.jobs.is_empty());
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[tokio::test]
async fn a_report_naming_another_hosts_job_touches_nothing_of_that_job() {
    let s = TestServer::start().await;
    let victim = enrolled(&s, "pump-a", &[("web", Some("1.0.0"))]).await;
    let rogue = enrolled(&s, "pump-b", &[("web", Some("1.0.0"))]).await;
    let version: semver::Version = "1.1.0".parse().unwrap();
    let job = s
        .state
        .store
        .create_update(
            &victim,
            "web",
            &version,
            &Actor::User("admin".into()).to_text(),
            None,
        )
        .await
        .unwrap();
    let mut live = s.state.live.subscribe(&job);
    let report: ferry_manifests::wire::Report = serde_json::from_value(serde_json::json!({
        "report_id": "rogue-1", "job_id": job, "item": "web", "version": "1.1.0",
        "outcome": "installed", "message": "installed 1.1.0", "output": "",
        "started_at": "2026-01-01T00:00:00.000Z", "finished_at": "2026-01-01T00:00:01.000Z"
    }))
    .unwrap();
    let acked = super::report::reports_arrived(&s.state, &rogue, vec![report], vec![], None)
        .await
        .unwrap();
    assert_eq!(acked, ["rogue-1"], "the rogue's own report is still taken");
    let entry = super::updates::entry(&s.state, &job).await.unwrap();
    assert_eq!(
        entry.status, "pending",
        "another host's report finished the job"
    );
    assert!(
        live.try_recv().is_err(),
        "the job's live stream heard of it"
    );
    let rogue_history = super::updates::history(&s.state, Some(&rogue), None)
        .await
        .unwrap();
    assert_eq!(rogue_history.len(), 1, "kept as the rogue's own entry");
}

#[tokio::test]
async fn a_package_report_for_another_hosts_upgrade_records_nothing() {
    let s = TestServer::start().await;
    let victim = enrolled(&s, "pump-a", &[]).await;
    let rogue = enrolled(&s, "pump-b", &[]).await;
    let planned = vec![ferry_manifests::wire::PackageChange {
        name: "openssl".into(),
        from: Some("3.0.14".into()),
        to: Some("3.0.15".into()),
    }];
    let job = s
        .state
        .store
        .create_package_update(&victim, "apt", &planned, "mqtt", None)
        .await
        .unwrap();
    let report: ferry_manifests::wire::PackageReport = serde_json::from_value(serde_json::json!({
        "report_id": "rogue-apt", "job_id": job, "source": "apt", "outcome": "failed",
        "message": "forged", "output": "", "changes": [],
        "started_at": "2026-01-01T00:00:00.000Z", "finished_at": "2026-01-01T00:00:01.000Z"
    }))
    .unwrap();
    let acked = super::report::reports_arrived(&s.state, &rogue, vec![], vec![report], None)
        .await
        .unwrap();
    assert_eq!(
        acked,
        ["rogue-apt"],
        "acknowledged, so the rogue stops resending"
    );
    let entry = super::updates::entry(&s.state, &job).await.unwrap();
    assert_eq!(entry.status, "pending");
    assert_eq!(entry.item, "apt packages");
    assert_eq!(
        entry.packages, planned,
        "the plan shows until the device reports"
    );
    let rogue_history = super::updates::history(&s.state, Some(&rogue), None)
        .await
        .unwrap();
    assert!(
        rogue_history.is_empty(),
        "no entry made up: {rogue_history:?}"
    );
}

#[tokio::test]
async fn a_host_named_like_another_hosts_id_never_stands_in_for_it() {
    let s = TestServer::start().await;
    let victim = enrolled(&s, "pump-a", &[]).await;
    let rogue = enrolled(&s, &victim, &[]).await;
    let (id, _) = super::hosts::resolve(&s.state, &victim).await.unwrap();
    assert_eq!(
        id, victim,
        "the full id went to the host calling itself by it"
    );
    // A prefix of the victim's id that is also the rogue's name is refused, not guessed.
    let prefix = &victim[..8];
    let impostor = enrolled(&s, prefix, &[]).await;
    let e = super::hosts::resolve(&s.state, prefix).await.unwrap_err();
    assert!(matches!(e, ServiceError::Conflict(_)), "{e:?}");
    // Each is still reached by its own full id.
    for host in [&victim, &rogue, &impostor] {
        assert_eq!(
            &super::hosts::resolve(&s.state, host).await.unwrap().0,
            host
        );
    }
}

/// A release whose signed expiry passed after it was published is not sent to a host: every
/// device would refuse it. The trigger says so, in the server's words, and queues nothing.
#[tokio::test]
async fn an_install_of_a_release_that_has_expired_is_refused() {
    let s = TestServer::start().await;
    let host = enrolled(&s, "pump-e", &[("web", Some("1.0.0"))]).await;
    let day = |d: i64| {
        ferry_manifests::wire::timestamp(time::OffsetDateTime::now_utc() + time::Duration::days(d))
    };
    let view = ferry_manifests::wire::ReleaseView {
        item: "web".into(),
        version: "1.1.0".parse().unwrap(),
        category: "bugfix".into(),
        released_at: day(-30),
        expires_at: day(-1),
        notes: String::new(),
        release_url: None,
        layout: "symlink".into(),
        artifact_name: "web-1.1.0.tar.gz".into(),
        artifact_size: 10,
        artifact_sha256: "a".repeat(64),
        signed_by: vec![],
        published_at: day(-30),
        mirrors: vec![],
        withdrawn_at: None,
        withdrawn_reason: None,
        bundle: None,
        metered_allowed: false,
    };
    assert!(s
        .state
        .store
        .add_release(&crate::store::NewRelease {
            view,
            envelope: "{}".into(),
        })
        .await
        .unwrap());
    s.state.releases_changed();
    let e = refusal(trigger(&s.state, install(&host, "web")).await);
    assert!(
        matches!(&e, ServiceError::Conflict(m) if m.contains("expired at") && m.contains("freshly signed")),
        "{e:?}"
    );
    assert!(s
        .state
        .store
        .history(None, None, None)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn a_delta_applies_only_to_the_list_it_was_made_against() {
    use ferry_manifests::wire::{inventory_digest, InventoryPackage, InventoryUpload, PackageKey};
    let s = TestServer::start().await;
    let host = enrolled(&s, "pump-a", &[]).await;
    let pkg = |name: &str, version: &str| InventoryPackage {
        source: "apt".into(),
        name: name.into(),
        version: version.into(),
        latest: None,
        category: None,
        release: None,
    };
    let whole = vec![pkg("bar", "2.0"), pkg("foo", "1.0")];
    let upload = |packages, base: Option<String>, removed, digest| InventoryUpload {
        packages,
        base,
        removed,
        digest,
    };
    super::packages::store(&s.state, &host, upload(whole.clone(), None, vec![], None))
        .await
        .unwrap();
    let base = inventory_digest(&whole);
    let after = vec![pkg("foo", "1.1")];
    let good = inventory_digest(&after);
    let gone = vec![PackageKey {
        source: "apt".into(),
        name: "bar".into(),
    }];
    // Made against another list: refused, nothing changed.
    let stale = super::packages::store(
        &s.state,
        &host,
        upload(
            vec![pkg("foo", "1.1")],
            Some("0".repeat(64)),
            gone.clone(),
            Some(good.clone()),
        ),
    )
    .await;
    assert!(
        matches!(stale, Err(ref e) if e.to_string().contains("send the whole list")),
        "{stale:?}"
    );
    // A digest that does not match the result: refused.
    let wrong = super::packages::store(
        &s.state,
        &host,
        upload(
            vec![pkg("foo", "1.1")],
            Some(base.clone()),
            vec![],
            Some(good.clone()),
        ),
    )
    .await;
    assert!(wrong.is_err(), "{wrong:?}");
    assert_eq!(s.state.store.inventory(&host).await.unwrap(), whole);
    // Right: applied.
    let stored = super::packages::store(
        &s.state,
        &host,
        upload(
            vec![pkg("foo", "1.1")],
            Some(base),
            gone,
            Some(good.clone()),
        ),
    )
    .await
    .unwrap();
    assert_eq!(stored, 1);
    assert_eq!(s.state.store.inventory(&host).await.unwrap(), after);
    assert_eq!(
        s.state.store.inventory_digest(&host).await.unwrap(),
        Some(good)
    );
}
