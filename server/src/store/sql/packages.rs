//! Software the devices' sources found installed: replaced whole per host when its digest
//! changes, searched by name across the fleet.

use ferry_manifests::wire::{InventoryPackage, PackageHit};
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
                    let b = i * 4;
                    format!("(${}, ${}, ${}, ${})", b + 1, b + 2, b + 3, b + 4)
                })
                .collect();
            let sql = format!(
                "INSERT INTO host_packages (host_id, source, name, version) VALUES {}",
                values.join(", ")
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for p in chunk {
                q = q
                    .bind(host_id)
                    .bind(&p.source)
                    .bind(&p.name)
                    .bind(&p.version);
            }
            q.execute(&mut *tx).await?;
        }
        sqlx::query("UPDATE hosts SET inventory_digest = $1 WHERE id = $2")
            .bind(digest)
            .bind(host_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every host that has a package named `name`, with its version.
    pub async fn packages_named(&self, name: &str) -> Result<Vec<PackageHit>> {
        let rows = sqlx::query(
            "SELECT p.host_id, h.hostname, p.source, p.name, p.version
             FROM host_packages p JOIN hosts h ON h.id = p.host_id
             WHERE p.name = $1 ORDER BY h.hostname, p.host_id",
        )
        .bind(name)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(PackageHit {
                    host_id: r.try_get("host_id")?,
                    hostname: r.try_get("hostname")?,
                    source: r.try_get("source")?,
                    name: r.try_get("name")?,
                    version: r.try_get("version")?,
                })
            })
            .collect()
    }
}
