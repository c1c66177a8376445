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
pub mod report;
pub mod updates;
