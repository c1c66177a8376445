//! Check-ins written: the task that takes every check-in queued while the last batch was
//! written and writes them together (group commit), and the batched host update itself.

use std::collections::HashMap;

use ferry_manifests::wire::InstalledItem;
use sqlx::AssertSqlSafe;

use super::Sql;
use crate::store::{HostCheckIn, Result, StoreError};

/// Hosts per batched UPDATE (14 parameters each) and installed items per INSERT (3 each):
/// well under SQLite's 32766 parameters and PostgreSQL's 65535.
const HOSTS_PER_STATEMENT: usize = 200;
const ITEMS_PER_STATEMENT: usize = 500;
/// Check-ins written in one transaction at most.
const HOSTS_PER_BATCH: usize = 1000;

/// A check-in waiting to be written, and who waits for the outcome.
pub(super) struct HostWrite {
    host: HostCheckIn,
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

impl Sql {
    /// Records a check-in: facts, last seen, the UTC offset if given and what is installed.
    /// Check-ins arriving together are written together ([`HostWriter`]): one transaction
    /// and a few statements for the lot, so a fleet's first contacts do not queue one
    /// transaction each behind the database's single writer.
    pub async fn update_host(
        &self,
        host: HostCheckIn,
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
                    let p = |c: usize| format!("${}", r * 17 + c);
                    format!("({})", (1..=17).map(p).collect::<Vec<_>>().join(", "))
                })
                .collect::<Vec<_>>()
                .join(", ");
            let mut q = sqlx::query(AssertSqlSafe(format!(
                "UPDATE hosts SET hostname = v.column2, os = v.column3, os_version = v.column4,
                    arch = v.column5, agent_version = v.column6, device_class = v.column7,
                    last_seen = v.column8, newest_manifest_at = v.column9, device_tags = v.column10,
                    device_friendly_name = v.column11,
                    utc_offset_secs = CASE WHEN v.column13 = 1 THEN v.column12 ELSE hosts.utc_offset_secs END,
                    facts_hash = v.column14, site = v.column15, share_url = v.column16,
                    share_holds = v.column17
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
                    .bind(w.facts_hash)
                    .bind(h.site.as_ref().map(|s| s.name.clone()))
                    .bind(h.site.as_ref().and_then(|s| s.share.clone()))
                    .bind(h.site.as_ref().map_or(String::new(), |s| s.holds.join(" ")));
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
}
