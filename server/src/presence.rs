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

/// An open long-poll: marks the host `Holding`, and `Dropped` if the device goes away before
/// [`Holding::finish`] (the request's future is dropped with the connection).
pub struct Holding<'a> {
    state: &'a crate::AppState,
    host_id: String,
    finished: bool,
}

impl<'a> Holding<'a> {
    /// Time makes hosts go offline (the bridge's tick sees it); a device coming back from a
    /// dropped long-poll shows online at once.
    pub fn open(state: &'a crate::AppState, host_id: &str) -> Holding<'a> {
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
        }
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
        if !self.finished {
            self.state.presence.contact(&self.host_id, Contact::Dropped);
            tracing::debug!(host = %self.host_id, "the device closed its long-poll");
            self.state.changed();
        }
    }
}
