//! What one device, and enrolment as a whole, may ask of the server: token buckets of
//! requests (a burst, then a steady rate) and a cap on the long-polls a device holds at once.
//! The decisions are plain code over the time the caller gives; memory is one small entry
//! per device that made a request lately (idle devices' full buckets are dropped), so nothing
//! a device sends makes it grow. Each instance keeps its own budgets.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::cache::FastMap as HashMap;

/// A refill rate and the most a bucket holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub burst: u32,
    pub per_sec: f64,
}

/// One token bucket.
#[derive(Debug, Clone)]
pub struct Bucket {
    tokens: f64,
    at: Instant,
    /// When a refusal was last worth a log line (at most one a minute).
    logged: Option<Instant>,
}

/// Least time between two log lines about one bucket's refusals.
pub const LOG_EVERY: Duration = Duration::from_secs(60);

/// A request refused for its budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// When one request will be allowed again.
    pub retry_after: Duration,
    /// Worth a log line: the first refusal in [`LOG_EVERY`].
    pub first: bool,
}

impl Bucket {
    pub fn full(rate: Rate, now: Instant) -> Bucket {
        Bucket {
            tokens: f64::from(rate.burst),
            at: now,
            logged: None,
        }
    }

    fn refill(&mut self, rate: Rate, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate.per_sec).min(f64::from(rate.burst));
        self.at = now;
    }

    /// Takes one request's token, or says how long until there is one.
    pub fn take(&mut self, rate: Rate, now: Instant) -> Result<(), Refused> {
        self.refill(rate, now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        let first = self
            .logged
            .is_none_or(|at| now.saturating_duration_since(at) >= LOG_EVERY);
        if first {
            self.logged = Some(now);
        }
        let missing = 1.0 - self.tokens;
        let secs = if rate.per_sec > 0.0 {
            missing / rate.per_sec
        } else {
            3600.0
        };
        Err(Refused {
            retry_after: Duration::from_secs_f64(secs.clamp(0.001, 3600.0)),
            first,
        })
    }

    /// Whether it has refilled completely (so forgetting it changes nothing).
    fn is_full(&self, rate: Rate, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens + elapsed * rate.per_sec >= f64::from(rate.burst)
    }
}

/// The budgets of one server instance.
pub struct Budgets {
    device_rate: Rate,
    devices: Mutex<Keyed>,
    max_held: u32,
    held: Mutex<HashMap<String, u32>>,
    /// Long-polls held, every device.
    held_total: std::sync::atomic::AtomicU64,
    enrol_rate: Rate,
    enrol: Mutex<Bucket>,
    sign_in: Mutex<Bucket>,
    passwords: Mutex<Keyed>,
}

/// Password sign-ins of one user name: a burst of 5, then one a minute, whether the password
/// was right or not (a guesser gets five tries, then one a minute, whatever the server-wide
/// budget leaves).
pub const PASSWORD: Rate = Rate {
    burst: 5,
    per_sec: 1.0 / 60.0,
};

/// Web UI sign-in attempts, server-wide: a burst of 20, then one every 3 s.
const SIGN_IN: Rate = Rate {
    burst: 20,
    per_sec: 1.0 / 3.0,
};

/// A bucket per key (a device, a user name), kept only while it is not full.
struct Keyed {
    buckets: HashMap<String, Bucket>,
    /// Size at which idle (full) buckets are dropped.
    prune_at: usize,
}

impl Keyed {
    fn new() -> Keyed {
        Keyed {
            buckets: HashMap::default(),
            prune_at: PRUNE_AT_LEAST,
        }
    }

    fn take(&mut self, key: &str, rate: Rate, now: Instant) -> Result<(), Refused> {
        if let Some(bucket) = self.buckets.get_mut(key) {
            return bucket.take(rate, now);
        }
        if self.buckets.len() >= self.prune_at {
            self.buckets.retain(|_, b| !b.is_full(rate, now));
            self.prune_at = (self.buckets.len() * 2).max(PRUNE_AT_LEAST);
        }
        let mut bucket = Bucket::full(rate, now);
        let taken = bucket.take(rate, now);
        self.buckets.insert(key.to_string(), bucket);
        taken
    }
}

const PRUNE_AT_LEAST: usize = 1024;

impl Budgets {
    pub fn new(device_rate: Rate, max_held: u32, enrol_rate: Rate) -> Budgets {
        Budgets {
            device_rate,
            devices: Mutex::new(Keyed::new()),
            max_held,
            held: Mutex::new(HashMap::default()),
            held_total: Default::default(),
            enrol_rate,
            enrol: Mutex::new(Bucket::full(enrol_rate, Instant::now())),
            sign_in: Mutex::new(Bucket::full(SIGN_IN, Instant::now())),
            passwords: Mutex::new(Keyed::new()),
        }
    }

    /// One request by the device `host_id`.
    pub fn device_request(&self, host_id: &str) -> Result<(), Refused> {
        self.device_request_at(host_id, Instant::now())
    }

    fn device_request_at(&self, host_id: &str, now: Instant) -> Result<(), Refused> {
        self.devices
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take(host_id, self.device_rate, now)
    }

    /// One password sign-in as the user `name` (right or wrong).
    pub fn password(&self, name: &str) -> Result<(), Refused> {
        self.passwords
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take(name, PASSWORD, Instant::now())
    }

    /// One enrolment (all devices share the fleet's enrolment token, so the budget is one).
    pub fn enrolment(&self) -> Result<(), Refused> {
        self.enrol
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take(self.enrol_rate, Instant::now())
    }

    /// One web UI sign-in attempt.
    pub fn sign_in(&self) -> Result<(), Refused> {
        self.sign_in
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take(SIGN_IN, Instant::now())
    }

    /// Room for one more long-poll held for `host_id`, released when the guard drops;
    /// `None` when the device already holds its most.
    pub fn hold(&self, host_id: &str) -> Option<Held<'_>> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let count = held.entry(host_id.to_string()).or_insert(0);
        if *count >= self.max_held {
            return None;
        }
        *count += 1;
        self.held_total
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Some(Held {
            budgets: self,
            host_id: host_id.to_string(),
        })
    }

    /// Long-polls held now, every device.
    pub fn held(&self) -> u64 {
        self.held_total.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Forgets a removed host.
    pub fn forget(&self, host_id: &str) {
        self.devices
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .buckets
            .remove(host_id);
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.devices
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .buckets
            .len()
    }
}

/// One long-poll held; its place is given back on drop (the request answered or dropped).
pub struct Held<'a> {
    budgets: &'a Budgets,
    host_id: String,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let mut held = self.budgets.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = held.get_mut(&self.host_id) {
            *count = count.saturating_sub(1);
            self.budgets
                .held_total
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            if *count == 0 {
                held.remove(&self.host_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: Rate = Rate {
        burst: 3,
        per_sec: 2.0,
    };

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate_and_says_when_to_retry() {
        let t0 = Instant::now();
        let mut b = Bucket::full(RATE, t0);
        for _ in 0..3 {
            assert!(b.take(RATE, t0).is_ok());
        }
        let refused = b.take(RATE, t0).unwrap_err();
        assert!(refused.first);
        assert_eq!(refused.retry_after, Duration::from_millis(500));
        assert!(!b.take(RATE, t0).unwrap_err().first, "logged once a minute");
        // Half a second later, one more; its next refusal is not logged again yet.
        let t1 = t0 + Duration::from_millis(500);
        assert!(b.take(RATE, t1).is_ok());
        assert!(!b.take(RATE, t1).unwrap_err().first);
        let t1b = t0 + LOG_EVERY;
        assert!(b.take(RATE, t1b).is_ok());
        for _ in 0..2 {
            b.take(RATE, t1b).ok();
        }
        assert!(
            b.take(RATE, t1b).unwrap_err().first,
            "a minute later, again"
        );
        // A long pause refills to the burst, never beyond it.
        let t2 = t1 + Duration::from_secs(3600);
        for _ in 0..3 {
            assert!(b.take(RATE, t2).is_ok());
        }
        assert!(b.take(RATE, t2).is_err());
    }

    #[test]
    fn each_device_has_its_own_budget_and_idle_ones_are_forgotten() {
        let budgets = Budgets::new(RATE, 2, RATE);
        let t0 = Instant::now();
        for _ in 0..3 {
            budgets.device_request_at("a", t0).unwrap();
        }
        assert!(budgets.device_request_at("a", t0).is_err());
        assert!(budgets.device_request_at("b", t0).is_ok(), "b is not a");

        // Many devices, each once, long ago: their buckets refill and are dropped, so the
        // map stays bounded by the devices active lately.
        for i in 0..5000 {
            budgets.device_request_at(&format!("h{i}"), t0).unwrap();
        }
        let later = t0 + Duration::from_secs(10);
        for i in 0..9000 {
            budgets
                .device_request_at(&format!("late{i}"), later)
                .unwrap();
        }
        assert_eq!(budgets.tracked(), 9000, "the idle 5000 are forgotten");
    }

    #[test]
    fn a_device_holds_at_most_its_long_polls_and_gets_them_back() {
        let budgets = Budgets::new(RATE, 2, RATE);
        let first = budgets.hold("a").unwrap();
        let second = budgets.hold("a").unwrap();
        assert!(budgets.hold("a").is_none());
        assert_eq!(budgets.held(), 2);
        assert!(budgets.hold("b").is_some(), "b is not a");
        drop(first);
        let third = budgets.hold("a");
        assert!(third.is_some());
        drop((second, third));
        assert!(budgets.held.lock().unwrap().is_empty());
        assert_eq!(budgets.held(), 0);
    }
}
