//! The SQL store, one code for both databases: SQLite (WAL), the embedded default with zero
//! configuration, and PostgreSQL, which several server instances share. Queries are written
//! once in the SQL both understand (`$N` parameters, `ON CONFLICT`, `IS NOT DISTINCT FROM`);
//! the few places they differ go through [`Dialect`]. One module per table or aggregate;
//! migrations under `server/migrations/sqlite/` and `server/migrations/postgres/`.

mod audit;
mod batches;
mod campaigns;
mod certificates;
mod checkins;
mod ddi;
mod hosts;
mod items;
mod mqtt;
mod packages;
#[cfg(test)]
mod upgrade_tests;
pub use packages::PackageCounts;
pub use users::OwnedKind;
mod releases;
mod roots;
mod sites;
mod tokens;
mod updates;
mod users;
mod webhooks;

use std::path::Path;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{AnyPool, AssertSqlSafe, ConnectOptions, Executor};

use super::{IdKind, Result, StoreError};

/// Schema migrations, applied in order; each runs once, recorded in `schema_migrations`.
const SQLITE_MIGRATIONS: &[(i64, &str)] = &[
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
    (
        18,
        include_str!("../../../migrations/sqlite/0018_release_mirrors.sql"),
    ),
    (
        19,
        include_str!("../../../migrations/sqlite/0019_facts_hash.sql"),
    ),
    (
        20,
        include_str!("../../../migrations/sqlite/0020_open_updates_index.sql"),
    ),
    (
        21,
        include_str!("../../../migrations/sqlite/0021_enrolment_limits.sql"),
    ),
    (
        22,
        include_str!("../../../migrations/sqlite/0022_withdrawn_releases.sql"),
    ),
    (
        23,
        include_str!("../../../migrations/sqlite/0023_device_times.sql"),
    ),
    (
        24,
        include_str!("../../../migrations/sqlite/0024_host_packages.sql"),
    ),
    (
        25,
        include_str!("../../../migrations/sqlite/0025_package_updates.sql"),
    ),
    (
        26,
        include_str!("../../../migrations/sqlite/0026_users.sql"),
    ),
    (
        27,
        include_str!("../../../migrations/sqlite/0027_audit.sql"),
    ),
    (
        28,
        include_str!("../../../migrations/sqlite/0028_campaign_approvals.sql"),
    ),
    (
        29,
        include_str!("../../../migrations/sqlite/0029_sign_in.sql"),
    ),
    (
        30,
        include_str!("../../../migrations/sqlite/0030_audit_changes.sql"),
    ),
    (
        31,
        include_str!("../../../migrations/sqlite/0031_tenants.sql"),
    ),
    (
        32,
        include_str!("../../../migrations/sqlite/0032_catalogs.sql"),
    ),
    (
        33,
        include_str!("../../../migrations/sqlite/0033_mqtt_tenants.sql"),
    ),
    (
        34,
        include_str!("../../../migrations/sqlite/0034_tenant_trust_roots.sql"),
    ),
    (
        35,
        include_str!("../../../migrations/sqlite/0035_device_certificates.sql"),
    ),
    (
        36,
        include_str!("../../../migrations/sqlite/0036_campaign_observation.sql"),
    ),
    (
        37,
        include_str!("../../../migrations/sqlite/0037_webhooks.sql"),
    ),
    (38, include_str!("../../../migrations/sqlite/0038_ddi.sql")),
    (
        39,
        include_str!("../../../migrations/sqlite/0039_ddi_actions.sql"),
    ),
    (
        40,
        include_str!("../../../migrations/sqlite/0040_metered_allowed.sql"),
    ),
    (
        41,
        include_str!("../../../migrations/sqlite/0041_sites.sql"),
    ),
    (
        42,
        include_str!("../../../migrations/sqlite/0042_release_metered_allowed.sql"),
    ),
];

/// PostgreSQL's schema starts at SQLite's version 17, in one step; later versions are added
/// to both lists under the same number.
const POSTGRES_MIGRATIONS: &[(i64, &str)] = &[
    (
        17,
        include_str!("../../../migrations/postgres/0017_initial.sql"),
    ),
    (
        18,
        include_str!("../../../migrations/postgres/0018_release_mirrors.sql"),
    ),
    (
        19,
        include_str!("../../../migrations/postgres/0019_facts_hash.sql"),
    ),
    (
        20,
        include_str!("../../../migrations/postgres/0020_open_updates_index.sql"),
    ),
    (
        21,
        include_str!("../../../migrations/postgres/0021_enrolment_limits.sql"),
    ),
    (
        22,
        include_str!("../../../migrations/postgres/0022_withdrawn_releases.sql"),
    ),
    (
        23,
        include_str!("../../../migrations/postgres/0023_device_times.sql"),
    ),
    (
        24,
        include_str!("../../../migrations/postgres/0024_host_packages.sql"),
    ),
    (
        25,
        include_str!("../../../migrations/postgres/0025_package_updates.sql"),
    ),
    (
        26,
        include_str!("../../../migrations/postgres/0026_users.sql"),
    ),
    (
        27,
        include_str!("../../../migrations/postgres/0027_audit.sql"),
    ),
    (
        28,
        include_str!("../../../migrations/postgres/0028_campaign_approvals.sql"),
    ),
    (
        29,
        include_str!("../../../migrations/postgres/0029_sign_in.sql"),
    ),
    (
        30,
        include_str!("../../../migrations/postgres/0030_audit_changes.sql"),
    ),
    (
        31,
        include_str!("../../../migrations/postgres/0031_tenants.sql"),
    ),
    (
        32,
        include_str!("../../../migrations/postgres/0032_catalogs.sql"),
    ),
    (
        33,
        include_str!("../../../migrations/postgres/0033_mqtt_tenants.sql"),
    ),
    (
        34,
        include_str!("../../../migrations/postgres/0034_tenant_trust_roots.sql"),
    ),
    (
        35,
        include_str!("../../../migrations/postgres/0035_device_certificates.sql"),
    ),
    (
        36,
        include_str!("../../../migrations/postgres/0036_campaign_observation.sql"),
    ),
    (
        37,
        include_str!("../../../migrations/postgres/0037_webhooks.sql"),
    ),
    (
        38,
        include_str!("../../../migrations/postgres/0038_ddi.sql"),
    ),
    (
        39,
        include_str!("../../../migrations/postgres/0039_ddi_actions.sql"),
    ),
    (
        40,
        include_str!("../../../migrations/postgres/0040_metered_allowed.sql"),
    ),
    (
        41,
        include_str!("../../../migrations/postgres/0041_sites.sql"),
    ),
    (
        42,
        include_str!("../../../migrations/postgres/0042_release_metered_allowed.sql"),
    ),
];

/// Where the two databases' SQL differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// The rows of a JSON array of strings bound as parameter `param` (`$1`), as a subquery
    /// of one column `value`.
    fn json_texts(self, param: &str) -> String {
        match self {
            Dialect::Sqlite => format!("(SELECT value FROM json_each({param}))"),
            Dialect::Postgres => {
                format!("(SELECT jsonb_array_elements_text(CAST({param} AS jsonb)) AS value)")
            }
        }
    }

    /// Whether `needle` occurs in `haystack` (both SQL expressions).
    fn contains(self, haystack: &str, needle: &str) -> String {
        match self {
            Dialect::Sqlite => format!("instr({haystack}, {needle}) > 0"),
            Dialect::Postgres => format!("strpos({haystack}, {needle}) > 0"),
        }
    }
}

#[derive(Clone)]
pub(super) struct Sql {
    /// Reads (and on PostgreSQL, writes too).
    pool: AnyPool,
    /// Writes. On SQLite one connection: writers queue here, in order, rather than contend
    /// for the database's write lock (whose busy handler sleeps); readers never wait for them
    /// (WAL). On PostgreSQL the same pool as reads.
    writer: AnyPool,
    dialect: Dialect,
    /// PostgreSQL's URL, for the connection that listens to notices.
    url: Option<std::sync::Arc<str>>,
    /// Check-ins to write, taken in batches by [`checkins::host_writer`].
    host_writes: tokio::sync::mpsc::Sender<checkins::HostWrite>,
}

/// Check-ins queued for the writer at most; beyond, a check-in waits for room.
const HOST_WRITE_QUEUE: usize = 10_000;

/// How long a PostgreSQL request waits for a connection before it answers 503.
const PG_ACQUIRE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

impl Sql {
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Opens (creating if needed) a SQLite database file.
    pub(super) async fn open_sqlite(path: &Path) -> Result<Sql> {
        sqlx::any::install_default_drivers();
        let url = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .to_url_lossy();
        let options = AnyConnectOptions::from_url(&url)?;
        let sqlite_pool = |connections: u32| {
            AnyPoolOptions::new()
                .max_connections(connections)
                .acquire_timeout(std::time::Duration::from_secs(30))
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        // WAL + NORMAL: durable across application crashes; a power cut may
                        // lose the last transactions but never corrupts the database.
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
                             PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;",
                        )
                        .await?;
                        Ok(())
                    })
                })
        };
        // The writer first: it creates the file and turns WAL on before readers open it.
        let writer = sqlite_pool(1).connect_with(options.clone()).await?;
        let pool = sqlite_pool(8).connect_with(options).await?;
        let (host_writes, queue) = tokio::sync::mpsc::channel(HOST_WRITE_QUEUE);
        let db = Sql {
            pool,
            writer,
            dialect: Dialect::Sqlite,
            url: None,
            host_writes,
        };
        tokio::spawn(checkins::host_writer(db.clone(), queue));
        db.migrate().await?;
        Ok(db)
    }

    /// Connects to a PostgreSQL database (`postgres://user:password@host:port/name`).
    pub(super) async fn open_postgres(url: &str, max_connections: u32) -> Result<Sql> {
        sqlx::any::install_default_drivers();
        let options: AnyConnectOptions = url
            .parse()
            .map_err(|e| StoreError::Config(format!("database URL: {e}")))?;
        // Short: with the database away, a request fails within seconds with a 503 that says
        // so, rather than hanging (docs/operations.md, *Faults*).
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(PG_ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await?;
        let (host_writes, queue) = tokio::sync::mpsc::channel(HOST_WRITE_QUEUE);
        let db = Sql {
            writer: pool.clone(),
            pool,
            dialect: Dialect::Postgres,
            url: Some(url.into()),
            host_writes,
        };
        tokio::spawn(checkins::host_writer(db.clone(), queue));
        db.migrate().await?;
        Ok(db)
    }

    pub(super) fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Takes PostgreSQL's advisory lock (`space`, `key`) on a connection of its own, waiting
    /// for it if `wait`; the lock lasts as long as that connection's session. `None` when
    /// another session holds it (and `wait` is false), or on SQLite (one instance, no lock).
    pub(super) async fn advisory_lock(
        &self,
        space: i32,
        key: &str,
        wait: bool,
    ) -> Result<Option<sqlx::pool::PoolConnection<sqlx::Any>>> {
        if self.dialect == Dialect::Sqlite {
            return Ok(None);
        }
        let mut conn = self.pool.acquire().await?;
        if wait {
            sqlx::query("SELECT pg_advisory_lock($1, hashtext($2))")
                .bind(space)
                .bind(key)
                .execute(&mut *conn)
                .await?;
            return Ok(Some(conn));
        }
        let taken: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1, hashtext($2))")
            .bind(space)
            .bind(key)
            .fetch_one(&mut *conn)
            .await?;
        Ok(taken.then_some(conn))
    }

    /// Gives back an advisory lock taken by [`Sql::advisory_lock`].
    pub(super) async fn advisory_unlock(
        mut conn: sqlx::pool::PoolConnection<sqlx::Any>,
        space: i32,
        key: &str,
    ) -> Result<()> {
        let done = sqlx::query("SELECT pg_advisory_unlock($1, hashtext($2))")
            .bind(space)
            .bind(key)
            .execute(&mut *conn)
            .await;
        if done.is_err() {
            // The session ends with the connection, and the lock with it.
            conn.close_on_drop();
        }
        done?;
        Ok(())
    }

    /// Sends a notice to every instance listening (PostgreSQL).
    pub(super) async fn notify(&self, payload: &str) -> Result<()> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(super::notice::CHANNEL)
            .bind(payload)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A connection of its own that hears notices (PostgreSQL; `None` on SQLite).
    pub(super) async fn listener(&self) -> Result<Option<sqlx::postgres::PgListener>> {
        match &self.url {
            Some(url) => Ok(Some(sqlx::postgres::PgListener::connect(url).await?)),
            None => Ok(None),
        }
    }

    /// A transaction that writes. On SQLite, `BEGIN IMMEDIATE` takes the write lock at once,
    /// waiting (busy_timeout) for another writer to finish; a deferred transaction that reads
    /// and then writes would instead fail at once with "database is locked" when another
    /// connection wrote in between (WAL mode), which concurrent reports hit.
    pub(super) async fn write_tx(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        Ok(match self.dialect {
            Dialect::Sqlite => self.writer.begin_with("BEGIN IMMEDIATE").await?,
            Dialect::Postgres => self.writer.begin().await?,
        })
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
            "SELECT id FROM {} WHERE id LIKE $1 ESCAPE '\\' ORDER BY id LIMIT 3",
            kind.table()
        )))
        .bind(pattern)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn migrate(&self) -> Result<()> {
        let mut conn = self.writer.acquire().await?;
        let (migrations, lock, unlock) = match self.dialect {
            Dialect::Sqlite => (SQLITE_MIGRATIONS, None, None),
            // Instances starting together migrate one at a time.
            Dialect::Postgres => (
                POSTGRES_MIGRATIONS,
                Some("SELECT pg_advisory_lock(7305500001)"),
                Some("SELECT pg_advisory_unlock(7305500001)"),
            ),
        };
        if let Some(lock) = lock {
            sqlx::query(lock).execute(&mut *conn).await?;
        }
        let done = self.apply(&mut conn, migrations).await;
        if let Some(unlock) = unlock {
            sqlx::query(unlock).execute(&mut *conn).await?;
        }
        done
    }

    async fn apply(
        &self,
        conn: &mut sqlx::AnyConnection,
        migrations: &[(i64, &'static str)],
    ) -> Result<()> {
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at TEXT NOT NULL)",
        )
        .execute(&mut *conn)
        .await?;
        for &(version, sql) in migrations {
            let done: Option<i64> =
                sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = $1")
                    .bind(version)
                    .fetch_optional(&mut *conn)
                    .await?;
            if done.is_some() {
                continue;
            }
            let begin = match self.dialect {
                Dialect::Sqlite => "BEGIN IMMEDIATE",
                Dialect::Postgres => "BEGIN",
            };
            let mut tx = sqlx::Connection::begin_with(&mut *conn, begin).await?;
            sqlx::raw_sql(sql).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)")
                .bind(version)
                .bind(ferry_manifests::wire::now())
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
