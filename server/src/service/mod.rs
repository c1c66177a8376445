//! What happens when: the events a server reacts to, each owned by one module, so handlers
//! stay thin and never call each other. Each gathers data from the store, asks `policy` what
//! to do, and carries it out (store writes, wake-ups, live output).
//!
//! - [`checkin`]: a host checked in.
//! - [`report`]: reports arrived.
//! - [`campaigns`]: a campaign changed (created, resumed, a host joined or accepted).
//! - [`batches`]: a host became free for its next batch entry.
//! - [`updates`]: a person asked for an install (API or MQTT).
//! - [`deltas`]: a delta is wanted (a release published, an older host checked in).

pub mod batches;
pub mod campaigns;
pub mod checkin;
pub mod deltas;
pub mod items;
pub mod report;
pub mod updates;

/// Who asked for something, recorded with what it caused (an update's history entry, a
/// batch). A type, never a string, so a new kind of actor is added in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// An operator, through the API, ferryctl or the web UI.
    Operator,
    /// Home Assistant (or another MQTT client) through the MQTT bridge.
    Mqtt,
    /// A campaign dispatching its members.
    Campaign,
}

impl Actor {
    /// How history stores and shows it (`initiated_by`).
    pub fn as_str(self) -> &'static str {
        match self {
            Actor::Operator => "user",
            Actor::Mqtt => "mqtt",
            Actor::Campaign => "campaign",
        }
    }
}

#[cfg(test)]
mod tests;
