//! hawkBit DDI clients: their hosts (kind `ddi`, found by tenant and controller id, which is
//! their host name), tokens and attributes.

use sqlx::Row;

use super::Sql;
use crate::store::{DdiAction, DdiCaller, Result};

impl Sql {
    /// The sealed token of a host (`Some(host_id)`) or the tenant's gateway token (`None`).
    pub async fn ddi_token(
        &self,
        tenant_id: &str,
        host_id: Option<&str>,
    ) -> Result<Option<Vec<u8>>> {
        Ok(sqlx::query_scalar(
            "SELECT sealed FROM ddi_tokens WHERE tenant_id = $1
               AND (($2 IS NULL AND host_id IS NULL) OR host_id = $3)",
        )
        .bind(tenant_id)
        .bind(host_id)
        .bind(host_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Replaces the token of a host (`Some`) or the tenant's gateway token (`None`).
    pub async fn set_ddi_token(
        &self,
        tenant_id: &str,
        host_id: Option<&str>,
        hash: &str,
        sealed: &[u8],
    ) -> Result<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "DELETE FROM ddi_tokens WHERE tenant_id = $1
               AND (($2 IS NULL AND host_id IS NULL) OR host_id = $3)",
        )
        .bind(tenant_id)
        .bind(host_id)
        .bind(host_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO ddi_tokens (token_hash, tenant_id, host_id, sealed, created_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(hash)
        .bind(tenant_id)
        .bind(host_id)
        .bind(sealed)
        .bind(ferry_manifests::wire::now())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Everything a DDI request's token and path decide, in one read: the token's tenant
    /// (if it is of the tenant named `tenant`), the host it is for (`None`: a gateway
    /// token), and the tenant's host named `controller_id` with its kind and whether it
    /// sent its attributes.
    pub async fn ddi_caller(
        &self,
        hash: &str,
        tenant: &str,
        controller_id: &str,
    ) -> Result<Option<DdiCaller>> {
        let row = sqlx::query(
            "SELECT t.tenant_id, t.host_id AS token_host, h.id AS host_id, h.kind,
                    CAST(CASE WHEN h.ddi_attributes IS NULL THEN 0 ELSE 1 END AS BIGINT) AS attributes
             FROM ddi_tokens t
             JOIN tenants n ON n.id = t.tenant_id AND n.name = $1
             LEFT JOIN hosts h ON h.id = (
                 SELECT id FROM hosts WHERE tenant_id = t.tenant_id AND hostname = $2
                 ORDER BY CASE WHEN kind = 'ddi' THEN 0 ELSE 1 END, enrolled_at LIMIT 1)
             WHERE t.token_hash = $3",
        )
        .bind(tenant)
        .bind(controller_id)
        .bind(hash)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            let host: Option<String> = r.try_get("host_id")?;
            let kind: Option<String> = r.try_get("kind")?;
            Ok(DdiCaller {
                tenant_id: r.try_get("tenant_id")?,
                token_host: r.try_get("token_host")?,
                host: host.zip(kind),
                attributes_sent: r.try_get::<i64, _>("attributes")? != 0,
            })
        })
        .transpose()
    }

    /// The host a tenant knows by `name` (a DDI controller id, or an agent's host name), with
    /// its kind.
    pub async fn host_named(
        &self,
        tenant_id: &str,
        name: &str,
    ) -> Result<Option<(String, String)>> {
        let row = sqlx::query(
            "SELECT id, kind FROM hosts WHERE tenant_id = $1 AND hostname = $2
             ORDER BY CASE WHEN kind = 'ddi' THEN 0 ELSE 1 END, enrolled_at LIMIT 1",
        )
        .bind(tenant_id)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((r.try_get("id")?, r.try_get("kind")?)))
            .transpose()
    }

    /// A new DDI host of a tenant, accepted, named by its controller id. Its agent credential
    /// is a hash no token has: it authenticates with DDI tokens only.
    pub async fn create_ddi_host(
        &self,
        id: &str,
        tenant_id: &str,
        controller_id: &str,
    ) -> Result<()> {
        let now = ferry_manifests::wire::now();
        sqlx::query(
            "INSERT INTO hosts (id, hostname, token_hash, os, os_version, arch, agent_version, device_class,
                                enrolled_at, last_seen, accepted, tenant_id, kind)
             VALUES ($1, $2, $3, '', '', '', '', NULL, $4, $5, 1, $6, 'ddi')",
        )
        .bind(id)
        .bind(controller_id)
        .bind(format!("ddi:{id}"))
        .bind(&now)
        .bind(&now)
        .bind(tenant_id)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// The attributes a DDI host sent (JSON), if any.
    pub async fn ddi_attributes(&self, host_id: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar::<_, Option<String>>(
            "SELECT ddi_attributes FROM hosts WHERE id = $1",
        )
        .bind(host_id)
        .fetch_optional(&self.pool)
        .await?
        .flatten())
    }

    pub async fn set_ddi_attributes(&self, host_id: &str, json: &str) -> Result<()> {
        sqlx::query("UPDATE hosts SET ddi_attributes = $1 WHERE id = $2")
            .bind(json)
            .bind(host_id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// The action number of a host's update, made when it is first offered.
    pub async fn ddi_action_for(&self, update_id: &str, host_id: &str) -> Result<i64> {
        let known: Option<i64> =
            sqlx::query_scalar("SELECT id FROM ddi_actions WHERE update_id = $1")
                .bind(update_id)
                .fetch_optional(&self.pool)
                .await?;
        if let Some(id) = known {
            return Ok(id);
        }
        // Numbers are not spent on polls: a sequence would burn one per conflicting insert,
        // and clients read no more than 2^31 of them.
        sqlx::query(
            "INSERT INTO ddi_actions (update_id, host_id, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (update_id) DO NOTHING",
        )
        .bind(update_id)
        .bind(host_id)
        .bind(ferry_manifests::wire::now())
        .execute(&self.writer)
        .await?;
        Ok(
            sqlx::query_scalar("SELECT id FROM ddi_actions WHERE update_id = $1")
                .bind(update_id)
                .fetch_one(&self.writer)
                .await?,
        )
    }

    /// A host's action `id`, with its update.
    pub async fn ddi_action(&self, host_id: &str, id: i64) -> Result<Option<DdiAction>> {
        let row = sqlx::query(
            "SELECT a.id, a.update_id, a.state, u.item, u.version, u.status FROM ddi_actions a
             JOIN updates u ON u.id = a.update_id WHERE a.host_id = $1 AND a.id = $2",
        )
        .bind(host_id)
        .bind(id)
        .fetch_optional(&self.writer)
        .await?;
        row.map(|r| {
            Ok(DdiAction {
                id: r.try_get("id")?,
                update_id: r.try_get("update_id")?,
                closed: r.try_get::<String, _>("state")? == "closed",
                item: r.try_get("item")?,
                version: r.try_get("version")?,
                status: r.try_get("status")?,
            })
        })
        .transpose()
    }

    /// A host's actions whose update was cancelled while the client had it, not yet answered.
    pub async fn ddi_cancels(&self, host_id: &str) -> Result<Vec<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT a.id FROM ddi_actions a JOIN updates u ON u.id = a.update_id
             WHERE a.host_id = $1 AND a.state <> 'closed' AND u.status = 'cancelled' ORDER BY a.id",
        )
        .bind(host_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The client closed the action (finished, or answered its cancellation); `note`, if
    /// any, ends its update's output whatever the update's status (a cancelled one's too).
    pub async fn close_ddi_action(&self, id: i64, note: Option<&str>) -> Result<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query("UPDATE ddi_actions SET state = 'closed' WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if let Some(note) = note {
            sqlx::query(
                "UPDATE updates SET output = output || $1
                 WHERE id = (SELECT update_id FROM ddi_actions WHERE id = $2)",
            )
            .bind(format!("{note}\n"))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
