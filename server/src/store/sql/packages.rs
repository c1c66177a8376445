//! Software the devices' sources found installed: replaced whole per host when its digest
//! changes, searched by name across the fleet.

use ferry_manifests::manifest::Category;
use ferry_manifests::wire::{HostPending, InventoryPackage, PackageHit};
use sqlx::Row;

use super::Sql;
use crate::store::Result;

/// Rows written per INSERT statement.
const CHUNK: usize = 200;

impl Sql {
    /// The digest of the inventory stored for `host_id`, if any.
    pub async fn inventory_digest(&self, host_id: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT inventory_digest FROM hosts WHERE id = $1")
                .bind(host_id)
                .fetch_optional(&self.pool)
                .await?
                .flatten(),
        )
    }

    /// The host's list as stored, sorted.
    pub async fn inventory(&self, host_id: &str) -> Result<Vec<InventoryPackage>> {
        let rows = sqlx::query(
            "SELECT source, name, version, latest, category, release FROM host_packages WHERE host_id = $1",
        )
        .bind(host_id)
        .fetch_all(&self.pool)
        .await?;
        let mut out = rows.iter().map(package).collect::<Result<Vec<_>>>()?;
        out.sort();
        Ok(out)
    }

    /// Replaces the host's inventory with `packages` and records their `digest`, in one
    /// transaction.
    pub async fn set_inventory(
        &self,
        host_id: &str,
        digest: &str,
        packages: &[InventoryPackage],
    ) -> Result<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query("DELETE FROM host_packages WHERE host_id = $1")
            .bind(host_id)
            .execute(&mut *tx)
            .await?;
        for chunk in packages.chunks(CHUNK) {
            let values: Vec<String> = (0..chunk.len())
                .map(|i| {
                    let b = i * 7;
                    format!(
                        "(${}, ${}, ${}, ${}, ${}, ${}, ${})",
                        b + 1,
                        b + 2,
                        b + 3,
                        b + 4,
                        b + 5,
                        b + 6,
                        b + 7
                    )
                })
                .collect();
            let sql = format!(
                "INSERT INTO host_packages (host_id, source, name, version, latest, category, release) VALUES {}",
                values.join(", ")
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for p in chunk {
                q = q
                    .bind(host_id)
                    .bind(&p.source)
                    .bind(&p.name)
                    .bind(&p.version)
                    .bind(&p.latest)
                    .bind(p.category.map(|c| c.as_str()))
                    .bind(
                        p.release
                            .as_ref()
                            .and_then(|r| serde_json::to_string(r).ok()),
                    );
            }
            q.execute(&mut *tx).await?;
        }
        let c = PackageCounts::of(host_id, packages);
        sqlx::query("DELETE FROM host_package_counts WHERE host_id = $1")
            .bind(host_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO host_package_counts (host_id, total, pending, security, bugfix, feature)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(host_id)
        .bind(c.total)
        .bind(c.pending)
        .bind(c.security)
        .bind(c.bugfix)
        .bind(c.feature)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE hosts SET inventory_digest = $1 WHERE id = $2")
            .bind(digest)
            .bind(host_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every host that has a package named `name`, with its version and any upgrade.
    pub async fn packages_named(&self, name: &str) -> Result<Vec<PackageHit>> {
        let rows = sqlx::query(
            "SELECT p.host_id, h.hostname, p.source, p.name, p.version, p.latest, p.category, p.release
             FROM host_packages p JOIN hosts h ON h.id = p.host_id
             WHERE p.name = $1 ORDER BY h.hostname, p.host_id",
        )
        .bind(name)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(hit).collect()
    }

    /// Every host's packages named any of `names` (the operator's featured software).
    pub async fn packages_named_any(&self, names: &[String]) -> Result<Vec<PackageHit>> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let names = serde_json::to_string(names)
            .map_err(|e| crate::store::StoreError::Corrupt(e.to_string()))?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT p.host_id, h.hostname, p.source, p.name, p.version, p.latest, p.category, p.release
             FROM host_packages p JOIN hosts h ON h.id = p.host_id
             WHERE p.name IN {} ORDER BY p.host_id, p.name",
            self.dialect().json_texts("$1")
        )))
        .bind(names)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(hit).collect()
    }

    /// Installed software with an upgrade offered, of `category` when given, across the
    /// fleet (at most `limit` rows), by host.
    pub async fn packages_pending(
        &self,
        category: Option<Category>,
        limit: i64,
    ) -> Result<Vec<PackageHit>> {
        // Two statements, so each uses the partial index of pending upgrades (an `$1 IS NULL
        // OR` would read every package of the fleet).
        let select =
            "SELECT p.host_id, h.hostname, p.source, p.name, p.version, p.latest, p.category, p.release
             FROM host_packages p JOIN hosts h ON h.id = p.host_id";
        let order = "ORDER BY h.hostname, p.host_id, p.name";
        let rows = match category {
            Some(c) => {
                let sql = format!(
                    "{select} WHERE p.category = $1 AND p.latest IS NOT NULL {order} LIMIT $2"
                );
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(c.as_str())
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                let sql = format!("{select} WHERE p.latest IS NOT NULL {order} LIMIT $1");
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter().map(hit).collect()
    }

    /// The hosts with upgrades pending (of `category` when given), in numbers, by hostname:
    /// one row per host from the counts kept with each list.
    pub async fn hosts_pending(&self, category: Option<Category>) -> Result<Vec<HostPending>> {
        let column = match category {
            None => "c.pending",
            Some(Category::Security) => "c.security",
            Some(Category::Bugfix) => "c.bugfix",
            Some(Category::Feature) => "c.feature",
            // Not counted on its own: what is pending and of no other category.
            Some(Category::Unknown) => "(c.pending - c.security - c.bugfix - c.feature)",
        };
        let sql = format!(
            "SELECT c.host_id, h.hostname, c.total, c.pending, c.security, c.bugfix, c.feature
             FROM host_package_counts c JOIN hosts h ON h.id = c.host_id
             WHERE {column} > 0 ORDER BY h.hostname, c.host_id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let n = |k: &str| -> Result<u64> {
                    Ok(u64::try_from(r.try_get::<i64, _>(k)?).unwrap_or(0))
                };
                Ok(HostPending {
                    host_id: r.try_get("host_id")?,
                    hostname: r.try_get("hostname")?,
                    total: n("total")?,
                    pending: n("pending")?,
                    security: n("security")?,
                    bugfix: n("bugfix")?,
                    feature: n("feature")?,
                })
            })
            .collect()
    }

    /// One host's software in numbers (if it sent a list) and its packages with an upgrade
    /// offered, security first.
    pub async fn host_software(
        &self,
        host_id: &str,
    ) -> Result<(Option<PackageCounts>, Vec<PackageHit>)> {
        let counts = sqlx::query(
            "SELECT host_id, total, pending, security, bugfix, feature FROM host_package_counts
             WHERE host_id = $1",
        )
        .bind(host_id)
        .fetch_optional(&self.pool)
        .await?
        .map(|r| counts_from(&r))
        .transpose()?;
        let rows = sqlx::query(
            "SELECT p.host_id, h.hostname, p.source, p.name, p.version, p.latest, p.category, p.release
             FROM host_packages p JOIN hosts h ON h.id = p.host_id
             WHERE p.host_id = $1 AND p.latest IS NOT NULL
             ORDER BY CASE p.category WHEN 'security' THEN 0 WHEN 'bugfix' THEN 1
                      WHEN 'feature' THEN 2 ELSE 3 END, p.source, p.name",
        )
        .bind(host_id)
        .fetch_all(&self.pool)
        .await?;
        Ok((counts, rows.iter().map(hit).collect::<Result<_>>()?))
    }

    /// Per host: how many packages its sources found, how many have an upgrade, and of
    /// those how many per category (kept with each list, one row per host).
    pub async fn package_counts(&self) -> Result<Vec<PackageCounts>> {
        let rows = sqlx::query(
            "SELECT host_id, total, pending, security, bugfix, feature FROM host_package_counts",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(counts_from).collect()
    }
}

/// A host's software in numbers ([`Sql::package_counts`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PackageCounts {
    pub host_id: String,
    pub total: i64,
    pub pending: i64,
    pub security: i64,
    pub bugfix: i64,
    pub feature: i64,
}

impl PackageCounts {
    /// The numbers of a host's list.
    pub fn of(host_id: &str, packages: &[InventoryPackage]) -> PackageCounts {
        let pending = |c: Option<Category>| {
            packages
                .iter()
                .filter(|p| p.latest.is_some() && (c.is_none() || p.category == c))
                .count() as i64
        };
        PackageCounts {
            host_id: host_id.to_string(),
            total: packages.len() as i64,
            pending: pending(None),
            security: pending(Some(Category::Security)),
            bugfix: pending(Some(Category::Bugfix)),
            feature: pending(Some(Category::Feature)),
        }
    }
}

fn counts_from(r: &sqlx::any::AnyRow) -> Result<PackageCounts> {
    Ok(PackageCounts {
        host_id: r.try_get("host_id")?,
        total: r.try_get("total")?,
        pending: r.try_get("pending")?,
        security: r.try_get("security")?,
        bugfix: r.try_get("bugfix")?,
        feature: r.try_get("feature")?,
    })
}

/// A `host_packages` row as the device sent it.
fn package(r: &sqlx::any::AnyRow) -> Result<InventoryPackage> {
    let category: Option<String> = r.try_get("category")?;
    Ok(InventoryPackage {
        source: r.try_get("source")?,
        name: r.try_get("name")?,
        version: r.try_get("version")?,
        latest: r.try_get("latest")?,
        category: category.and_then(|c| c.parse().ok()),
        release: r
            .try_get::<Option<String>, _>("release")?
            .and_then(|t| serde_json::from_str(&t).ok()),
    })
}

fn hit(r: &sqlx::any::AnyRow) -> Result<PackageHit> {
    let p = package(r)?;
    Ok(PackageHit {
        host_id: r.try_get("host_id")?,
        hostname: r.try_get("hostname")?,
        source: p.source,
        name: p.name,
        version: p.version,
        latest: p.latest,
        category: p.category,
        release: p.release,
    })
}
