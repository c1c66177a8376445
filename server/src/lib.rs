//! ferry-server: the fleet server. It never holds a release private key: it is built without
//! `ferry-manifests`' `sign` feature (ferryctl, a crate of its own, signs offline).
//!
//! - [`config`]: flags and `server.toml`.
//! - [`api`]: axum handlers, thin: parse and validate, call the store or a service, answer.
//! - [`service`]: what happens when a host checks in or reports arrive, and campaigns and
//!   batches at work.
//! - [`policy`]: decisions as plain code over data (campaigns, batches, the fleet).
//! - [`store`]: the store interface and its SQLite backend (all SQL).
//! - [`auth`]: tokens, hashed at rest.
//! - [`mqtt`]: the MQTT bridge and Home Assistant discovery: topics and payloads as pure
//!   functions, and one broker connection per `[[mqtt]]`.

pub mod api;
pub mod auth;
pub mod cache;
pub mod cluster;
pub mod config;
pub mod deltas;
pub mod error;
pub mod live;
pub mod mqtt;
pub mod policy;
pub mod presence;
pub mod secrets;
pub mod service;
pub mod store;
pub mod terminal;
pub mod ui;
pub mod wake;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use std::os::unix::fs::DirBuilderExt as _;

use anyhow::Context as _;

use crate::config::ServerConfig;
use crate::store::Store;

pub fn now() -> String {
    ferry_manifests::wire::now()
}

pub struct AppState {
    pub store: Store,
    pub config: ServerConfig,
    pub waker: wake::Waker,
    pub live: live::Live,
    /// Terminals of interactive installs under way.
    pub terminals: terminal::Terminals,
    /// File-level deltas ready to serve.
    pub deltas: deltas::Deltas,
    pub cache: cache::Cache,
    /// Bumped whenever something the MQTT bridge publishes may have changed.
    pub changes: tokio::sync::watch::Sender<u64>,
    /// Web UI sessions.
    pub sessions: ui::session::Sessions,
    /// How each device last made contact (connectivity).
    pub presence: presence::Presence,
    /// Seals the secrets of MQTT connections added through the API.
    pub secrets: secrets::Secrets,
    /// The running MQTT bridges, by connection name.
    pub bridges: std::sync::Mutex<mqtt::Bridges>,
    /// How each MQTT connection is doing, by name (`GET /api/v1/mqtt`).
    pub mqtt_status: std::sync::Mutex<
        std::collections::BTreeMap<String, ferry_manifests::wire::MqttConnectionView>,
    >,
}

impl AppState {
    /// Tells the MQTT bridge to publish what changed, wherever it runs.
    pub fn changed(&self) {
        self.changed_here();
        self.store.announce(store::Notice::Changed);
    }

    /// Tells this instance's MQTT bridges only (another instance told us).
    pub fn changed_here(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Wakes the host's long-poll, on whichever instance holds it.
    pub fn wake(&self, host_id: &str) {
        self.waker.wake(host_id);
        self.store.announce(store::Notice::Wake {
            host: host_id.to_string(),
        });
    }

    /// Relays live output (or the end of it) to its watchers, on every instance.
    pub fn publish_live(&self, update_id: &str, event: live::LiveEvent) {
        self.store.announce(match &event {
            live::LiveEvent::Chunk { offset, text } => store::Notice::Output {
                update: update_id.to_string(),
                offset: *offset,
                len: text.chars().count() as i64,
                text: Some(text.clone()),
            },
            live::LiveEvent::End { status } => store::Notice::End {
                update: update_id.to_string(),
                status: status.clone(),
            },
        });
        self.live.publish(update_id, event);
    }

    /// Releases or items changed: every instance reads them again.
    pub fn releases_changed(&self) {
        self.cache.set_releases(None);
        self.store.announce(store::Notice::Releases);
    }

    /// A trust root was published: every instance reads it again.
    pub fn root_changed(&self) {
        self.cache.set_root(None);
        self.store.announce(store::Notice::Root);
    }

    /// Campaigns were created or changed status: every instance reads them again.
    pub fn campaigns_changed(&self) {
        self.cache.set_campaigns_active(None);
        self.store.announce(store::Notice::Campaigns);
    }

    /// A host was removed: every instance forgets its credential and wake-ups.
    pub fn host_removed(&self, host_id: &str) {
        self.waker.forget(host_id);
        self.cache.forget_host(host_id);
        self.presence.forget(host_id);
        self.store.announce(store::Notice::HostRemoved {
            host: host_id.to_string(),
        });
    }

    /// All releases, from the cache (refilled after a publish).
    pub async fn releases(
        &self,
    ) -> Result<Arc<Vec<ferry_manifests::wire::ReleaseView>>, store::StoreError> {
        if let Some(r) = self.cache.releases() {
            return Ok(r);
        }
        // Deactivated items are not offered.
        let off: Vec<String> = self
            .store
            .item_settings()
            .await?
            .into_iter()
            .filter(|s| s.deactivated)
            .map(|s| s.name)
            .collect();
        let mut all = self.store.releases(None).await?;
        all.retain(|r| !off.contains(&r.item));
        let r = Arc::new(all);
        self.cache.set_releases(Some(Arc::clone(&r)));
        Ok(r)
    }

    pub async fn trust_root_version(&self) -> Result<Option<u64>, store::StoreError> {
        if let Some(v) = self.cache.root() {
            return Ok(v);
        }
        let v = self.store.latest_root().await?.map(|(v, _)| v);
        self.cache.set_root(Some(v));
        Ok(v)
    }

    /// Whether any campaign is running or paused (so check-ins must consider campaigns).
    pub async fn campaigns_active(&self) -> Result<bool, store::StoreError> {
        if let Some(v) = self.cache.campaigns_active() {
            return Ok(v);
        }
        let v = self
            .store
            .campaigns()
            .await?
            .iter()
            .any(|c| c.status != policy::status::CampaignStatus::Cancelled);
        self.cache.set_campaigns_active(Some(v));
        Ok(v)
    }

    /// Writes buffered last-seen times (those due, or `all` at shutdown).
    pub async fn flush_seen(&self, all: bool) {
        let seen = self.cache.take_seen(all);
        if seen.is_empty() {
            return;
        }
        if let Err(e) = self.store.touch_hosts(&seen).await {
            tracing::error!("cannot record last-seen times: {e}");
        }
    }
}

impl AppState {
    pub fn artifacts_dir(&self) -> PathBuf {
        self.config.data_dir.join("artifacts")
    }
}

pub type Shared = Arc<AppState>;

/// Opens the data directory and database, creates the first tokens, and serves until
/// SIGTERM or Ctrl-C.
pub async fn serve(config: ServerConfig) -> anyhow::Result<()> {
    // The data directory holds the first tokens and the database: private to the server.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(config.data_dir.join("artifacts"))
        .with_context(|| format!("cannot create data directory {}", config.data_dir.display()))?;
    let store = match &config.database_url {
        Some(url) => {
            let store = Store::open_postgres(url, config.database_max_connections)
                .await
                .context("cannot open the PostgreSQL database (database_url)")?;
            tracing::info!("database: PostgreSQL, shared with any other instance on it");
            store
        }
        None => {
            let db_path = config.data_dir.join("ferry.db");
            Store::open_sqlite(&db_path)
                .await
                .with_context(|| format!("cannot open database {}", db_path.display()))?
        }
    };
    auth::bootstrap_tokens(&store, &config.data_dir).await?;
    let secrets = secrets::Secrets::open(&config.data_dir)?;
    let tls = config.tls.clone();
    let listen = config.listen;
    let deltas = deltas::Deltas::load(&config.data_dir);
    let state = Arc::new(AppState {
        store,
        config,
        waker: wake::Waker::default(),
        live: live::Live::default(),
        terminals: terminal::Terminals::default(),
        deltas,
        cache: cache::Cache::default(),
        changes: tokio::sync::watch::channel(0).0,
        mqtt_status: Default::default(),
        secrets,
        bridges: Default::default(),
        presence: Default::default(),
        sessions: Default::default(),
    });
    // One MQTT bridge per broker connection: server.toml's, then those added through the API.
    for c in state.config.mqtt.clone() {
        mqtt::run(&state, c);
    }
    for stored in state.store.mqtt_connections().await? {
        match mqtt::from_stored(&state, &stored) {
            Ok(c) => mqtt::run(&state, c),
            Err(e) => mqtt::not_started(&state, &stored, e),
        }
    }
    // Other instances on a shared database tell this one what changed.
    let cluster = tokio::spawn(cluster::run(Arc::clone(&state)));
    // Last-seen times are buffered in memory and written in batches.
    let flusher = {
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(cache::FLUSH_INTERVAL);
            loop {
                tick.tick().await;
                state.flush_seen(false).await;
            }
        })
    };
    let app = api::router(Arc::clone(&state), ui::router());
    let result = serve_app(app, tls, listen, Arc::clone(&state)).await;
    let names: Vec<String> = state
        .bridges
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .keys()
        .cloned()
        .collect();
    for name in names {
        mqtt::stop(&state, &name);
    }
    flusher.abort();
    cluster.abort();
    state.flush_seen(true).await;
    result
}

async fn serve_app(
    app: axum::Router,
    tls: Option<(PathBuf, PathBuf)>,
    listen: SocketAddr,
    state: Shared,
) -> anyhow::Result<()> {
    if let Some((cert, key)) = tls {
        let tls_config = axum_server::tls_rustls::RustlsConfig::from_pem_file(&cert, &key)
            .await
            .with_context(|| {
                format!(
                    "cannot load the TLS certificate {} and key {}",
                    cert.display(),
                    key.display()
                )
            })?;
        let handle = axum_server::Handle::new();
        let stopper = handle.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            stopper.graceful_shutdown(Some(std::time::Duration::from_secs(10)));
        });
        let listener = std::net::TcpListener::bind(listen)
            .with_context(|| format!("cannot listen on {listen}"))?;
        listener.set_nonblocking(true)?;
        let addr: SocketAddr = listener.local_addr()?;
        tracing::info!(%addr, "ferry-server listening (HTTPS)");
        axum_server::from_tcp_rustls(listener, tls_config)?
            .handle(handle)
            .serve(app.into_make_service())
            .await
            .context("server failed")?;
        return Ok(());
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr: SocketAddr = listener.local_addr()?;
    tracing::info!(%addr, "ferry-server listening");
    serve_http(listener, app, state).await;
    Ok(())
}

/// Largest read buffer of a connection: hyper's smallest. A held long-poll keeps it for its
/// whole wait (docs/performance.md).
const READ_BUFFER: usize = 8192;

/// Serves plain HTTP/1.1 until SIGTERM or Ctrl-C, then lets requests under way finish (at
/// most 10 s; held long-polls answer at once). Each connection shares the one router (no per-connection copy of it).
async fn serve_http(listener: tokio::net::TcpListener, app: axum::Router, state: Shared) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.max_buf_size(READ_BUFFER)
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(std::time::Duration::from_secs(30));
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of file descriptors, most likely: wait, then take the next.
                        tracing::warn!("cannot accept a connection: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let service = hyper_util::service::TowerToHyperService::new(app.clone());
                let conn = graceful.watch(
                    http.serve_connection(hyper_util::rt::TokioIo::new(stream), service),
                );
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!("connection ended: {e}");
                    }
                });
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    // Held long-polls answer now (their devices come back, to another instance if there is
    // one) rather than keep the stop waiting.
    state.waker.wake_all();
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(std::time::Duration::from_secs(10)) => {
            tracing::info!("requests still under way after 10 s; stopping anyway");
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
