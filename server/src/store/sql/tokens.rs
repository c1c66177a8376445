//! Operator and enrolment tokens (hashes only).

use ferry_manifests::wire::TokenView;
use sqlx::Row;

use super::Sql;
use crate::store::{Result, TokenLimits};

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

    pub async fn add_token(
        &self,
        kind: &str,
        name: &str,
        hash: &str,
        limits: &TokenLimits,
    ) -> Result<String> {
        let id = uuid::Uuid::new_v4().to_string();
        sqlx::query(
            "INSERT INTO tokens (id, kind, name, hash, created_at, expires_at, uses_left, needs_acceptance, user_id, tenant_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9,
                     COALESCE($10, (SELECT id FROM tenants WHERE name = 'default')))",
        )
        .bind(&id)
        .bind(kind)
        .bind(name)
        .bind(hash)
        .bind(ferry_manifests::wire::now())
        .bind(&limits.expires_at)
        .bind(limits.uses.map(i64::from))
        .bind(i64::from(limits.needs_acceptance))
        .bind(&limits.user_id)
        .bind(&limits.tenant_id)
        .execute(&self.writer)
        .await?;
        Ok(id)
    }

    /// Spends one use of a live enrolment token, in one statement (two enrolments at once
    /// cannot both take its last use).
    pub async fn spend_enrol_token(
        &self,
        hash: &str,
        now: &str,
    ) -> Result<Option<(bool, Option<String>)>> {
        let row = sqlx::query(
            "UPDATE tokens SET uses_left = uses_left - 1
             WHERE kind = 'enrol' AND hash = $1 AND revoked_at IS NULL
               AND (expires_at IS NULL OR expires_at > $2)
               AND (uses_left IS NULL OR uses_left > 0)
             RETURNING needs_acceptance, tenant_id",
        )
        .bind(hash)
        .bind(now)
        .fetch_optional(&self.writer)
        .await?;
        row.map(|r| {
            Ok((
                r.try_get::<i64, _>("needs_acceptance")? != 0,
                r.try_get::<Option<String>, _>("tenant_id")?,
            ))
        })
        .transpose()
    }

    /// The tokens of a tenant.
    pub async fn tokens(&self, tenant_id: &str) -> Result<Vec<TokenView>> {
        let rows = sqlx::query(
            "SELECT t.id, t.kind, t.name, t.created_at, t.revoked_at, t.expires_at, t.uses_left, t.needs_acceptance,
                    u.name AS user_name
             FROM tokens t LEFT JOIN users u ON u.id = t.user_id
             WHERE t.tenant_id = $1 ORDER BY t.created_at, t.id",
        )
        .bind(tenant_id)
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
                    expires_at: r.try_get("expires_at")?,
                    uses_left: r
                        .try_get::<Option<i64>, _>("uses_left")?
                        .map(|n| n.max(0) as u64),
                    needs_acceptance: r.try_get::<i64, _>("needs_acceptance")? != 0,
                    user: r.try_get("user_name")?,
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

    /// The id of the token with this hash, if any.
    pub async fn token_id(&self, hash: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar("SELECT id FROM tokens WHERE hash = $1")
            .bind(hash)
            .fetch_optional(&self.pool)
            .await?)
    }

    pub async fn live_token_name(&self, kind: &str, hash: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT name FROM tokens WHERE kind = $1 AND hash = $2 AND revoked_at IS NULL
             AND (expires_at IS NULL OR expires_at > $3)
             AND (uses_left IS NULL OR uses_left > 0)",
        )
        .bind(kind)
        .bind(hash)
        .bind(ferry_manifests::wire::now())
        .fetch_optional(&self.pool)
        .await?)
    }
}
