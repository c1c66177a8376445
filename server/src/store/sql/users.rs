//! Users and the operator tokens they hold.

use sqlx::Row;

use super::Sql;
use crate::store::{LiveOperator, Result, UserRow};

/// The user every install has from its first start on users.
pub const ADMIN: &str = "admin";
/// The tenant every install has from its first start on tenants.
pub const DEFAULT_TENANT: &str = "default";

impl Sql {
    /// Makes the `admin` user when there is no user yet, and gives it every operator token
    /// that belongs to nobody (those made before users existed): an existing install's
    /// operator token keeps working, as the admin's.
    pub async fn ensure_admin(&self) -> Result<()> {
        let mut tx = self.write_tx().await?;
        // The default tenant, and everything that belongs to none given to it.
        sqlx::query(
            "INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
        )
        .bind(uuid::Uuid::new_v4().simple().to_string())
        .bind(DEFAULT_TENANT)
        .bind(ferry_manifests::wire::now())
        .execute(&mut *tx)
        .await?;
        for table in ["users", "tokens", "hosts", "campaigns", "audit"] {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE {table} SET tenant_id = (SELECT id FROM tenants WHERE name = $1) WHERE tenant_id IS NULL"
            )))
            .bind(DEFAULT_TENANT)
            .execute(&mut *tx)
            .await?;
        }
        let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&mut *tx)
            .await?;
        if users == 0 {
            sqlx::query(
                "INSERT INTO users (id, name, role, created_at, tenant_id)
                 VALUES ($1, $2, 'admin', $3, (SELECT id FROM tenants WHERE name = $4))",
            )
            .bind(uuid::Uuid::new_v4().to_string())
            .bind(ADMIN)
            .bind(ferry_manifests::wire::now())
            .bind(DEFAULT_TENANT)
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

    pub async fn add_user(
        &self,
        name: &str,
        role: &str,
        tag: Option<&str>,
        password_hash: Option<&str>,
        tenant_id: &str,
    ) -> Result<String> {
        let id = uuid::Uuid::new_v4().to_string();
        sqlx::query(
            "INSERT INTO users (id, name, role, tag, password_hash, created_at, tenant_id) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&id)
        .bind(name)
        .bind(role)
        .bind(tag)
        .bind(password_hash)
        .bind(ferry_manifests::wire::now())
        .bind(tenant_id)
        .execute(&self.writer)
        .await?;
        Ok(id)
    }

    /// Every user, by name, with how many live tokens each holds.
    pub async fn users(&self) -> Result<Vec<UserRow>> {
        let rows = sqlx::query(
            "SELECT u.id, u.name, u.role, u.tag, u.created_at, u.tenant_id,
                    (SELECT name FROM tenants n WHERE n.id = u.tenant_id) AS tenant,
                    CASE WHEN u.password_hash IS NULL THEN 0 ELSE 1 END AS password,
                    CASE WHEN u.oidc_subject IS NULL THEN 0 ELSE 1 END AS sso,
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
                    password: r.try_get::<i32, _>("password")? != 0,
                    single_sign_on: r.try_get::<i32, _>("sso")? != 0,
                    tenant_id: r
                        .try_get::<Option<String>, _>("tenant_id")?
                        .unwrap_or_default(),
                    tenant: r
                        .try_get::<Option<String>, _>("tenant")?
                        .unwrap_or_default(),
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

    /// Sets (or with `None` clears) a user's password hash; false when there is no such user.
    pub async fn set_password(&self, name: &str, hash: Option<&str>) -> Result<bool> {
        let done = sqlx::query("UPDATE users SET password_hash = $1 WHERE name = $2")
            .bind(hash)
            .bind(name)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// A user by name with their password hash (`None`: they have no password).
    pub async fn password_user(
        &self,
        name: &str,
    ) -> Result<Option<(LiveOperator, Option<String>)>> {
        let row = sqlx::query(
            "SELECT id, name, role, tag, tenant_id, password_hash FROM users WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((user_of(&r)?, r.try_get("password_hash")?)))
            .transpose()
    }

    /// A user by id, as a web session signed in with a password or single sign-on sees them.
    pub async fn live_user(&self, id: &str) -> Result<Option<LiveOperator>> {
        let row = sqlx::query("SELECT id, name, role, tag, tenant_id FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| user_of(&r)).transpose()
    }

    /// The user an OpenID Connect identity signs in as: the one with this subject, its
    /// role set to what the provider's groups give now; else a new user named `name`.
    /// `Err(name)` when a user of that name exists who did not sign in through the provider
    /// (a password or token user): the provider does not take them over.
    pub async fn oidc_user(
        &self,
        subject: &str,
        name: &str,
        role: &str,
        tenant: &str,
    ) -> Result<std::result::Result<LiveOperator, String>> {
        let mut tx = self.write_tx().await?;
        let known: Option<String> =
            sqlx::query_scalar("SELECT id FROM users WHERE oidc_subject = $1")
                .bind(subject)
                .fetch_optional(&mut *tx)
                .await?;
        let id = match known {
            Some(id) => {
                sqlx::query("UPDATE users SET role = $1 WHERE id = $2")
                    .bind(role)
                    .bind(&id)
                    .execute(&mut *tx)
                    .await?;
                id
            }
            None => {
                let taken: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE name = $1")
                    .bind(name)
                    .fetch_one(&mut *tx)
                    .await?;
                if taken > 0 {
                    return Ok(Err(name.to_string()));
                }
                let id = uuid::Uuid::new_v4().to_string();
                sqlx::query(
                    "INSERT INTO users (id, name, role, oidc_subject, created_at, tenant_id)
                     VALUES ($1, $2, $3, $4, $5, (SELECT id FROM tenants WHERE name = $6))",
                )
                .bind(&id)
                .bind(name)
                .bind(role)
                .bind(subject)
                .bind(ferry_manifests::wire::now())
                .bind(tenant)
                .execute(&mut *tx)
                .await?;
                id
            }
        };
        let row = sqlx::query("SELECT id, name, role, tag, tenant_id FROM users WHERE id = $1")
            .bind(&id)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Ok(user_of(&row)?))
    }

    /// The live operator token with this hash, and its user.
    pub async fn live_operator(&self, hash: &str) -> Result<Option<LiveOperator>> {
        let row = sqlx::query(
            "SELECT t.name AS token_name, u.id AS user_id, u.name AS user_name, u.role, u.tag, u.tenant_id
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
                tenant_id: r
                    .try_get::<Option<String>, _>("tenant_id")?
                    .unwrap_or_default(),
            })
        })
        .transpose()
    }
}

/// A user row (`id, name, role, tag`) as a signed-in web session's user: no token.
fn user_of(r: &sqlx::any::AnyRow) -> Result<LiveOperator> {
    Ok(LiveOperator {
        token_name: String::new(),
        user_id: r.try_get("id")?,
        user_name: r.try_get("name")?,
        role: r.try_get("role")?,
        tag: r.try_get("tag")?,
        tenant_id: r
            .try_get::<Option<String>, _>("tenant_id")?
            .unwrap_or_default(),
    })
}

impl Sql {
    /// Every tenant: (id, name), by name.
    pub async fn tenants(&self) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query("SELECT id, name FROM tenants ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("name")?)))
            .collect()
    }

    /// A new tenant; its id.
    pub async fn add_tenant(&self, name: &str) -> Result<String> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        sqlx::query("INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(&id)
            .bind(name)
            .bind(ferry_manifests::wire::now())
            .execute(&self.writer)
            .await?;
        Ok(id)
    }

    /// How many tenants there are (one: the install is single-tenant).
    pub async fn tenant_count(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM tenants")
            .fetch_one(&self.pool)
            .await?)
    }

    pub async fn host_total(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM hosts")
            .fetch_one(&self.pool)
            .await?)
    }
}

impl Sql {
    /// Every item a tenant claimed: (item, tenant id). Items with none are the default
    /// tenant's.
    pub async fn item_owners(&self) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query("SELECT item, tenant_id FROM item_owners")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("item")?, r.try_get("tenant_id")?)))
            .collect()
    }

    /// Claims `name` in `table` (`item_owners` or `artifact_owners`) for `tenant_id` unless
    /// someone holds it; the tenant that holds it now.
    pub async fn claim(&self, table: OwnedKind, name: &str, tenant_id: &str) -> Result<String> {
        let (table, key) = match table {
            OwnedKind::Item => ("item_owners", "item"),
            OwnedKind::Artifact => ("artifact_owners", "name"),
        };
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {table} ({key}, tenant_id) VALUES ($1, $2) ON CONFLICT ({key}) DO NOTHING"
        )))
        .bind(name)
        .bind(tenant_id)
        .execute(&self.writer)
        .await?;
        Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT tenant_id FROM {table} WHERE {key} = $1"
        )))
        .bind(name)
        .fetch_one(&self.writer)
        .await?)
    }

    /// The tenant that holds an artifact file's name, if one claimed it.
    pub async fn artifact_owner(&self, name: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT tenant_id FROM artifact_owners WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?,
        )
    }
}

/// What a tenant may hold by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnedKind {
    Item,
    Artifact,
}
