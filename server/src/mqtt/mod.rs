//! The MQTT bridge and Home Assistant discovery (docs/mqtt.md).
//!
//! - [`model`]: the fleet as the bridge publishes it, a plain snapshot built from the store.
//! - [`topics`]: every retained topic and payload, the discovery configs, stale-topic cleanup
//!   and command parsing, as pure functions of a snapshot and a connection's settings, tested
//!   without a broker.
//!
//! The connection to the broker (publishing, the birth and last will, commands) is the thin
//! shell around these; it is not built yet.

pub mod model;
pub mod topics;
