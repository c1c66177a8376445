//! Waking long-polling devices. A device's check-in may wait (long-poll) until there is work
//! for it; triggers, batches, campaigns and `ferryctl check` wake it here, so an update starts
//! within a second on an online device while the device stays pull-only.
//!
//! In-process: with several server instances behind a load balancer, a wake reaches devices
//! polling this instance; the others pick the job up when their wait times out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

#[derive(Default)]
pub struct Waker {
    hosts: Mutex<HashMap<String, Arc<Notify>>>,
}

impl Waker {
    fn slot(&self, host_id: &str) -> Arc<Notify> {
        let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(hosts.entry(host_id.to_string()).or_default())
    }

    /// Wakes the host's pending long-poll, or the next one it starts.
    pub fn wake(&self, host_id: &str) {
        // notify_one stores a permit when nobody waits, so a wake between two polls is kept.
        self.slot(host_id).notify_one();
    }

    /// Waits until the host is woken or `limit` passes; true if woken.
    pub async fn wait(&self, host_id: &str, limit: Duration) -> bool {
        let slot = self.slot(host_id);
        tokio::time::timeout(limit, slot.notified()).await.is_ok()
    }

    /// Drops the host's slot (host removed).
    pub fn forget(&self, host_id: &str) {
        let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        hosts.remove(host_id);
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
    async fn a_wake_ends_a_wait_early() {
        let w = Arc::new(Waker::default());
        let w2 = Arc::clone(&w);
        let waiter = tokio::spawn(async move { w2.wait("h", Duration::from_secs(30)).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        w.wake("h");
        assert!(waiter.await.unwrap());
    }
}
