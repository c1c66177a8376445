//! The MQTT bridge's broker connections: how they are doing, and those added, edited and
//! removed through the API (stored with their secrets sealed; server.toml's are read-only
//! here).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use ferry_manifests::wire::{MqttConnectionRequest, MqttConnectionView};

use crate::auth::Operator;
use crate::config::MqttConnection;
use crate::error::extract::{Json as ApiJson, Path};
use crate::error::{ApiResult, AppError};
use crate::state::Shared;
use crate::store::StoredMqtt;

#[utoipa::path(get, path = "/api/v1/mqtt", tag = "mqtt", responses((status = 200, body = Vec<ferry_manifests::wire::MqttConnectionView>), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn list(
    State(state): State<Shared>,
    _op: Operator,
) -> ApiResult<Json<Vec<MqttConnectionView>>> {
    let all = state
        .mqtt_status
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .values()
        .cloned()
        .collect();
    Ok(Json(all))
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
            ..Default::default()
        })
}

fn from_file(state: &Shared, name: &str) -> bool {
    state.config.mqtt.iter().any(|m| m.name == name)
}

fn seal(state: &Shared, secret: Option<&str>) -> ApiResult<Option<Vec<u8>>> {
    match secret {
        None | Some("") => Ok(None),
        Some(s) => state
            .secrets
            .seal(s.as_bytes())
            .map(Some)
            .map_err(|e| AppError::Secrets(e.to_string())),
    }
}

/// Checks `stored` (opening its secrets), then stores it and (re)starts its bridge.
async fn save_and_run(state: &Shared, stored: StoredMqtt) -> ApiResult<MqttConnectionView> {
    let conn = crate::mqtt::from_stored(state, &stored).map_err(AppError::bad_request)?;
    state.store.put_mqtt(&stored).await?;
    crate::mqtt::run(state, conn.clone());
    tracing::info!(connection = %conn.name, "MQTT connection saved");
    Ok(view(state, &conn))
}

#[utoipa::path(post, path = "/api/v1/mqtt", operation_id = "mqtt_add", tag = "mqtt", request_body = ferry_manifests::wire::MqttConnectionRequest, responses((status = 200, body = ferry_manifests::wire::MqttConnectionView), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn add(
    State(state): State<Shared>,
    _op: Operator,
    ApiJson(req): ApiJson<MqttConnectionRequest>,
) -> ApiResult<Json<MqttConnectionView>> {
    let (Some(name), Some(url)) = (req.name.clone(), req.url.clone()) else {
        return Err(AppError::bad_request("give the connection's name and url"));
    };
    if from_file(&state, &name)
        || state
            .store
            .mqtt_connections()
            .await?
            .iter()
            .any(|m| m.name == name)
    {
        return Err(AppError::conflict(format!(
            "an MQTT connection named {name} exists; edit it instead"
        )));
    }
    let stored = StoredMqtt {
        name,
        url,
        username: req.username.filter(|u| !u.is_empty()),
        password_sealed: seal(&state, req.password.as_deref())?,
        ca_sealed: seal(&state, req.ca_pem.as_deref())?,
        client_id: req.client_id,
        topic_prefix: req.topic_prefix,
        discovery: req.discovery,
        discovery_prefix: req.discovery_prefix,
    };
    Ok(Json(save_and_run(&state, stored).await?))
}

async fn stored(state: &Shared, name: &str) -> ApiResult<StoredMqtt> {
    if from_file(state, name) {
        return Err(AppError::conflict(format!(
            "the MQTT connection {name} is defined in server.toml; change it there"
        )));
    }
    state
        .store
        .mqtt_connections()
        .await?
        .into_iter()
        .find(|m| m.name == name)
        .ok_or_else(|| AppError::not_found(format!("no MQTT connection named {name}")))
}

#[utoipa::path(patch, path = "/api/v1/mqtt/{name}", operation_id = "mqtt_edit", tag = "mqtt", params(("name" = String, Path)), request_body = ferry_manifests::wire::MqttConnectionRequest, responses((status = 200, body = ferry_manifests::wire::MqttConnectionView), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn edit(
    State(state): State<Shared>,
    _op: Operator,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<MqttConnectionRequest>,
) -> ApiResult<Json<MqttConnectionView>> {
    let mut m = stored(&state, &name).await?;
    if let Some(url) = req.url {
        m.url = url;
    }
    if let Some(u) = req.username {
        m.username = (!u.is_empty()).then_some(u);
    }
    if let Some(p) = req.password {
        m.password_sealed = seal(&state, Some(&p))?;
    }
    if let Some(ca) = req.ca_pem {
        m.ca_sealed = seal(&state, Some(&ca))?;
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
    Ok(Json(save_and_run(&state, m).await?))
}

#[utoipa::path(delete, path = "/api/v1/mqtt/{name}", tag = "mqtt", params(("name" = String, Path)), responses((status = 204, description = "removed"), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn remove(
    State(state): State<Shared>,
    _op: Operator,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    stored(&state, &name).await?;
    state.store.remove_mqtt(&name).await?;
    crate::mqtt::stop(&state, &name);
    tracing::info!(connection = %name, "MQTT connection removed");
    Ok(StatusCode::NO_CONTENT)
}

/// Waits up to 5 s for the connection to be up, and says how it is.
#[utoipa::path(post, path = "/api/v1/mqtt/{name}/test", tag = "mqtt", params(("name" = String, Path)), responses((status = 200, body = ferry_manifests::wire::MqttConnectionView), crate::error::ClientErrors), security(("bearer" = [])))]
pub async fn test(
    State(state): State<Shared>,
    _op: Operator,
    Path(name): Path<String>,
) -> ApiResult<Json<MqttConnectionView>> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let now = state
            .mqtt_status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&name)
            .cloned();
        let known = || {
            state
                .bridges
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains_key(&name)
        };
        match now {
            None if !known() || tokio::time::Instant::now() >= deadline => {
                return Err(AppError::not_found(format!(
                    "no MQTT connection named {name}"
                )))
            }
            None => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
            Some(v) if v.connected || tokio::time::Instant::now() >= deadline => {
                return Ok(Json(v))
            }
            Some(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
        }
    }
}
