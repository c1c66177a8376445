//! What keeps check-in cheap: device credentials, unchanged facts and last-seen times are
//! held in memory, and last-seen is written to the database in batches rather than on every
//! check-in; releases, the trust root version and whether any campaign is active are cached
//! until they change. Everything here is rebuilt from the database on demand; a crash of the
//! server loses at most [`SEEN_WRITE_INTERVAL`] of last-seen times (a clean stop writes them
//! all).

use std::collections::HashSet;

use time::OffsetDateTime;

use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex, RwLock};

use ferry_manifests::wire::{DeviceFacts, ReleaseView};

/// How often buffered last-seen times are written.
pub const FLUSH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);
/// A host's last-seen is written at most this often: the online rule works in minutes and
/// the server shows the in-memory time anyway, so a busy fleet costs the database one row
/// per host per minute, not one per check-in.
pub const SEEN_WRITE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

#[derive(Default)]
pub struct Cache {
    seen: Mutex<HashMap<String, OffsetDateTime>>,
    written: Mutex<HashMap<String, std::time::Instant>>,
    facts: Mutex<HashMap<String, i64>>,
    /// Device credentials by their digest ([`crate::auth::token_digest`]).
    devices: RwLock<HashMap<[u8; 32], String>>,
    releases: RwLock<Option<Arc<Vec<ReleaseView>>>>,
    /// The releases split by tenant (dropped with `releases`).
    catalog: RwLock<Option<Arc<Catalog>>>,
    /// Each host's tenant, once read (a host never moves).
    host_tenants: Mutex<HashMap<String, Option<String>>>,
    root: RwLock<Option<Option<u64>>>,
    /// Each other tenant's newest trust root version (dropped with `root`).
    guest_roots: Mutex<HashMap<String, Option<u64>>>,
    campaigns: RwLock<Option<bool>>,
    /// Hosts that had no pending or cancelled job, at which updates epoch.
    idle: Mutex<HashMap<String, u64>>,
    /// The whole fleet's answer to the same question, read in one query: at this updates
    /// epoch, only these hosts had work. A host first seen since the server started needs no
    /// read of its own while the epoch holds.
    busy: RwLock<Option<(u64, Arc<HashSet<String>>)>>,
    /// When the fleet was last read for `busy`, and whether a read is under way.
    busy_read: Mutex<(Option<std::time::Instant>, bool)>,
    /// Each running campaign's open wave, as last decided (refreshed by every evaluation).
    open_waves: Mutex<HashMap<String, usize>>,
    /// DDI requests resolved: (token digest, tenant name, controller id) to host id. The
    /// controller id is the client's: a keyed hash (the standard map's) guards the table.
    ddi_devices: RwLock<std::collections::HashMap<DdiKey, String>>,
    /// DDI hosts that sent their attributes (once sent, they stay).
    ddi_attributes: RwLock<HashSet<String>>,
}

/// What a DDI request is resolved by: its token's digest, the tenant and controller id of
/// its path.
pub type DdiKey = ([u8; 32], String, String);

/// The maps a check-in looks up (several each time): keyed by host ids the server made and
/// credential digests, not by what a client chooses, so a fast hash serves.
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
use FastMap as HashMap;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The facts as their digest reads them: every field, in this order, none left out. Its own
/// type, so the digest does not follow the wire's serialization (which leaves out what is
/// empty).
#[derive(serde::Serialize)]
struct Digested<'a> {
    hostname: &'a str,
    os: &'a str,
    os_version: &'a str,
    arch: &'a str,
    agent_version: &'a str,
    device_class: &'a Option<String>,
    newest_manifest_at: &'a Option<String>,
    tags: &'a [String],
    friendly_name: &'a Option<String>,
    utc_offset_secs: Option<i32>,
    installed: &'a [ferry_manifests::wire::InstalledItem],
    /// Left out when absent, so the digest of facts without a site is as it always was.
    #[serde(skip_serializing_if = "Option::is_none")]
    site: &'a Option<ferry_manifests::wire::Site>,
}

/// A digest of the facts, the same in every instance and version (it is stored: an instance
/// that has not seen a host compares with it).
pub fn facts_hash(facts: &DeviceFacts) -> i64 {
    let digested = Digested {
        hostname: &facts.hostname,
        os: &facts.os,
        os_version: &facts.os_version,
        arch: &facts.arch,
        agent_version: &facts.agent_version,
        device_class: &facts.device_class,
        newest_manifest_at: &facts.newest_manifest_at,
        tags: &facts.tags,
        friendly_name: &facts.friendly_name,
        utc_offset_secs: facts.utc_offset_secs,
        installed: &facts.installed,
        site: &facts.site,
    };
    let json = serde_json::to_vec(&digested).unwrap_or_default();
    let digest = Sha256::digest(&json);
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}

impl Cache {
    /// Records a check-in with facts of digest `hash`; returns the digest this instance
    /// last knew for the host (`None`: it has not seen the host since it started).
    pub fn check_in(&self, host_id: &str, hash: i64, now: OffsetDateTime) -> Option<i64> {
        // A known host (nearly every check-in) updates in place: no key is allocated.
        let before = {
            let mut facts = lock(&self.facts);
            match facts.get_mut(host_id) {
                Some(h) => Some(std::mem::replace(h, hash)),
                None => facts.insert(host_id.to_string(), hash),
            }
        };
        let mut seen = lock(&self.seen);
        match seen.get_mut(host_id) {
            Some(at) => *at = now,
            None => {
                seen.insert(host_id.to_string(), now);
            }
        }
        before
    }

    /// The digest of the facts just written for a host.
    pub fn remember_facts(&self, host_id: &str, hash: i64) {
        lock(&self.facts).insert(host_id.to_string(), hash);
    }

    /// Forgets the facts digest of a host (its write failed: the next check-in writes again).
    pub fn forget_facts(&self, host_id: &str) {
        lock(&self.facts).remove(host_id);
        lock(&self.host_tenants).remove(host_id);
    }

    /// Last-seen times due to be written: those of hosts not written for
    /// [`SEEN_WRITE_INTERVAL`] (or `all` of them, at shutdown).
    pub fn take_seen(&self, all: bool) -> Vec<(String, String)> {
        let seen = lock(&self.seen);
        let mut written = lock(&self.written);
        let now = std::time::Instant::now();
        let mut due = Vec::new();
        for (host, at) in seen.iter() {
            let fresh = written
                .get(host)
                .is_some_and(|w| now.duration_since(*w) < SEEN_WRITE_INTERVAL);
            if all || !fresh {
                written.insert(host.clone(), now);
                due.push((host.clone(), ferry_manifests::wire::timestamp(*at)));
            }
        }
        due
    }

    /// The buffered last-seen of a host, newer than the database's.
    pub fn seen(&self, host_id: &str) -> Option<String> {
        lock(&self.seen)
            .get(host_id)
            .map(|at| ferry_manifests::wire::timestamp(*at))
    }

    pub fn open_wave(&self, campaign_id: &str) -> Option<usize> {
        lock(&self.open_waves).get(campaign_id).copied()
    }

    /// Forgets every campaign's open wave (another instance moved one).
    pub fn clear_open_waves(&self) {
        lock(&self.open_waves).clear();
    }

    pub fn set_open_wave(&self, campaign_id: &str, wave: Option<usize>) {
        let mut waves = lock(&self.open_waves);
        match wave {
            Some(w) => waves.insert(campaign_id.to_string(), w),
            None => waves.remove(campaign_id),
        };
    }

    /// Whether the host had no work when the updates epoch was `epoch`: from its own last
    /// read, or from the fleet's.
    pub fn idle_at(&self, host_id: &str, epoch: u64) -> bool {
        lock(&self.idle).get(host_id) == Some(&epoch)
            || self
                .busy
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
                .is_some_and(|(e, busy)| *e == epoch && !busy.contains(host_id))
    }

    /// Whether the fleet should be read for `busy` now: its last read is of another epoch
    /// than `epoch`, none is under way, and the last began at least `every` ago. A `true`
    /// marks a read under way; [`Cache::set_busy`] ends it.
    pub fn busy_read_due(&self, epoch: u64, every: std::time::Duration) -> bool {
        let current = self
            .busy
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|(e, _)| *e == epoch);
        if current {
            return false;
        }
        let mut read = lock(&self.busy_read);
        let due = !read.1 && read.0.is_none_or(|at| at.elapsed() >= every);
        if due {
            *read = (Some(std::time::Instant::now()), true);
        }
        due
    }

    /// The fleet's hosts with work at `epoch` (`None`: the read failed).
    pub fn set_busy(&self, epoch: u64, hosts: Option<Vec<String>>) {
        if let Some(hosts) = hosts {
            *self.busy.write().unwrap_or_else(|e| e.into_inner()) =
                Some((epoch, Arc::new(hosts.into_iter().collect())));
        }
        lock(&self.busy_read).1 = false;
    }

    pub fn set_idle(&self, host_id: &str, epoch: Option<u64>) {
        let mut idle = lock(&self.idle);
        match epoch {
            Some(e) => idle.insert(host_id.to_string(), e),
            None => idle.remove(host_id),
        };
    }

    pub fn device(&self, digest: &[u8; 32]) -> Option<String> {
        self.devices
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(digest)
            .cloned()
    }

    pub fn remember_device(&self, digest: [u8; 32], host_id: &str) {
        self.devices
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(digest, host_id.to_string());
    }

    pub fn forget_host(&self, host_id: &str) {
        self.devices
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, h| h != host_id);
        self.ddi_devices
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, h| h != host_id);
        self.ddi_attributes
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(host_id);
        lock(&self.facts).remove(host_id);
        lock(&self.seen).remove(host_id);
        lock(&self.idle).remove(host_id);
        lock(&self.written).remove(host_id);
    }

    /// The host a DDI request resolved to before, and whether it sent its attributes.
    pub fn ddi_device(&self, key: &DdiKey) -> Option<(String, bool)> {
        let host = self
            .ddi_devices
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned()?;
        let sent = self
            .ddi_attributes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&host);
        Some((host, sent))
    }

    pub fn remember_ddi_device(&self, key: DdiKey, host_id: &str, attributes_sent: bool) {
        self.ddi_devices
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, host_id.to_string());
        if attributes_sent {
            self.ddi_attributes_sent(host_id);
        }
    }

    pub fn ddi_attributes_sent(&self, host_id: &str) {
        self.ddi_attributes
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(host_id.to_string());
    }

    /// A DDI token was made or replaced: every resolution is read again.
    pub fn forget_ddi_tokens(&self) {
        self.ddi_devices
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    pub fn releases(&self) -> Option<Arc<Vec<ReleaseView>>> {
        self.releases
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn set_releases(&self, r: Option<Arc<Vec<ReleaseView>>>) {
        *self.releases.write().unwrap_or_else(|e| e.into_inner()) = r;
        *self.catalog.write().unwrap_or_else(|e| e.into_inner()) = None;
    }

    pub fn catalog(&self) -> Option<Arc<Catalog>> {
        self.catalog
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn set_catalog(&self, c: Arc<Catalog>) {
        *self.catalog.write().unwrap_or_else(|e| e.into_inner()) = Some(c);
    }

    /// A host's tenant, if read before (`Some(None)`: it has none recorded).
    pub fn host_tenant(&self, host_id: &str) -> Option<Option<String>> {
        lock(&self.host_tenants).get(host_id).cloned()
    }

    pub fn remember_host_tenant(&self, host_id: &str, tenant: Option<String>) {
        lock(&self.host_tenants).insert(host_id.to_string(), tenant);
    }

    pub fn root(&self) -> Option<Option<u64>> {
        *self.root.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_root(&self, r: Option<Option<u64>>) {
        *self.root.write().unwrap_or_else(|e| e.into_inner()) = r;
        lock(&self.guest_roots).clear();
    }

    pub fn guest_root(&self, tenant: &str) -> Option<Option<u64>> {
        lock(&self.guest_roots).get(tenant).copied()
    }

    pub fn set_guest_root(&self, tenant: &str, v: Option<u64>) {
        lock(&self.guest_roots).insert(tenant.to_string(), v);
    }

    pub fn campaigns_active(&self) -> Option<bool> {
        *self.campaigns.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_campaigns_active(&self, v: Option<bool>) {
        *self.campaigns.write().unwrap_or_else(|e| e.into_inner()) = v;
    }
}

/// The install's releases as each tenant's hosts are offered them: with one tenant, all of
/// them; with several, each tenant's own items' (an item belongs to the tenant that first
/// published it; those published before tenants, to the default tenant).
pub struct Catalog {
    pub all: Arc<Vec<ReleaseView>>,
    /// Several tenants: each has its own.
    pub several: bool,
    pub default_id: String,
    /// Items claimed by a tenant.
    owners: std::collections::HashMap<String, String>,
    per_tenant: Mutex<std::collections::HashMap<String, Arc<Vec<ReleaseView>>>>,
}

impl Catalog {
    pub fn new(
        all: Arc<Vec<ReleaseView>>,
        several: bool,
        default_id: String,
        owners: std::collections::HashMap<String, String>,
    ) -> Catalog {
        Catalog {
            all,
            several,
            default_id,
            owners,
            per_tenant: Mutex::default(),
        }
    }

    /// The tenant an item belongs to.
    pub fn owner(&self, item: &str) -> &str {
        self.owners
            .get(item)
            .map(String::as_str)
            .unwrap_or(&self.default_id)
    }

    /// Whether a tenant claimed the item.
    pub fn claimed(&self, item: &str) -> bool {
        self.owners.contains_key(item)
    }

    /// Whether an item is the tenant's (always, with one tenant).
    pub fn is_of(&self, item: &str, tenant: Option<&str>) -> bool {
        !self.several || self.owner(item) == tenant.unwrap_or(&self.default_id)
    }

    /// The releases a tenant's hosts are offered.
    pub fn for_tenant(&self, tenant: Option<&str>) -> Arc<Vec<ReleaseView>> {
        if !self.several {
            return Arc::clone(&self.all);
        }
        let tenant = tenant.unwrap_or(&self.default_id);
        let mut cached = lock(&self.per_tenant);
        if let Some(r) = cached.get(tenant) {
            return Arc::clone(r);
        }
        let mine: Arc<Vec<ReleaseView>> = Arc::new(
            self.all
                .iter()
                .filter(|r| self.owner(&r.item) == tenant)
                .cloned()
                .collect(),
        );
        cached.insert(tenant.to_string(), Arc::clone(&mine));
        mine
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ddi_resolution_is_forgotten_with_its_host_or_a_token_change() {
        let c = Cache::default();
        let key = |n: u8| ([n; 32], "default".to_string(), format!("pump-{n}"));
        c.remember_ddi_device(key(1), "h1", false);
        c.remember_ddi_device(key(2), "h2", true);
        assert_eq!(c.ddi_device(&key(1)), Some(("h1".into(), false)));
        c.ddi_attributes_sent("h1");
        assert_eq!(c.ddi_device(&key(1)), Some(("h1".into(), true)));
        // Another controller id with the same token is another resolution.
        assert_eq!(
            c.ddi_device(&([1; 32], "default".into(), "pump-9".into())),
            None
        );
        c.forget_host("h1");
        assert_eq!(c.ddi_device(&key(1)), None);
        assert_eq!(c.ddi_device(&key(2)), Some(("h2".into(), true)));
        c.forget_ddi_tokens();
        assert_eq!(c.ddi_device(&key(2)), None);
    }

    fn facts(version: &str) -> DeviceFacts {
        DeviceFacts {
            hostname: "h".into(),
            os: "linux".into(),
            os_version: String::new(),
            arch: "x86_64".into(),
            agent_version: version.into(),
            device_class: None,
            newest_manifest_at: None,
            tags: vec![],
            friendly_name: None,
            utc_offset_secs: None,
            installed: vec![],
            site: None,
        }
    }

    /// The digest is stored and compared by other instances and later versions: it must not
    /// change with the process (`DefaultHasher` may).
    const GOLDEN_DIGEST: i64 = -4_419_311_099_789_954_688;

    #[test]
    fn the_fleets_work_answers_for_hosts_not_asked_about_until_updates_change() {
        let c = Cache::default();
        let every = std::time::Duration::from_secs(3600);
        assert!(!c.idle_at("a", 1), "nothing is known before a read");
        assert!(c.busy_read_due(1, every));
        assert!(!c.busy_read_due(1, every), "one read at a time");
        c.set_busy(1, Some(vec!["b".into()]));
        assert!(c.idle_at("a", 1), "a host without work");
        assert!(!c.idle_at("b", 1), "a host with work reads its own");
        assert!(!c.idle_at("a", 2), "updates changed since the read");
        assert!(!c.busy_read_due(1, every), "the read is of this epoch");
        assert!(!c.busy_read_due(2, every), "too soon after the last");
        assert!(c.busy_read_due(2, std::time::Duration::ZERO));
        c.set_busy(2, None);
        assert!(!c.idle_at("a", 2), "a failed read tells nothing");
        c.set_idle("b", Some(2));
        assert!(c.idle_at("b", 2), "the host's own read counts too");
    }

    #[test]
    fn the_facts_digest_is_fixed() {
        assert_eq!(facts_hash(&facts("1")), GOLDEN_DIGEST);
    }

    #[test]
    fn only_changed_facts_need_a_write_and_last_seen_is_buffered() {
        let c = Cache::default();
        let (one, two) = (facts_hash(&facts("1")), facts_hash(&facts("2")));
        assert_ne!(one, two);
        let t = |s: i64| OffsetDateTime::from_unix_timestamp(1_800_000_000 + s).unwrap();
        assert_eq!(c.check_in("h", one, t(1)), None);
        assert_eq!(c.check_in("h", one, t(2)), Some(one));
        assert_eq!(c.check_in("h", two, t(3)), Some(one));
        assert_eq!(c.seen("h").as_deref(), Some("2027-01-15T08:00:03.000Z"));
        assert_eq!(
            c.take_seen(false),
            vec![("h".to_string(), "2027-01-15T08:00:03.000Z".to_string())]
        );
        assert!(
            c.take_seen(false).is_empty(),
            "written less than a minute ago"
        );
        assert_eq!(
            c.take_seen(true).len(),
            1,
            "at shutdown everything is written"
        );
        c.remember_device([7; 32], "h");
        assert_eq!(c.device(&[7; 32]).as_deref(), Some("h"));
        c.forget_host("h");
        assert!(c.device(&[7; 32]).is_none());
        assert_eq!(
            c.check_in("h", two, t(4)),
            None,
            "forgotten facts are compared with the database's again"
        );
    }
}
