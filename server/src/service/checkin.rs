//! A host checked in: the one place that decides what a check-in answers. It records the
//! host's facts (only when they changed), lets it join campaigns, collects its jobs and
//! cancellations, holds the answer open for a long-poll, and lists what is available to it.

use ferry_manifests::wire::{
    CampaignOffer, CheckInRequest, CheckInResponse, Job, ObserveOrder, PackageJob,
};

use super::error::ServiceResult;
use crate::policy::fleet::{self, Contact};
use crate::state::{AppState, Shared};
use crate::store::{HostCheckIn, HostRow};

/// Answers one check-in of `host` (facts already validated by the handler).
///
/// The work before and after the long-poll runs in futures of their own (boxed, freed when
/// done), so a check-in held open keeps only this function's small state: a fleet's held
/// long-polls cost little memory each (docs/performance.md).
pub async fn check_in(
    state: &Shared,
    host_id: String,
    accepted: bool,
    peer: Option<std::net::IpAddr>,
    req: CheckInRequest,
) -> ServiceResult<CheckInResponse> {
    if !accepted {
        // Waiting for an operator's acceptance: its facts are kept (so the operator sees what
        // to accept), nothing is given, no campaign is joined.
        Box::pin(record(state, &host_id, &req)).await?;
        state.presence.contact(&host_id, fleet::Contact::Other);
        return Ok(CheckInResponse {
            host_id,
            available: vec![],
            jobs: vec![],
            acked_reports: vec![],
            trust_root_version: None,
            poll_interval_secs: state.config.poll_interval_secs,
            campaigns: vec![],
            cancelled_jobs: vec![],
            awaiting_acceptance: true,
            server_time: Some(ferry_manifests::wire::now()),
            inventory_wanted: false,
            inventory_base: None,
            check_requested: false,
            package_jobs: vec![],
            issues_certificates: state.identity.ca.is_some(),
            observe: vec![],
        });
    }
    let (campaigns, cancelled_jobs, mut work) =
        Box::pin(before_wait(state, host_id.clone(), &req)).await?;
    let wait = req.wait_secs.min(state.config.long_poll_max_secs);
    // A device holds at most `device_long_polls_max` at once; more are answered at once.
    let room = (work.is_empty() && wait > 0)
        .then(|| state.budgets.hold(&host_id))
        .flatten();
    if let Some(_room) = room {
        // Long-poll: answer as soon as there is work (or a `ferryctl check`), else at the end.
        // While it is open the host is present; if the device goes away, it is not.
        let mut holding = Holding::open(state, &host_id);
        if let Some(other) = holding.from(peer) {
            Box::pin(clone_seen(state, &host_id, other, peer)).await;
        }
        let woken = state
            .waker
            .wait(&host_id, std::time::Duration::from_secs(wait))
            .await;
        holding.finish(!woken);
        if woken {
            // Removed while it waited: its credential (token or certificate) counts no more.
            if state.store.host_identity(&host_id).await?.is_none() {
                return Err(super::error::ServiceError::Unauthorized(
                    "this host was removed while its check-in waited; its credential no longer counts".into(),
                ));
            }
            work = Box::pin(pending_work(state, &host_id)).await?;
            work = Box::pin(at_site(state, &host_id, &req, work)).await?;
        }
    } else {
        state.presence.contact(&host_id, fleet::Contact::Other);
    }
    Box::pin(answer(
        state,
        host_id,
        &req,
        campaigns,
        cancelled_jobs,
        work,
    ))
    .await
}

/// Two devices hold long-polls with one identity, from `first` and `second`: a cloned
/// device (its credential copied). Recorded on the host (`ferryctl hosts show`) and in the
/// audit log, and logged; nothing is refused, since which of the two is the real one is the
/// operator's to find out (remove the host, and enrol the real device again).
async fn clone_seen(
    state: &Shared,
    host_id: &str,
    first: std::net::IpAddr,
    second: Option<std::net::IpAddr>,
) {
    let second = second
        .map(|a| a.to_canonical().to_string())
        .unwrap_or_default();
    let first = first.to_canonical().to_string();
    let at = ferry_manifests::wire::now();
    let what = format!("{at}: from {first} and {second} at once");
    tracing::warn!(host = %host_id, %first, %second, "two devices are using this host's identity at once (a cloned device?); see `ferryctl hosts show`");
    if let Err(e) = state.store.record_clone(host_id, &what).await {
        tracing::warn!(host = %host_id, "cannot record the clone: {e}");
    }
    let tenant = match state.store.host_tags(host_id).await {
        Ok((_, _, Some(t))) => t,
        _ => match state.store.tenants().await {
            Ok(t) => t
                .into_iter()
                .find(|(_, name)| name == "default")
                .map(|(id, _)| id)
                .unwrap_or_default(),
            Err(_) => String::new(),
        },
    };
    let entry = ferry_manifests::wire::AuditEntry {
        seq: 0,
        at,
        user_id: None,
        user: format!("device:{host_id}"),
        method: "POST".into(),
        path: "/api/v1/device/checkin".into(),
        status: 200,
        address: Some(second.clone()),
        request_id: uuid::Uuid::new_v4().to_string(),
        before: None,
        after: Some(serde_json::json!({
            "suspected_clone": {"host_id": host_id, "addresses": [first, second]}
        })),
    };
    if let Err(e) = state.store.add_audit(&entry, &tenant).await {
        tracing::warn!(host = %host_id, "cannot write the clone to the audit log: {e}");
    }
    state.changed();
}

/// A host's pending jobs: Ferry releases, and upgrades of its sources' packages.
#[derive(Default)]
struct Work {
    jobs: Vec<Job>,
    package_jobs: Vec<PackageJob>,
    /// Jobs whose device fetches for its site first: offered no delta, so it keeps the full
    /// artifact its peers then take from it.
    whole: Vec<String>,
}

impl Work {
    fn is_empty(&self) -> bool {
        self.jobs.is_empty() && self.package_jobs.is_empty()
    }
}

/// Records what a check-in says of the host (written only when it changed).
async fn record(state: &Shared, host_id: &str, req: &CheckInRequest) -> ServiceResult<()> {
    // The database is written only when the facts changed; last-seen goes to the batch. An
    // instance that has not seen the host yet (it started since, or the host last checked in
    // with another instance) compares with the digest stored at the last write.
    let hash = crate::cache::facts_hash(&req.facts);
    let at = time::OffsetDateTime::now_utc();
    let known = match state.cache.check_in(host_id, hash, at) {
        Some(before) => Some(before),
        None => match state.store.facts_hash(host_id).await {
            Ok(stored) => stored,
            Err(e) => {
                state.cache.forget_facts(host_id);
                return Err(e.into());
            }
        },
    };
    if known != Some(hash) {
        let host = HostCheckIn {
            id: host_id.to_string(),
            facts: req.facts.host_facts(),
            last_seen: ferry_manifests::wire::timestamp(at),
            device_tags: req.facts.tags.clone(),
            device_friendly_name: req.facts.friendly_name.clone(),
            site: req.facts.site.clone(),
        };
        if let Err(e) = state
            .store
            .update_host(host, &req.facts.installed, req.facts.utc_offset_secs, hash)
            .await
        {
            state.cache.forget_facts(host_id);
            return Err(e.into());
        }
        state.changed();
        if let Some(site) = &req.facts.site {
            super::sites::sharing(state, host_id, site).await?;
        }
    }
    Ok(())
}

/// A host at a site: its jobs with the site's peers, or held while one of the site's sharing
/// devices fetches the release first (`service::sites`).
async fn at_site(
    state: &Shared,
    host_id: &str,
    req: &CheckInRequest,
    mut work: Work,
) -> ServiceResult<Work> {
    if let (Some(site), false) = (&req.facts.site, work.jobs.is_empty()) {
        (work.jobs, work.whole) = super::sites::offers(state, host_id, site, work.jobs).await?;
    }
    Ok(work)
}

/// What a host hears of its campaigns: offers needing its acceptance, and the observation
/// windows it is in.
type CampaignNews = (Vec<CampaignOffer>, Vec<ObserveOrder>);

/// Records the check-in and collects what the host must hear: (campaign news, cancelled
/// jobs, jobs).
async fn before_wait(
    state: &Shared,
    host_id: String,
    req: &CheckInRequest,
) -> ServiceResult<(CampaignNews, Vec<String>, Work)> {
    record(state, &host_id, req).await?;
    // Campaign membership is decided here, when the host checks in, never by scanning the
    // fleet on a timer. The operator's tags count; the device's own only when trusted.
    let campaigns = if state.campaigns_active().await? {
        let (device_tags, operator_tags, tenant) = state.store.host_tags(&host_id).await?;
        let (tags, _) = fleet::effective_labels(
            &device_tags,
            None,
            operator_tags.as_deref(),
            None,
            state.config.trust_device_tags,
        );
        super::campaigns::on_check_in(
            state,
            &host_id,
            (&tags, tenant.as_deref()),
            &req.facts.installed,
            &req.health,
        )
        .await?
    } else {
        Default::default()
    };
    // Unless an update changed anywhere since this host last had no work, it still has none.
    let epoch = state.store.updates_epoch();
    let (cancelled_jobs, work) = if state.cache.idle_at(&host_id, epoch) {
        (Vec::new(), Work::default())
    } else {
        read_fleet_work(state, epoch);
        let (cancelled, pending, package_jobs) = state.store.host_work(&host_id).await?;
        let work = Work {
            jobs: pending.into_iter().map(job_of).collect(),
            package_jobs,
            whole: vec![],
        };
        let idle = cancelled.is_empty() && work.is_empty();
        state.cache.set_idle(&host_id, idle.then_some(epoch));
        (cancelled, at_site(state, &host_id, req, work).await?)
    };
    Ok((campaigns, cancelled_jobs, work))
}

/// A new host's row as its facts make it, at enrolment.
pub fn host_row(
    id: String,
    facts: &ferry_manifests::wire::DeviceFacts,
    enrolled_at: String,
    last_seen: String,
) -> HostRow {
    HostRow {
        id,
        facts: facts.host_facts(),
        enrolled_at,
        last_seen,
        device_tags: facts.tags.clone(),
        device_friendly_name: facts.friendly_name.clone(),
        operator_tags: None,
        operator_friendly_name: None,
        accepted: true,
        tenant_id: None,
        auth: "token".into(),
        clone_seen: None,
        kind: "agent".into(),
        attributes: Default::default(),
        site: None,
        share_url: None,
        share_fault: None,
    }
}

/// How often at most the whole fleet's work is read again after updates changed.
const FLEET_WORK_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// Reads in the background which hosts of the whole fleet have work, when what is known is
/// of an older updates epoch: then the hosts this instance has not asked about yet (all of
/// them, after a start) skip their own read until updates change again.
fn read_fleet_work(state: &Shared, epoch: u64) {
    if !state.cache.busy_read_due(epoch, FLEET_WORK_EVERY) {
        return;
    }
    let state = state.clone();
    tokio::spawn(async move {
        let hosts = match state.store.busy_hosts().await {
            Ok(h) => Some(h),
            Err(e) => {
                tracing::warn!(error = %e, "reading which hosts have work");
                None
            }
        };
        state.cache.set_busy(epoch, hosts);
    });
}

/// The answer: the jobs with their deltas and mirrors, and what is available.
async fn answer(
    state: &Shared,
    host_id: String,
    req: &CheckInRequest,
    (campaigns, observe): CampaignNews,
    cancelled_jobs: Vec<String>,
    work: Work,
) -> ServiceResult<CheckInResponse> {
    let Work {
        mut jobs,
        package_jobs,
        whole,
    } = work;
    // Its tenant's releases (all of them in a single-tenant install).
    let releases = state.host_releases(&host_id).await?;
    let mut available = fleet::available_for(&req.facts.installed, &releases);
    if let (Some(site), false) = (&req.facts.site, available.is_empty()) {
        super::sites::available_peers(state, &host_id, site, &releases, &mut available).await?;
    }
    // A delta from what the host has, where one is ready (or asked for, for next time).
    let installed = |item: &str| {
        req.facts
            .installed
            .iter()
            .find(|i| i.item == item)
            .and_then(|i| i.version.clone())
    };
    for a in &mut available {
        if let Some(from) = installed(&a.item) {
            a.delta = delta_for(state, &releases, &a.item, &from, &a.version);
        }
    }
    for j in &mut jobs {
        if let Some(from) = installed(&j.item).filter(|_| !whole.contains(&j.job_id)) {
            j.delta = delta_for(state, &releases, &j.item, &from, &j.version);
        }
        if let Some(r) = releases
            .iter()
            .find(|r| r.item == j.item && r.version == j.version)
        {
            j.mirrors = fleet::mirror_urls(r);
            j.metered_allowed |= r.metered_allowed;
        }
    }
    let trust_root_version = state.host_root_version(&host_id).await?;
    // Told once: a long-poll's answer carries it to the device's next cycle.
    let check_requested = state.check_requests.take(&host_id);
    // The device's software list is asked for only when its digest differs from ours.
    let (inventory_wanted, inventory_base) = match &req.inventory_digest {
        Some(digest) => {
            let stored = state.store.inventory_digest(&host_id).await?;
            (stored.as_ref() != Some(digest), stored)
        }
        None => (false, None),
    };
    Ok(CheckInResponse {
        host_id,
        available,
        jobs,
        acked_reports: vec![],
        trust_root_version,
        poll_interval_secs: state.config.poll_interval_secs,
        campaigns,
        cancelled_jobs,
        awaiting_acceptance: false,
        server_time: Some(ferry_manifests::wire::now()),
        inventory_base: inventory_base.filter(|_| inventory_wanted),
        inventory_wanted,
        check_requested,
        package_jobs,
        issues_certificates: state.identity.ca.is_some(),
        observe,
    })
}

/// A ready delta from `from` to `to`; without one, a build is asked for, if `from` is a
/// release the server published (`policy::fleet::delta_wanted`).
fn delta_for(
    state: &Shared,
    releases: &[ferry_manifests::wire::ReleaseView],
    item: &str,
    from: &semver::Version,
    to: &semver::Version,
) -> Option<ferry_manifests::wire::DeltaOffer> {
    let offer = state.deltas.offer(item, from, to);
    if offer.is_none() && fleet::delta_wanted(releases, item, from, to) {
        crate::service::deltas::request(state, item, from, to);
    }
    // A delta no smaller than the artifact saves nothing: the artifact it is.
    let artifact = releases
        .iter()
        .find(|r| r.item == item && &r.version == to)
        .map(|r| r.artifact_size);
    offer.filter(|d| artifact.is_none_or(|size| d.size < size))
}

async fn pending_work(state: &Shared, host_id: &str) -> ServiceResult<Work> {
    Ok(Work {
        jobs: state
            .store
            .pending_jobs(host_id)
            .await?
            .into_iter()
            .map(job_of)
            .collect(),
        package_jobs: state.store.pending_package_jobs(host_id).await?,
        whole: vec![],
    })
}

/// A pending update as the device's job (its delta and mirrors are added with the answer).
fn job_of(j: crate::store::PendingJob) -> Job {
    Job {
        manifest_path: fleet::manifest_path(&j.item, &j.version),
        job_id: j.id,
        item: j.item,
        version: j.version,
        interactive: j.interactive,
        delta: None,
        mirrors: vec![],
        rollback: j.rollback,
        metered_allowed: j.metered_allowed,
        peers: vec![],
    }
}

/// An open long-poll: marks the host `Holding`, and `Dropped` if the device goes away before
/// [`Holding::finish`] (the request's future is dropped with the connection).
pub struct Holding<'a> {
    state: &'a AppState,
    host_id: String,
    finished: bool,
    /// Where it came from, while held.
    peer: Option<std::net::IpAddr>,
}

impl<'a> Holding<'a> {
    /// Time makes hosts go offline (the bridge's tick sees it); a device coming back from a
    /// dropped long-poll shows online at once.
    pub fn open(state: &'a AppState, host_id: &str) -> Holding<'a> {
        if matches!(
            state.presence.contact(host_id, Contact::Holding),
            None | Some(Contact::Dropped)
        ) {
            state.changed();
        }
        Holding {
            state,
            host_id: host_id.to_string(),
            finished: false,
            peer: None,
        }
    }

    /// Held from `peer`: the address of another device holding one with the same identity
    /// at the same time, if any.
    pub fn from(&mut self, peer: Option<std::net::IpAddr>) -> Option<std::net::IpAddr> {
        let peer = peer?;
        self.peer = Some(peer);
        self.state.presence.hold_from(&self.host_id, peer)
    }

    /// The long-poll is answered: `ran_out` when it ended with nothing to do.
    pub fn finish(mut self, ran_out: bool) {
        self.finished = true;
        let kind = if ran_out {
            Contact::Waited
        } else {
            Contact::Other
        };
        self.state.presence.contact(&self.host_id, kind);
    }
}

impl Drop for Holding<'_> {
    fn drop(&mut self) {
        if let Some(peer) = self.peer {
            self.state.presence.release_from(&self.host_id, peer);
        }
        if !self.finished {
            self.state.presence.contact(&self.host_id, Contact::Dropped);
            tracing::debug!(host = %self.host_id, "the device closed its long-poll");
            self.state.changed();
        }
    }
}
