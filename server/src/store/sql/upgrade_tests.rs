//! A database made by the version before users (schema 25), with its operator token and
//! history, upgrades in place: the token becomes the `admin` user's and keeps working, and
//! what the old version recorded is still there.

use sqlx::Connection as _;

use super::SQLITE_MIGRATIONS;
use crate::store::Store;

/// The schema the version before users left, with one operator token (`hash`) and one
/// history entry's worth of host.
async fn old_database(path: &std::path::Path, hash: &str) {
    sqlx::any::install_default_drivers();
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
    sqlx::raw_sql(
        "CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, applied_at TEXT NOT NULL)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    for &(version, sql) in SQLITE_MIGRATIONS.iter().filter(|(v, _)| *v <= 25) {
        sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
        sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, '2026-11-01T00:00:00Z')")
            .bind(version)
            .execute(&mut conn)
            .await
            .unwrap();
    }
    sqlx::query(
        "INSERT INTO tokens (id, kind, name, hash, created_at) VALUES ('t1', 'operator', 'first-start', $1, '2026-11-01T00:00:00Z')",
    )
    .bind(hash)
    .execute(&mut conn)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO tokens (id, kind, name, hash, created_at) VALUES ('t2', 'enrol', 'fleet', 'enrol-hash', '2026-11-01T00:00:00Z')",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
}

#[tokio::test]
async fn the_operator_token_of_a_database_from_before_users_becomes_the_admins() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ferry.db");
    old_database(&path, "old-operator-hash").await;

    let store = Store::open_sqlite(&path).await.unwrap();
    store.ensure_admin().await.unwrap();
    let who = store
        .live_operator("old-operator-hash")
        .await
        .unwrap()
        .expect("the old operator token still works");
    assert_eq!(who.user_name, "admin");
    assert_eq!(who.role, "admin");
    assert_eq!(who.token_name, "first-start");
    let users = store.users().await.unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].tokens, 1, "the admin holds the old token");
    // The enrolment token is nobody's and still an enrolment token.
    assert!(store.live_operator("enrol-hash").await.unwrap().is_none());
    // Starting again changes nothing (the admin is not made twice).
    drop(store);
    let store = Store::open_sqlite(&path).await.unwrap();
    store.ensure_admin().await.unwrap();
    assert_eq!(store.users().await.unwrap().len(), 1);
    assert!(store
        .live_operator("old-operator-hash")
        .await
        .unwrap()
        .is_some());
}
