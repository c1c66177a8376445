//! Operator and enrolment tokens (hashes only).

use ferry_manifests::wire::TokenView;
use sqlx::Row;

use super::Sql;
use crate::store::Result;

impl Sql {
    pub async fn has_token(&self, kind: &str) -> Result<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM tokens WHERE kind = $1 AND revoked_at IS NULL",
        )
        .bind(kind)
        .fetch_one(&self.pool)
        .await?;
        Ok(n > 0)
    }

    pub async fn add_token(&self, kind: &str, name: &str, hash: &str) -> Result<String> {
        let id = uuid::Uuid::new_v4().to_string();
        sqlx::query(
            "INSERT INTO tokens (id, kind, name, hash, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&id)
        .bind(kind)
        .bind(name)
        .bind(hash)
        .bind(ferry_manifests::wire::now())
        .execute(&self.writer)
        .await?;
        Ok(id)
    }

    pub async fn tokens(&self) -> Result<Vec<TokenView>> {
        let rows = sqlx::query(
            "SELECT id, kind, name, created_at, revoked_at FROM tokens ORDER BY created_at, id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(TokenView {
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
            sqlx::query("UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(ferry_manifests::wire::now())
                .bind(id)
                .execute(&self.writer)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn token_valid(&self, kind: &str, hash: &str) -> Result<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM tokens WHERE kind = $1 AND hash = $2 AND revoked_at IS NULL",
        )
        .bind(kind)
        .bind(hash)
        .fetch_one(&self.pool)
        .await?;
        Ok(n > 0)
    }
}
