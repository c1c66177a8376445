//! Waking long-polling devices. A device's check-in may wait (long-poll) until there is work
//! for it; triggers, batches, campaigns and `ferryctl check` wake it here, so an update starts
//! within a second on an online device while the device stays pull-only.
//!
//! In-process; with several server instances on one database, `AppState::wake` also sends
//! the wake to the others ([`crate::cluster`]), so it reaches the device wherever it polls.

use crate::cache::FastMap as HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

/// One host's wake-ups: a generation counter every waiter watches (so all current waiters
/// wake, and a stale check-in whose device went away cannot swallow the wake-up meant for the
/// device's new one), and a flag that keeps a wake-up for the next check-in when none waits.
#[derive(Default)]
struct Slot {
    generation: AtomicU64,
    pending: AtomicBool,
    notify: Notify,
}

#[derive(Default)]
pub struct Waker {
    hosts: Mutex<HashMap<String, Arc<Slot>>>,
}

impl Waker {
    fn slot(&self, host_id: &str) -> Arc<Slot> {
        let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(hosts.entry(host_id.to_string()).or_default())
    }

    /// Wakes the host's pending long-polls, or the next one it starts.
    pub fn wake(&self, host_id: &str) {
        let slot = self.slot(host_id);
        slot.pending.store(true, Ordering::SeqCst);
        slot.generation.fetch_add(1, Ordering::SeqCst);
        slot.notify.notify_waiters();
    }

    /// Waits until the host is woken or `limit` passes; true if woken.
    pub async fn wait(&self, host_id: &str, limit: Duration) -> bool {
        let slot = self.slot(host_id);
        if slot.pending.swap(false, Ordering::SeqCst) {
            return true;
        }
        let start = slot.generation.load(Ordering::SeqCst);
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = slot.notify.notified();
            tokio::pin!(notified);
            // Register before checking, so a wake in between is not lost.
            notified.as_mut().enable();
            if slot.generation.load(Ordering::SeqCst) != start {
                slot.pending.store(false, Ordering::SeqCst);
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return false;
            }
        }
    }

    /// Wakes every host's long-polls here, to re-check (after notices may have been missed).
    pub fn wake_all(&self) {
        let hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        for slot in hosts.values() {
            slot.generation.fetch_add(1, Ordering::SeqCst);
            slot.notify.notify_waiters();
        }
    }

    /// Drops the host's slot (host removed), waking its held long-polls first: they answer
    /// that the host is gone.
    pub fn forget(&self, host_id: &str) {
        let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = hosts.remove(host_id) {
            slot.generation.fetch_add(1, Ordering::SeqCst);
            slot.notify.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_wake_before_the_wait_is_not_lost() {
        let w = Waker::default();
        w.wake("h");
        assert!(w.wait("h", Duration::from_secs(5)).await);
        assert!(!w.wait("h", Duration::from_millis(20)).await);
    }

    #[tokio::test]
    async fn every_waiter_is_woken_so_a_stale_one_cannot_swallow_the_wake() {
        let w = Arc::new(Waker::default());
        let stale = tokio::spawn({
            let w = Arc::clone(&w);
            async move { w.wait("h", Duration::from_secs(5)).await }
        });
        let fresh = tokio::spawn({
            let w = Arc::clone(&w);
            async move { w.wait("h", Duration::from_secs(5)).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        w.wake("h");
        let (a, b) = tokio::join!(stale, fresh);
        assert!(a.unwrap() && b.unwrap(), "every waiter wakes");
    }

    #[tokio::test]
    async fn a_wake_ends_a_wait_early() {
        let w = Arc::new(Waker::default());
        let w2 = Arc::clone(&w);
        let waiter = tokio::spawn(async move { w2.wait("h", Duration::from_secs(30)).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        w.wake("h");
        assert!(waiter.await.unwrap());
    }
}

/// Hosts an operator asked for a check now (`ferryctl hosts check`): the next check-in
/// answer of each says so once, and the device refreshes what its sources know (APT's lists)
/// before it reports. Kept in memory on every instance (a notice spreads them); a request
/// nobody collected for a day is dropped.
#[derive(Default)]
pub struct CheckRequests {
    hosts: Mutex<HashMap<String, std::time::Instant>>,
}

/// How long an uncollected check request is kept.
const CHECK_REQUEST_TTL: Duration = Duration::from_secs(86_400);

impl CheckRequests {
    pub fn ask(&self, host_id: &str) {
        let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        let now = std::time::Instant::now();
        if hosts.len() >= 100_000 {
            hosts.retain(|_, at| now.duration_since(*at) < CHECK_REQUEST_TTL);
        }
        hosts.insert(host_id.to_string(), now);
    }

    /// Whether a check was asked of the host (and not yet told): true once.
    pub fn take(&self, host_id: &str) -> bool {
        let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        if hosts.is_empty() {
            return false;
        }
        hosts
            .remove(host_id)
            .is_some_and(|at| at.elapsed() < CHECK_REQUEST_TTL)
    }
}

#[cfg(test)]
mod check_tests {
    use super::*;

    #[test]
    fn a_check_request_is_told_once() {
        let c = CheckRequests::default();
        assert!(!c.take("h1"));
        c.ask("h1");
        assert!(!c.take("h2"));
        assert!(c.take("h1"));
        assert!(!c.take("h1"));
    }
}
