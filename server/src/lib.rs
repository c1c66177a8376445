//! ferry-server: the fleet server, and the operator CLI `ferryctl` (in [`cli`]).
//!
//! - [`config`]: flags and `server.toml`.
//! - [`store`]: the repository layer (all SQL).
//! - [`fleet`]: decisions as plain code: what is available to a host, online/offline.
//! - [`api`]: axum handlers — [`api::device`] (enrol, check-in, reports),
//!   [`api::operator`] (hosts, releases, updates, history), [`api::artifacts`].
//! - [`auth`]: tokens, hashed at rest.

pub mod api;
pub mod auth;
pub mod batch;
pub mod campaign;
pub mod cli;
pub mod config;
pub mod error;
pub mod fleet;
pub mod live;
pub mod store;
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
    let db_path = config.data_dir.join("ferry.db");
    let store = Store::open_sqlite(&db_path)
        .await
        .with_context(|| format!("cannot open database {}", db_path.display()))?;
    auth::bootstrap_tokens(&store, &config.data_dir).await?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr: SocketAddr = listener.local_addr()?;
    tracing::info!(%addr, data_dir = %config.data_dir.display(), "ferry-server listening");
    let state = Arc::new(AppState {
        store,
        config,
        waker: wake::Waker::default(),
        live: live::Live::default(),
    });
    axum::serve(listener, api::router(state))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("server failed")?;
    Ok(())
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
