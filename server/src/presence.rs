//! Which devices are here: how each last made contact, in memory (this instance only, since
//! it started). `policy::fleet::is_present` decides from it.

use crate::cache::FastMap as HashMap;
use std::sync::Mutex;

use time::OffsetDateTime;

use crate::policy::fleet::Contact;

#[derive(Default)]
pub struct Presence {
    last: Mutex<HashMap<String, (Contact, OffsetDateTime)>>,
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

    /// Forgets a removed host.
    pub fn forget(&self, host_id: &str) {
        self.last
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(host_id);
    }
}
