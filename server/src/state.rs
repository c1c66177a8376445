//! The server's shared context: the store, the configuration and what lives in memory
//! beside them (caches, wake-ups, live output, terminals, sessions, presence, MQTT bridges).
//! Every layer above takes it as [`Shared`]; it imports nothing above it.

use std::sync::Arc;

use crate::config::ServerConfig;
use crate::store::{self, Store};
use crate::{
    auth, budget, cache, deltas, live, metrics, policy, presence, secrets, terminal, wake,
};

pub struct AppState {
    pub store: Store,
    pub config: ServerConfig,
    pub waker: wake::Waker,
    /// Hosts asked for a check now, until their next check-in answer says so.
    pub check_requests: wake::CheckRequests,
    pub live: live::Live,
    /// Terminals of interactive installs under way.
    pub terminals: terminal::Terminals,
    /// File-level deltas ready to serve.
    pub deltas: deltas::Deltas,
    pub cache: cache::Cache,
    /// Bumped whenever something the MQTT bridge publishes may have changed.
    pub changes: tokio::sync::watch::Sender<u64>,
    /// Web UI sessions.
    pub sessions: auth::Sessions,
    /// How each device last made contact (connectivity).
    pub presence: presence::Presence,
    /// What each device, and enrolment, may still ask of this instance.
    pub budgets: budget::Budgets,
    /// Seals the secrets of MQTT connections added through the API.
    pub secrets: secrets::Secrets,
    /// Single sign-on to the web UI, when `[oidc]` is set.
    pub oidc: Option<auth::oidc::Oidc>,
    /// Device identity: the device CA, the factory CA, how devices may prove themselves.
    pub identity: crate::identity::Identity,
    /// The running MQTT bridges, by connection name.
    pub bridges: std::sync::Mutex<Bridges>,
    /// Where artifacts and deltas are kept: the data directory, or object storage with the
    /// data directory as this instance's cache.
    pub artifact_store: crate::artifact_store::ArtifactStore,
    /// Counters and gauges served at `GET /metrics`.
    pub metrics: metrics::Metrics,
    /// The caps on artifact and delta bytes sent (`max_egress_rate`, per device).
    pub egress: crate::egress::Egress,
    /// How each MQTT connection is doing, by name (`GET /api/v1/mqtt`).
    pub mqtt_status: std::sync::Mutex<
        std::collections::BTreeMap<String, ferry_manifests::wire::MqttConnectionView>,
    >,
}

/// The running MQTT bridges by connection name (started and stopped by `mqtt`).
pub type Bridges = std::collections::BTreeMap<String, tokio::task::JoinHandle<()>>;

impl AppState {
    /// The state over an open store: the secrets key and the deltas already built are read
    /// from the data directory; everything else starts empty.
    pub fn new(config: ServerConfig, store: Store) -> anyhow::Result<AppState> {
        let secrets = secrets::Secrets::open_from(
            &config.data_dir,
            config.secrets_key_file.as_deref(),
            std::env::var(secrets::KEY_ENV).ok().as_deref(),
        )?;
        let artifact_store =
            crate::artifact_store::ArtifactStore::open(config.artifact_store.as_ref())?;
        let oidc = config.oidc.clone().map(auth::oidc::Oidc::new).transpose()?;
        let deltas = deltas::Deltas::load(&config.data_dir);
        let identity = crate::identity::Identity::open(
            config.identity.clone(),
            &config.data_dir,
            config.tls.is_some(),
        )?;
        let enrol = config.enrolments_per_minute;
        let budgets = budget::Budgets::new(
            config.device_requests,
            config.device_long_polls_max,
            budget::Rate {
                burst: enrol,
                per_sec: f64::from(enrol) / 60.0,
            },
        );
        let backend = if config.database_url.is_some() {
            "postgresql"
        } else {
            "sqlite"
        };
        Ok(AppState {
            metrics: metrics::Metrics::new(&store, backend)?,
            egress: crate::egress::Egress::new(
                config.max_egress_rate,
                config.max_egress_rate_per_device,
            ),
            artifact_store,
            identity,
            oidc,
            budgets,
            store,
            config,
            waker: wake::Waker::default(),
            check_requests: wake::CheckRequests::default(),
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
        })
    }

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

    /// Asks the host for a check now, on whichever instance it reaches next: its long-poll
    /// (if any) ends at once and the answer says a check was asked.
    pub fn ask_check(&self, host_id: &str) {
        self.check_requests.ask(host_id);
        self.waker.wake(host_id);
        self.store.announce(store::Notice::Check {
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
        // The bridges publish campaigns' states too.
        self.changed();
    }

    /// A host was removed: every instance forgets its credential and wake-ups.
    pub fn host_removed(&self, host_id: &str) {
        self.waker.forget(host_id);
        self.cache.forget_host(host_id);
        self.presence.forget(host_id);
        self.budgets.forget(host_id);
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
        // Deactivated items are not offered; nor are withdrawn releases.
        let off: Vec<String> = self
            .store
            .item_settings()
            .await?
            .into_iter()
            .filter(|s| s.deactivated)
            .map(|s| s.name)
            .collect();
        let mut all = self.store.releases(None).await?;
        // Withdrawn releases are not offered, counted or advertised either.
        all.retain(|r| !off.contains(&r.item) && r.withdrawn_at.is_none());
        let r = Arc::new(all);
        self.cache.set_releases(Some(Arc::clone(&r)));
        Ok(r)
    }

    /// The releases split by tenant ([`cache::Catalog`]).
    pub async fn catalog(&self) -> Result<Arc<cache::Catalog>, store::StoreError> {
        if let Some(c) = self.cache.catalog() {
            return Ok(c);
        }
        let all = self.releases().await?;
        let tenants = self.store.tenants().await?;
        let default_id = tenants
            .iter()
            .find(|(_, name)| name == "default")
            .map(|(id, _)| id.clone())
            .unwrap_or_default();
        let owners = self.store.item_owners().await?.into_iter().collect();
        let c = Arc::new(cache::Catalog::new(
            all,
            tenants.len() > 1,
            default_id,
            owners,
        ));
        self.cache.set_catalog(Arc::clone(&c));
        Ok(c)
    }

    /// The releases a tenant's hosts are offered.
    pub async fn releases_for(
        &self,
        tenant: Option<&str>,
    ) -> Result<Arc<Vec<ferry_manifests::wire::ReleaseView>>, store::StoreError> {
        Ok(self.catalog().await?.for_tenant(tenant))
    }

    /// A host's tenant (read once, then remembered).
    pub async fn host_tenant(&self, host_id: &str) -> Result<Option<String>, store::StoreError> {
        if let Some(t) = self.cache.host_tenant(host_id) {
            return Ok(t);
        }
        let t = self.store.host_tags(host_id).await?.2;
        self.cache.remember_host_tenant(host_id, t.clone());
        Ok(t)
    }

    /// The releases a host is offered: its tenant's (all of them with one tenant, without
    /// a read).
    pub async fn host_releases(
        &self,
        host_id: &str,
    ) -> Result<Arc<Vec<ferry_manifests::wire::ReleaseView>>, store::StoreError> {
        let c = self.catalog().await?;
        if !c.several {
            return Ok(Arc::clone(&c.all));
        }
        let tenant = self.host_tenant(host_id).await?;
        Ok(c.for_tenant(tenant.as_deref()))
    }

    /// The tenant whose own trust root chain applies, for something of `tenant`: `None` for
    /// the install's (the default tenant, or a single-tenant install).
    pub async fn guest(&self, tenant: Option<&str>) -> Result<Option<String>, store::StoreError> {
        let c = self.catalog().await?;
        Ok(match tenant {
            Some(t) if c.several && t != c.default_id => Some(t.to_string()),
            _ => None,
        })
    }

    /// The newest trust root version of the install's chain.
    pub async fn trust_root_version(&self) -> Result<Option<u64>, store::StoreError> {
        if let Some(v) = self.cache.root() {
            return Ok(v);
        }
        let v = self.store.latest_root(None).await?.map(|(v, _)| v);
        self.cache.set_root(Some(v));
        Ok(v)
    }

    /// The newest trust root version a host follows: its tenant's chain.
    pub async fn host_root_version(&self, host_id: &str) -> Result<Option<u64>, store::StoreError> {
        if !self.catalog().await?.several {
            return self.trust_root_version().await;
        }
        let tenant = self.host_tenant(host_id).await?;
        match self.guest(tenant.as_deref()).await? {
            None => self.trust_root_version().await,
            Some(g) => {
                if let Some(v) = self.cache.guest_root(&g) {
                    return Ok(v);
                }
                let v = self.store.latest_root(Some(&g)).await?.map(|(v, _)| v);
                self.cache.set_guest_root(&g, v);
                Ok(v)
            }
        }
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
    pub fn artifacts_dir(&self) -> std::path::PathBuf {
        self.config.data_dir.join("artifacts")
    }
}

pub type Shared = Arc<AppState>;
