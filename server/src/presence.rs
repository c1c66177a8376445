//! Which devices are here: how each last made contact, in memory (this instance only, since
//! it started). `policy::fleet::is_present` decides from it.

use crate::cache::FastMap as HashMap;
use std::sync::Mutex;

use time::OffsetDateTime;

use crate::policy::fleet::Contact;

#[derive(Default)]
pub struct Presence {
    last: Mutex<HashMap<String, (Contact, OffsetDateTime)>>,
    /// The addresses each host's held long-polls came from: one agent holds one at a time,
    /// so two addresses at once are two devices with one identity.
    holding_from: Mutex<HashMap<String, Vec<std::net::IpAddr>>>,
}

impl Presence {
    /// Records a contact and returns the one before it.
    pub fn contact(&self, host_id: &str, kind: Contact) -> Option<Contact> {
        let now = (kind, OffsetDateTime::now_utc());
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        // A known host updates in place: no key is allocated.
        match last.get_mut(host_id) {
            Some(entry) => Some(std::mem::replace(entry, now).0),
            None => last.insert(host_id.to_string(), now).map(|(k, _)| k),
        }
    }

    pub fn get(&self, host_id: &str) -> Option<(Contact, OffsetDateTime)> {
        self.last
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(host_id)
            .copied()
    }

    /// A long-poll of the host from `addr` is held; the address of another device holding
    /// one with the same identity, if there is one (`policy::identity::clone_at`).
    pub fn hold_from(&self, host_id: &str, addr: std::net::IpAddr) -> Option<std::net::IpAddr> {
        let mut held = self.holding_from.lock().unwrap_or_else(|e| e.into_inner());
        let list = match held.get_mut(host_id) {
            Some(l) => l,
            None => held.entry(host_id.to_string()).or_default(),
        };
        let other = crate::policy::identity::clone_at(list, addr);
        list.push(addr);
        other
    }

    /// A long-poll from `addr` was answered or dropped.
    pub fn release_from(&self, host_id: &str, addr: std::net::IpAddr) {
        let mut held = self.holding_from.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(list) = held.get_mut(host_id) {
            if let Some(i) = list.iter().position(|a| *a == addr) {
                list.swap_remove(i);
            }
            if list.is_empty() {
                held.remove(host_id);
            }
        }
    }

    /// Forgets a removed host.
    pub fn forget(&self, host_id: &str) {
        self.last
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(host_id);
    }
}
