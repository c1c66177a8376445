//! Hosts: facts, labels, last-seen and what they have installed.

use std::collections::HashMap;

use ferry_manifests::wire::{HostFacts, InstalledItem};
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use super::{opt_version, split_tags, Dialect, Sql};
use crate::store::{HostRow, Result, StoreError};

/// The columns every host query reads, in the order `host_from` expects.
const HOST_COLUMNS: &str =
    "id, hostname, os, os_version, arch, agent_version, device_class, enrolled_at, last_seen,
    newest_manifest_at, device_tags, device_friendly_name, operator_tags, operator_friendly_name,
    accepted, tenant_id, auth, clone_seen, kind, ddi_attributes, site, share_url, share_fault";

/// Hosts whose hostname, friendly name or id contains `$1` (any case) and whose tags (the
/// operator's or the device's own: a display filter, it selects nothing) include `$2`;
/// either may be NULL.
fn host_match(dialect: Dialect) -> String {
    let text = dialect.contains(
        "lower(hostname || ' ' || id || ' ' || COALESCE(operator_friendly_name, device_friendly_name, ''))",
        "lower($1)",
    );
    let tag = dialect.contains(
        "',' || COALESCE(operator_tags, '') || ',' || device_tags || ','",
        "',' || $2 || ','",
    );
    format!("($1 IS NULL OR {text}) AND ($2 IS NULL OR {tag})")
}

/// One (item, version) as the text `hosts_with_installed` compares.
fn installed_key(item: &str, version: Option<&semver::Version>) -> String {
    match version {
        Some(v) => format!("{item}\n{v}"),
        None => format!("{item}\n"),
    }
}

/// Rows of (host_id, item, version) as each host's installed items.
fn by_host(rows: Vec<AnyRow>) -> Result<HashMap<String, Vec<InstalledItem>>> {
    let mut out: HashMap<String, Vec<InstalledItem>> = HashMap::new();
    for i in rows {
        out.entry(i.try_get("host_id")?)
            .or_default()
            .push(InstalledItem {
                item: i.try_get("item")?,
                version: opt_version(i.try_get("version")?)?,
            });
    }
    Ok(out)
}

fn host_from(r: &AnyRow) -> Result<HostRow> {
    Ok(HostRow {
        id: r.try_get("id")?,
        facts: HostFacts {
            hostname: r.try_get("hostname")?,
            os: r.try_get("os")?,
            os_version: r.try_get("os_version")?,
            arch: r.try_get("arch")?,
            agent_version: r.try_get("agent_version")?,
            device_class: r.try_get("device_class")?,
            newest_manifest_at: r.try_get("newest_manifest_at")?,
        },
        enrolled_at: r.try_get("enrolled_at")?,
        last_seen: r.try_get("last_seen")?,
        device_tags: split_tags(&r.try_get::<String, _>("device_tags")?),
        device_friendly_name: r.try_get("device_friendly_name")?,
        operator_tags: r
            .try_get::<Option<String>, _>("operator_tags")?
            .map(|t| split_tags(&t)),
        operator_friendly_name: r.try_get("operator_friendly_name")?,
        accepted: r.try_get::<i64, _>("accepted")? != 0,
        tenant_id: r.try_get("tenant_id")?,
        auth: r.try_get("auth")?,
        clone_seen: r.try_get("clone_seen")?,
        kind: r.try_get("kind")?,
        attributes: r
            .try_get::<Option<String>, _>("ddi_attributes")?
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default(),
        site: r.try_get("site")?,
        share_url: r.try_get("share_url")?,
        share_fault: r.try_get("share_fault")?,
    })
}

impl Sql {
    pub async fn create_host(&self, host: &HostRow, token_hash: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO hosts (id, hostname, token_hash, os, os_version, arch, agent_version, device_class, enrolled_at, last_seen, accepted, tenant_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11,
                     COALESCE($12, (SELECT id FROM tenants WHERE name = 'default')))",
        )
        .bind(&host.id)
        .bind(&host.facts.hostname)
        .bind(token_hash)
        .bind(&host.facts.os)
        .bind(&host.facts.os_version)
        .bind(&host.facts.arch)
        .bind(&host.facts.agent_version)
        .bind(&host.facts.device_class)
        .bind(&host.enrolled_at)
        .bind(&host.last_seen)
        .bind(i64::from(host.accepted))
        .bind(&host.tenant_id)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Accepts a host that waited for it; false if it was accepted already (or is gone).
    pub async fn accept_host(&self, host_id: &str) -> Result<bool> {
        let done = sqlx::query("UPDATE hosts SET accepted = 1 WHERE id = $1 AND accepted = 0")
            .bind(host_id)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The digest of the facts the host last reported, if any was stored.
    pub async fn facts_hash(&self, host_id: &str) -> Result<Option<i64>> {
        Ok(
            sqlx::query_scalar::<_, Option<i64>>("SELECT facts_hash FROM hosts WHERE id = $1")
                .bind(host_id)
                .fetch_optional(&self.pool)
                .await?
                .flatten(),
        )
    }

    /// The host holding this credential, and whether it is accepted.
    pub async fn host_by_token(&self, token_hash: &str) -> Result<Option<(String, bool)>> {
        let row = sqlx::query("SELECT id, accepted FROM hosts WHERE token_hash = $1")
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok((r.try_get("id")?, r.try_get::<i64, _>("accepted")? != 0)))
            .transpose()
    }

    pub async fn hosts(&self) -> Result<Vec<(HostRow, Vec<InstalledItem>)>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {HOST_COLUMNS} FROM hosts ORDER BY hostname, id"
        )))
        .fetch_all(&self.pool)
        .await?;
        let mut installed = by_host(
            sqlx::query("SELECT host_id, item, version FROM installed ORDER BY item")
                .fetch_all(&self.pool)
                .await?,
        )?;
        rows.iter()
            .map(|r| {
                let host = host_from(r)?;
                let items = installed.remove(&host.id).unwrap_or_default();
                Ok((host, items))
            })
            .collect()
    }

    /// Up to `limit` hosts with ids after `after`, in id order, with what they have
    /// installed: a fleet read a page at a time.
    pub async fn hosts_page(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<(HostRow, Vec<InstalledItem>)>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {HOST_COLUMNS} FROM hosts WHERE ($1 IS NULL OR id > $2) ORDER BY id LIMIT $3"
        )))
        .bind(after)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        self.with_installed(&rows).await
    }

    /// One page of the hosts whose hostname, friendly name or id contains `text` and whose
    /// effective tags include `tag`, by hostname; and how many match in all.
    pub async fn hosts_search(
        &self,
        text: Option<&str>,
        tag: Option<&str>,
        offset: u32,
        limit: u32,
    ) -> Result<(Vec<(HostRow, Vec<InstalledItem>)>, u64)> {
        let matching = host_match(self.dialect());
        let total: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM hosts WHERE {matching}"
        )))
        .bind(text)
        .bind(tag)
        .fetch_one(&self.pool)
        .await?;
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {HOST_COLUMNS} FROM hosts WHERE {matching} ORDER BY hostname, id LIMIT $3 OFFSET $4"
        )))
        .bind(text)
        .bind(tag)
        .bind(i64::from(limit))
        .bind(i64::from(offset))
        .fetch_all(&self.pool)
        .await?;
        Ok((self.with_installed(&rows).await?, total as u64))
    }

    /// (id, last seen) of every host matching a text and a tag (as `hosts_search`), by
    /// hostname: the light read behind fleet-wide counts and status filters.
    pub async fn hosts_seen(
        &self,
        text: Option<&str>,
        tag: Option<&str>,
    ) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT id, last_seen FROM hosts WHERE {} ORDER BY hostname, id",
            host_match(self.dialect())
        )))
        .bind(text)
        .bind(tag)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("last_seen")?)))
            .collect()
    }

    /// How many hosts have each (item, version) installed.
    pub async fn installed_counts(&self) -> Result<Vec<(InstalledItem, u64)>> {
        let rows = sqlx::query(
            "SELECT item, version, COUNT(*) AS n FROM installed GROUP BY item, version",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    InstalledItem {
                        item: r.try_get("item")?,
                        version: opt_version(r.try_get("version")?)?,
                    },
                    r.try_get::<i64, _>("n")? as u64,
                ))
            })
            .collect()
    }

    /// Ids of the hosts that have any of these (item, version) installed (`None`: none).
    pub async fn hosts_with_installed(&self, which: &[InstalledItem]) -> Result<Vec<String>> {
        // Each pair as one text, item and version (empty: none) joined by a newline, which
        // neither can hold.
        let pairs = serde_json::to_string(
            &which
                .iter()
                .map(|i| installed_key(&i.item, i.version.as_ref()))
                .collect::<Vec<_>>(),
        )
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT DISTINCT host_id FROM installed
             WHERE item || '\n' || COALESCE(version, '') IN {}",
            self.dialect().json_texts("$1")
        )))
        .bind(pairs)
        .fetch_all(&self.pool)
        .await?)
    }

    /// These hosts (in this order, the missing left out) with what they have installed.
    pub async fn hosts_by_ids(&self, ids: &[String]) -> Result<Vec<(HostRow, Vec<InstalledItem>)>> {
        let json = serde_json::to_string(ids).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {HOST_COLUMNS} FROM hosts WHERE id IN {}",
            self.dialect().json_texts("$1")
        )))
        .bind(json)
        .fetch_all(&self.pool)
        .await?;
        let mut found: HashMap<String, (HostRow, Vec<InstalledItem>)> = self
            .with_installed(&rows)
            .await?
            .into_iter()
            .map(|h| (h.0.id.clone(), h))
            .collect();
        Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
    }

    /// The hosts of `rows` with what each has installed (one query).
    async fn with_installed(&self, rows: &[AnyRow]) -> Result<Vec<(HostRow, Vec<InstalledItem>)>> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let hosts = rows.iter().map(host_from).collect::<Result<Vec<_>>>()?;
        let ids = serde_json::to_string(&hosts.iter().map(|h| h.id.as_str()).collect::<Vec<_>>())
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut installed = by_host(
            sqlx::query(AssertSqlSafe(format!(
                "SELECT host_id, item, version FROM installed WHERE host_id IN {} ORDER BY item",
                self.dialect().json_texts("$1")
            )))
            .bind(ids)
            .fetch_all(&self.pool)
            .await?,
        )?;
        Ok(hosts
            .into_iter()
            .map(|h| {
                let items = installed.remove(&h.id).unwrap_or_default();
                (h, items)
            })
            .collect())
    }

    pub async fn host(&self, id: &str) -> Result<Option<(HostRow, Vec<InstalledItem>)>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {HOST_COLUMNS} FROM hosts WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let installed =
            sqlx::query("SELECT item, version FROM installed WHERE host_id = $1 ORDER BY item")
                .bind(id)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|i| {
                    Ok(InstalledItem {
                        item: i.try_get("item")?,
                        version: opt_version(i.try_get("version")?)?,
                    })
                })
                .collect::<Result<_>>()?;
        Ok(Some((host_from(&row)?, installed)))
    }

    /// Writes last-seen times in one transaction.
    pub async fn touch_hosts(&self, seen: &[(String, String)]) -> Result<()> {
        let mut tx = self.write_tx().await?;
        for (id, at) in seen {
            sqlx::query("UPDATE hosts SET last_seen = $1 WHERE id = $2 AND last_seen < $3")
                .bind(at)
                .bind(id)
                .bind(at)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A host's tags: (the device's own, the operator's if set).
    pub async fn host_tags(
        &self,
        host_id: &str,
    ) -> Result<(Vec<String>, Option<Vec<String>>, Option<String>)> {
        let row =
            sqlx::query("SELECT device_tags, operator_tags, tenant_id FROM hosts WHERE id = $1")
                .bind(host_id)
                .fetch_optional(&self.pool)
                .await?;
        let Some(r) = row else {
            return Ok((Vec::new(), None, None));
        };
        let operator: Option<String> = r.try_get("operator_tags")?;
        Ok((
            split_tags(&r.try_get::<String, _>("device_tags")?),
            operator.map(|t| split_tags(&t)),
            r.try_get("tenant_id")?,
        ))
    }

    /// Hosts that report having `item` (installed or not yet).
    pub async fn hosts_with_item(&self, item: &str) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT i.host_id FROM installed i JOIN hosts h ON h.id = i.host_id
                 WHERE i.item = $1 AND h.accepted = 1",
        )
        .bind(item)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Host ids whose id or hostname is `name`.
    pub async fn find_hosts(&self, name: &str) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query("SELECT id, hostname FROM hosts WHERE id = $1 OR hostname = $2")
            .bind(name)
            .bind(name)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("hostname")?)))
            .collect()
    }

    /// Sets the operator's labels; `None` leaves a field as it is, an empty value clears it.
    pub async fn edit_host(
        &self,
        host_id: &str,
        tags: Option<&[String]>,
        friendly_name: Option<&str>,
    ) -> Result<()> {
        if let Some(tags) = tags {
            let value = (!tags.is_empty()).then(|| tags.join(","));
            sqlx::query("UPDATE hosts SET operator_tags = $1 WHERE id = $2")
                .bind(value)
                .bind(host_id)
                .execute(&self.writer)
                .await?;
        }
        if let Some(name) = friendly_name {
            let value = (!name.is_empty()).then_some(name);
            sqlx::query("UPDATE hosts SET operator_friendly_name = $1 WHERE id = $2")
                .bind(value)
                .bind(host_id)
                .execute(&self.writer)
                .await?;
        }
        Ok(())
    }

    /// Retires a host: its record, history and credential go; the device must enrol again.
    /// Its certificates stay, revoked, so they are never accepted again.
    pub async fn remove_host(&self, host_id: &str) -> Result<bool> {
        let mut tx = self.writer.begin().await?;
        let done = sqlx::query("DELETE FROM hosts WHERE id = $1")
            .bind(host_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE device_certificates SET revoked_at = $1 WHERE host_id = $2 AND revoked_at IS NULL",
        )
        .bind(ferry_manifests::wire::now())
        .bind(host_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }
}

#[cfg(test)]
mod tests;
