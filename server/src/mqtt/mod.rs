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
pub mod connections;
pub mod model;
pub mod snapshot;
pub mod topics;

use crate::config::{MqttConnection, MqttFileConfig};
use crate::state::{Bridges, Shared};
use crate::store::StoredMqtt;

/// Starts the bridge of `conn`, replacing one of the same name.
///
/// The bridges lock is held while the task is spawned and registered, and a bridge records
/// its status only while it is registered (`bridge::status`), so a stopped bridge's last
/// words cannot bring back the status of a removed connection.
pub fn run(state: &Shared, conn: MqttConnection) {
    let mut bridges = state.bridges.lock().unwrap_or_else(|e| e.into_inner());
    forget(state, &mut bridges, &conn.name);
    let name = conn.name.clone();
    let handle = bridge::start(std::sync::Arc::clone(state), conn);
    bridges.insert(name, handle);
}

/// Stops the bridge called `name`, if it runs, and forgets its status.
pub fn stop(state: &Shared, name: &str) {
    let mut bridges = state.bridges.lock().unwrap_or_else(|e| e.into_inner());
    forget(state, &mut bridges, name);
}

fn forget(state: &Shared, bridges: &mut Bridges, name: &str) {
    if let Some(h) = bridges.remove(name) {
        h.abort();
    }
    state
        .mqtt_status
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(name);
}

/// A stored connection that cannot start (its secrets do not open, its settings are
/// refused) is listed with the reason instead.
pub fn not_started(state: &Shared, m: &StoredMqtt, reason: String) {
    tracing::error!(connection = %m.name, "MQTT connection not started: {reason}");
    state
        .mqtt_status
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(
            m.name.clone(),
            ferry_manifests::wire::MqttConnectionView {
                name: m.name.clone(),
                url: m.url.clone(),
                last_error: Some(format!("not started: {reason}")),
                source: "api".into(),
                tenant: m.tenant_id.clone(),
                ..Default::default()
            },
        );
}

/// A stored connection, secrets opened and settings checked.
pub fn from_stored(state: &Shared, m: &StoredMqtt) -> Result<MqttConnection, String> {
    let open = |sealed: &Option<Vec<u8>>| -> Result<Option<Vec<u8>>, String> {
        sealed
            .as_ref()
            .map(|s| state.secrets.open_sealed(s).map_err(|e| e.to_string()))
            .transpose()
    };
    let password = open(&m.password_sealed)?
        .map(|p| String::from_utf8(p).map_err(|_| "the stored password is not text".to_string()))
        .transpose()?;
    let ca = open(&m.ca_sealed)?;
    let mut conn = MqttConnection::check(&spec_of(m), password, ca)?;
    conn.publishing.tenant = m.tenant_id.clone();
    Ok(conn)
}

/// The non-secret settings of a stored connection.
pub fn spec_of(m: &StoredMqtt) -> MqttFileConfig {
    MqttFileConfig {
        name: m.name.clone(),
        url: m.url.clone(),
        username: m.username.clone(),
        client_id: m.client_id.clone(),
        topic_prefix: m.topic_prefix.clone(),
        discovery: m.discovery,
        discovery_prefix: m.discovery_prefix.clone(),
        ..Default::default()
    }
}
