use ferry_manifests::wire::{HostFacts, InstalledItem};

use crate::store::{HostRow, Store};

fn host(id: &str) -> HostRow {
    HostRow {
        id: id.into(),
        facts: HostFacts {
            hostname: format!("host-{id}"),
            os: "debian".into(),
            os_version: "12".into(),
            arch: "x86_64".into(),
            agent_version: "0.1.0".into(),
            device_class: None,
            newest_manifest_at: None,
        },
        enrolled_at: "2026-01-01T00:00:00Z".into(),
        last_seen: "2026-01-01T00:00:00Z".into(),
        device_tags: vec![],
        device_friendly_name: None,
        operator_tags: None,
        operator_friendly_name: None,
        accepted: true,
        tenant_id: None,
        auth: "token".into(),
        clone_seen: None,
        kind: "agent".into(),
        attributes: Default::default(),
        site: None,
        share_url: None,
        share_fault: None,
    }
}

/// Pages walk every host once, in id order, each with its own installed items.
#[tokio::test]
async fn pages_cover_every_host_once_with_its_items() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(&dir.path().join("ferry.db"))
        .await
        .unwrap();
    let ids = ["e", "a", "c", "b", "d"];
    for id in ids {
        let h = host(id);
        store.create_host(&h, &format!("hash-{id}")).await.unwrap();
        let installed = [InstalledItem {
            item: format!("item-{id}"),
            version: Some("1.0.0".parse().unwrap()),
        }];
        store
            .update_host(h.into(), &installed, Some(3600), 7)
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..10 {
        let page = store.hosts_page(after.as_deref(), 2).await.unwrap();
        let Some((last, _)) = page.last() else { break };
        assert!(page.len() <= 2);
        after = Some(last.id.clone());
        for (h, installed) in page {
            let items: Vec<String> = installed.into_iter().map(|i| i.item).collect();
            assert_eq!(items, [format!("item-{}", h.id)]);
            seen.push(h.id);
        }
    }
    assert_eq!(seen, ["a", "b", "c", "d", "e"]);

    // By id, in the order asked, the unknown left out.
    let ids: Vec<String> = ["d", "nope", "a"].map(String::from).to_vec();
    let got: Vec<String> = store
        .hosts_by_ids(&ids)
        .await
        .unwrap()
        .into_iter()
        .map(|(h, _)| h.id)
        .collect();
    assert_eq!(got, ["d", "a"]);
    // Who has which version.
    let which = [InstalledItem {
        item: "item-c".into(),
        version: Some("1.0.0".parse().unwrap()),
    }];
    assert_eq!(store.hosts_with_installed(&which).await.unwrap(), ["c"]);
    let counts = store.installed_counts().await.unwrap();
    assert_eq!(counts.len(), 5);
    assert!(counts.iter().all(|(_, n)| *n == 1));
    let seen = store.hosts_seen(Some("HOST-B"), None).await.unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].0, "b");
}

/// An enrolment token is spent one use at a time, never past its last use or its expiry, and
/// says whether its hosts wait for acceptance.
#[tokio::test]
async fn an_enrolment_token_is_spent_within_its_uses_and_time() {
    use crate::store::TokenLimits;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(&dir.path().join("ferry.db"))
        .await
        .unwrap();
    let now = "2026-06-01T00:00:00.000Z";
    let limits = TokenLimits {
        expires_at: Some("2026-06-02T00:00:00.000Z".into()),
        uses: Some(2),
        needs_acceptance: true,
        user_id: None,
        tenant_id: None,
    };
    store.add_token("enrol", "f", "h1", &limits).await.unwrap();
    store
        .add_token("enrol", "open", "h2", &TokenLimits::default())
        .await
        .unwrap();
    assert_eq!(
        store
            .spend_enrol_token("h1", now)
            .await
            .unwrap()
            .map(|(n, _)| n),
        Some(true)
    );
    assert_eq!(
        store
            .spend_enrol_token("h1", now)
            .await
            .unwrap()
            .map(|(n, _)| n),
        Some(true)
    );
    assert_eq!(
        store
            .spend_enrol_token("h1", now)
            .await
            .unwrap()
            .map(|(n, _)| n),
        None,
        "used up"
    );
    let later = "2026-06-03T00:00:00.000Z";
    assert_eq!(
        store
            .spend_enrol_token("h2", later)
            .await
            .unwrap()
            .map(|(n, _)| n),
        Some(false)
    );
    store
        .add_token("enrol", "short", "h3", &limits)
        .await
        .unwrap();
    assert_eq!(
        store
            .spend_enrol_token("h3", later)
            .await
            .unwrap()
            .map(|(n, _)| n),
        None,
        "expired"
    );
    assert_eq!(
        store
            .spend_enrol_token("nope", now)
            .await
            .unwrap()
            .map(|(n, _)| n),
        None
    );
    store.ensure_admin().await.unwrap();
    let tenant = store.tenants().await.unwrap().remove(0).0;
    let views = store.tokens(&tenant).await.unwrap();
    let f = views.iter().find(|t| t.name == "f").unwrap();
    assert_eq!(f.uses_left, Some(0));
    assert!(f.needs_acceptance);
}

/// Why a pending update waits is noted on it; the same reason again still finds it; an
/// update of another host or one no longer pending is not found.
#[tokio::test]
async fn a_waiting_reason_is_noted_on_the_hosts_pending_update_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(&dir.path().join("ferry.db"))
        .await
        .unwrap();
    for id in ["a", "b"] {
        store
            .create_host(&host(id), &format!("hash-{id}"))
            .await
            .unwrap();
    }
    let version: semver::Version = "1.0.0".parse().unwrap();
    let update = store
        .create_update("a", "web", &version, "user:admin", None)
        .await
        .unwrap();
    let message = |store: Store, update: String| async move {
        store.history(None, None, Some(&update)).await.unwrap()[0]
            .message
            .clone()
    };
    let why = "waiting: 1 device(s) at site s are fetching this release first";
    assert!(store.note_update(&update, "a", why).await.unwrap());
    assert!(
        store.note_update(&update, "a", why).await.unwrap(),
        "the same again"
    );
    assert_eq!(message(store.clone(), update.clone()).await, why);
    assert!(!store.note_update(&update, "b", "not mine").await.unwrap());
    assert_eq!(message(store.clone(), update.clone()).await, why);
    assert!(store.cancel_update(&update, "cancelled").await.unwrap());
    assert!(!store.note_update(&update, "a", why).await.unwrap());
}
