//! Webhooks (docs/operations.md, "Webhooks"): a tenant's endpoints, added, listed and removed
//! by its admins, their deliveries, and the sender every instance runs: it claims the
//! deliveries due, posts each signed, and records the answer (delivered, tried again later
//! with backoff, or given up).

use std::sync::Arc;
use std::time::Duration;

use ferry_manifests::wire::{WebhookDeliveryView, WebhookRequest, WebhookView};

use super::{ServiceError, ServiceResult};
use crate::policy::webhooks as policy;
use crate::state::Shared;
use crate::store::{ClaimedDelivery, LiveOperator, StoredWebhook};

/// Deliveries in flight at once on one instance.
const MAX_IN_FLIGHT: usize = 32;
/// How often the sender looks for deliveries due (a read; it also looks at once when
/// something changed here): the most an event waits before its first attempt.
const TICK: Duration = Duration::from_millis(250);
/// Events whose deliveries are over are forgotten after this long.
const KEEP_EVENTS: time::Duration = time::Duration::days(30);
/// Most deliveries one listing shows.
const MAX_LISTED: i64 = 1000;

pub async fn add(
    state: &Shared,
    caller: &LiveOperator,
    req: WebhookRequest,
) -> ServiceResult<WebhookView> {
    let url = req
        .url
        .as_deref()
        .ok_or_else(|| ServiceError::invalid("give the webhook's url"))?;
    let url = policy::check_url(url).map_err(ServiceError::Invalid)?;
    let events = policy::parse_events(&req.events.join(",")).map_err(ServiceError::Invalid)?;
    let secret = req.secret.as_deref().unwrap_or("").trim().to_string();
    policy::parse_secret(&secret).map_err(ServiceError::Invalid)?;
    let sealed = state
        .secrets
        .seal(secret.as_bytes())
        .map_err(|e| ServiceError::Secrets(e.to_string()))?;
    let w = StoredWebhook {
        id: uuid::Uuid::new_v4().simple().to_string()[..12].to_string(),
        tenant_id: caller.tenant_id.clone(),
        url: url.to_string(),
        events,
        secret_sealed: sealed,
        description: req.description.unwrap_or_default(),
        created_by: caller.user_name.clone(),
        created_at: ferry_manifests::wire::now(),
    };
    state.store.add_webhook(&w).await?;
    tracing::info!(webhook = %w.id, url = %redacted(&w.url), events = %w.events.join(","), "webhook added");
    Ok(view(w))
}

pub async fn list(state: &Shared, caller: &LiveOperator) -> ServiceResult<Vec<WebhookView>> {
    Ok(state
        .store
        .webhooks(Some(&caller.tenant_id))
        .await?
        .into_iter()
        .map(view)
        .collect())
}

pub async fn remove(state: &Shared, caller: &LiveOperator, id: &str) -> ServiceResult<()> {
    if state.store.remove_webhook(&caller.tenant_id, id).await? {
        tracing::info!(webhook = %id, "webhook removed");
        Ok(())
    } else {
        Err(ServiceError::not_found(format!("no webhook {id}")))
    }
}

/// The caller's tenant's deliveries, newest first; only those not delivered with `failing`.
pub async fn deliveries(
    state: &Shared,
    caller: &LiveOperator,
    failing: bool,
) -> ServiceResult<Vec<WebhookDeliveryView>> {
    Ok(state
        .store
        .deliveries(&caller.tenant_id, failing, MAX_LISTED)
        .await?
        .into_iter()
        .map(|d| WebhookDeliveryView {
            next_attempt_at: (d.state == "pending").then_some(d.next_attempt_at),
            event_id: d.event_id,
            event: d.event_type,
            webhook_id: d.webhook_id,
            url: redacted(&d.url),
            state: d.state,
            attempts: u32::try_from(d.attempts).unwrap_or(0),
            created_at: d.created_at,
            last_attempt_at: d.last_attempt_at,
            last_status: d.last_status.and_then(|s| u16::try_from(s).ok()),
            last_error: d.last_error,
            delivered_at: d.delivered_at,
        })
        .collect())
}

fn view(w: StoredWebhook) -> WebhookView {
    WebhookView {
        url: redacted(&w.url),
        id: w.id,
        events: w.events,
        description: w.description,
        created_by: w.created_by,
        created_at: w.created_at,
    }
}

/// A URL as shown and logged: without its query, which may carry a receiver's token.
fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.query().is_some() {
                u.set_query(Some("…"));
            }
            u.to_string()
        }
        Err(_) => String::new(),
    }
}

/// The sender: runs for the life of the server.
pub async fn run(state: Shared) {
    let client = match reqwest::Client::builder()
        .timeout(state.config.webhook_timeout)
        .connect_timeout(state.config.webhook_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("ferry-server/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("webhooks cannot be sent: {e}");
            return;
        }
    };
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    let mut changes = state.changes.subscribe();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_prune = std::time::Instant::now();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            changed = changes.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
        let free = slots.available_permits();
        if free == 0 {
            continue;
        }
        let now = time::OffsetDateTime::now_utc();
        match state
            .store
            .deliveries_due(&ferry_manifests::wire::timestamp(now))
            .await
        {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                tracing::warn!("cannot read the webhook deliveries due: {e}");
                continue;
            }
        }
        // Held past the longest an attempt may take, so no other instance sends it meanwhile.
        let until = now + state.config.webhook_timeout + time::Duration::seconds(30);
        let claimed = match state
            .store
            .claim_deliveries(
                &ferry_manifests::wire::timestamp(now),
                &ferry_manifests::wire::timestamp(until),
                free as i64,
            )
            .await
        {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("cannot read the webhook deliveries due: {e}");
                continue;
            }
        };
        for d in claimed {
            let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
                return;
            };
            let state = Arc::clone(&state);
            let client = client.clone();
            tokio::spawn(async move {
                deliver(&state, &client, d).await;
                drop(permit);
            });
        }
        if last_prune.elapsed() > Duration::from_secs(3600) {
            last_prune = std::time::Instant::now();
            let before = ferry_manifests::wire::timestamp(now - KEEP_EVENTS);
            if let Err(e) = state.store.prune_webhook_events(&before).await {
                tracing::warn!("cannot forget old webhook events: {e}");
            }
        }
    }
}

/// One attempt, and what it came to recorded.
async fn deliver(state: &Shared, client: &reqwest::Client, d: ClaimedDelivery) {
    let outcome = attempt(state, client, &d).await;
    let (delivered, status, error) = match &outcome {
        Ok(status) => (true, Some(i64::from(*status)), None),
        Err((status, e)) => (false, status.map(i64::from), Some(e.as_str())),
    };
    state.metrics.webhook(delivered);
    let retry_at = if delivered {
        None
    } else {
        policy::retry_delay(d.attempts)
            .map(|wait| ferry_manifests::wire::timestamp(time::OffsetDateTime::now_utc() + wait))
    };
    if let Some(e) = error {
        match &retry_at {
            Some(at) => {
                tracing::warn!(event = %d.event_id, webhook = %d.webhook_id, attempt = d.attempts, "webhook delivery failed ({e}); tried again at {at}")
            }
            None => {
                tracing::warn!(event = %d.event_id, webhook = %d.webhook_id, attempt = d.attempts, "webhook delivery failed ({e}); given up (ferryctl webhooks deliveries --failing)")
            }
        }
    }
    if let Err(e) = state
        .store
        .finish_delivery(
            &d.event_id,
            &d.webhook_id,
            delivered,
            status,
            error,
            retry_at.as_deref(),
        )
        .await
    {
        // Its claim lapses, and it is sent again: the receiver has its id to tell.
        tracing::warn!(event = %d.event_id, "cannot record a webhook delivery: {e}");
    }
}

/// Posts the event signed; the receiver's status when it took it (2xx), else the status if
/// any and why not.
async fn attempt(
    state: &Shared,
    client: &reqwest::Client,
    d: &ClaimedDelivery,
) -> Result<u16, (Option<u16>, String)> {
    let secret = state
        .secrets
        .open_sealed(&d.secret_sealed)
        .map_err(|e| (None, format!("cannot open the webhook's secret: {e}")))?;
    let key = policy::parse_secret(&String::from_utf8_lossy(&secret)).map_err(|e| (None, e))?;
    let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
    let signature = policy::signature(&key, &d.event_id, timestamp, d.payload.as_bytes());
    let resp = client
        .post(&d.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("webhook-id", &d.event_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(d.payload.clone())
        .send()
        .await
        .map_err(|e| (None, describe(&e, state.config.webhook_timeout)))?;
    let status = resp.status();
    if status.is_success() {
        Ok(status.as_u16())
    } else {
        Err((
            Some(status.as_u16()),
            format!("the receiver answered {status}"),
        ))
    }
}

fn describe(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        format!("no answer within {} s", timeout.as_secs())
    } else if e.is_connect() {
        "cannot connect to the receiver".to_string()
    } else {
        format!("cannot send: {e}")
    }
}
