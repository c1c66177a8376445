//! Updates: jobs, their live output, reports and the history they make.

use ferry_manifests::wire::{HistoryView, PackageChange, PackageJob};
use sqlx::{AssertSqlSafe, Row};

use super::webhooks::{self, Owner};
use super::{parse_version, Sql};
use crate::policy::status::UpdateStatus;
use crate::store::{
    LastFailure, PendingJob, Recorded, ReportRecord, Result, StoreError, WebhookEvent,
};

impl Sql {
    pub async fn active_update(&self, host_id: &str, item: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM updates WHERE host_id = $1 AND item = $2 AND status = 'pending'",
        )
        .bind(host_id)
        .bind(item)
        .fetch_optional(&self.pool)
        .await?)
    }

    pub async fn create_update(
        &self,
        host_id: &str,
        item: &str,
        version: &semver::Version,
        actor: &str,
        interactive: Option<bool>,
    ) -> Result<String> {
        self.insert_update(host_id, item, version, actor, interactive, None)
            .await
    }

    /// A rollback of a host's `item` to `version`, the release it had, from the backup the
    /// device kept (a campaign's wave regressed: `reason`).
    pub async fn create_rollback(
        &self,
        host_id: &str,
        item: &str,
        version: &semver::Version,
        actor: &str,
        reason: &str,
    ) -> Result<String> {
        self.insert_update(host_id, item, version, actor, None, Some(reason))
            .await
    }

    async fn insert_update(
        &self,
        host_id: &str,
        item: &str,
        version: &semver::Version,
        actor: &str,
        interactive: Option<bool>,
        rollback: Option<&str>,
    ) -> Result<String> {
        let id = uuid::Uuid::new_v4().to_string();
        // The version the host has now is where the update starts from, as the history shows.
        // An interactive update is one from its first instant: a device checking in at that
        // moment must not take it as a plain install.
        sqlx::query(
            "INSERT INTO updates (id, host_id, item, version, from_version, status, actor, created_at, interactive, record_input, rollback_reason)
             VALUES ($1, $2, $3, $4, (SELECT version FROM installed WHERE host_id = $5 AND item = $6), 'pending', $7, $8, $9, $10, $11)",
        )
        .bind(&id)
        .bind(host_id)
        .bind(item)
        .bind(version.to_string())
        .bind(host_id)
        .bind(item)
        .bind(actor)
        .bind(ferry_manifests::wire::now())
        .bind(i64::from(interactive.is_some()))
        .bind(i64::from(interactive.unwrap_or(true)))
        .bind(rollback)
        .execute(&self.writer)
        .await?;
        Ok(id)
    }

    /// The version an update started from, as recorded.
    pub async fn update_from_version(&self, id: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar::<_, Option<String>>(
            "SELECT from_version FROM updates WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .flatten())
    }

    /// A pending upgrade of `packages` (name, installed, offered) of a host's `source`.
    pub async fn create_package_update(
        &self,
        host_id: &str,
        source: &str,
        packages: &[PackageChange],
        actor: &str,
        interactive: Option<bool>,
    ) -> Result<String> {
        let id = uuid::Uuid::new_v4().to_string();
        let planned =
            serde_json::to_string(packages).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        sqlx::query(
            "INSERT INTO updates (id, host_id, item, version, status, actor, created_at, interactive, record_input, packages)
             VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7, $8, $9)",
        )
        .bind(&id)
        .bind(host_id)
        .bind(ferry_manifests::wire::packages_item(source))
        .bind(packages_version(packages.len()))
        .bind(actor)
        .bind(ferry_manifests::wire::now())
        .bind(i64::from(interactive.is_some()))
        .bind(i64::from(interactive.unwrap_or(true)))
        .bind(planned)
        .execute(&self.writer)
        .await?;
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
        let mut tx = self.write_tx().await?;
        let offset: Option<i64> = sqlx::query_scalar(
            "SELECT length(output) FROM updates WHERE id = $1 AND host_id = $2 AND status = 'pending'",
        )
        .bind(update_id)
        .bind(host_id)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(offset) = offset {
            // Bound what a device can make the server keep before its report replaces it.
            if offset < 4 * 1024 * 1024 {
                sqlx::query("UPDATE updates SET output = output || $1 WHERE id = $2")
                    .bind(text)
                    .bind(update_id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(offset)
    }

    /// `len` characters of an update's stored output from character `offset`.
    pub async fn output_slice(
        &self,
        update_id: &str,
        offset: i64,
        len: i64,
    ) -> Result<Option<String>> {
        Ok(
            // PostgreSQL has substr(text, integer, integer) only: the casts serve both.
            sqlx::query_scalar(
                "SELECT substr(output, CAST($1 AS INTEGER), CAST($2 AS INTEGER)) FROM updates WHERE id = $3",
            )
                .bind(offset + 1)
                .bind(len)
                .bind(update_id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    pub async fn pending_jobs(&self, host_id: &str) -> Result<Vec<PendingJob>> {
        let rows = sqlx::query(
            "SELECT id, item, version, interactive, rollback_reason, metered_allowed FROM updates WHERE host_id = $1 AND status = 'pending' AND packages IS NULL ORDER BY created_at",
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
                    interactive: r.try_get::<i64, _>("interactive")? != 0,
                    rollback: r.try_get("rollback_reason")?,
                    metered_allowed: r.try_get::<i64, _>("metered_allowed")? != 0,
                })
            })
            .collect()
    }

    /// The host's pending package upgrades, oldest first.
    pub async fn pending_package_jobs(&self, host_id: &str) -> Result<Vec<PackageJob>> {
        let rows = sqlx::query(
            "SELECT id, item, interactive, packages FROM updates WHERE host_id = $1 AND status = 'pending' AND packages IS NOT NULL ORDER BY created_at",
        )
        .bind(host_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let item: String = r.try_get("item")?;
                let planned = parse_packages(r.try_get("packages")?)?;
                Ok(PackageJob {
                    job_id: r.try_get("id")?,
                    source: item.trim_end_matches(" packages").to_string(),
                    packages: planned.into_iter().map(|p| p.name).collect(),
                    interactive: r.try_get::<i64, _>("interactive")? != 0,
                })
            })
            .collect()
    }

    /// Adds to what the operator typed, if the update keeps it (bounded at 1 MiB).
    pub async fn append_typed(&self, update_id: &str, line: &str) -> Result<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "UPDATE updates SET typed = typed || $1 WHERE id = $2 AND record_input = 1 AND length(typed) < 1048576",
        )
        .bind(line)
        .bind(update_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The host of a pending interactive update, if `update_id` is one.
    pub async fn interactive_host(&self, update_id: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT host_id FROM updates WHERE id = $1 AND status = 'pending' AND interactive = 1",
        )
        .bind(update_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// (host id, item) of every pending update, fleet-wide, in one query.
    pub async fn pending_items(&self) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query("SELECT host_id, item FROM updates WHERE status = 'pending'")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("host_id")?, r.try_get("item")?)))
            .collect()
    }

    /// Lets a pending update download over a metered link.
    pub async fn allow_metered(&self, id: &str) -> Result<()> {
        sqlx::query("UPDATE updates SET metered_allowed = 1 WHERE id = $1")
            .bind(id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Sets the message of one of the host's pending updates (why it waits); false if there
    /// is no such pending update of this host. The same message again writes nothing (a
    /// device held back for its site hears why at every check-in).
    pub async fn note_update(&self, id: &str, host_id: &str, message: &str) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE updates SET message = $1
             WHERE id = $2 AND host_id = $3 AND status = 'pending' AND COALESCE(message, '') <> $1",
        )
        .bind(message)
        .bind(id)
        .bind(host_id)
        .execute(&self.writer)
        .await?;
        if done.rows_affected() == 1 {
            return Ok(true);
        }
        let pending: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM updates WHERE id = $1 AND host_id = $2 AND status = 'pending'",
        )
        .bind(id)
        .bind(host_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(pending > 0)
    }

    /// Cancels one update the device has not reported on; false if it is not pending.
    pub async fn cancel_update(&self, id: &str, message: &str) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE updates SET status = 'cancelled', message = $1, finished_at = $2
             WHERE id = $3 AND status = 'pending'",
        )
        .bind(message)
        .bind(ferry_manifests::wire::now())
        .bind(id)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Hosts whose last finished install of some item failed, was rolled back or refused (a
    /// cancelled update does not count), fleet-wide, in one query.
    pub async fn last_failures(&self) -> Result<Vec<LastFailure>> {
        let rows = sqlx::query(
            "SELECT u.host_id, u.item, u.version, u.status, u.message FROM updates u
             WHERE u.status IN ('failed', 'rolled_back', 'refused')
               AND u.finished_at = (SELECT MAX(v.finished_at) FROM updates v
                                    WHERE v.host_id = u.host_id AND v.item = u.item
                                      AND v.finished_at IS NOT NULL AND v.status <> 'cancelled')",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(LastFailure {
                    host_id: r.try_get("host_id")?,
                    item: r.try_get("item")?,
                    version: parse_version(&r.try_get::<String, _>("version")?)?,
                    status: r.try_get("status")?,
                    message: r.try_get("message")?,
                })
            })
            .collect()
    }

    /// Stores a report once: a report id seen before changes nothing (the device retried after
    /// a lost answer). Returns whether it was new.
    pub async fn record_report(&self, rec: &ReportRecord) -> Result<Recorded> {
        let mut tx = self.write_tx().await?;
        let seen: Option<String> =
            sqlx::query_scalar("SELECT report_id FROM reports WHERE report_id = $1")
                .bind(&rec.report_id)
                .fetch_optional(&mut *tx)
                .await?;
        if seen.is_some() {
            return Ok(Recorded::Again);
        }
        // A report for a job of this host updates that job; anything else is a new entry.
        let job: Option<String> = match &rec.job_id {
            Some(job) => {
                sqlx::query_scalar("SELECT id FROM updates WHERE id = $1 AND host_id = $2")
                    .bind(job)
                    .bind(&rec.host_id)
                    .fetch_optional(&mut *tx)
                    .await?
            }
            None => None,
        };
        // A package upgrade is always a job: one that is not this host's records nothing.
        if job.is_none() && rec.packages.is_some() {
            return Ok(Recorded::Again);
        }
        let recorded = match &job {
            Some(id) => Recorded::Job(id.clone()),
            None => Recorded::Entry,
        };
        let update_id = match job {
            Some(id) => {
                sqlx::query(
                    "UPDATE updates SET status = $1, from_version = $2, message = $3, output = $4, finished_at = $5, fetched = $6, device_finished_at = $7,
                     packages = COALESCE($8, packages) WHERE id = $9",
                )
                .bind(rec.status.as_str())
                .bind(&rec.from_version)
                .bind(&rec.message)
                .bind(&rec.output)
                .bind(&rec.finished_at)
                .bind(&rec.fetched)
                .bind(&rec.device_finished_at)
                .bind(&rec.packages)
                .bind(&id)
                .execute(&mut *tx)
                .await?;
                id
            }
            None => {
                let id = uuid::Uuid::new_v4().to_string();
                sqlx::query(
                    "INSERT INTO updates (id, host_id, item, version, from_version, status, actor, message, output, created_at, finished_at, fetched, device_finished_at, packages)
                     VALUES ($1, $2, $3, $4, $5, $6, 'device', $7, $8, $9, $10, $11, $12, $13)",
                )
                .bind(&id)
                .bind(&rec.host_id)
                .bind(&rec.item)
                .bind(&rec.version)
                .bind(&rec.from_version)
                .bind(rec.status.as_str())
                .bind(&rec.message)
                .bind(&rec.output)
                .bind(&rec.started_at)
                .bind(&rec.finished_at)
                .bind(&rec.fetched)
                .bind(&rec.device_finished_at)
                .bind(&rec.packages)
                .execute(&mut *tx)
                .await?;
                id
            }
        };
        // Packages are the source's business: only a Ferry item's version is "installed".
        if rec.status == UpdateStatus::Installed && rec.packages.is_none() {
            sqlx::query(
                "INSERT INTO installed (host_id, item, version) VALUES ($1, $2, $3)
                 ON CONFLICT (host_id, item) DO UPDATE SET version = excluded.version",
            )
            .bind(&rec.host_id)
            .bind(&rec.item)
            .bind(&rec.version)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "INSERT INTO reports (report_id, host_id, update_id, received_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&rec.report_id)
        .bind(&rec.host_id)
        .bind(&update_id)
        .bind(ferry_manifests::wire::now())
        .execute(&mut *tx)
        .await?;
        // Webhooks hear of it in the same transaction (the outbox).
        let tenant = webhooks::tenant_of(&mut tx, Owner::Host(&rec.host_id)).await?;
        if webhooks::wanted(&mut tx, tenant.as_deref(), "install.finished").await? {
            let (hostname, campaign): (String, Option<String>) = sqlx::query_as(
                "SELECT h.hostname, m.campaign_id FROM hosts h
                 LEFT JOIN campaign_members m ON m.update_id = $1 WHERE h.id = $2",
            )
            .bind(&update_id)
            .bind(&rec.host_id)
            .fetch_optional(&mut *tx)
            .await?
            .unwrap_or_default();
            let event = WebhookEvent {
                kind: "install.finished",
                data: serde_json::json!({
                    "update_id": update_id,
                    "host_id": rec.host_id,
                    "hostname": hostname,
                    "item": rec.item,
                    "version": rec.version,
                    "from_version": rec.from_version,
                    "outcome": rec.status.as_str(),
                    "message": rec.message,
                    "finished_at": rec.finished_at,
                    "campaign_id": campaign,
                    "packages": rec.packages.is_some(),
                }),
            };
            webhooks::emit(&mut tx, tenant.as_deref(), &event).await?;
        }
        tx.commit().await?;
        Ok(recorded)
    }

    pub async fn history(
        &self,
        host_id: Option<&str>,
        item: Option<&str>,
        id: Option<&str>,
    ) -> Result<Vec<HistoryView>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {HISTORY_COLUMNS}, u.output, u.typed
             FROM updates u JOIN hosts h ON h.id = u.host_id
             WHERE ($1 IS NULL OR u.host_id = $2) AND ($3 IS NULL OR u.item = $4) AND ($5 IS NULL OR u.id = $6)
             ORDER BY u.created_at, u.id"
        )))
        .bind(host_id)
        .bind(host_id)
        .bind(item)
        .bind(item)
        .bind(id)
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| history_from(r, true)).collect()
    }

    /// A page of history entries, newest first, without their output: of one host or item
    /// if given, of any of `statuses` if not empty; and how many match in all.
    pub async fn history_page(
        &self,
        host_id: Option<&str>,
        item: Option<&str>,
        statuses: &[&str],
        offset: u32,
        limit: u32,
    ) -> Result<(Vec<HistoryView>, u64)> {
        let any_status = i64::from(statuses.is_empty());
        let statuses =
            serde_json::to_string(statuses).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        // `$3` the statuses, `flag` whether any status will do.
        let matching = |flag: &str| {
            format!(
                "($1 IS NULL OR u.host_id = $1) AND ($2 IS NULL OR u.item = $2)
                 AND ({flag} = 1 OR u.status IN {})",
                self.dialect().json_texts("$3")
            )
        };
        let total: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM updates u WHERE {}",
            matching("$4")
        )))
        .bind(host_id)
        .bind(item)
        .bind(&statuses)
        .bind(any_status)
        .fetch_one(&self.pool)
        .await?;
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {HISTORY_COLUMNS} FROM updates u JOIN hosts h ON h.id = u.host_id
             WHERE {} ORDER BY u.created_at DESC, u.id DESC LIMIT $4 OFFSET $5",
            matching("$6")
        )))
        .bind(host_id)
        .bind(item)
        .bind(&statuses)
        .bind(i64::from(limit))
        .bind(i64::from(offset))
        .bind(any_status)
        .fetch_all(&self.pool)
        .await?;
        let entries = rows
            .iter()
            .map(|r| history_from(r, false))
            .collect::<Result<Vec<_>>>()?;
        Ok((entries, total as u64))
    }
}

/// The columns of a history entry but its output (`u` updates, `h` hosts).
const HISTORY_COLUMNS: &str = "u.id, u.host_id, h.hostname, u.item, u.version, u.from_version,
    u.status, u.actor, u.message, u.created_at, u.finished_at, u.fetched, u.device_finished_at,
    u.packages, (SELECT cm.campaign_id FROM campaign_members cm WHERE cm.update_id = u.id) AS campaign_id";

fn history_from(r: &sqlx::any::AnyRow, with_output: bool) -> Result<HistoryView> {
    Ok(HistoryView {
        id: r.try_get("id")?,
        host_id: r.try_get("host_id")?,
        hostname: r.try_get("hostname")?,
        item: r.try_get("item")?,
        version: r.try_get("version")?,
        from_version: r.try_get("from_version")?,
        packages: parse_packages(r.try_get("packages")?)?,
        status: r.try_get("status")?,
        actor: r.try_get("actor")?,
        message: r.try_get("message")?,
        output: if with_output {
            r.try_get("output")?
        } else {
            String::new()
        },
        typed: if with_output {
            r.try_get("typed")?
        } else {
            String::new()
        },
        created_at: r.try_get("created_at")?,
        finished_at: r.try_get("finished_at")?,
        fetched: r
            .try_get::<Option<String>, _>("fetched")?
            .and_then(|t| serde_json::from_str(&t).ok()),
        campaign: r.try_get("campaign_id")?,
        device_finished_at: r.try_get("device_finished_at")?,
    })
}

/// What the history's version column says of a package upgrade.
fn packages_version(n: usize) -> String {
    if n == 1 {
        "1 package".into()
    } else {
        format!("{n} packages")
    }
}

/// The `packages` column: each package's versions before and after, as JSON.
fn parse_packages(text: Option<String>) -> Result<Vec<PackageChange>> {
    text.map_or(Ok(Vec::new()), |t| {
        serde_json::from_str(&t).map_err(|e| StoreError::Corrupt(format!("packages: {e}")))
    })
}
