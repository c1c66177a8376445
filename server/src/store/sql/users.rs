//! Users and the operator tokens they hold.

use sqlx::Row;

use super::Sql;
use crate::store::{LiveOperator, Result, UserRow};

/// The user every install has from its first start on users.
pub const ADMIN: &str = "admin";

impl Sql {
    /// Makes the `admin` user when there is no user yet, and gives it every operator token
    /// that belongs to nobody (those made before users existed): an existing install's
    /// operator token keeps working, as the admin's.
    pub async fn ensure_admin(&self) -> Result<()> {
        let mut tx = self.write_tx().await?;
        let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&mut *tx)
            .await?;
        if users == 0 {
            sqlx::query(
                "INSERT INTO users (id, name, role, created_at) VALUES ($1, $2, 'admin', $3)",
            )
            .bind(uuid::Uuid::new_v4().to_string())
            .bind(ADMIN)
            .bind(ferry_manifests::wire::now())
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "UPDATE tokens SET user_id = (SELECT id FROM users WHERE role = 'admin' ORDER BY created_at, id LIMIT 1)
             WHERE kind = 'operator' AND user_id IS NULL",
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn add_user(&self, name: &str, role: &str, tag: Option<&str>) -> Result<String> {
        let id = uuid::Uuid::new_v4().to_string();
        sqlx::query(
            "INSERT INTO users (id, name, role, tag, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&id)
        .bind(name)
        .bind(role)
        .bind(tag)
        .bind(ferry_manifests::wire::now())
        .execute(&self.writer)
        .await?;
        Ok(id)
    }

    /// Every user, by name, with how many live tokens each holds.
    pub async fn users(&self) -> Result<Vec<UserRow>> {
        let rows = sqlx::query(
            "SELECT u.id, u.name, u.role, u.tag, u.created_at,
                    (SELECT COUNT(*) FROM tokens t WHERE t.user_id = u.id AND t.revoked_at IS NULL) AS tokens
             FROM users u ORDER BY u.name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(UserRow {
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                    role: r.try_get("role")?,
                    tag: r.try_get("tag")?,
                    created_at: r.try_get("created_at")?,
                    tokens: r.try_get::<i64, _>("tokens")?,
                })
            })
            .collect()
    }

    /// Changes what is `Some` (an empty tag clears it); false when there is no such user.
    pub async fn edit_user(
        &self,
        name: &str,
        role: Option<&str>,
        tag: Option<&str>,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE users SET role = COALESCE($1, role),
                              tag = CASE WHEN $2 IS NULL THEN tag WHEN $3 = '' THEN NULL ELSE $4 END
             WHERE name = $5",
        )
        .bind(role)
        .bind(tag)
        .bind(tag)
        .bind(tag)
        .bind(name)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Removes a user and its tokens; false when there is no such user.
    pub async fn remove_user(&self, name: &str) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        sqlx::query("DELETE FROM tokens WHERE user_id = (SELECT id FROM users WHERE name = $1)")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM users WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// The live operator token with this hash, and its user.
    pub async fn live_operator(&self, hash: &str) -> Result<Option<LiveOperator>> {
        let row = sqlx::query(
            "SELECT t.name AS token_name, u.id AS user_id, u.name AS user_name, u.role, u.tag
             FROM tokens t JOIN users u ON u.id = t.user_id
             WHERE t.kind = 'operator' AND t.hash = $1 AND t.revoked_at IS NULL
               AND (t.expires_at IS NULL OR t.expires_at > $2)",
        )
        .bind(hash)
        .bind(ferry_manifests::wire::now())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(LiveOperator {
                token_name: r.try_get("token_name")?,
                user_id: r.try_get("user_id")?,
                user_name: r.try_get("user_name")?,
                role: r.try_get("role")?,
                tag: r.try_get("tag")?,
            })
        })
        .transpose()
    }
}
