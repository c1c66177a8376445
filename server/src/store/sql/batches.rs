//! Update batches and their entries.

use sqlx::{AssertSqlSafe, Row};

use super::Sql;
use crate::policy::batch::{EntryState, Planned, Target};
use crate::store::{BatchRow, EntryRow, Result, StoreError};

/// The columns every batch query reads, in the order `batch_from` expects.
const BATCH_COLUMNS: &str = "id, kind, description, actor, created_at";

/// The `update_status` column: the status of an entry's update, once dispatched.
fn update_status(r: &sqlx::any::AnyRow) -> Result<Option<crate::policy::status::UpdateStatus>> {
    r.try_get::<Option<String>, _>("update_status")?
        .map(|s| s.parse())
        .transpose()
        .map_err(StoreError::Corrupt)
}

fn batch_from(r: &sqlx::any::AnyRow) -> Result<BatchRow> {
    Ok(BatchRow {
        id: r.try_get("id")?,
        kind: r.try_get("kind")?,
        description: r.try_get("description")?,
        actor: r.try_get("actor")?,
        created_at: r.try_get("created_at")?,
    })
}

impl Sql {
    pub async fn create_batch(
        &self,
        kind: &str,
        description: &str,
        actor: &str,
        interactive: bool,
        planned: &[Planned],
    ) -> Result<String> {
        let id = uuid::Uuid::new_v4().to_string();
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO batches (id, kind, description, actor, interactive, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&id)
        .bind(kind)
        .bind(description)
        .bind(actor)
        .bind(i64::from(interactive))
        .bind(ferry_manifests::wire::now())
        .execute(&mut *tx)
        .await?;
        for (seq, p) in planned.iter().enumerate() {
            sqlx::query(
                "INSERT INTO batch_entries (batch_id, seq, host_id, item, version, skip_reason, packages) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&id)
            .bind(seq as i64)
            .bind(&p.host_id)
            .bind(&p.item)
            .bind(p.target.version_text())
            .bind(&p.skip)
            .bind(match &p.target {
                Target::Packages { packages, .. } => Some(
                    serde_json::to_string(packages)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                ),
                Target::Release(_) => None,
            })
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(id)
    }

    /// Each batch's entries as the states they hold, one of each kind (not one per entry):
    /// enough to tell a batch's status, read in one grouped query.
    pub async fn batch_entry_kinds(&self) -> Result<Vec<(String, Vec<EntryState>)>> {
        let rows = sqlx::query(
            "SELECT e.batch_id, e.skip_reason, u.status AS update_status
             FROM batch_entries e LEFT JOIN updates u ON u.id = e.update_id
             GROUP BY e.batch_id, e.skip_reason, u.status
             ORDER BY e.batch_id",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut out: Vec<(String, Vec<EntryState>)> = Vec::new();
        for r in &rows {
            let batch: String = r.try_get("batch_id")?;
            let skip: Option<String> = r.try_get("skip_reason")?;
            let entry = EntryState {
                seq: 0,
                host_id: String::new(),
                skipped: skip.is_some(),
                update_status: update_status(r)?,
            };
            match out.last_mut() {
                Some((b, entries)) if *b == batch => entries.push(entry),
                _ => out.push((batch, vec![entry])),
            }
        }
        Ok(out)
    }

    pub async fn batches(&self) -> Result<Vec<BatchRow>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {BATCH_COLUMNS} FROM batches ORDER BY created_at, id"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(batch_from).collect()
    }

    pub async fn batch(&self, id: &str) -> Result<Option<BatchRow>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {BATCH_COLUMNS} FROM batches WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(batch_from).transpose()
    }

    /// Entries of one batch, or of every batch with an entry on `host_id`.
    pub async fn batch_entries(
        &self,
        batch_id: Option<&str>,
        host_id: Option<&str>,
    ) -> Result<Vec<(String, EntryRow)>> {
        let rows = sqlx::query(
            "SELECT e.batch_id, e.seq, e.host_id, h.hostname, e.item, e.version, e.packages, e.update_id, e.skip_reason,
                    u.status AS update_status, u.message AS update_message, b.actor, b.interactive
             FROM batch_entries e JOIN hosts h ON h.id = e.host_id
             JOIN batches b ON b.id = e.batch_id
             LEFT JOIN updates u ON u.id = e.update_id
             WHERE ($1 IS NULL OR e.batch_id = $2)
               AND ($3 IS NULL OR e.batch_id IN (SELECT batch_id FROM batch_entries WHERE host_id = $4))
             ORDER BY e.batch_id, e.seq",
        )
        .bind(batch_id)
        .bind(batch_id)
        .bind(host_id)
        .bind(host_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let skip: Option<String> = r.try_get("skip_reason")?;
                let update_message: Option<String> = r.try_get("update_message")?;
                Ok((
                    r.try_get("batch_id")?,
                    EntryRow {
                        state: EntryState {
                            seq: r.try_get("seq")?,
                            host_id: r.try_get("host_id")?,
                            skipped: skip.is_some(),
                            update_status: update_status(r)?,
                        },
                        hostname: r.try_get("hostname")?,
                        item: r.try_get("item")?,
                        version: r.try_get("version")?,
                        packages: r
                            .try_get::<Option<String>, _>("packages")?
                            .map(|t| serde_json::from_str(&t))
                            .transpose()
                            .map_err(|e| StoreError::Corrupt(format!("batch packages: {e}")))?,
                        update_id: r.try_get("update_id")?,
                        actor: r.try_get("actor")?,
                        interactive: r.try_get::<i64, _>("interactive")? != 0,
                        message: skip.or(update_message).unwrap_or_default(),
                    },
                ))
            })
            .collect()
    }

    pub async fn mark_dispatched(&self, batch_id: &str, seq: i64, update_id: &str) -> Result<()> {
        sqlx::query("UPDATE batch_entries SET update_id = $1 WHERE batch_id = $2 AND seq = $3")
            .bind(update_id)
            .bind(batch_id)
            .bind(seq)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    pub async fn mark_skipped(&self, batch_id: &str, seq: i64, reason: &str) -> Result<()> {
        sqlx::query("UPDATE batch_entries SET skip_reason = $1 WHERE batch_id = $2 AND seq = $3")
            .bind(reason)
            .bind(batch_id)
            .bind(seq)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Whether the host has any update pending (from a trigger or a batch).
    pub async fn host_busy(&self, host_id: &str) -> Result<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM updates WHERE host_id = $1 AND status = 'pending'",
        )
        .bind(host_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(n > 0)
    }
}
