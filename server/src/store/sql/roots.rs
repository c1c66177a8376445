//! Trust roots, by version: the install's (the default tenant's) and each other tenant's
//! own chain (`guest`: that tenant's id).

use sqlx::Row;

use super::Sql;
use crate::store::Result;

impl Sql {
    /// The newest trust root: (version, envelope).
    pub async fn latest_root(&self, guest: Option<&str>) -> Result<Option<(u64, String)>> {
        let row = match guest {
            None => {
                sqlx::query(
                    "SELECT version, envelope FROM trust_roots ORDER BY version DESC LIMIT 1",
                )
                .fetch_optional(&self.pool)
                .await?
            }
            Some(t) => {
                sqlx::query(
                    "SELECT version, envelope FROM tenant_trust_roots WHERE tenant_id = $1 ORDER BY version DESC LIMIT 1",
                )
                .bind(t)
                .fetch_optional(&self.pool)
                .await?
            }
        };
        row.map(|r| {
            Ok((
                r.try_get::<i64, _>("version")? as u64,
                r.try_get("envelope")?,
            ))
        })
        .transpose()
    }

    pub async fn root(&self, guest: Option<&str>, version: u64) -> Result<Option<String>> {
        Ok(match guest {
            None => {
                sqlx::query_scalar("SELECT envelope FROM trust_roots WHERE version = $1")
                    .bind(version as i64)
                    .fetch_optional(&self.pool)
                    .await?
            }
            Some(t) => {
                sqlx::query_scalar(
                    "SELECT envelope FROM tenant_trust_roots WHERE tenant_id = $1 AND version = $2",
                )
                .bind(t)
                .bind(version as i64)
                .fetch_optional(&self.pool)
                .await?
            }
        })
    }

    /// Stores a root; false if that version exists.
    pub async fn add_root(
        &self,
        guest: Option<&str>,
        version: u64,
        envelope: &str,
    ) -> Result<bool> {
        let done = match guest {
            None => {
                sqlx::query(
                    "INSERT INTO trust_roots (version, envelope, published_at) VALUES ($1, $2, $3) ON CONFLICT (version) DO NOTHING",
                )
                .bind(version as i64)
                .bind(envelope)
                .bind(ferry_manifests::wire::now())
                .execute(&self.writer)
                .await?
            }
            Some(t) => {
                sqlx::query(
                    "INSERT INTO tenant_trust_roots (tenant_id, version, envelope, published_at) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (tenant_id, version) DO NOTHING",
                )
                .bind(t)
                .bind(version as i64)
                .bind(envelope)
                .bind(ferry_manifests::wire::now())
                .execute(&self.writer)
                .await?
            }
        };
        Ok(done.rows_affected() == 1)
    }
}
