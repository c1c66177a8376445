//! Trust roots, by version.

use sqlx::Row;

use super::Sql;
use crate::store::Result;

impl Sql {
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
            sqlx::query_scalar("SELECT envelope FROM trust_roots WHERE version = $1")
                .bind(version as i64)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Stores a root; false if that version exists.
    pub async fn add_root(&self, version: u64, envelope: &str) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO trust_roots (version, envelope, published_at) VALUES ($1, $2, $3) ON CONFLICT (version) DO NOTHING",
        )
        .bind(version as i64)
        .bind(envelope)
        .bind(ferry_manifests::wire::now())
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
