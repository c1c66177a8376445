//! Webhooks: the endpoints, the outbox of events (written by `emit` inside the transaction
//! of what they tell of) and each endpoint's delivery of each event. Instances claim due
//! deliveries for a while (`claimed_until`), so one event goes out from one instance at a
//! time.

use sqlx::Row;

use super::Sql;
use crate::store::{ClaimedDelivery, DeliveryRow, Result, StoredWebhook, WebhookEvent};

/// The default tenant's id, for what belongs to no tenant in particular.
const DEFAULT_TENANT_ID: &str = "(SELECT id FROM tenants WHERE name = 'default')";

/// Whether any webhook of `tenant` (`None`: the default tenant) wants events of `kind`: what
/// is worth reading to write one.
pub(super) async fn wanted(
    conn: &mut sqlx::AnyConnection,
    tenant: Option<&str>,
    kind: &str,
) -> Result<bool> {
    let wanted: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM webhooks WHERE tenant_id = COALESCE($1, {DEFAULT_TENANT_ID}) AND events LIKE $2"
    )))
    .bind(tenant)
    .bind(format!("%,{kind},%"))
    .fetch_one(&mut *conn)
    .await?;
    Ok(wanted > 0)
}

/// Writes `event` of `tenant` (`None`: the default tenant) to the outbox, one delivery for
/// each of the tenant's webhooks that wants it, on `conn` (the caller's transaction).
/// Nothing is written when no webhook wants it.
pub(super) async fn emit(
    conn: &mut sqlx::AnyConnection,
    tenant: Option<&str>,
    event: &WebhookEvent,
) -> Result<()> {
    if !wanted(conn, tenant, event.kind).await? {
        return Ok(());
    }
    let pattern = format!("%,{},%", event.kind);
    let now = ferry_manifests::wire::now();
    let id = format!("msg_{}", uuid::Uuid::new_v4().simple());
    let tenant_sql = format!("COALESCE($1, {DEFAULT_TENANT_ID})");
    let payload = serde_json::json!({
        "type": event.kind,
        "timestamp": now,
        "data": event.data,
    })
    .to_string();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO webhook_events (id, tenant_id, type, payload, created_at)
         VALUES ($2, {tenant_sql}, $3, $4, $5)"
    )))
    .bind(tenant)
    .bind(&id)
    .bind(event.kind)
    .bind(&payload)
    .bind(&now)
    .execute(&mut *conn)
    .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO webhook_deliveries (event_id, webhook_id, state, attempts, next_attempt_at)
         SELECT $2, id, 'pending', 0, $3 FROM webhooks
         WHERE tenant_id = {tenant_sql} AND events LIKE $4"
    )))
    .bind(tenant)
    .bind(&id)
    .bind(&now)
    .bind(&pattern)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The tenant of a host, campaign or item (`None`: none recorded, the default tenant's).
pub(super) async fn tenant_of(
    conn: &mut sqlx::AnyConnection,
    what: Owner<'_>,
) -> Result<Option<String>> {
    let (sql, id) = match what {
        Owner::Host(id) => ("SELECT tenant_id FROM hosts WHERE id = $1", id),
        Owner::Campaign(id) => ("SELECT tenant_id FROM campaigns WHERE id = $1", id),
        Owner::Item(item) => ("SELECT tenant_id FROM item_owners WHERE item = $1", item),
    };
    let found: Option<Option<String>> = sqlx::query_scalar(sql)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(found.flatten())
}

/// What an event's tenant is read from.
#[derive(Debug, Clone, Copy)]
pub(super) enum Owner<'a> {
    Host(&'a str),
    Campaign(&'a str),
    Item(&'a str),
}

fn webhook_from(r: &sqlx::any::AnyRow) -> Result<StoredWebhook> {
    let events: String = r.try_get("events")?;
    Ok(StoredWebhook {
        id: r.try_get("id")?,
        tenant_id: r.try_get("tenant_id")?,
        url: r.try_get("url")?,
        events: events
            .split(',')
            .filter(|e| !e.is_empty())
            .map(str::to_string)
            .collect(),
        secret_sealed: r.try_get("secret")?,
        description: r.try_get("description")?,
        created_by: r.try_get("created_by")?,
        created_at: r.try_get("created_at")?,
    })
}

impl Sql {
    pub async fn add_webhook(&self, w: &StoredWebhook) -> Result<()> {
        sqlx::query(
            "INSERT INTO webhooks (id, tenant_id, url, events, secret, description, created_by, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&w.id)
        .bind(&w.tenant_id)
        .bind(&w.url)
        .bind(format!(",{},", w.events.join(",")))
        .bind(&w.secret_sealed)
        .bind(&w.description)
        .bind(&w.created_by)
        .bind(&w.created_at)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// A tenant's webhooks (every tenant's: `None`), oldest first.
    pub async fn webhooks(&self, tenant_id: Option<&str>) -> Result<Vec<StoredWebhook>> {
        let rows = sqlx::query(
            "SELECT id, tenant_id, url, events, secret, description, created_by, created_at
             FROM webhooks WHERE ($1 IS NULL OR tenant_id = $2) ORDER BY created_at, id",
        )
        .bind(tenant_id)
        .bind(tenant_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(webhook_from).collect()
    }

    /// Removes a tenant's webhook and what it had still to deliver; false if there was none.
    pub async fn remove_webhook(&self, tenant_id: &str, id: &str) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let done = sqlx::query("DELETE FROM webhooks WHERE id = $1 AND tenant_id = $2")
            .bind(id)
            .bind(tenant_id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 1 {
            sqlx::query("DELETE FROM webhook_deliveries WHERE webhook_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Whether any delivery is due at `now` (a read, before a claim takes the writer).
    pub async fn deliveries_due(&self, now: &str) -> Result<bool> {
        let due: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM webhook_deliveries WHERE state = 'pending' AND next_attempt_at <= $1
               AND (claimed_until IS NULL OR claimed_until < $2) LIMIT 1",
        )
        .bind(now)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(due.is_some())
    }

    /// Claims up to `limit` deliveries due at `now` until `until`, counting the attempt about
    /// to be made: no other instance takes them meanwhile.
    pub async fn claim_deliveries(
        &self,
        now: &str,
        until: &str,
        limit: i64,
    ) -> Result<Vec<ClaimedDelivery>> {
        let mut tx = self.write_tx().await?;
        // The conditions again in the outer WHERE: on PostgreSQL, an instance that waited
        // for another's claim re-reads the row and finds it taken.
        let claimed = sqlx::query(
            "UPDATE webhook_deliveries SET claimed_until = $1, attempts = attempts + 1, last_attempt_at = $2
             WHERE state = 'pending' AND next_attempt_at <= $3
               AND (claimed_until IS NULL OR claimed_until < $4)
               AND event_id || ' ' || webhook_id IN (
                 SELECT event_id || ' ' || webhook_id FROM webhook_deliveries
                 WHERE state = 'pending' AND next_attempt_at <= $5
                   AND (claimed_until IS NULL OR claimed_until < $6)
                 ORDER BY next_attempt_at LIMIT $7)
             RETURNING event_id, webhook_id, attempts",
        )
        .bind(until)
        .bind(now)
        .bind(now)
        .bind(now)
        .bind(now)
        .bind(now)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        let mut out = Vec::with_capacity(claimed.len());
        for r in &claimed {
            let event_id: String = r.try_get("event_id")?;
            let webhook_id: String = r.try_get("webhook_id")?;
            let row = sqlx::query(
                "SELECT w.url, w.secret, e.payload FROM webhooks w, webhook_events e
                 WHERE w.id = $1 AND e.id = $2",
            )
            .bind(&webhook_id)
            .bind(&event_id)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(row) = row {
                out.push(ClaimedDelivery {
                    attempts: r.try_get("attempts")?,
                    url: row.try_get("url")?,
                    secret_sealed: row.try_get("secret")?,
                    payload: row.try_get("payload")?,
                    event_id,
                    webhook_id,
                });
            }
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Records an attempt's end: delivered, to be tried again at `retry_at`, or given up
    /// (`retry_at` `None` after a failure).
    pub async fn finish_delivery(
        &self,
        event_id: &str,
        webhook_id: &str,
        delivered: bool,
        status: Option<i64>,
        error: Option<&str>,
        retry_at: Option<&str>,
    ) -> Result<()> {
        let now = ferry_manifests::wire::now();
        let state = match (delivered, retry_at) {
            (true, _) => "delivered",
            (false, Some(_)) => "pending",
            (false, None) => "failed",
        };
        sqlx::query(
            "UPDATE webhook_deliveries SET state = $1, claimed_until = NULL, last_status = $2,
                last_error = $3, next_attempt_at = COALESCE($4, next_attempt_at),
                delivered_at = CASE WHEN $5 = 'delivered' THEN $6 ELSE delivered_at END
             WHERE event_id = $7 AND webhook_id = $8",
        )
        .bind(state)
        .bind(status)
        .bind(error)
        .bind(retry_at)
        .bind(state)
        .bind(&now)
        .bind(event_id)
        .bind(webhook_id)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// A tenant's deliveries, newest first: only those not delivered with `failing`.
    pub async fn deliveries(
        &self,
        tenant_id: &str,
        failing: bool,
        limit: i64,
    ) -> Result<Vec<DeliveryRow>> {
        let rows = sqlx::query(
            "SELECT d.event_id, e.type, d.webhook_id, w.url, d.state, d.attempts, e.created_at,
                    d.next_attempt_at, d.last_attempt_at, d.last_status, d.last_error, d.delivered_at
             FROM webhook_deliveries d
             JOIN webhook_events e ON e.id = d.event_id
             JOIN webhooks w ON w.id = d.webhook_id
             WHERE w.tenant_id = $1 AND ($2 = 0 OR d.state <> 'delivered')
             ORDER BY e.created_at DESC, d.event_id, d.webhook_id LIMIT $3",
        )
        .bind(tenant_id)
        .bind(i64::from(failing))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DeliveryRow {
                    event_id: r.try_get("event_id")?,
                    event_type: r.try_get("type")?,
                    webhook_id: r.try_get("webhook_id")?,
                    url: r.try_get("url")?,
                    state: r.try_get("state")?,
                    attempts: r.try_get("attempts")?,
                    created_at: r.try_get("created_at")?,
                    next_attempt_at: r.try_get("next_attempt_at")?,
                    last_attempt_at: r.try_get("last_attempt_at")?,
                    last_status: r.try_get("last_status")?,
                    last_error: r.try_get("last_error")?,
                    delivered_at: r.try_get("delivered_at")?,
                })
            })
            .collect()
    }

    /// Forgets events older than `before` whose deliveries are all over (delivered or given
    /// up); returns how many.
    pub async fn prune_webhook_events(&self, before: &str) -> Result<u64> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "DELETE FROM webhook_deliveries WHERE state <> 'pending' AND event_id IN
               (SELECT id FROM webhook_events WHERE created_at < $1)",
        )
        .bind(before)
        .execute(&mut *tx)
        .await?;
        let done = sqlx::query(
            "DELETE FROM webhook_events WHERE created_at < $1
               AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = webhook_events.id)",
        )
        .bind(before)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }
}
