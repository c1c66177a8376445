//! MQTT connections added through the API, secrets sealed.

use sqlx::Row;

use super::Sql;
use crate::store::{Result, StoredMqtt};

impl Sql {
    pub async fn mqtt_connections(&self) -> Result<Vec<StoredMqtt>> {
        let rows = sqlx::query(
            "SELECT name, url, username, password_sealed, ca_sealed, client_id, topic_prefix,
                discovery, discovery_prefix, tenant_id FROM mqtt_connections ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(StoredMqtt {
                    name: r.try_get("name")?,
                    url: r.try_get("url")?,
                    username: r.try_get("username")?,
                    password_sealed: r.try_get("password_sealed")?,
                    ca_sealed: r.try_get("ca_sealed")?,
                    client_id: r.try_get("client_id")?,
                    topic_prefix: r.try_get("topic_prefix")?,
                    discovery: r.try_get::<Option<i64>, _>("discovery")?.map(|d| d != 0),
                    discovery_prefix: r.try_get("discovery_prefix")?,
                    tenant_id: r.try_get("tenant_id")?,
                })
            })
            .collect()
    }

    /// Adds or replaces a connection.
    pub async fn put_mqtt(&self, m: &StoredMqtt) -> Result<()> {
        sqlx::query(
            "INSERT INTO mqtt_connections (name, url, username, password_sealed, ca_sealed,
                client_id, topic_prefix, discovery, discovery_prefix, created_at, tenant_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             ON CONFLICT (name) DO UPDATE SET url = excluded.url, username = excluded.username,
                password_sealed = excluded.password_sealed, ca_sealed = excluded.ca_sealed,
                client_id = excluded.client_id, topic_prefix = excluded.topic_prefix,
                discovery = excluded.discovery, discovery_prefix = excluded.discovery_prefix,
                created_at = excluded.created_at",
        )
        .bind(&m.name)
        .bind(&m.url)
        .bind(&m.username)
        .bind(&m.password_sealed)
        .bind(&m.ca_sealed)
        .bind(&m.client_id)
        .bind(&m.topic_prefix)
        .bind(m.discovery.map(i64::from))
        .bind(&m.discovery_prefix)
        .bind(ferry_manifests::wire::now())
        .bind(&m.tenant_id)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Removes a connection; false if there was none.
    pub async fn remove_mqtt(&self, name: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM mqtt_connections WHERE name = $1")
            .bind(name)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}
