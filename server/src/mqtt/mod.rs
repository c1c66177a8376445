//! The MQTT bridge and Home Assistant discovery (docs/mqtt.md).
//!
//! - [`model`]: the fleet as the bridge publishes it, a plain snapshot built from the store.
//! - [`topics`]: every retained topic and payload, the discovery configs, stale-topic cleanup
//!   and command parsing, as pure functions of a snapshot and a connection's settings, tested
//!   without a broker.
//!
//! - [`snapshot`]: builds that snapshot from the store.
//! - [`bridge`]: one broker connection (rumqttc), the thin shell around the rest.

pub mod bridge;
pub mod model;
pub mod snapshot;
pub mod topics;
