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
    newest_manifest_at, device_tags, device_friendly_name, operator_tags, operator_friendly_name";

/// Hosts whose hostname, friendly name or id contains `$1` (any case) and whose effective
/// tags include `$2`; either may be NULL.
fn host_match(dialect: Dialect) -> String {
    let text = dialect.contains(
        "lower(hostname || ' ' || id || ' ' || COALESCE(operator_friendly_name, device_friendly_name, ''))",
        "lower($1)",
    );
    let tag = dialect.contains(
        "',' || COALESCE(operator_tags, device_tags) || ','",
        "',' || $2 || ','",
    );
    format!("($1 IS NULL OR {text}) AND ($2 IS NULL OR {tag})")
}

/// Hosts per batched UPDATE (14 parameters each) and installed items per INSERT (3 each):
/// well under SQLite's 32766 parameters and PostgreSQL's 65535.
const HOSTS_PER_STATEMENT: usize = 200;
const ITEMS_PER_STATEMENT: usize = 500;
/// Check-ins written in one transaction at most.
const HOSTS_PER_BATCH: usize = 1000;

/// A check-in waiting to be written, and who waits for the outcome.
pub(super) struct HostWrite {
    host: HostRow,
    installed: Vec<InstalledItem>,
    utc_offset: Option<i32>,
    facts_hash: i64,
    done: tokio::sync::oneshot::Sender<Result<()>>,
}

/// The task that writes check-ins: it takes every check-in queued while the last batch was
/// written and writes them as one (group commit). A batch that fails is written again one
/// check-in at a time, so one bad row fails only its own check-in.
pub(super) async fn host_writer(db: Sql, mut queue: tokio::sync::mpsc::Receiver<HostWrite>) {
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        while batch.len() < HOSTS_PER_BATCH {
            match queue.try_recv() {
                Ok(w) => batch.push(w),
                Err(_) => break,
            }
        }
        // A host twice in one batch: its last check-in is the one written.
        let mut last: HashMap<&str, usize> = HashMap::new();
        for (i, w) in batch.iter().enumerate() {
            last.insert(w.host.id.as_str(), i);
        }
        let mut keep: Vec<usize> = last.into_values().collect();
        keep.sort_unstable();
        let rows: Vec<&HostWrite> = keep.iter().map(|&i| &batch[i]).collect();
        let outcome = db.write_hosts(&rows).await;
        let singles = match outcome {
            Ok(()) => None,
            Err(e) => {
                tracing::warn!(
                    hosts = rows.len(),
                    "writing check-ins together failed ({e}); writing them one by one"
                );
                let mut each = Vec::with_capacity(rows.len());
                for w in &rows {
                    each.push(db.write_hosts(&[w]).await);
                }
                Some(each)
            }
        };
        let mut results: HashMap<String, Result<()>> = HashMap::new();
        match singles {
            None => {}
            Some(each) => {
                for (w, r) in rows.iter().zip(each) {
                    results.insert(w.host.id.clone(), r);
                }
            }
        }
        for w in batch {
            let r = match results.get(&w.host.id) {
                Some(Err(e)) => Err(StoreError::Corrupt(format!("check-in not written: {e}"))),
                _ => Ok(()),
            };
            let _ = w.done.send(r);
        }
    }
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
    })
}

impl Sql {
    pub async fn create_host(&self, host: &HostRow, token_hash: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO hosts (id, hostname, token_hash, os, os_version, arch, agent_version, device_class, enrolled_at, last_seen)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
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
        .execute(&self.writer)
        .await?;
        Ok(())
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

    pub async fn host_by_token(&self, token_hash: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT id FROM hosts WHERE token_hash = $1")
                .bind(token_hash)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Records a check-in: facts, last seen, the UTC offset if given and what is installed.
    /// Check-ins arriving together are written together ([`HostWriter`]): one transaction
    /// and a few statements for the lot, so a fleet's first contacts do not queue one
    /// transaction each behind the database's single writer.
    pub async fn update_host(
        &self,
        host: HostRow,
        installed: &[InstalledItem],
        utc_offset: Option<i32>,
        facts_hash: i64,
    ) -> Result<()> {
        let (done, answer) = tokio::sync::oneshot::channel();
        let write = HostWrite {
            host,
            installed: installed.to_vec(),
            utc_offset,
            facts_hash,
            done,
        };
        self.host_writes
            .send(write)
            .await
            .map_err(|_| StoreError::WriterStopped)?;
        answer.await.map_err(|_| StoreError::WriterStopped)?
    }

    /// Writes a batch of check-ins in one transaction (the last of a host's wins).
    async fn write_hosts(&self, batch: &[&HostWrite]) -> Result<()> {
        let mut tx = self.write_tx().await?;
        for chunk in batch.chunks(HOSTS_PER_STATEMENT) {
            let rows = (0..chunk.len())
                .map(|r| {
                    let p = |c: usize| format!("${}", r * 14 + c);
                    format!("({})", (1..=14).map(p).collect::<Vec<_>>().join(", "))
                })
                .collect::<Vec<_>>()
                .join(", ");
            let mut q = sqlx::query(AssertSqlSafe(format!(
                "UPDATE hosts SET hostname = v.column2, os = v.column3, os_version = v.column4,
                    arch = v.column5, agent_version = v.column6, device_class = v.column7,
                    last_seen = v.column8, newest_manifest_at = v.column9, device_tags = v.column10,
                    device_friendly_name = v.column11,
                    utc_offset_secs = CASE WHEN v.column13 = 1 THEN v.column12 ELSE hosts.utc_offset_secs END,
                    facts_hash = v.column14
                 FROM (VALUES {rows}) AS v WHERE hosts.id = v.column1"
            )));
            for w in chunk {
                let h = &w.host;
                q = q
                    .bind(&h.id)
                    .bind(&h.facts.hostname)
                    .bind(&h.facts.os)
                    .bind(&h.facts.os_version)
                    .bind(&h.facts.arch)
                    .bind(&h.facts.agent_version)
                    .bind(&h.facts.device_class)
                    .bind(&h.last_seen)
                    .bind(&h.facts.newest_manifest_at)
                    .bind(h.device_tags.join(","))
                    .bind(&h.device_friendly_name)
                    .bind(i64::from(w.utc_offset.unwrap_or(0)))
                    .bind(i64::from(w.utc_offset.is_some()))
                    .bind(w.facts_hash);
            }
            q.execute(&mut *tx).await?;
        }
        let ids =
            serde_json::to_string(&batch.iter().map(|w| w.host.id.as_str()).collect::<Vec<_>>())
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM installed WHERE host_id IN {}",
            self.dialect().json_texts("$1")
        )))
        .bind(ids)
        .execute(&mut *tx)
        .await?;
        let items: Vec<(&str, &InstalledItem)> = batch
            .iter()
            .flat_map(|w| w.installed.iter().map(|i| (w.host.id.as_str(), i)))
            .collect();
        for chunk in items.chunks(ITEMS_PER_STATEMENT) {
            let rows = (0..chunk.len())
                .map(|r| format!("(${}, ${}, ${})", r * 3 + 1, r * 3 + 2, r * 3 + 3))
                .collect::<Vec<_>>()
                .join(", ");
            let mut q = sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO installed (host_id, item, version) VALUES {rows}"
            )));
            for (host_id, i) in chunk {
                q = q
                    .bind(*host_id)
                    .bind(&i.item)
                    .bind(i.version.as_ref().map(|v| v.to_string()));
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
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

    /// A host's effective tags (the operator's if set, else the device's).
    pub async fn host_tags(&self, host_id: &str) -> Result<Vec<String>> {
        let row = sqlx::query("SELECT device_tags, operator_tags FROM hosts WHERE id = $1")
            .bind(host_id)
            .fetch_optional(&self.pool)
            .await?;
        let Some(r) = row else { return Ok(Vec::new()) };
        let operator: Option<String> = r.try_get("operator_tags")?;
        Ok(split_tags(&match operator {
            Some(t) => t,
            None => r.try_get("device_tags")?,
        }))
    }

    /// Hosts that report having `item` (installed or not yet).
    pub async fn hosts_with_item(&self, item: &str) -> Result<Vec<String>> {
        Ok(
            sqlx::query_scalar("SELECT DISTINCT host_id FROM installed WHERE item = $1")
                .bind(item)
                .fetch_all(&self.pool)
                .await?,
        )
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
    pub async fn remove_host(&self, host_id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM hosts WHERE id = $1")
            .bind(host_id)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}

#[cfg(test)]
mod tests {
    use ferry_manifests::wire::{HostFacts, InstalledItem};

    use crate::store::{HostRow, Store};

    fn host(id: &str) -> HostRow {
        HostRow {
            id: id.into(),
            facts: HostFacts {
                hostname: format!("host-{id}"),
                os: "debian".into(),
                os_version: "12".into(),
                arch: "x86_64".into(),
                agent_version: "0.1.0".into(),
                device_class: None,
                newest_manifest_at: None,
            },
            enrolled_at: "2026-01-01T00:00:00Z".into(),
            last_seen: "2026-01-01T00:00:00Z".into(),
            device_tags: vec![],
            device_friendly_name: None,
            operator_tags: None,
            operator_friendly_name: None,
        }
    }

    /// Pages walk every host once, in id order, each with its own installed items.
    #[tokio::test]
    async fn pages_cover_every_host_once_with_its_items() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(&dir.path().join("ferry.db"))
            .await
            .unwrap();
        let ids = ["e", "a", "c", "b", "d"];
        for id in ids {
            let h = host(id);
            store.create_host(&h, &format!("hash-{id}")).await.unwrap();
            let installed = [InstalledItem {
                item: format!("item-{id}"),
                version: Some("1.0.0".parse().unwrap()),
            }];
            store
                .update_host(h, &installed, Some(3600), 7)
                .await
                .unwrap();
        }
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..10 {
            let page = store.hosts_page(after.as_deref(), 2).await.unwrap();
            let Some((last, _)) = page.last() else { break };
            assert!(page.len() <= 2);
            after = Some(last.id.clone());
            for (h, installed) in page {
                let items: Vec<String> = installed.into_iter().map(|i| i.item).collect();
                assert_eq!(items, [format!("item-{}", h.id)]);
                seen.push(h.id);
            }
        }
        assert_eq!(seen, ["a", "b", "c", "d", "e"]);

        // By id, in the order asked, the unknown left out.
        let ids: Vec<String> = ["d", "nope", "a"].map(String::from).to_vec();
        let got: Vec<String> = store
            .hosts_by_ids(&ids)
            .await
            .unwrap()
            .into_iter()
            .map(|(h, _)| h.id)
            .collect();
        assert_eq!(got, ["d", "a"]);
        // Who has which version.
        let which = [InstalledItem {
            item: "item-c".into(),
            version: Some("1.0.0".parse().unwrap()),
        }];
        assert_eq!(store.hosts_with_installed(&which).await.unwrap(), ["c"]);
        let counts = store.installed_counts().await.unwrap();
        assert_eq!(counts.len(), 5);
        assert!(counts.iter().all(|(_, n)| *n == 1));
        let seen = store.hosts_seen(Some("HOST-B"), None).await.unwrap();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].0, "b");
    }
}
