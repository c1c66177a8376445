//! What the in-process tests of `api/` and `service/` share: a server's state over a fresh
//! SQLite database in a temporary data directory, with its first tokens, as `serve` builds it.

use std::sync::Arc;

use crate::config::ServerConfig;
use crate::state::{AppState, Shared};
use crate::store::Store;

pub struct TestServer {
    pub state: Shared,
    /// The first operator token (`DATA_DIR/operator.token`).
    pub operator: String,
    /// The fleet's enrolment token (`DATA_DIR/enrol.token`).
    pub enrol: String,
    _dir: tempfile::TempDir,
}

impl TestServer {
    pub async fn start() -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let config = ServerConfig::build(None, None, Some(dir.path().to_path_buf())).unwrap();
        std::fs::create_dir_all(dir.path().join("artifacts")).unwrap();
        let store = Store::open_sqlite(&dir.path().join("ferry.db"))
            .await
            .unwrap();
        crate::auth::bootstrap_tokens(&store, dir.path())
            .await
            .unwrap();
        store.ensure_admin().await.expect("the admin user");
        let read = |name: &str| {
            std::fs::read_to_string(dir.path().join(name))
                .unwrap()
                .trim()
                .to_string()
        };
        TestServer {
            operator: read("operator.token"),
            enrol: read("enrol.token"),
            state: Arc::new(AppState::new(config, store).unwrap()),
            _dir: dir,
        }
    }

    /// The API's routes (no web pages), as a tower service.
    pub fn router(&self) -> axum::Router {
        crate::api::router(Arc::clone(&self.state), axum::Router::new())
    }

    /// The whole app as served: the API with the web UI.
    pub fn app(&self) -> axum::Router {
        crate::api::router(Arc::clone(&self.state), crate::ui::router(false))
    }

    /// A device's facts as it reports them, managing `items` (installed version, if any).
    pub fn facts(hostname: &str, items: &[(&str, Option<&str>)]) -> serde_json::Value {
        let installed: Vec<serde_json::Value> = items
            .iter()
            .map(|(item, version)| serde_json::json!({"item": item, "version": version}))
            .collect();
        serde_json::json!({
            "hostname": hostname,
            "os": "Debian GNU/Linux",
            "os_version": "12",
            "arch": "x86_64",
            "agent_version": "0.1.0",
            "installed": installed,
        })
    }
}
