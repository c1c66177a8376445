//! Software items: presentation and status.

use sqlx::Row;

use super::Sql;
use crate::store::{ItemSettings, Result};

impl Sql {
    /// Presentation and status of items that have a row (items without one are defaults).
    pub async fn item_settings(&self) -> Result<Vec<ItemSettings>> {
        let rows = sqlx::query("SELECT name, featured, icon_url, deactivated FROM items")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(ItemSettings {
                    name: r.try_get("name")?,
                    featured: r.try_get::<i64, _>("featured")? != 0,
                    icon_url: r.try_get("icon_url")?,
                    deactivated: r.try_get::<i64, _>("deactivated")? != 0,
                })
            })
            .collect()
    }

    pub async fn edit_item(
        &self,
        name: &str,
        featured: Option<bool>,
        icon_url: Option<Option<&str>>,
        deactivated: Option<bool>,
    ) -> Result<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query("INSERT INTO items (name) VALUES ($1) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        if let Some(f) = featured {
            sqlx::query("UPDATE items SET featured = $1 WHERE name = $2")
                .bind(f as i64)
                .bind(name)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(url) = icon_url {
            sqlx::query("UPDATE items SET icon_url = $1 WHERE name = $2")
                .bind(url)
                .bind(name)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(d) = deactivated {
            sqlx::query("UPDATE items SET deactivated = $1 WHERE name = $2")
                .bind(d as i64)
                .bind(name)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
