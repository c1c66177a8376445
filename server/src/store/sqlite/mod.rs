//! The SQLite backend (WAL): the embedded default, zero configuration. One module per table
//! or aggregate; migrations under `server/migrations/sqlite/`.

mod batches;
mod campaigns;
mod hosts;
mod items;
mod mqtt;
mod releases;
mod roots;
mod tokens;
mod updates;

use std::path::Path;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{AssertSqlSafe, SqlitePool};

use super::{IdKind, Result, StoreError};

/// Schema migrations, applied in order; each runs once, recorded in `schema_migrations`.
const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        include_str!("../../../migrations/sqlite/0001_initial.sql"),
    ),
    (
        2,
        include_str!("../../../migrations/sqlite/0002_newest_manifest.sql"),
    ),
    (
        3,
        include_str!("../../../migrations/sqlite/0003_trust_roots.sql"),
    ),
    (
        4,
        include_str!("../../../migrations/sqlite/0004_host_labels.sql"),
    ),
    (
        5,
        include_str!("../../../migrations/sqlite/0005_batches.sql"),
    ),
    (
        6,
        include_str!("../../../migrations/sqlite/0006_campaigns.sql"),
    ),
    (7, include_str!("../../../migrations/sqlite/0007_items.sql")),
    (
        8,
        include_str!("../../../migrations/sqlite/0008_release_url.sql"),
    ),
    (
        9,
        include_str!("../../../migrations/sqlite/0009_campaign_edits.sql"),
    ),
    (
        10,
        include_str!("../../../migrations/sqlite/0010_mqtt_connections.sql"),
    ),
    (
        11,
        include_str!("../../../migrations/sqlite/0011_batch_actor.sql"),
    ),
    (
        12,
        include_str!("../../../migrations/sqlite/0012_pending_index.sql"),
    ),
    (
        13,
        include_str!("../../../migrations/sqlite/0013_installed_versions.sql"),
    ),
    (
        14,
        include_str!("../../../migrations/sqlite/0014_interactive_updates.sql"),
    ),
    (
        15,
        include_str!("../../../migrations/sqlite/0015_interactive_batches.sql"),
    ),
    (
        16,
        include_str!("../../../migrations/sqlite/0016_terminal_transcript.sql"),
    ),
    (
        17,
        include_str!("../../../migrations/sqlite/0017_fetched.sql"),
    ),
];

#[derive(Clone)]
pub(super) struct Sqlite {
    pool: SqlitePool,
}

impl Sqlite {
    pub(super) async fn open(path: &Path) -> Result<Sqlite> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL + NORMAL: durable across application crashes; a power cut may lose the last
            // transactions but never corrupts the database.
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(std::time::Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        let db = Sqlite { pool };
        db.migrate().await?;
        Ok(db)
    }

    /// A transaction that writes: `BEGIN IMMEDIATE` takes the write lock at once, waiting
    /// (busy_timeout) for another writer to finish. A deferred transaction that reads and then
    /// writes would instead fail at once with "database is locked" when another connection
    /// wrote in between (WAL mode), which concurrent reports hit.
    pub(super) async fn write_tx(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    pub async fn ids_with_prefix(&self, kind: IdKind, prefix: &str) -> Result<Vec<String>> {
        let pattern = format!(
            "{}%",
            prefix
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        Ok(sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT id FROM {} WHERE id LIKE ? ESCAPE '\\' ORDER BY id LIMIT 3",
            kind.table()
        )))
        .bind(pattern)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn migrate(&self) -> Result<()> {
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)",
        )
        .execute(&self.pool)
        .await?;
        for &(version, sql) in MIGRATIONS {
            let done: Option<i64> =
                sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = ?")
                    .bind(version)
                    .fetch_optional(&self.pool)
                    .await?;
            if done.is_some() {
                continue;
            }
            let mut tx = self.write_tx().await?;
            sqlx::raw_sql(sql).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)")
                .bind(version)
                .bind(crate::now())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            tracing::info!(version, "applied database migration");
        }
        Ok(())
    }
}

/// Tags are stored comma-separated (a tag cannot hold a comma).
fn split_tags(text: &str) -> Vec<String> {
    text.split(',')
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

fn parse_version(s: &str) -> Result<semver::Version> {
    semver::Version::parse(s).map_err(|e| StoreError::Corrupt(format!("version {s:?}: {e}")))
}

fn opt_version(s: Option<String>) -> Result<Option<semver::Version>> {
    s.map(|v| parse_version(&v)).transpose()
}
