//! Serving: opens the data directory and the store, builds the state, starts the MQTT
//! bridges and the background tasks, and serves HTTP or HTTPS until SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;

use crate::config::ServerConfig;
use crate::state::{AppState, Shared};
use crate::store::Store;
use crate::{api, auth, cache, cluster, mqtt, ui};

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
            private_files(&db_path)?;
            Store::open_sqlite(&db_path)
                .await
                .with_context(|| format!("cannot open database {}", db_path.display()))?
        }
    };
    auth::bootstrap_tokens(&store, &config.data_dir).await?;
    // The first user, holding the tokens made before users existed.
    store.ensure_admin().await?;
    let tls = config.tls.clone();
    let listen = config.listen;
    let state = Arc::new(AppState::new(config, store)?);
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
    // Webhooks: the deliveries due, from whichever instance claims them first.
    let webhooks = tokio::spawn(crate::service::webhooks::run(Arc::clone(&state)));
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
    let metrics = match state.config.metrics_listen {
        Some(addr) => Some(serve_metrics(addr, Arc::clone(&state)).await?),
        None => None,
    };
    let app = api::router(Arc::clone(&state), ui::router(state.config.tls.is_some())).layer(
        tower_http::timeout::RequestBodyTimeoutLayer::new(BODY_IDLE_TIMEOUT),
    );
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
    webhooks.abort();
    if let Some(m) = metrics {
        m.abort();
    }
    state.flush_seen(true).await;
    result
}

/// `GET /metrics` alone, without a token, on `addr` (`metrics_listen`): a private address
/// Prometheus scrapes.
async fn serve_metrics(
    addr: SocketAddr,
    state: Shared,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (metrics_listen)"))?;
    tracing::info!(addr = %listener.local_addr()?, "metrics on /metrics");
    let app = axum::Router::new()
        .route("/metrics", axum::routing::get(api::metrics::scrape_open))
        .with_state(state);
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("the metrics listener stopped: {e}");
        }
    }))
}

/// The database holds hook output and terminal transcripts: it and its WAL files are the
/// server's alone (mode 0600), whatever the data directory's mode, which is warned about when
/// others may read it (an existing directory keeps its mode).
fn private_files(db_path: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    if let Some(dir) = db_path.parent() {
        let mode = std::fs::metadata(dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            tracing::warn!(
                dir = %dir.display(),
                "the data directory is readable by others (mode {:o}); chmod 700 it",
                mode & 0o777
            );
        }
    }
    // SQLite gives its -wal and -shm files the database file's mode.
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(db_path)
        .with_context(|| format!("cannot create database {}", db_path.display()))?;
    for suffix in ["", "-wal", "-shm"] {
        let path = std::path::PathBuf::from(format!("{}{suffix}", db_path.display()));
        if path.exists() {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .with_context(|| format!("cannot make {} private", path.display()))?;
        }
    }
    Ok(())
}

async fn serve_app(
    app: axum::Router,
    tls: Option<(PathBuf, PathBuf)>,
    listen: SocketAddr,
    state: Shared,
) -> anyhow::Result<()> {
    if let Some((cert, key)) = tls {
        // Client certificates are asked for (not required) when devices may present them.
        let roots = if state.identity.config.device_auth == crate::identity::DeviceAuth::Token {
            Vec::new()
        } else {
            state.identity.client_roots()
        };
        let tls_config =
            crate::identity::tls::server_config(&cert, &key, &roots).with_context(|| {
                format!(
                    "cannot load the TLS certificate {} and key {}",
                    cert.display(),
                    key.display()
                )
            })?;
        let tls_config = axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(tls_config));
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
        let mut server = axum_server::from_tcp_rustls(listener, tls_config)?.handle(handle);
        // A client that never finishes its headers is dropped, as on the plain listener.
        server
            .http_builder()
            .http1()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT);
        server
            .serve(app.into_make_service_with_connect_info::<SocketAddr>())
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

/// How long a client may take to send its request headers, on either listener.
const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// How long a request body may go without sending anything, on either listener: an upload
/// streams on as long as bytes keep coming, a stalled one is dropped.
pub const BODY_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

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
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors, most likely: wait, then take the next.
                        tracing::warn!("cannot accept a connection: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                // The peer's address, for the audit log.
                let service = hyper_util::service::TowerToHyperService::new(
                    tower::Layer::layer(
                        &axum::Extension(axum::extract::ConnectInfo(peer)),
                        app.clone(),
                    ),
                );
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
