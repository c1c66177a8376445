//! The broker connections as operators manage them: how each is doing, and those added,
//! edited and removed through the API or the web UI (stored with their secrets sealed;
//! server.toml's are read-only here).

use ferry_manifests::wire::{MqttConnectionRequest, MqttConnectionView};

use crate::config::MqttConnection;
use crate::service::{ServiceError, ServiceResult};
use crate::state::Shared;
use crate::store::{LiveOperator, StoredMqtt};

/// Whether `caller` may see and manage a connection of `tenant`: their tenant's, or (an
/// install-wide one, `None`) the default tenant's users.
async fn mine(state: &Shared, caller: &LiveOperator, tenant: Option<&str>) -> ServiceResult<bool> {
    Ok(match tenant {
        Some(t) => t == caller.tenant_id,
        None => caller.tenant_id == crate::service::tenants::default_id(state).await?,
    })
}

/// How each of the caller's broker connections is doing.
pub async fn list(state: &Shared, caller: &LiveOperator) -> ServiceResult<Vec<MqttConnectionView>> {
    let of_default = caller.tenant_id == crate::service::tenants::default_id(state).await?;
    Ok(state
        .mqtt_status
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .values()
        .filter(|v| match &v.tenant {
            Some(t) => *t == caller.tenant_id,
            None => of_default,
        })
        .cloned()
        .collect())
}

fn view(state: &Shared, c: &MqttConnection) -> MqttConnectionView {
    state
        .mqtt_status
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&c.name)
        .cloned()
        .unwrap_or_else(|| MqttConnectionView {
            name: c.name.clone(),
            url: format!(
                "{}://{}:{}",
                if c.tls.is_some() { "mqtts" } else { "mqtt" },
                c.host,
                c.port
            ),
            topic_prefix: c.publishing.prefix.clone(),
            discovery: c.publishing.discovery,
            discovery_prefix: c.publishing.discovery_prefix.clone(),
            source: "api".into(),
            tenant: c.publishing.tenant.clone(),
            ..Default::default()
        })
}

fn from_file(state: &Shared, name: &str) -> bool {
    state.config.mqtt.iter().any(|m| m.name == name)
}

fn seal(state: &Shared, secret: Option<&str>) -> ServiceResult<Option<Vec<u8>>> {
    match secret {
        None | Some("") => Ok(None),
        Some(s) => state
            .secrets
            .seal(s.as_bytes())
            .map(Some)
            .map_err(|e| ServiceError::Secrets(e.to_string())),
    }
}

/// Checks `stored` (opening its secrets), then stores it and (re)starts its bridge.
async fn save_and_run(state: &Shared, stored: StoredMqtt) -> ServiceResult<MqttConnectionView> {
    let conn = super::from_stored(state, &stored).map_err(ServiceError::invalid)?;
    state.store.put_mqtt(&stored).await?;
    super::run(state, conn.clone());
    tracing::info!(connection = %conn.name, "MQTT connection saved");
    Ok(view(state, &conn))
}

/// Adds a broker connection of the caller's tenant (its secrets sealed; it publishes that
/// tenant's hosts) and starts its bridge.
pub async fn add(
    state: &Shared,
    caller: &LiveOperator,
    req: MqttConnectionRequest,
) -> ServiceResult<MqttConnectionView> {
    let (Some(name), Some(url)) = (req.name.clone(), req.url.clone()) else {
        return Err(ServiceError::invalid("give the connection's name and url"));
    };
    if from_file(state, &name)
        || state
            .store
            .mqtt_connections()
            .await?
            .iter()
            .any(|m| m.name == name)
    {
        return Err(ServiceError::conflict(format!(
            "an MQTT connection named {name} exists; edit it instead"
        )));
    }
    let stored = StoredMqtt {
        name,
        url,
        username: req.username.filter(|u| !u.is_empty()),
        password_sealed: seal(state, req.password.as_deref())?,
        ca_sealed: seal(state, req.ca_pem.as_deref())?,
        client_id: req.client_id,
        topic_prefix: req.topic_prefix,
        discovery: req.discovery,
        discovery_prefix: req.discovery_prefix,
        tenant_id: Some(caller.tenant_id.clone()),
    };
    save_and_run(state, stored).await
}

async fn stored(state: &Shared, caller: &LiveOperator, name: &str) -> ServiceResult<StoredMqtt> {
    if from_file(state, name) && mine(state, caller, None).await? {
        return Err(ServiceError::conflict(format!(
            "the MQTT connection {name} is defined in server.toml; change it there"
        )));
    }
    let found = state
        .store
        .mqtt_connections()
        .await?
        .into_iter()
        .find(|m| m.name == name);
    match found {
        Some(m) if mine(state, caller, m.tenant_id.as_deref()).await? => Ok(m),
        _ => Err(ServiceError::not_found(format!(
            "no MQTT connection named {name}"
        ))),
    }
}

/// Changes a connection added through the API (server.toml's are changed there) and restarts
/// its bridge.
pub async fn edit(
    state: &Shared,
    caller: &LiveOperator,
    name: &str,
    req: MqttConnectionRequest,
) -> ServiceResult<MqttConnectionView> {
    let mut m = stored(state, caller, name).await?;
    if let Some(url) = req.url {
        m.url = url;
    }
    if let Some(u) = req.username {
        m.username = (!u.is_empty()).then_some(u);
    }
    if let Some(p) = req.password {
        m.password_sealed = seal(state, Some(&p))?;
    }
    if let Some(ca) = req.ca_pem {
        m.ca_sealed = seal(state, Some(&ca))?;
    }
    if let Some(c) = req.client_id {
        m.client_id = Some(c);
    }
    if let Some(p) = req.topic_prefix {
        m.topic_prefix = Some(p);
    }
    if let Some(d) = req.discovery {
        m.discovery = Some(d);
    }
    if let Some(p) = req.discovery_prefix {
        m.discovery_prefix = Some(p);
    }
    save_and_run(state, m).await
}

/// Removes a connection added through the API and stops its bridge.
pub async fn remove(state: &Shared, caller: &LiveOperator, name: &str) -> ServiceResult<()> {
    stored(state, caller, name).await?;
    state.store.remove_mqtt(name).await?;
    super::stop(state, name);
    tracing::info!(connection = %name, "MQTT connection removed");
    Ok(())
}

/// Waits up to 5 s for the connection to be up, and says how it is.
pub async fn test(
    state: &Shared,
    caller: &LiveOperator,
    name: &str,
) -> ServiceResult<MqttConnectionView> {
    let theirs = list(state, caller).await?.iter().any(|v| v.name == name)
        || state
            .bridges
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(name)
            && stored(state, caller, name).await.is_ok();
    if !theirs {
        return Err(ServiceError::not_found(format!(
            "no MQTT connection named {name}"
        )));
    }
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let now = state
            .mqtt_status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned();
        let known = || {
            state
                .bridges
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains_key(name)
        };
        match now {
            None if !known() || tokio::time::Instant::now() >= deadline => {
                return Err(ServiceError::not_found(format!(
                    "no MQTT connection named {name}"
                )))
            }
            None => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
            Some(v) if v.connected || tokio::time::Instant::now() >= deadline => return Ok(v),
            Some(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
        }
    }
}
