//! One broker connection: the thin shell around [`super::topics`]. On every connection
//! (the first and each reconnect) it publishes its birth and the whole state; afterwards only
//! what changed, clearing the topics of what went away; Home Assistant's birth message
//! republishes the discovery configs; `install` on a command topic queues an update with
//! actor `mqtt`. Bad input is logged and ignored.

use std::collections::BTreeMap;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Packet, QoS};

use ferry_manifests::wire::MqttConnectionView;

use super::model::Publishing;
use super::topics::{self, Inbound, Message};
use crate::config::MqttConnection;
use crate::service::{updates, Actor};
use crate::state::Shared;

/// How often the state is rebuilt without a change signal (hosts going offline are a matter
/// of time passing, not of an event).
const TICK: Duration = Duration::from_secs(5);
/// Waits between connection attempts after an error.
const RETRY: Duration = Duration::from_secs(2);

/// Starts the bridge for one connection; it runs until the server stops.
///
/// With several instances on one database, exactly one serves each connection: the bridge
/// waits until it holds the connection's lock ([`crate::store::Store::own_mqtt`]), serves while
/// it holds it, and goes back to waiting if it loses it.
pub fn start(state: Shared, conn: MqttConnection) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let own = own(&state, &conn).await;
            run(state.clone(), conn.clone(), own).await;
        }
    })
}

/// How often a standby instance tries to take a connection over, and an owner checks it
/// still holds it.
const OWNERSHIP_CHECK: Duration = Duration::from_secs(2);

/// Waits until this instance holds the connection.
async fn own(state: &Shared, conn: &MqttConnection) -> crate::store::MqttOwnership {
    let mut said = false;
    loop {
        match state.store.own_mqtt(&conn.name).await {
            Ok(Some(own)) => {
                status(state, conn, |s| s.standby = false);
                return own;
            }
            Ok(None) => {
                if !said {
                    tracing::info!(connection = %conn.name, "MQTT connection served by another instance; standing by");
                    said = true;
                }
                status(state, conn, |s| {
                    s.standby = true;
                    s.connected = false;
                });
            }
            Err(e) => {
                tracing::warn!(connection = %conn.name, "cannot tell which instance serves the MQTT connection ({e})");
            }
        }
        tokio::time::sleep(OWNERSHIP_CHECK).await;
    }
}

fn options(conn: &MqttConnection) -> MqttOptions {
    let mut o = MqttOptions::new(conn.client_id.clone(), conn.host.clone(), conn.port);
    o.set_keep_alive(Duration::from_secs(30));
    o.set_clean_session(true);
    o.set_max_packet_size(1024 * 1024, 1024 * 1024);
    o.set_last_will(LastWill::new(
        topics::status_topic(&conn.publishing),
        "offline",
        QoS::AtLeastOnce,
        true,
    ));
    if let Some(user) = &conn.username {
        o.set_credentials(user.clone(), conn.password.clone().unwrap_or_default());
    }
    if let Some(ca) = &conn.tls {
        o.set_transport(rumqttc::Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(std::sync::Arc::new(tls_config(ca.as_deref()))),
        ));
    }
    o
}

/// TLS trusting the certificates of `ca` (PEM, checked when the config was read), else the
/// system's roots.
fn tls_config(ca: Option<&[u8]>) -> rustls::ClientConfig {
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(pem) => {
            for cert in rustls::pki_types::CertificateDer::pem_slice_iter(pem).flatten() {
                let _ = roots.add(cert);
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// What was published, by topic, so only changes go out and removed topics get cleared.
type Published = BTreeMap<String, String>;

/// Records how the connection is doing, for `GET /api/v1/mqtt`.
/// Only while the connection is registered (see `mqtt::run`): lock order bridges, status.
fn status(state: &Shared, conn: &MqttConnection, f: impl FnOnce(&mut MqttConnectionView)) {
    let bridges = state.bridges.lock().unwrap_or_else(|e| e.into_inner());
    if !bridges.contains_key(&conn.name) {
        return;
    }
    let mut all = state.mqtt_status.lock().unwrap_or_else(|e| e.into_inner());
    let entry = all
        .entry(conn.name.clone())
        .or_insert_with(|| MqttConnectionView {
            name: conn.name.clone(),
            url: format!(
                "{}://{}:{}",
                if conn.tls.is_some() { "mqtts" } else { "mqtt" },
                conn.host,
                conn.port
            ),
            topic_prefix: conn.publishing.prefix.clone(),
            discovery: conn.publishing.discovery,
            discovery_prefix: conn.publishing.discovery_prefix.clone(),
            tenant: conn.publishing.tenant.clone(),
            source: if state.config.mqtt.iter().any(|m| m.name == conn.name) {
                "server.toml".into()
            } else {
                "api".into()
            },
            ..Default::default()
        });
    f(entry);
}

/// What the connection's poller passes on: only what the bridge acts on (never the
/// per-message acknowledgements, so a large push cannot fill the channel).
enum Happened {
    Connected,
    Command(rumqttc::Publish),
    Failed(String),
}

async fn run(state: Shared, conn: MqttConnection, mut own: crate::store::MqttOwnership) {
    let p = conn.publishing.clone();
    status(&state, &conn, |_| {});
    let (client, mut eventloop) = AsyncClient::new(options(&conn), 4096);
    // The event loop is polled on a task of its own, so publishing (which waits for room in
    // the client's queue) never waits on itself.
    let (tx, mut happened) = tokio::sync::mpsc::channel::<Happened>(256);
    let _poller = {
        let state = state.clone();
        let conn = conn.clone();
        AbortOnDrop(tokio::spawn(async move {
            loop {
                let forward = match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => Some(Happened::Connected),
                    Ok(Event::Incoming(Packet::Publish(m))) => Some(Happened::Command(m)),
                    Ok(Event::Outgoing(rumqttc::Outgoing::Publish(_))) => {
                        status(&state, &conn, |s| s.published += 1);
                        None
                    }
                    Ok(_) => None,
                    Err(e) => Some(Happened::Failed(e.to_string())),
                };
                let failed = matches!(forward, Some(Happened::Failed(_)));
                if let Some(f) = forward {
                    if tx.send(f).await.is_err() {
                        break;
                    }
                }
                if failed {
                    tokio::time::sleep(RETRY).await;
                }
            }
        }))
    };
    let mut changes = state.changes.subscribe();
    let mut published = Published::new();
    let mut connected = false;
    let mut tick = tokio::time::interval(TICK);
    let mut check = tokio::time::interval(OWNERSHIP_CHECK);
    tracing::info!(connection = %conn.name, host = %conn.host, port = conn.port, "MQTT bridge starting");
    loop {
        tokio::select! {
            event = happened.recv() => match event {
                None => break,
                Some(Happened::Connected) => {
                    connected = true;
                    status(&state, &conn, |s| {
                        s.connected = true;
                        s.last_error = None;
                    });
                    tracing::info!(connection = %conn.name, "MQTT connected; publishing the whole state");
                    published.clear();
                    if let Err(e) = on_connect(&state, &client, &p, &mut published).await {
                        tracing::warn!(connection = %conn.name, "{e}");
                    }
                }
                Some(Happened::Command(message)) => {
                    handle_inbound(&state, &client, (&p, &conn.name), &message.topic, &message.payload, &mut published).await;
                }
                Some(Happened::Failed(e)) => {
                    status(&state, &conn, |s| {
                        s.connected = false;
                        s.last_error = Some(e.clone());
                    });
                    if connected {
                        tracing::warn!(connection = %conn.name, "MQTT connection lost: {e}");
                    } else {
                        tracing::warn!(connection = %conn.name, "cannot connect to the MQTT broker: {e}");
                    }
                    connected = false;
                }
            },
            _ = changes.changed(), if connected => {
                // Let a burst of changes settle into one push.
                tokio::time::sleep(Duration::from_millis(100)).await;
                changes.mark_unchanged();
                if let Err(e) = push(&state, &client, &p, &mut published, false).await {
                    tracing::warn!(connection = %conn.name, "{e}");
                }
            }
            _ = check.tick() => {
                if !own.alive().await {
                    tracing::warn!(connection = %conn.name, "lost the database session that held the MQTT connection; another instance may serve it now");
                    status(&state, &conn, |s| s.connected = false);
                    return;
                }
            }
            _ = tick.tick(), if connected => {
                if let Err(e) = push(&state, &client, &p, &mut published, false).await {
                    tracing::warn!(connection = %conn.name, "{e}");
                }
            }
        }
    }
}

/// Stops the event loop's task with the bridge (a removed connection must not linger).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Why talking to the broker, or reading the fleet for it, failed; or why a command from it
/// was refused.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error("cannot publish {topic}: {source}")]
    Publish {
        topic: String,
        #[source]
        source: rumqttc::ClientError,
    },
    #[error("cannot subscribe to {filter}: {source}")]
    Subscribe {
        filter: String,
        #[source]
        source: rumqttc::ClientError,
    },
    #[error("cannot read the fleet for MQTT: {0}")]
    Fleet(#[from] crate::store::StoreError),
    #[error(transparent)]
    Inbound(#[from] topics::InboundError),
    #[error("{topic}: {what} refused: {source}")]
    Refused {
        topic: String,
        what: &'static str,
        #[source]
        source: crate::service::ServiceError,
    },
}

async fn on_connect(
    state: &Shared,
    client: &AsyncClient,
    p: &Publishing,
    published: &mut Published,
) -> Result<(), BridgeError> {
    publish(
        client,
        &Message {
            topic: topics::status_topic(p),
            payload: "online".into(),
            retain: true,
        },
    )
    .await?;
    for filter in topics::subscriptions(p) {
        client
            .subscribe(filter.clone(), QoS::AtLeastOnce)
            .await
            .map_err(|source| BridgeError::Subscribe {
                filter: filter.clone(),
                source,
            })?;
    }
    push(state, client, p, published, true).await
}

async fn publish(client: &AsyncClient, m: &Message) -> Result<(), BridgeError> {
    client
        .publish(
            m.topic.clone(),
            QoS::AtLeastOnce,
            m.retain,
            m.payload.clone(),
        )
        .await
        .map_err(|source| BridgeError::Publish {
            topic: m.topic.clone(),
            source,
        })
}

/// Publishes what differs from what was published (everything with `all`), and clears the
/// topics of what went away.
async fn push(
    state: &Shared,
    client: &AsyncClient,
    p: &Publishing,
    published: &mut Published,
    all: bool,
) -> Result<(), BridgeError> {
    let started = std::time::Instant::now();
    let before: std::collections::BTreeSet<String> = published.keys().cloned().collect();
    let mut current = std::collections::BTreeSet::new();
    let mut reader = super::snapshot::Reader::open(state, p.tenant.clone()).await?;
    let (mut hosts, mut total, mut sent) = (0usize, 0usize, 0usize);
    while let Some(page) = reader.next_page(state).await? {
        hosts += page.hosts.len();
        // A full publish first clears what the identifiers before tenants left behind.
        if all {
            for m in topics::legacy_cleared(p, &page) {
                publish(client, &m).await?;
            }
        }
        let mut messages = topics::state_messages(p, &page);
        messages.extend(topics::discovery_messages(p, &page));
        total += messages.len();
        for m in messages {
            current.insert(m.topic.clone());
            if all || published.get(&m.topic) != Some(&m.payload) {
                publish(client, &m).await?;
                published.insert(m.topic, m.payload);
                sent += 1;
            }
        }
    }
    let campaigns = super::snapshot::campaigns(state, p.tenant.as_deref()).await?;
    for m in topics::campaign_messages(p, &campaigns) {
        current.insert(m.topic.clone());
        if all || published.get(&m.topic) != Some(&m.payload) {
            publish(client, &m).await?;
            published.insert(m.topic, m.payload);
        }
    }
    // Only once every page was read: what is not there now went away.
    for m in topics::cleared(&before, &current) {
        publish(client, &m).await?;
        published.remove(&m.topic);
    }
    if all {
        tracing::info!(
            hosts,
            messages = total,
            ms = started.elapsed().as_millis() as u64,
            "queued the whole state for the broker"
        );
    } else if sent > 0 {
        tracing::debug!(messages = sent, "published changes");
    }
    Ok(())
}

async fn handle_inbound(
    state: &Shared,
    client: &AsyncClient,
    (p, connection): (&Publishing, &str),
    topic: &str,
    payload: &[u8],
    published: &mut Published,
) {
    let parsed = topics::parse_inbound(p, topic, payload);
    // A tenant's connection acts on its tenant's hosts only.
    if let (
        Some(tenant),
        Ok(
            Inbound::InstallItem { host_id, .. }
            | Inbound::InstallAll { host_id }
            | Inbound::InstallSecurity { host_id },
        ),
    ) = (&p.tenant, &parsed)
    {
        let theirs = matches!(state.host_tenant(host_id).await, Ok(Some(t)) if &t == tenant);
        if !theirs {
            tracing::warn!(%topic, "MQTT command for a host of another tenant (or none) ignored");
            return;
        }
    }
    let result = match parsed {
        Ok(Inbound::HomeAssistantOnline) => {
            // Home Assistant restarted: it needs the discovery configs again.
            republish_discovery(state, client, p).await
        }
        Ok(Inbound::InstallItem { host_id, item }) => 'install: {
            // Featured software the host's sources found (no Ferry release has its name):
            // its source upgrades it.
            let is_release = match state.releases().await {
                Ok(r) => r.iter().any(|r| r.item == item),
                Err(e) => break 'install Err(e.into()),
            };
            if !is_release {
                break 'install crate::service::packages::upgrade_one(state, &host_id, &item, Actor::Mqtt(connection.to_string()))
                    .await
                    .map(|id| tracing::info!(%host_id, package = %item, update = %id, "upgrade asked over MQTT"))
                    .map_err(|source| BridgeError::Refused {
                        topic: topic.to_string(),
                        what: "upgrade",
                        source,
                    });
            }
            let install = updates::Install {
                host_id: &host_id,
                item: &item,
                version: None,
                force: false,
                interactive: None,
                actor: Actor::Mqtt(connection.to_string()),
                metered_allowed: false,
            };
            updates::trigger(state, install)
                .await
                .map(|id| tracing::info!(%host_id, %item, update = %id, "install asked over MQTT"))
                .map_err(|source| BridgeError::Refused {
                    topic: topic.to_string(),
                    what: "install",
                    source,
                })
        }
        Ok(Inbound::InstallAll { host_id }) => host_batch(state, &host_id, None, connection)
            .await
            .map_err(|source| BridgeError::Refused {
                topic: topic.to_string(),
                what: "batch",
                source,
            }),
        Ok(Inbound::InstallSecurity { host_id }) => {
            host_batch(state, &host_id, Some("security"), connection)
                .await
                .map_err(|source| BridgeError::Refused {
                    topic: topic.to_string(),
                    what: "batch",
                    source,
                })
        }
        Err(e) => Err(e.into()),
    };
    match result {
        Ok(()) => {
            // in_progress shows at once.
            if let Err(e) = push(state, client, p, published, false).await {
                tracing::warn!("{e}");
            }
        }
        Err(e) => tracing::warn!("MQTT command ignored: {e}"),
    }
}

/// Every discovery config again, a page of hosts at a time.
async fn republish_discovery(
    state: &Shared,
    client: &AsyncClient,
    p: &Publishing,
) -> Result<(), BridgeError> {
    let mut reader = super::snapshot::Reader::open(state, p.tenant.clone()).await?;
    while let Some(page) = reader.next_page(state).await? {
        for m in topics::legacy_cleared(p, &page)
            .into_iter()
            .chain(topics::discovery_messages(p, &page))
        {
            publish(client, &m).await?;
        }
    }
    Ok(())
}

/// Home Assistant's host Install button: a batch of the host's outdated non-featured items
/// (of `category` if given), with the same checks as `ferryctl update batch-host`.
async fn host_batch(
    state: &Shared,
    host_id: &str,
    category: Option<&str>,
    connection: &str,
) -> crate::service::ServiceResult<()> {
    let planned = crate::service::batches::plan_host(state, host_id, category, &[], true).await?;
    let description = match category {
        Some(c) => format!("{c} packages of {host_id}, from MQTT"),
        None => format!("packages of {host_id}, from MQTT"),
    };
    let id = crate::service::batches::start(
        state,
        "host",
        &description,
        Actor::Mqtt(connection.to_string()),
        false,
        &planned,
    )
    .await?;
    tracing::info!(%host_id, batch = %id, "batch asked over MQTT");
    Ok(())
}
