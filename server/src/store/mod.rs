//! The store: every piece of state the server keeps, behind one interface that takes and
//! returns the server's own records ([`model`]), so handlers never see SQL.
//!
//! The `interface!` list below is the whole contract: each method a handler may call,
//! forwarded to the backend, which implements it as an inherent `async fn` with the same
//! signature. One SQL backend ([`sql`]) serves both databases: SQLite, the embedded
//! zero-configuration default, and PostgreSQL, which several server instances share. They
//! differ in a few fragments of SQL ([`sql::Dialect`]), not in code.
//!
//! [`sql::Dialect`]: self::sql
use std::path::Path;

mod model;
pub mod notice;
mod sql;

use crate::policy::status::CampaignStatus;
pub use model::{
    BatchRow, Campaign, CertificateHolder, CertificateRow, EntryRow, HostCheckIn, HostRow, IdKind,
    ItemSettings, LastFailure, LiveOperator, Member, NewRelease, PendingJob, Recorded,
    ReportRecord, StoredMqtt, TokenLimits, UserRow,
};
pub use model::{ClaimedDelivery, DdiAction, DdiCaller, DeliveryRow, StoredWebhook, WebhookEvent};
pub use notice::Notice;
pub use sql::{OwnedKind, PackageCounts};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ferry_manifests::wire::{HistoryView, InstalledItem, ReleaseView, TokenView};

use crate::policy::batch::Planned;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("stored value is corrupt: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Config(String),
    #[error("the database writer stopped")]
    WriterStopped,
}

pub type Result<T> = std::result::Result<T, StoreError>;

impl StoreError {
    /// The database cannot be reached or is shutting down: passes by itself (503).
    pub fn unavailable(&self) -> bool {
        match self {
            StoreError::Db(e) => match e {
                sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => true,
                sqlx::Error::Database(d) => d.code().is_some_and(|c| {
                    // PostgreSQL: connection exceptions, admin or crash shutdown, cannot
                    // connect now.
                    c.starts_with("08") || c == "57P01" || c == "57P02" || c == "57P03"
                }),
                _ => false,
            },
            StoreError::WriterStopped => false,
            _ => false,
        }
    }

    /// The database's disk is full (SQLite's SQLITE_FULL, PostgreSQL's 53100) (507).
    pub fn disk_full(&self) -> bool {
        match self {
            StoreError::Db(sqlx::Error::Database(d)) => {
                d.code().is_some_and(|c| c == "13" || c == "53100")
                    || d.message().contains("database or disk is full")
            }
            _ => false,
        }
    }
}

#[derive(Clone)]
pub struct Store {
    backend: sql::Sql,
    /// Bumped whenever updates are created, finished or cancelled (here, or by another
    /// instance: [`Notice::Updates`]), so a check-in can tell that nothing changed for a host
    /// that had no work (and skip its queries).
    updates_epoch: Arc<AtomicU64>,
    /// Notices for the other instances on a shared database, sent in order by one task.
    notices: Option<tokio::sync::mpsc::Sender<Notice>>,
    /// This instance, as its notices name it.
    instance: Arc<str>,
    /// Per campaign, the lock tasks of this instance take before the database's.
    campaign_locks:
        Arc<std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    /// How long each call to the database takes (`ferry_database_query_duration_seconds`),
    /// once the server's metrics are made.
    latency: Arc<std::sync::OnceLock<prometheus::Histogram>>,
}

/// Advisory lock spaces on PostgreSQL.
const LOCK_CAMPAIGN: i32 = 7305;
const LOCK_MQTT: i32 = 7306;

/// One campaign's decisions, made by one task at a time across every instance: held while
/// reading members, deciding and dispatching, so no wave opens twice and no member is
/// dispatched twice. Give it back with [`CampaignLock::release`]; dropped instead (an error
/// on the way), its database session is closed, which frees the lock too.
pub struct CampaignLock {
    key: String,
    conn: Option<sqlx::pool::PoolConnection<sqlx::Any>>,
    _local: tokio::sync::OwnedMutexGuard<()>,
}

impl CampaignLock {
    pub async fn release(mut self) {
        if let Some(conn) = self.conn.take() {
            if let Err(e) = sql::Sql::advisory_unlock(conn, LOCK_CAMPAIGN, &self.key).await {
                tracing::warn!(campaign = %self.key, "cannot give back the campaign's lock ({e}); its session closes instead");
            }
        }
    }
}

impl Drop for CampaignLock {
    fn drop(&mut self) {
        if let Some(mut conn) = self.conn.take() {
            conn.close_on_drop();
        }
    }
}

/// This instance's hold on one MQTT broker connection ([`Store::own_mqtt`]): as long as it
/// lives, no other instance serves that connection. Check it with [`MqttOwnership::alive`].
pub struct MqttOwnership {
    conn: Option<sqlx::pool::PoolConnection<sqlx::Any>>,
}

impl MqttOwnership {
    /// Whether the hold still stands: on PostgreSQL, whether the session holding the lock is
    /// still up (if it dropped, another instance may have taken over).
    pub async fn alive(&mut self) -> bool {
        match &mut self.conn {
            Some(conn) => sqlx::Connection::ping(&mut **conn).await.is_ok(),
            None => true,
        }
    }
}

impl Drop for MqttOwnership {
    fn drop(&mut self) {
        if let Some(mut conn) = self.conn.take() {
            conn.close_on_drop();
        }
    }
}

/// Notices queued for sending at most; beyond, they are dropped (with a warning): the other
/// instances' long-polls then end at their timeout and caches at their next change.
const NOTICE_QUEUE: usize = 10_000;

/// What a [`Listener`] heard.
pub enum Heard {
    /// A notice from another instance.
    Notice(Notice),
    /// The connection was lost and is back: notices in between may be missing.
    Reconnected,
}

/// The notices of the other instances on the shared database.
pub struct Listener {
    inner: sqlx::postgres::PgListener,
    instance: Arc<str>,
}

impl Listener {
    /// The next notice from another instance, or word that some may have been missed.
    pub async fn next(&mut self) -> Heard {
        loop {
            match self.inner.try_recv().await {
                Ok(Some(n)) => match notice::decode(n.payload()) {
                    Some((from, notice)) if *from != *self.instance => {
                        return Heard::Notice(notice)
                    }
                    Some(_) => {}
                    None => tracing::warn!("ignoring a notice that is not Ferry's"),
                },
                Ok(None) => return Heard::Reconnected,
                Err(e) => {
                    tracing::warn!("lost the database's notices ({e}); reconnecting");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    return Heard::Reconnected;
                }
            }
        }
    }
}

impl Store {
    /// Opens (creating if needed) the SQLite database and applies its migrations.
    pub async fn open_sqlite(path: &Path) -> Result<Store> {
        Ok(Store {
            backend: sql::Sql::open_sqlite(path).await?,
            updates_epoch: Default::default(),
            notices: None,
            instance: uuid::Uuid::new_v4().to_string().into(),
            campaign_locks: Default::default(),
            latency: Default::default(),
        })
    }

    /// Connects to a PostgreSQL database and applies its migrations; several server
    /// instances may share it.
    pub async fn open_postgres(url: &str, max_connections: u32) -> Result<Store> {
        let backend = sql::Sql::open_postgres(url, max_connections).await?;
        let instance: Arc<str> = uuid::Uuid::new_v4().to_string().into();
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Notice>(NOTICE_QUEUE);
        let sender = backend.clone();
        let from = Arc::clone(&instance);
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                // What queued up meanwhile goes too, each notice once, in order.
                let mut batch = vec![first];
                while batch.len() < 512 {
                    match rx.try_recv() {
                        Ok(n) if !batch.contains(&n) => batch.push(n),
                        Ok(_) => {}
                        Err(_) => break,
                    }
                }
                for n in batch {
                    if let Err(e) = sender.notify(&notice::encode(&from, &n)).await {
                        tracing::warn!("cannot tell the other instances ({e})");
                    }
                }
            }
        });
        Ok(Store {
            backend,
            updates_epoch: Default::default(),
            notices: Some(tx),
            instance,
            campaign_locks: Default::default(),
            latency: Default::default(),
        })
    }

    /// Times every database call into `histogram` from now on (the first given stays).
    pub fn time_into(&self, histogram: prometheus::Histogram) {
        let _ = self.latency.set(histogram);
    }

    /// Waits for the campaign's lock (see [`CampaignLock`]).
    pub async fn lock_campaign(&self, campaign_id: &str) -> Result<CampaignLock> {
        let local = {
            let mut locks = self
                .campaign_locks
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            Arc::clone(locks.entry(campaign_id.to_string()).or_default())
        };
        let local = local.lock_owned().await;
        let conn = self
            .backend
            .advisory_lock(LOCK_CAMPAIGN, campaign_id, true)
            .await?;
        Ok(CampaignLock {
            key: campaign_id.to_string(),
            conn,
            _local: local,
        })
    }

    /// Takes the MQTT connection `name` for this instance if no other instance serves it;
    /// `None` if one does. On SQLite there is one instance: always taken.
    pub async fn own_mqtt(&self, name: &str) -> Result<Option<MqttOwnership>> {
        if !self.shared() {
            return Ok(Some(MqttOwnership { conn: None }));
        }
        Ok(self
            .backend
            .advisory_lock(LOCK_MQTT, name, false)
            .await?
            .map(|conn| MqttOwnership { conn: Some(conn) }))
    }

    /// Tells the other instances on the shared database (nothing on SQLite).
    pub fn announce(&self, notice: Notice) {
        if let Some(tx) = &self.notices {
            if tx.try_send(notice).is_err() {
                tracing::warn!("too many notices queued for the other instances; one dropped");
            }
        }
    }

    /// Starts hearing the other instances' notices (`None` on SQLite: there are none).
    pub async fn listen(&self) -> Result<Option<Listener>> {
        let Some(mut inner) = self.backend.listener().await? else {
            return Ok(None);
        };
        inner.listen(notice::CHANNEL).await?;
        Ok(Some(Listener {
            inner,
            instance: Arc::clone(&self.instance),
        }))
    }

    /// Another instance changed updates: what this one knew of idle hosts is stale.
    pub fn updates_changed_elsewhere(&self) {
        self.updates_epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// Whether the database is shared by several instances (PostgreSQL).
    pub fn shared(&self) -> bool {
        self.backend.dialect() == sql::Dialect::Postgres
    }

    pub fn updates_epoch(&self) -> u64 {
        self.updates_epoch.load(Ordering::SeqCst)
    }

    fn bump_updates(&self) {
        self.updates_epoch.fetch_add(1, Ordering::SeqCst);
        self.announce(Notice::Updates);
    }

    // The methods that change updates also bump the epoch, whatever the backend.

    /// Creates a pending rollback of a host's item to `version` from its kept backup.
    pub async fn create_rollback(
        &self,
        host_id: &str,
        item: &str,
        version: &semver::Version,
        actor: &str,
        reason: &str,
    ) -> Result<String> {
        let id = self
            .backend
            .create_rollback(host_id, item, version, actor, reason)
            .await?;
        self.bump_updates();
        Ok(id)
    }

    /// Creates a pending update; `interactive: Some(record_input)` makes it an interactive one
    /// (its hooks run in an operator's terminal; what they type is kept if `record_input`).
    pub async fn create_update(
        &self,
        host_id: &str,
        item: &str,
        version: &semver::Version,
        actor: &str,
        interactive: Option<bool>,
    ) -> Result<String> {
        let id = self
            .backend
            .create_update(host_id, item, version, actor, interactive)
            .await?;
        self.bump_updates();
        Ok(id)
    }

    /// Creates a pending upgrade of a host's `packages` from its `source`.
    pub async fn create_package_update(
        &self,
        host_id: &str,
        source: &str,
        packages: &[ferry_manifests::wire::PackageChange],
        actor: &str,
        interactive: Option<bool>,
    ) -> Result<String> {
        let id = self
            .backend
            .create_package_update(host_id, source, packages, actor, interactive)
            .await?;
        self.bump_updates();
        Ok(id)
    }

    /// Stores a report once: a report id seen before changes nothing (the device retried after
    /// a lost answer). A job id counts only if the job is the reporting host's.
    pub async fn record_report(&self, rec: &ReportRecord) -> Result<Recorded> {
        let recorded = self.backend.record_report(rec).await?;
        if recorded != Recorded::Again {
            self.bump_updates();
        }
        Ok(recorded)
    }

    /// Withdraws a release and cancels its installs not yet started (the devices hear of it
    /// at check-in); false if there is no such release not yet withdrawn.
    pub async fn withdraw_release(&self, item: &str, version: &str, reason: &str) -> Result<bool> {
        let done = self.backend.withdraw_release(item, version, reason).await?;
        if done {
            self.bump_updates();
        }
        Ok(done)
    }

    /// Cancels one pending update (the device hears of it at check-in); false if it is not
    /// pending.
    pub async fn cancel_update(&self, id: &str, message: &str) -> Result<bool> {
        let done = self.backend.cancel_update(id, message).await?;
        if done {
            self.bump_updates();
        }
        Ok(done)
    }

    /// Marks the campaign's pending updates cancelled; the devices hear of it at check-in.
    pub async fn cancel_campaign_updates(&self, id: &str) -> Result<()> {
        self.backend.cancel_campaign_updates(id).await?;
        self.bump_updates();
        Ok(())
    }
}

/// Declares the store's interface: one forwarding method per line, to the same method of the
/// backend in use.
macro_rules! interface {
    ($( $(#[$meta:meta])* fn $name:ident(&self $(, $arg:ident: $ty:ty)*) -> $ret:ty; )*) => {
        impl Store {
            $(
                $(#[$meta])*
                pub async fn $name(&self $(, $arg: $ty)*) -> $ret {
                    let started = std::time::Instant::now();
                    let result = self.backend.$name($($arg),*).await;
                    if let Some(h) = self.latency.get() {
                        h.observe(started.elapsed().as_secs_f64());
                    }
                    result
                }
            )*
        }
    };
}

interface! {
    /// A round trip to the database (readiness).
    fn ping(&self) -> Result<()>;

    // software the devices' sources found
    /// The digest of the inventory stored for a host, if any.
    fn inventory_digest(&self, host_id: &str) -> Result<Option<String>>;
    /// Every host's packages named any of `names` (the operator's featured software).
    fn packages_named_any(&self, names: &[String]) -> Result<Vec<ferry_manifests::wire::PackageHit>>;
    /// The host's list as stored, sorted.
    fn inventory(&self, host_id: &str) -> Result<Vec<ferry_manifests::wire::InventoryPackage>>;
    /// Replaces a host's inventory (and its digest) in one transaction.
    fn set_inventory(&self, host_id: &str, digest: &str, packages: &[ferry_manifests::wire::InventoryPackage]) -> Result<()>;
    /// Every host that has a package of this name.
    fn packages_named(&self, name: &str) -> Result<Vec<ferry_manifests::wire::PackageHit>>;
    /// Software with an upgrade offered (of one category when given), by host, at most `limit` rows.
    fn packages_pending(&self, category: Option<ferry_manifests::manifest::Category>, limit: i64) -> Result<Vec<ferry_manifests::wire::PackageHit>>;
    /// Per host: packages found, with an upgrade, and per category.
    fn package_counts(&self) -> Result<Vec<PackageCounts>>;
    /// Hosts with upgrades pending (of a category when given), in numbers.
    fn hosts_pending(&self, category: Option<ferry_manifests::manifest::Category>) -> Result<Vec<ferry_manifests::wire::HostPending>>;
    /// One host's software in numbers, and its packages with an upgrade offered.
    fn host_software(&self, host_id: &str) -> Result<(Option<PackageCounts>, Vec<ferry_manifests::wire::PackageHit>)>;

    // hawkBit DDI clients (docs/ddi.md)
    /// The sealed token of a host (`Some`) or the tenant's gateway token (`None`).
    fn ddi_token(&self, tenant_id: &str, host_id: Option<&str>) -> Result<Option<Vec<u8>>>;
    /// Replaces the token of a host (`Some`) or the tenant's gateway token (`None`).
    fn set_ddi_token(&self, tenant_id: &str, host_id: Option<&str>, hash: &str, sealed: &[u8]) -> Result<()>;
    /// A DDI request's token (of the tenant named `tenant`) and the host its path names.
    fn ddi_caller(&self, hash: &str, tenant: &str, controller_id: &str) -> Result<Option<DdiCaller>>;
    /// The host a tenant knows by `name`, and its kind (`agent`, `ddi`).
    fn host_named(&self, tenant_id: &str, name: &str) -> Result<Option<(String, String)>>;
    /// A new accepted DDI host of a tenant, named by its controller id.
    fn create_ddi_host(&self, id: &str, tenant_id: &str, controller_id: &str) -> Result<()>;
    /// The attributes a DDI host sent (JSON), if any.
    fn ddi_attributes(&self, host_id: &str) -> Result<Option<String>>;
    fn set_ddi_attributes(&self, host_id: &str, json: &str) -> Result<()>;
    /// The action number of a host's update, made when it is first offered.
    fn ddi_action_for(&self, update_id: &str, host_id: &str) -> Result<i64>;
    /// A host's action, with its update.
    fn ddi_action(&self, host_id: &str, id: i64) -> Result<Option<DdiAction>>;
    /// A host's actions cancelled while its client had them, not yet answered.
    fn ddi_cancels(&self, host_id: &str) -> Result<Vec<i64>>;
    /// The client closed the action; `note` ends its update's output.
    fn close_ddi_action(&self, id: i64, note: Option<&str>) -> Result<()>;

    // webhooks (docs/operations.md, "Webhooks")
    fn add_webhook(&self, w: &StoredWebhook) -> Result<()>;
    /// A tenant's webhooks (every tenant's: `None`), oldest first.
    fn webhooks(&self, tenant_id: Option<&str>) -> Result<Vec<StoredWebhook>>;
    /// Removes a tenant's webhook and what it had still to deliver; false if there was none.
    fn remove_webhook(&self, tenant_id: &str, id: &str) -> Result<bool>;
    /// Whether any delivery is due at `now`.
    fn deliveries_due(&self, now: &str) -> Result<bool>;
    /// Claims up to `limit` deliveries due at `now` until `until`, counting this attempt.
    fn claim_deliveries(&self, now: &str, until: &str, limit: i64) -> Result<Vec<ClaimedDelivery>>;
    /// An attempt's end: delivered, tried again at `retry_at`, or given up (`None`).
    fn finish_delivery(&self, event_id: &str, webhook_id: &str, delivered: bool, status: Option<i64>, error: Option<&str>, retry_at: Option<&str>) -> Result<()>;
    /// A tenant's deliveries, newest first; only those not delivered with `failing`.
    fn deliveries(&self, tenant_id: &str, failing: bool, limit: i64) -> Result<Vec<DeliveryRow>>;
    /// Forgets events older than `before` whose deliveries are over; how many.
    fn prune_webhook_events(&self, before: &str) -> Result<u64>;

    // MQTT connections added through the API
    fn mqtt_connections(&self) -> Result<Vec<StoredMqtt>>;
    /// Adds or replaces a connection.
    fn put_mqtt(&self, m: &StoredMqtt) -> Result<()>;
    /// Removes a connection; false if there was none.
    fn remove_mqtt(&self, name: &str) -> Result<bool>;

    /// Ids of `kind` starting with `prefix` (at most three).
    fn ids_with_prefix(&self, kind: IdKind, prefix: &str) -> Result<Vec<String>>;

    // tokens
    fn has_token(&self, kind: &str) -> Result<bool>;
    /// Stores a token's hash; returns the token's id.
    fn add_token(&self, kind: &str, name: &str, hash: &str, limits: &TokenLimits) -> Result<String>;
    fn tokens(&self, tenant_id: &str) -> Result<Vec<TokenView>>;
    /// Revokes a token; false if there is no such active token.
    fn revoke_token(&self, id: &str) -> Result<bool>;
    /// The name of the live (unrevoked, unexpired) token of `kind` with this hash.
    fn live_token_name(&self, kind: &str, hash: &str) -> Result<Option<String>>;

    // campaign approval
    /// Records that a campaign waits for approval; its creator may not give it.
    fn require_approval(&self, id: &str, created_by: &str) -> Result<()>;
    /// (created by, approved by, approved at) of a campaign that needs approval.
    fn approval(&self, id: &str) -> Result<Option<(String, Option<String>, Option<String>)>>;
    /// Approves a campaign waiting for it, once; false when approved already.
    fn approve(&self, id: &str, by: &str) -> Result<bool>;

    // audit
    /// Appends one entry to the audit log.
    fn add_audit(&self, e: &ferry_manifests::wire::AuditEntry, tenant_id: &str) -> Result<()>;
    /// The newest `limit` entries (of a user, since a time), oldest first.
    fn audit(&self, tenant_id: &str, user: Option<&str>, since: Option<&str>, limit: i64) -> Result<Vec<ferry_manifests::wire::AuditEntry>>;

    // users
    /// Makes the `admin` user when there is none yet; gives it the tokens of nobody.
    fn ensure_admin(&self) -> Result<()>;
    fn add_user(&self, name: &str, role: &str, tag: Option<&str>, password_hash: Option<&str>, tenant_id: &str) -> Result<String>;
    /// Every tenant: (id, name).
    fn tenants(&self) -> Result<Vec<(String, String)>>;
    /// A new tenant; its id.
    fn add_tenant(&self, name: &str) -> Result<String>;
    /// How many tenants there are.
    fn tenant_count(&self) -> Result<i64>;
    /// How many hosts there are, every tenant.
    fn host_total(&self) -> Result<i64>;
    /// Every item a tenant claimed: (item, tenant id).
    fn item_owners(&self) -> Result<Vec<(String, String)>>;
    /// Claims an item or artifact name for a tenant unless held; the tenant holding it.
    fn claim(&self, kind: OwnedKind, name: &str, tenant_id: &str) -> Result<String>;
    /// The tenant that claimed an artifact name, if any.
    fn artifact_owner(&self, name: &str) -> Result<Option<String>>;
    /// Every user, by name.
    fn users(&self) -> Result<Vec<UserRow>>;
    /// Changes what is `Some`; false when there is no such user.
    fn edit_user(&self, name: &str, role: Option<&str>, tag: Option<&str>) -> Result<bool>;
    /// Removes a user and its tokens; false when there is no such user.
    fn remove_user(&self, name: &str) -> Result<bool>;
    /// Sets (or clears) a user's password hash; false when there is no such user.
    fn set_password(&self, name: &str, hash: Option<&str>) -> Result<bool>;
    /// A user by name, with their password hash.
    fn password_user(&self, name: &str) -> Result<Option<(LiveOperator, Option<String>)>>;
    /// A user by id.
    fn live_user(&self, id: &str) -> Result<Option<LiveOperator>>;
    /// The user an OpenID Connect identity signs in as (made at its first sign-in; its
    /// role follows the provider's groups); `Err(name)` when that name is another user's.
    fn oidc_user(&self, subject: &str, name: &str, role: &str, tenant: &str) -> Result<std::result::Result<LiveOperator, String>>;
    /// The live operator token with this hash, and its user.
    fn live_operator(&self, hash: &str) -> Result<Option<LiveOperator>>;
    /// The id of the token with this hash, if any.
    fn token_id(&self, hash: &str) -> Result<Option<String>>;
    /// Spends one use of a live enrolment token: `None` if it is unknown, revoked, expired
    /// or used up, else whether its hosts need an operator's acceptance.
    fn spend_enrol_token(&self, hash: &str, now: &str) -> Result<Option<(bool, Option<String>)>>;

    // hosts
    fn create_host(&self, host: &HostRow, token_hash: &str) -> Result<()>;
    /// The host holding this credential, and whether it is accepted.
    fn host_by_token(&self, token_hash: &str) -> Result<Option<(String, bool)>>;
    /// Accepts a host that waited for it; false if it was accepted already (or is gone).
    fn accept_host(&self, host_id: &str) -> Result<bool>;
    /// Records a check-in: facts, last seen and what is installed, in one transaction.
    fn update_host(&self, host: HostCheckIn, installed: &[InstalledItem], utc_offset: Option<i32>, facts_hash: i64) -> Result<()>;
    /// The digest of the facts the host last reported, if stored.
    fn facts_hash(&self, host_id: &str) -> Result<Option<i64>>;

    // sites (docs/delivery.md)
    /// Share addresses of devices at the host's site holding an artifact, newest seen first.
    fn site_peers(&self, host_id: &str, site: &str, sha256: &str) -> Result<Vec<String>>;
    /// Whether an update holds a place to fetch from the server, and how many others of its
    /// release at the site do.
    fn site_fetches(&self, host_id: &str, update_id: &str, site: &str, release: (&str, &str), since: &str) -> Result<(bool, i64)>;
    /// Gives an update a place to fetch from the server if one of `cap` is free.
    fn take_site_fetch(&self, host_id: &str, update_id: &str, site: &str, release: (&str, &str), times: (&str, &str), cap: u32) -> Result<bool>;
    /// Other hosts at the site with pending updates.
    fn site_waiting(&self, host_id: &str, site: &str) -> Result<Vec<String>>;
    /// Offers a host to its site as a peer again.
    fn clear_share_fault(&self, host_id: &str) -> Result<bool>;
    /// Marks the site's peer at `share` as having served bad bytes; its host id.
    fn share_fault(&self, reporter: &str, share: &str, note: &str) -> Result<Option<String>>;
    fn hosts(&self) -> Result<Vec<(HostRow, Vec<InstalledItem>)>>;
    /// Up to `limit` hosts with ids after `after`, in id order.
    fn hosts_page(&self, after: Option<&str>, limit: u32) -> Result<Vec<(HostRow, Vec<InstalledItem>)>>;
    /// (id, last seen) of the hosts matching a text and a tag, by hostname.
    fn hosts_seen(&self, text: Option<&str>, tag: Option<&str>) -> Result<Vec<(String, String)>>;
    /// How many hosts have each (item, version).
    fn installed_counts(&self) -> Result<Vec<(InstalledItem, u64)>>;
    /// Hosts with any of these (item, version) installed.
    fn hosts_with_installed(&self, which: &[InstalledItem]) -> Result<Vec<String>>;
    /// These hosts, in this order.
    fn hosts_by_ids(&self, ids: &[String]) -> Result<Vec<(HostRow, Vec<InstalledItem>)>>;
    /// A page of hosts matching a text and a tag, by hostname, and the number matching.
    fn hosts_search(&self, text: Option<&str>, tag: Option<&str>, offset: u32, limit: u32) -> Result<(Vec<(HostRow, Vec<InstalledItem>)>, u64)>;
    /// One host by id, with what it has installed.
    fn host(&self, id: &str) -> Result<Option<(HostRow, Vec<InstalledItem>)>>;
    /// Writes last-seen times in one transaction.
    fn touch_hosts(&self, seen: &[(String, String)]) -> Result<()>;
    /// A host's tags: (the device's own, the operator's if set).
    fn host_tags(&self, host_id: &str) -> Result<(Vec<String>, Option<Vec<String>>, Option<String>)>;
    /// Accepted hosts that report having `item` (installed or not yet).
    fn hosts_with_item(&self, item: &str) -> Result<Vec<String>>;
    /// (id, hostname) of hosts whose id or hostname is `name`.
    fn find_hosts(&self, name: &str) -> Result<Vec<(String, String)>>;
    /// Sets the operator's labels; `None` leaves a field as it is, an empty value clears it.
    fn edit_host(&self, host_id: &str, tags: Option<&[String]>, friendly_name: Option<&str>) -> Result<()>;
    /// Retires a host: its record, history and credential go; the device must enrol again.
    fn remove_host(&self, host_id: &str) -> Result<bool>;

    // device certificates
    /// Records a certificate of a host, which from now on authenticates by certificate.
    fn add_certificate(&self, c: &CertificateRow) -> Result<()>;
    /// The certificate with this fingerprint, and whether its host is still there, accepted.
    fn certificate(&self, fingerprint: &str) -> Result<Option<CertificateHolder>>;
    /// A host's certificates, newest first.
    fn host_certificates(&self, host_id: &str) -> Result<Vec<CertificateRow>>;
    /// Records that two devices used the host's identity at once.
    fn record_clone(&self, host_id: &str, what: &str) -> Result<()>;
    /// (how the host authenticates, the last clone seen) of a host.
    fn host_identity(&self, host_id: &str) -> Result<Option<(String, Option<String>)>>;

    // items
    /// Presentation and status of items that have a row (items without one are defaults).
    fn item_settings(&self) -> Result<Vec<ItemSettings>>;
    /// Changes what is `Some`; creates the item's row if needed.
    fn edit_item(&self, name: &str, featured: Option<bool>, icon_url: Option<Option<&str>>, deactivated: Option<bool>) -> Result<()>;

    // releases
    /// Inserts a release; returns false when that item and version already exist.
    fn add_release(&self, r: &NewRelease) -> Result<bool>;
    /// Releases of one item or all, in semver order per item.
    fn releases(&self, item: Option<&str>) -> Result<Vec<ReleaseView>>;
    /// Records the base URLs that also serve a release's artifact; false if there is no such
    /// release.
    fn set_mirrors(&self, item: &str, version: &str, mirrors: &[String]) -> Result<bool>;
    /// Lets installs of a release download over a metered link, or not.
    fn set_metered_allowed(&self, item: &str, version: &str, allowed: bool) -> Result<bool>;
    /// The signed envelope of a release, byte for byte as published.
    fn envelope(&self, item: &str, version: &str) -> Result<Option<String>>;
    fn artifact_in_use(&self, name: &str) -> Result<bool>;

    // trust roots
    /// The newest trust root: (version, envelope).
    fn latest_root(&self, guest: Option<&str>) -> Result<Option<(u64, String)>>;
    fn root(&self, guest: Option<&str>, version: u64) -> Result<Option<String>>;
    /// Stores a root; false if that version exists.
    fn add_root(&self, guest: Option<&str>, version: u64, envelope: &str) -> Result<bool>;

    // updates: jobs, live output, history
    /// The pending update of this host and item, if any.
    fn active_update(&self, host_id: &str, item: &str) -> Result<Option<String>>;
    /// Appends live output to a pending update of this host; returns the character offset it
    /// starts at, or `None` if there is no such pending update.
    fn append_output(&self, update_id: &str, host_id: &str, text: &str) -> Result<Option<i64>>;
    /// `len` characters of an update's stored output from character `offset`.
    fn output_slice(&self, update_id: &str, offset: i64, len: i64) -> Result<Option<String>>;
    fn pending_jobs(&self, host_id: &str) -> Result<Vec<PendingJob>>;
    /// The host's pending package upgrades, oldest first.
    fn pending_package_jobs(&self, host_id: &str) -> Result<Vec<ferry_manifests::wire::PackageJob>>;
    fn append_typed(&self, update_id: &str, line: &str) -> Result<()>;
    fn interactive_host(&self, update_id: &str) -> Result<Option<String>>;
    /// (host id, item) of every pending update.
    fn pending_items(&self) -> Result<Vec<(String, String)>>;
    /// Lets a pending update download over a metered link.
    fn allow_metered(&self, id: &str) -> Result<()>;
    /// Sets a pending update's message (why it waits); false if the host has no such one.
    fn note_update(&self, id: &str, host_id: &str, message: &str) -> Result<bool>;
    /// Each (host, item) whose last finished install failed, was rolled back or refused.
    fn last_failures(&self) -> Result<Vec<LastFailure>>;
    /// History entries, filtered by host, item or id, oldest first.
    fn history(&self, host_id: Option<&str>, item: Option<&str>, id: Option<&str>) -> Result<Vec<HistoryView>>;
    /// A page of entries, newest first, without output, and how many match.
    fn history_page(&self, host_id: Option<&str>, item: Option<&str>, statuses: &[&str], offset: u32, limit: u32) -> Result<(Vec<HistoryView>, u64)>;

    // batches
    fn create_batch(&self, kind: &str, description: &str, actor: &str, interactive: bool, planned: &[Planned]) -> Result<String>;
    fn batches(&self) -> Result<Vec<BatchRow>>;
    /// Each batch's entry states, one of each kind (its status, for metrics).
    fn batch_entry_kinds(&self) -> Result<Vec<(String, Vec<crate::policy::batch::EntryState>)>>;
    fn batch(&self, id: &str) -> Result<Option<BatchRow>>;
    /// Entries of one batch, or of every batch with an entry on `host_id`.
    fn batch_entries(&self, batch_id: Option<&str>, host_id: Option<&str>) -> Result<Vec<(String, EntryRow)>>;
    fn mark_dispatched(&self, batch_id: &str, seq: i64, update_id: &str) -> Result<()>;
    fn mark_skipped(&self, batch_id: &str, seq: i64, reason: &str) -> Result<()>;
    /// Whether the host has any update pending (from a trigger or a batch).
    fn host_busy(&self, host_id: &str) -> Result<bool>;

    // campaigns
    fn create_campaign(&self, c: &Campaign) -> Result<()>;
    fn campaigns(&self) -> Result<Vec<Campaign>>;
    fn campaign(&self, id: &str) -> Result<Option<Campaign>>;
    fn set_campaign_status(&self, id: &str, status: CampaignStatus, reason: &str) -> Result<()>;
    /// The wave a campaign watches now (and since when), and how many waves passed.
    fn set_observation(&self, id: &str, watching: Option<(usize, &str)>, passed: usize) -> Result<()>;
    /// Adds a host's health sample to what its campaign's window over `wave` knows.
    fn record_health(&self, campaign_id: &str, wave: usize, host_id: &str, at: &str, failed: &[String]) -> Result<()>;
    /// What the hosts' samples said during a campaign's window over `wave`.
    fn campaign_health(&self, campaign_id: &str, wave: usize) -> Result<Vec<crate::policy::observation::HostHealth>>;
    /// The version an update started from, as recorded.
    fn update_from_version(&self, id: &str) -> Result<Option<String>>;
    /// Stores the thresholds, window, waves and baseline of a campaign under way.
    fn update_campaign(&self, c: &Campaign) -> Result<()>;
    fn set_member_wave(&self, campaign_id: &str, host_id: &str, wave: usize) -> Result<()>;
    fn members(&self, campaign_id: &str) -> Result<Vec<Member>>;
    /// One host's membership, if any.
    fn member(&self, campaign_id: &str, host_id: &str) -> Result<Option<Member>>;
    fn member_count(&self, campaign_id: &str) -> Result<i64>;
    /// Adds a member; returns false if it already was one.
    fn add_member(&self, campaign_id: &str, host_id: &str, seq: i64, wave: usize) -> Result<bool>;
    fn set_member_update(&self, campaign_id: &str, host_id: &str, update_id: &str) -> Result<()>;
    /// Records the device's acceptance; false if it is not a member.
    fn accept(&self, campaign_id: &str, host_id: &str) -> Result<bool>;
    /// Campaigns an update belongs to.
    fn campaigns_of_update(&self, update_id: &str) -> Result<Vec<String>>;
    /// (cancelled, pending) of this host, in one read.
    fn host_work(&self, host_id: &str) -> Result<(Vec<String>, Vec<PendingJob>, Vec<ferry_manifests::wire::PackageJob>)>;
    /// The hosts that have work (what `host_work` would find for them): every other host has
    /// none.
    fn busy_hosts(&self) -> Result<Vec<String>>;
}
