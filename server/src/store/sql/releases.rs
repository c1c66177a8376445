//! Releases: the signed envelopes and what the server indexes of them.

use ferry_manifests::wire::ReleaseView;
use sqlx::Row;

use super::webhooks::{self, Owner};
use super::{parse_version, Sql};
use crate::store::{NewRelease, Result, StoreError, WebhookEvent};

impl Sql {
    /// Inserts a release; returns false when that item and version already exist.
    pub async fn add_release(&self, r: &NewRelease) -> Result<bool> {
        let v = &r.view;
        let mut tx = self.write_tx().await?;
        let done = sqlx::query(
            "INSERT INTO releases (item, version, category, released_at, expires_at, notes, layout, artifact_name,
                artifact_size, artifact_sha256, signed_by, envelope, published_at, release_url)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) ON CONFLICT (item, version) DO NOTHING",
        )
        .bind(&v.item)
        .bind(v.version.to_string())
        .bind(&v.category)
        .bind(&v.released_at)
        .bind(&v.expires_at)
        .bind(&v.notes)
        .bind(&v.layout)
        .bind(&v.artifact_name)
        .bind(v.artifact_size as i64)
        .bind(&v.artifact_sha256)
        .bind(v.signed_by.join(","))
        .bind(&r.envelope)
        .bind(&v.published_at)
        .bind(&v.release_url)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 1 {
            let event = WebhookEvent {
                kind: "release.published",
                data: serde_json::json!({
                    "item": v.item,
                    "version": v.version.to_string(),
                    "category": v.category,
                    "notes": v.notes,
                    "release_url": v.release_url,
                    "artifact_sha256": v.artifact_sha256,
                    "signed_by": v.signed_by,
                }),
            };
            let tenant = webhooks::tenant_of(&mut tx, Owner::Item(&v.item)).await?;
            webhooks::emit(&mut tx, tenant.as_deref(), &event).await?;
        }
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn releases(&self, item: Option<&str>) -> Result<Vec<ReleaseView>> {
        let rows = sqlx::query(
            "SELECT item, version, category, released_at, expires_at, notes, layout, artifact_name, artifact_size,
                artifact_sha256, signed_by, published_at, release_url, mirrors, withdrawn_at, withdrawn_reason,
                metered_allowed
             FROM releases WHERE ($1 IS NULL OR item = $2)",
        )
        .bind(item)
        .bind(item)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let signed_by: String = r.try_get("signed_by")?;
            out.push(ReleaseView {
                item: r.try_get("item")?,
                version: parse_version(&r.try_get::<String, _>("version")?)?,
                category: r.try_get("category")?,
                released_at: r.try_get("released_at")?,
                expires_at: r.try_get("expires_at")?,
                notes: r.try_get("notes")?,
                release_url: r.try_get("release_url")?,
                layout: r.try_get("layout")?,
                artifact_name: r.try_get("artifact_name")?,
                artifact_size: r.try_get::<i64, _>("artifact_size")? as u64,
                artifact_sha256: r.try_get("artifact_sha256")?,
                signed_by: signed_by
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect(),
                published_at: r.try_get("published_at")?,
                mirrors: serde_json::from_str(&r.try_get::<String, _>("mirrors")?)
                    .map_err(|e| StoreError::Corrupt(format!("mirrors: {e}")))?,
                withdrawn_at: r.try_get("withdrawn_at")?,
                withdrawn_reason: r.try_get("withdrawn_reason")?,
                bundle: None,
                metered_allowed: r.try_get::<i64, _>("metered_allowed")? != 0,
            });
            if let Some(last) = out.last_mut() {
                last.bundle = ferry_manifests::manifest::Bundle::of_file_name(&last.artifact_name)
                    .map(|b| b.as_str().to_string());
            }
        }
        // Semver order, not text order: 1.10.0 after 1.9.0.
        out.sort_by(|a, b| a.item.cmp(&b.item).then(a.version.cmp(&b.version)));
        Ok(out)
    }

    /// Withdraws a release, and cancels the installs of it not yet started (their devices hear
    /// of it at check-in); false if there is no such release not yet withdrawn.
    pub async fn withdraw_release(&self, item: &str, version: &str, reason: &str) -> Result<bool> {
        let now = ferry_manifests::wire::now();
        let mut tx = self.writer.begin().await?;
        let done = sqlx::query(
            "UPDATE releases SET withdrawn_at = $1, withdrawn_reason = $2
             WHERE item = $3 AND version = $4 AND withdrawn_at IS NULL",
        )
        .bind(&now)
        .bind(reason)
        .bind(item)
        .bind(version)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 1 {
            sqlx::query(
                "UPDATE updates SET status = 'cancelled', message = $1, finished_at = $2
                 WHERE status = 'pending' AND item = $3 AND version = $4",
            )
            .bind(format!("release withdrawn: {reason}"))
            .bind(&now)
            .bind(item)
            .bind(version)
            .execute(&mut *tx)
            .await?;
            let event = WebhookEvent {
                kind: "release.withdrawn",
                data: serde_json::json!({"item": item, "version": version, "reason": reason}),
            };
            let tenant = webhooks::tenant_of(&mut tx, Owner::Item(item)).await?;
            webhooks::emit(&mut tx, tenant.as_deref(), &event).await?;
        }
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records the mirrors of a release; false if there is no such release.
    pub async fn set_mirrors(&self, item: &str, version: &str, mirrors: &[String]) -> Result<bool> {
        let json =
            serde_json::to_string(mirrors).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let done = sqlx::query("UPDATE releases SET mirrors = $1 WHERE item = $2 AND version = $3")
            .bind(json)
            .bind(item)
            .bind(version)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Whether installs of a release may download over a metered link; false if there is no
    /// such release.
    pub async fn set_metered_allowed(
        &self,
        item: &str,
        version: &str,
        allowed: bool,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE releases SET metered_allowed = $1 WHERE item = $2 AND version = $3",
        )
        .bind(i64::from(allowed))
        .bind(item)
        .bind(version)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn envelope(&self, item: &str, version: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT envelope FROM releases WHERE item = $1 AND version = $2")
                .bind(item)
                .bind(version)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    pub async fn artifact_in_use(&self, name: &str) -> Result<bool> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM releases WHERE artifact_name = $1")
            .bind(name)
            .fetch_one(&self.pool)
            .await?;
        Ok(n > 0)
    }
}
