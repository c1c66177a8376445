//! The audit log: appended to, read; never changed.

use ferry_manifests::wire::AuditEntry;
use sqlx::Row;

use super::Sql;
use crate::store::Result;

impl Sql {
    /// Appends one entry.
    pub async fn add_audit(&self, e: &AuditEntry, tenant_id: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO audit (at, user_id, user_name, method, path, status, address, request_id, before_value, after_value, tenant_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&e.at)
        .bind(&e.user_id)
        .bind(&e.user)
        .bind(&e.method)
        .bind(&e.path)
        .bind(i64::from(e.status))
        .bind(&e.address)
        .bind(&e.request_id)
        .bind(e.before.as_ref().map(|v| v.to_string()))
        .bind(e.after.as_ref().map(|v| v.to_string()))
        .bind(tenant_id)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// The newest `limit` entries (of `user`, at or after `since`, when given), oldest first.
    pub async fn audit(
        &self,
        tenant_id: &str,
        user: Option<&str>,
        since: Option<&str>,
        limit: i64,
    ) -> Result<Vec<AuditEntry>> {
        let rows = sqlx::query(
            "SELECT seq, at, user_id, user_name, method, path, status, address, request_id, before_value, after_value FROM audit
             WHERE ($1 IS NULL OR user_name = $2) AND ($3 IS NULL OR at >= $4) AND tenant_id = $6
             ORDER BY seq DESC LIMIT $5",
        )
        .bind(user)
        .bind(user)
        .bind(since)
        .bind(since)
        .bind(limit)
        .bind(tenant_id)
        .fetch_all(&self.pool)
        .await?;
        let mut out = rows
            .iter()
            .map(|r| {
                Ok(AuditEntry {
                    seq: r.try_get("seq")?,
                    at: r.try_get("at")?,
                    user_id: r.try_get("user_id")?,
                    user: r.try_get("user_name")?,
                    method: r.try_get("method")?,
                    path: r.try_get("path")?,
                    status: u16::try_from(r.try_get::<i64, _>("status")?).unwrap_or(0),
                    address: r.try_get("address")?,
                    request_id: r.try_get("request_id")?,
                    before: json_of(r.try_get("before_value")?),
                    after: json_of(r.try_get("after_value")?),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        out.reverse();
        Ok(out)
    }
}

/// A stored JSON value (text that does not parse reads as absent: the entry stays listed).
fn json_of(text: Option<String>) -> Option<serde_json::Value> {
    text.and_then(|t| serde_json::from_str(&t).ok())
}
