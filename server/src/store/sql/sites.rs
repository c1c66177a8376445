//! Peers at a site (docs/delivery.md): which devices of a host's site serve an artifact,
//! which of them were let fetch a release from the server, and peers that served bad bytes.

use super::Sql;
use crate::store::Result;

/// Hosts of the same tenant as `$host` (a tenant of none matches none).
const SAME_TENANT: &str =
    "COALESCE(h.tenant_id, '') = (SELECT COALESCE(tenant_id, '') FROM hosts WHERE id = ";

/// How many other updates (`$1` is this one) of release `$4` `$5` at site `$3` hold a place
/// to fetch it from the server taken after `$2`, for host `$6`'s tenant.
const OTHERS_FETCHING: &str = "SELECT count(*) FROM updates u JOIN hosts h ON h.id = u.host_id
     WHERE h.site = $3 AND u.item = $4 AND u.version = $5
       AND u.status IN ('pending', 'installed') AND u.server_fetch_at > $2 AND u.id <> $1
       AND COALESCE(h.tenant_id, '') = (SELECT COALESCE(tenant_id, '') FROM hosts WHERE id = $6)";

impl Sql {
    /// Share addresses of up to 16 devices at `site` (the host's tenant, not the host) that
    /// say they hold the artifact `sha256` and served no bad bytes, most recently seen first.
    pub async fn site_peers(&self, host_id: &str, site: &str, sha256: &str) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT h.share_url FROM hosts h
             WHERE h.site = $1 AND h.id <> $2 AND {SAME_TENANT}$2)
               AND h.share_url IS NOT NULL AND h.share_fault IS NULL
               AND h.share_holds LIKE $3
             ORDER BY h.last_seen DESC LIMIT 16"
        )))
        .bind(site)
        .bind(host_id)
        .bind(format!("%{sha256}%"))
        .fetch_all(&self.pool)
        .await?)
    }

    /// For update `update_id` of `host_id` (of `item` `version`) at `site`: whether it holds a
    /// place to fetch from the server taken after `since`, and how many other updates of that
    /// release at the site hold one, pending or installed (a device that installed it may not
    /// have said yet that it holds it).
    pub async fn site_fetches(
        &self,
        host_id: &str,
        update_id: &str,
        site: &str,
        (item, version): (&str, &str),
        since: &str,
    ) -> Result<(bool, i64)> {
        let row: (i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT
               (SELECT count(*) FROM updates WHERE id = $1 AND server_fetch_at > $2),
               ({OTHERS_FETCHING})"
        )))
        .bind(update_id)
        .bind(since)
        .bind(site)
        .bind(item)
        .bind(version)
        .bind(host_id)
        .fetch_one(&self.pool)
        .await?;
        Ok((row.0 > 0, row.1))
    }

    /// Gives update `update_id` a place to fetch from the server from `at`, if fewer than
    /// `cap` others of the site hold one (counted in the write, so two devices asking at once
    /// on SQLite do not both get the last place); false when none was free.
    pub async fn take_site_fetch(
        &self,
        host_id: &str,
        update_id: &str,
        site: &str,
        (item, version): (&str, &str),
        (since, at): (&str, &str),
        cap: u32,
    ) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let done = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE updates SET server_fetch_at = $7
             WHERE id = $1 AND status = 'pending' AND ({OTHERS_FETCHING}) < $8"
        )))
        .bind(update_id)
        .bind(since)
        .bind(site)
        .bind(item)
        .bind(version)
        .bind(host_id)
        .bind(at)
        .bind(i64::from(cap))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// The other hosts at `site` (of `host_id`'s tenant) that have a pending update: to wake
    /// when a device there starts sharing.
    pub async fn site_waiting(&self, host_id: &str, site: &str) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT DISTINCT h.id FROM hosts h JOIN updates u ON u.host_id = h.id
             WHERE h.site = $1 AND h.id <> $2 AND {SAME_TENANT}$2) AND u.status = 'pending'
             LIMIT 10000"
        )))
        .bind(site)
        .bind(host_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Offers the host to its site as a peer again; false if it had no fault.
    pub async fn clear_share_fault(&self, host_id: &str) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let done = sqlx::query(
            "UPDATE hosts SET share_fault = NULL WHERE id = $1 AND share_fault IS NOT NULL",
        )
        .bind(host_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// A device of `reporter`'s site and tenant serving at `share` sent bytes that failed the
    /// signed hash: it is offered no more, and `note` says why. Returns its host id.
    pub async fn share_fault(
        &self,
        reporter: &str,
        share: &str,
        note: &str,
    ) -> Result<Option<String>> {
        let mut tx = self.write_tx().await?;
        let id: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "UPDATE hosts SET share_fault = $1
             WHERE id IN (SELECT h.id FROM hosts h
               WHERE h.share_url = $2 AND h.id <> $3 AND {SAME_TENANT}$3)
                 AND h.site = (SELECT site FROM hosts WHERE id = $3)
               LIMIT 1)
             RETURNING id"
        )))
        .bind(note)
        .bind(share)
        .bind(reporter)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }
}
