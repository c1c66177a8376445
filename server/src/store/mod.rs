//! The repository layer: every query the server makes lives here, behind plain methods that
//! take and return the server's own types, so handlers never see SQL. SQLite (WAL) is the
//! embedded default; a PostgreSQL backend implements the same methods.

use std::path::Path;

mod batches;
mod campaigns;

pub use batches::{BatchRow, EntryRow};
pub use campaigns::{CampaignRow, MemberRow};

use ferry_manifests::wire::{HistoryView, InstalledItem, ReleaseView};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

/// Schema migrations, applied in order; each runs once, recorded in `schema_migrations`.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/0001_initial.sql")),
    (2, include_str!("../../migrations/0002_newest_manifest.sql")),
    (3, include_str!("../../migrations/0003_trust_roots.sql")),
    (4, include_str!("../../migrations/0004_host_labels.sql")),
    (5, include_str!("../../migrations/0005_batches.sql")),
    (6, include_str!("../../migrations/0006_campaigns.sql")),
    (7, include_str!("../../migrations/0007_items.sql")),
    (8, include_str!("../../migrations/0008_release_url.sql")),
];

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("stored value is corrupt: {0}")]
    Corrupt(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

#[derive(Clone)]
pub struct Store {
    pub(crate) pool: SqlitePool,
    /// Bumped whenever updates are created, finished or cancelled, so a check-in can tell
    /// that nothing changed for a host that had no work (and skip its queries).
    updates_epoch: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

#[derive(Debug, Clone)]
pub struct HostRow {
    pub id: String,
    pub hostname: String,
    pub os: String,
    pub os_version: String,
    pub arch: String,
    pub agent_version: String,
    pub device_class: Option<String>,
    pub enrolled_at: String,
    pub last_seen: String,
    pub newest_manifest_at: Option<String>,
    pub device_tags: Vec<String>,
    pub device_friendly_name: Option<String>,
    /// Set by an operator; wins over the device's.
    pub operator_tags: Option<Vec<String>>,
    pub operator_friendly_name: Option<String>,
}

fn split_tags(text: &str) -> Vec<String> {
    text.split(',')
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

#[derive(Debug, Clone)]
pub struct NewRelease {
    pub view: ReleaseView,
    pub envelope: String,
}

#[derive(Debug, Clone)]
pub struct PendingJob {
    pub id: String,
    pub item: String,
    pub version: semver::Version,
}

/// What a report changes in the history.
#[derive(Debug, Clone)]
pub struct ReportRecord {
    pub report_id: String,
    pub host_id: String,
    pub job_id: Option<String>,
    pub item: String,
    pub version: String,
    pub from_version: Option<String>,
    pub status: String,
    pub message: String,
    pub output: String,
    pub started_at: String,
    pub finished_at: String,
}

fn parse_version(s: &str) -> Result<semver::Version> {
    semver::Version::parse(s).map_err(|e| StoreError::Corrupt(format!("version {s:?}: {e}")))
}

fn opt_version(s: Option<String>) -> Result<Option<semver::Version>> {
    s.map(|v| parse_version(&v)).transpose()
}

impl Store {
    /// Opens (creating if needed) the SQLite database and applies migrations.
    pub async fn open_sqlite(path: &Path) -> Result<Store> {
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
        let store = Store {
            pool,
            updates_epoch: Default::default(),
        };
        store.migrate().await?;
        Ok(store)
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
            let mut tx = self.pool.begin().await?;
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

    // ---- tokens ----

    pub async fn has_token(&self, kind: &str) -> Result<bool> {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM tokens WHERE kind = ? AND revoked_at IS NULL")
                .bind(kind)
                .fetch_one(&self.pool)
                .await?;
        Ok(n > 0)
    }

    pub async fn add_token(&self, kind: &str, name: &str, hash: &str) -> Result<String> {
        let id = uuid::Uuid::new_v4().to_string();
        sqlx::query("INSERT INTO tokens (id, kind, name, hash, created_at) VALUES (?, ?, ?, ?, ?)")
            .bind(&id)
            .bind(kind)
            .bind(name)
            .bind(hash)
            .bind(crate::now())
            .execute(&self.pool)
            .await?;
        Ok(id)
    }

    pub async fn tokens(&self) -> Result<Vec<ferry_manifests::wire::TokenView>> {
        let rows = sqlx::query(
            "SELECT id, kind, name, created_at, revoked_at FROM tokens ORDER BY created_at, id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ferry_manifests::wire::TokenView {
                    id: r.try_get("id")?,
                    kind: r.try_get("kind")?,
                    name: r.try_get("name")?,
                    created_at: r.try_get("created_at")?,
                    revoked_at: r.try_get("revoked_at")?,
                    token: None,
                })
            })
            .collect()
    }

    /// Revokes a token; false if there is no such active token.
    pub async fn revoke_token(&self, id: &str) -> Result<bool> {
        let done =
            sqlx::query("UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
                .bind(crate::now())
                .bind(id)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn token_valid(&self, kind: &str, hash: &str) -> Result<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM tokens WHERE kind = ? AND hash = ? AND revoked_at IS NULL",
        )
        .bind(kind)
        .bind(hash)
        .fetch_one(&self.pool)
        .await?;
        Ok(n > 0)
    }

    // ---- hosts ----

    pub async fn create_host(&self, host: &HostRow, token_hash: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO hosts (id, hostname, token_hash, os, os_version, arch, agent_version, device_class, enrolled_at, last_seen)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&host.id)
        .bind(&host.hostname)
        .bind(token_hash)
        .bind(&host.os)
        .bind(&host.os_version)
        .bind(&host.arch)
        .bind(&host.agent_version)
        .bind(&host.device_class)
        .bind(&host.enrolled_at)
        .bind(&host.last_seen)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn host_by_token(&self, token_hash: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT id FROM hosts WHERE token_hash = ?")
                .bind(token_hash)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Records a check-in: facts, last seen and what is installed, in one transaction.
    pub async fn update_host(&self, host: &HostRow, installed: &[InstalledItem]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE hosts SET hostname = ?, os = ?, os_version = ?, arch = ?, agent_version = ?, device_class = ?, last_seen = ?,
                newest_manifest_at = ?, device_tags = ?, device_friendly_name = ?
             WHERE id = ?",
        )
        .bind(&host.hostname)
        .bind(&host.os)
        .bind(&host.os_version)
        .bind(&host.arch)
        .bind(&host.agent_version)
        .bind(&host.device_class)
        .bind(&host.last_seen)
        .bind(&host.newest_manifest_at)
        .bind(host.device_tags.join(","))
        .bind(&host.device_friendly_name)
        .bind(&host.id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM installed WHERE host_id = ?")
            .bind(&host.id)
            .execute(&mut *tx)
            .await?;
        for i in installed {
            sqlx::query("INSERT INTO installed (host_id, item, version) VALUES (?, ?, ?)")
                .bind(&host.id)
                .bind(&i.item)
                .bind(i.version.as_ref().map(|v| v.to_string()))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn hosts(&self) -> Result<Vec<(HostRow, Vec<InstalledItem>)>> {
        let rows = sqlx::query(
            "SELECT id, hostname, os, os_version, arch, agent_version, device_class, enrolled_at, last_seen,
                newest_manifest_at, device_tags, device_friendly_name, operator_tags, operator_friendly_name
             FROM hosts ORDER BY hostname, id",
        )
        .fetch_all(&self.pool)
        .await?;
        let installed = sqlx::query("SELECT host_id, item, version FROM installed ORDER BY item")
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let host = HostRow {
                id: r.try_get("id")?,
                hostname: r.try_get("hostname")?,
                os: r.try_get("os")?,
                os_version: r.try_get("os_version")?,
                arch: r.try_get("arch")?,
                agent_version: r.try_get("agent_version")?,
                device_class: r.try_get("device_class")?,
                enrolled_at: r.try_get("enrolled_at")?,
                last_seen: r.try_get("last_seen")?,
                newest_manifest_at: r.try_get("newest_manifest_at")?,
                device_tags: split_tags(&r.try_get::<String, _>("device_tags")?),
                device_friendly_name: r.try_get("device_friendly_name")?,
                operator_tags: r
                    .try_get::<Option<String>, _>("operator_tags")?
                    .map(|t| split_tags(&t)),
                operator_friendly_name: r.try_get("operator_friendly_name")?,
            };
            let mut items = Vec::new();
            for i in installed.iter() {
                if i.try_get::<String, _>("host_id")? == host.id {
                    items.push(InstalledItem {
                        item: i.try_get("item")?,
                        version: opt_version(i.try_get("version")?)?,
                    });
                }
            }
            out.push((host, items));
        }
        Ok(out)
    }

    /// Writes last-seen times in one transaction.
    pub async fn touch_hosts(&self, seen: &[(String, String)]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for (id, at) in seen {
            sqlx::query("UPDATE hosts SET last_seen = ? WHERE id = ? AND last_seen < ?")
                .bind(at)
                .bind(id)
                .bind(at)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A host's effective tags (the operator's if set, else the device's).
    pub async fn host_tags(&self, host_id: &str) -> Result<Vec<String>> {
        let row = sqlx::query("SELECT device_tags, operator_tags FROM hosts WHERE id = ?")
            .bind(host_id)
            .fetch_optional(&self.pool)
            .await?;
        let Some(r) = row else { return Ok(Vec::new()) };
        let operator: Option<String> = r.try_get("operator_tags")?;
        Ok(split_tags(&match operator {
            Some(t) => t,
            None => r.try_get("device_tags")?,
        }))
    }

    /// Hosts that report having `item` (installed or not yet).
    pub async fn hosts_with_item(&self, item: &str) -> Result<Vec<String>> {
        Ok(
            sqlx::query_scalar("SELECT DISTINCT host_id FROM installed WHERE item = ?")
                .bind(item)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// Host ids whose id or hostname is `name`.
    pub async fn find_hosts(&self, name: &str) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query("SELECT id, hostname FROM hosts WHERE id = ? OR hostname = ?")
            .bind(name)
            .bind(name)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("hostname")?)))
            .collect()
    }

    /// Sets the operator's labels; `None` leaves a field as it is, an empty value clears it.
    pub async fn edit_host(
        &self,
        host_id: &str,
        tags: Option<&[String]>,
        friendly_name: Option<&str>,
    ) -> Result<()> {
        if let Some(tags) = tags {
            let value = (!tags.is_empty()).then(|| tags.join(","));
            sqlx::query("UPDATE hosts SET operator_tags = ? WHERE id = ?")
                .bind(value)
                .bind(host_id)
                .execute(&self.pool)
                .await?;
        }
        if let Some(name) = friendly_name {
            let value = (!name.is_empty()).then_some(name);
            sqlx::query("UPDATE hosts SET operator_friendly_name = ? WHERE id = ?")
                .bind(value)
                .bind(host_id)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// Retires a host: its record, history and credential go; the device must enrol again.
    pub async fn remove_host(&self, host_id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM hosts WHERE id = ?")
            .bind(host_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    // ---- items ----

    /// Presentation and status of items that have a row (items without one are defaults).
    pub async fn item_settings(&self) -> Result<Vec<(String, bool, Option<String>, bool)>> {
        let rows = sqlx::query("SELECT name, featured, icon_url, deactivated FROM items")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("name")?,
                    r.try_get::<i64, _>("featured")? != 0,
                    r.try_get("icon_url")?,
                    r.try_get::<i64, _>("deactivated")? != 0,
                ))
            })
            .collect()
    }

    pub async fn edit_item(
        &self,
        name: &str,
        featured: Option<bool>,
        icon_url: Option<Option<&str>>,
        deactivated: Option<bool>,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO items (name) VALUES (?) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        if let Some(f) = featured {
            sqlx::query("UPDATE items SET featured = ? WHERE name = ?")
                .bind(f as i64)
                .bind(name)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(url) = icon_url {
            sqlx::query("UPDATE items SET icon_url = ? WHERE name = ?")
                .bind(url)
                .bind(name)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(d) = deactivated {
            sqlx::query("UPDATE items SET deactivated = ? WHERE name = ?")
                .bind(d as i64)
                .bind(name)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    // ---- releases ----

    /// Inserts a release; returns false when that item and version already exist.
    pub async fn add_release(&self, r: &NewRelease) -> Result<bool> {
        let v = &r.view;
        let done = sqlx::query(
            "INSERT INTO releases (item, version, category, released_at, expires_at, notes, layout, artifact_name,
                artifact_size, artifact_sha256, signed_by, envelope, published_at, release_url)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (item, version) DO NOTHING",
        )
        .bind(&v.item)
        .bind(v.version.to_string())
        .bind(&v.category)
        .bind(&v.released_at)
        .bind(&v.expires_at)
        .bind(&v.notes)
        .bind(&v.layout)
        .bind(&v.artifact_name)
        .bind(v.artifact_size as i64)
        .bind(&v.artifact_sha256)
        .bind(v.signed_by.join(","))
        .bind(&r.envelope)
        .bind(&v.published_at)
        .bind(&v.release_url)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn releases(&self, item: Option<&str>) -> Result<Vec<ReleaseView>> {
        let rows = sqlx::query(
            "SELECT item, version, category, released_at, expires_at, notes, layout, artifact_name, artifact_size,
                artifact_sha256, signed_by, published_at, release_url
             FROM releases WHERE (? IS NULL OR item = ?)",
        )
        .bind(item)
        .bind(item)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let signed_by: String = r.try_get("signed_by")?;
            out.push(ReleaseView {
                item: r.try_get("item")?,
                version: parse_version(&r.try_get::<String, _>("version")?)?,
                category: r.try_get("category")?,
                released_at: r.try_get("released_at")?,
                expires_at: r.try_get("expires_at")?,
                notes: r.try_get("notes")?,
                release_url: r.try_get("release_url")?,
                layout: r.try_get("layout")?,
                artifact_name: r.try_get("artifact_name")?,
                artifact_size: r.try_get::<i64, _>("artifact_size")? as u64,
                artifact_sha256: r.try_get("artifact_sha256")?,
                signed_by: signed_by
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect(),
                published_at: r.try_get("published_at")?,
            });
        }
        // Semver order, not text order: 1.10.0 after 1.9.0.
        out.sort_by(|a, b| a.item.cmp(&b.item).then(a.version.cmp(&b.version)));
        Ok(out)
    }

    pub async fn envelope(&self, item: &str, version: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT envelope FROM releases WHERE item = ? AND version = ?")
                .bind(item)
                .bind(version)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    pub async fn artifact_in_use(&self, name: &str) -> Result<bool> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM releases WHERE artifact_name = ?")
            .bind(name)
            .fetch_one(&self.pool)
            .await?;
        Ok(n > 0)
    }

    // ---- trust roots ----

    /// The newest trust root: (version, envelope).
    pub async fn latest_root(&self) -> Result<Option<(u64, String)>> {
        let row =
            sqlx::query("SELECT version, envelope FROM trust_roots ORDER BY version DESC LIMIT 1")
                .fetch_optional(&self.pool)
                .await?;
        row.map(|r| {
            Ok((
                r.try_get::<i64, _>("version")? as u64,
                r.try_get("envelope")?,
            ))
        })
        .transpose()
    }

    pub async fn root(&self, version: u64) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT envelope FROM trust_roots WHERE version = ?")
                .bind(version as i64)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Stores a root; false if that version exists.
    pub async fn add_root(&self, version: u64, envelope: &str) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO trust_roots (version, envelope, published_at) VALUES (?, ?, ?) ON CONFLICT (version) DO NOTHING",
        )
        .bind(version as i64)
        .bind(envelope)
        .bind(crate::now())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    // ---- updates (jobs and history) ----

    pub async fn active_update(&self, host_id: &str, item: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM updates WHERE host_id = ? AND item = ? AND status = 'pending'",
        )
        .bind(host_id)
        .bind(item)
        .fetch_optional(&self.pool)
        .await?)
    }

    pub fn updates_epoch(&self) -> u64 {
        self.updates_epoch.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub(crate) fn bump_updates(&self) {
        self.updates_epoch
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    pub async fn create_update(
        &self,
        host_id: &str,
        item: &str,
        version: &semver::Version,
        actor: &str,
    ) -> Result<String> {
        let id = uuid::Uuid::new_v4().to_string();
        sqlx::query(
            "INSERT INTO updates (id, host_id, item, version, status, actor, created_at) VALUES (?, ?, ?, ?, 'pending', ?, ?)",
        )
        .bind(&id)
        .bind(host_id)
        .bind(item)
        .bind(version.to_string())
        .bind(actor)
        .bind(crate::now())
        .execute(&self.pool)
        .await?;
        self.bump_updates();
        Ok(id)
    }

    /// Appends live output to a pending update of this host; returns the character offset it
    /// starts at, or `None` if there is no such pending update.
    pub async fn append_output(
        &self,
        update_id: &str,
        host_id: &str,
        text: &str,
    ) -> Result<Option<i64>> {
        let mut tx = self.pool.begin().await?;
        let offset: Option<i64> = sqlx::query_scalar(
            "SELECT length(output) FROM updates WHERE id = ? AND host_id = ? AND status = 'pending'",
        )
        .bind(update_id)
        .bind(host_id)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(offset) = offset {
            // Bound what a device can make the server keep before its report replaces it.
            if offset < 4 * 1024 * 1024 {
                sqlx::query("UPDATE updates SET output = output || ? WHERE id = ?")
                    .bind(text)
                    .bind(update_id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(offset)
    }

    pub async fn pending_jobs(&self, host_id: &str) -> Result<Vec<PendingJob>> {
        let rows = sqlx::query(
            "SELECT id, item, version FROM updates WHERE host_id = ? AND status = 'pending' ORDER BY created_at",
        )
        .bind(host_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(PendingJob {
                    id: r.try_get("id")?,
                    item: r.try_get("item")?,
                    version: parse_version(&r.try_get::<String, _>("version")?)?,
                })
            })
            .collect()
    }

    /// Stores a report once: a report id seen before changes nothing (the device retried after
    /// a lost answer). Returns whether it was new.
    pub async fn record_report(&self, rec: &ReportRecord) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let seen: Option<String> =
            sqlx::query_scalar("SELECT report_id FROM reports WHERE report_id = ?")
                .bind(&rec.report_id)
                .fetch_optional(&mut *tx)
                .await?;
        if seen.is_some() {
            return Ok(false);
        }
        // A report for a job of this host updates that job; anything else is a new entry.
        let job: Option<String> = match &rec.job_id {
            Some(job) => {
                sqlx::query_scalar("SELECT id FROM updates WHERE id = ? AND host_id = ?")
                    .bind(job)
                    .bind(&rec.host_id)
                    .fetch_optional(&mut *tx)
                    .await?
            }
            None => None,
        };
        let update_id = match job {
            Some(id) => {
                sqlx::query(
                    "UPDATE updates SET status = ?, from_version = ?, message = ?, output = ?, finished_at = ? WHERE id = ?",
                )
                .bind(&rec.status)
                .bind(&rec.from_version)
                .bind(&rec.message)
                .bind(&rec.output)
                .bind(&rec.finished_at)
                .bind(&id)
                .execute(&mut *tx)
                .await?;
                id
            }
            None => {
                let id = uuid::Uuid::new_v4().to_string();
                sqlx::query(
                    "INSERT INTO updates (id, host_id, item, version, from_version, status, actor, message, output, created_at, finished_at)
                     VALUES (?, ?, ?, ?, ?, ?, 'device', ?, ?, ?, ?)",
                )
                .bind(&id)
                .bind(&rec.host_id)
                .bind(&rec.item)
                .bind(&rec.version)
                .bind(&rec.from_version)
                .bind(&rec.status)
                .bind(&rec.message)
                .bind(&rec.output)
                .bind(&rec.started_at)
                .bind(&rec.finished_at)
                .execute(&mut *tx)
                .await?;
                id
            }
        };
        if rec.status == "installed" {
            sqlx::query(
                "INSERT INTO installed (host_id, item, version) VALUES (?, ?, ?)
                 ON CONFLICT (host_id, item) DO UPDATE SET version = excluded.version",
            )
            .bind(&rec.host_id)
            .bind(&rec.item)
            .bind(&rec.version)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "INSERT INTO reports (report_id, host_id, update_id, received_at) VALUES (?, ?, ?, ?)",
        )
        .bind(&rec.report_id)
        .bind(&rec.host_id)
        .bind(&update_id)
        .bind(crate::now())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.bump_updates();
        Ok(true)
    }

    pub async fn history(
        &self,
        host_id: Option<&str>,
        item: Option<&str>,
        id: Option<&str>,
    ) -> Result<Vec<HistoryView>> {
        let rows = sqlx::query(
            "SELECT u.id, u.host_id, h.hostname, u.item, u.version, u.from_version, u.status, u.actor, u.message,
                    u.output, u.created_at, u.finished_at
             FROM updates u JOIN hosts h ON h.id = u.host_id
             WHERE (? IS NULL OR u.host_id = ?) AND (? IS NULL OR u.item = ?) AND (? IS NULL OR u.id = ?)
             ORDER BY u.created_at, u.id",
        )
        .bind(host_id)
        .bind(host_id)
        .bind(item)
        .bind(item)
        .bind(id)
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(HistoryView {
                    id: r.try_get("id")?,
                    host_id: r.try_get("host_id")?,
                    hostname: r.try_get("hostname")?,
                    item: r.try_get("item")?,
                    version: parse_version(&r.try_get::<String, _>("version")?)?,
                    from_version: opt_version(r.try_get("from_version")?)?,
                    status: r.try_get("status")?,
                    actor: r.try_get("actor")?,
                    message: r.try_get("message")?,
                    output: r.try_get("output")?,
                    created_at: r.try_get("created_at")?,
                    finished_at: r.try_get("finished_at")?,
                })
            })
            .collect()
    }
}
