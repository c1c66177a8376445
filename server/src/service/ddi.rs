//! Devices that speak hawkBit's Direct Device Integration API (SWUpdate's suricatta,
//! rauc-hawkbit-updater; docs/ddi.md): their tokens, how a request proves itself, the poll
//! and the attributes they send. They are hosts of kind `ddi`, named by their controller id.

use std::collections::BTreeMap;

use ferry_manifests::wire::DdiTokenView;

use super::{ServiceError, ServiceResult};
use crate::policy::ddi::{self as policy, DdiAuth};
use crate::state::Shared;
use crate::store::LiveOperator;

/// What the poll answers when the server suggests no interval (`poll_interval_secs`).
const DEFAULT_POLL_SECS: u64 = 300;

/// A new token: `fdt_` (a target's) or `fdg_` (a gateway's), then 256 random bits in hex.
fn new_token(prefix: &str) -> ServiceResult<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(ServiceError::Random)?;
    Ok(format!("{prefix}_{}", hex::encode(bytes)))
}

fn open(state: &Shared, sealed: &[u8]) -> ServiceResult<String> {
    let plain = state
        .secrets
        .open_sealed(sealed)
        .map_err(|e| ServiceError::Secrets(e.to_string()))?;
    String::from_utf8(plain).map_err(|_| ServiceError::Secrets("a DDI token is not text".into()))
}

async fn store_token(
    state: &Shared,
    tenant_id: &str,
    host_id: Option<&str>,
    token: &str,
) -> ServiceResult<()> {
    let sealed = state
        .secrets
        .seal(token.as_bytes())
        .map_err(|e| ServiceError::Secrets(e.to_string()))?;
    state
        .store
        .set_ddi_token(
            tenant_id,
            host_id,
            &crate::auth::tokens::hash_token(token),
            &sealed,
        )
        .await?;
    Ok(())
}

/// The target token of the DDI device `name` of the caller's tenant, made (with the host)
/// on first asking.
pub async fn target_token(
    state: &Shared,
    caller: &LiveOperator,
    name: &str,
) -> ServiceResult<DdiTokenView> {
    policy::check_controller_id(name).map_err(ServiceError::Invalid)?;
    let tenant = &caller.tenant_id;
    let (host_id, created) = match state.store.host_named(tenant, name).await? {
        Some((_, kind)) if kind != "ddi" => {
            return Err(ServiceError::conflict(format!(
                "{name} is a host with the Ferry agent; a DDI token is for a device that runs a hawkBit client (SWUpdate, RAUC): give it another name"
            )))
        }
        Some((id, _)) => (id, false),
        None => {
            let id = uuid::Uuid::new_v4().to_string();
            state.store.create_ddi_host(&id, tenant, name).await?;
            tracing::info!(host = %id, controller = %name, "DDI device added");
            (id, true)
        }
    };
    let token = match state.store.ddi_token(tenant, Some(&host_id)).await? {
        Some(sealed) => open(state, &sealed)?,
        None => {
            let t = new_token("fdt")?;
            store_token(state, tenant, Some(&host_id), &t).await?;
            t
        }
    };
    Ok(DdiTokenView {
        token,
        host_id: Some(host_id),
        created,
    })
}

/// The caller's tenant's gateway token, made on first asking; a new one with `rotate` (the
/// old one is refused from then on).
pub async fn gateway_token(
    state: &Shared,
    caller: &LiveOperator,
    rotate: bool,
) -> ServiceResult<DdiTokenView> {
    let tenant = &caller.tenant_id;
    let existing = state.store.ddi_token(tenant, None).await?;
    let (token, created) = match existing {
        Some(sealed) if !rotate => (open(state, &sealed)?, false),
        _ => {
            let t = new_token("fdg")?;
            store_token(state, tenant, None, &t).await?;
            tracing::info!(rotated = rotate, "DDI gateway token made");
            (t, true)
        }
    };
    Ok(DdiTokenView {
        token,
        host_id: None,
        created,
    })
}

/// The host a DDI request of `controller_id` in tenant `tenant_name` speaks for: its target
/// token's, or any controller id with the tenant's gateway token (a new host on first
/// contact). Marks it seen.
pub async fn authenticate(
    state: &Shared,
    tenant_name: &str,
    controller_id: &str,
    authorization: Option<&str>,
) -> ServiceResult<String> {
    let auth = policy::authorization(authorization).map_err(ServiceError::Unauthorized)?;
    policy::check_controller_id(controller_id).map_err(ServiceError::Invalid)?;
    let tenant = super::tenants::id_of(state, tenant_name).await?;
    let (DdiAuth::Target(token) | DdiAuth::Gateway(token)) = auth;
    let owner = state
        .store
        .ddi_token_owner(&crate::auth::tokens::hash_token(token))
        .await?;
    let refused = || ServiceError::Unauthorized("the DDI token is unknown or was replaced".into());
    let host_id = match (auth, owner) {
        (DdiAuth::Target(_), Some((t, Some(host)))) if t == tenant => {
            match state.store.host_named(&tenant, controller_id).await? {
                Some((id, _)) if id == host => host,
                _ => {
                    return Err(ServiceError::Unauthorized(format!(
                        "this target token is not {controller_id}'s"
                    )))
                }
            }
        }
        (DdiAuth::Gateway(_), Some((t, None))) if t == tenant => {
            match state.store.host_named(&tenant, controller_id).await? {
                Some((id, kind)) if kind == "ddi" => id,
                Some(_) => {
                    return Err(ServiceError::conflict(format!(
                        "{controller_id} is a host with the Ferry agent: a DDI device needs another controller id"
                    )))
                }
                None => {
                    let id = uuid::Uuid::new_v4().to_string();
                    state
                        .store
                        .create_ddi_host(&id, &tenant, controller_id)
                        .await?;
                    tracing::info!(host = %id, controller = %controller_id, "DDI device joined with the gateway token");
                    state.changed();
                    id
                }
            }
        }
        _ => return Err(refused()),
    };
    state
        .cache
        .check_in(&host_id, 0, time::OffsetDateTime::now_utc());
    Ok(host_id)
}

/// The poll's answer: the interval, and the links to what the device should do (`base`: the
/// absolute URL of this controller).
pub async fn poll(state: &Shared, host_id: &str, base: &str) -> ServiceResult<serde_json::Value> {
    let secs = state.config.poll_interval_secs.unwrap_or(DEFAULT_POLL_SECS);
    let mut links = serde_json::Map::new();
    // Asked for until the device sent its attributes once: SWUpdate installs nothing while
    // the link is offered.
    if state.store.ddi_attributes(host_id).await?.is_none() {
        links.insert(
            "configData".into(),
            serde_json::json!({ "href": format!("{base}/configData") }),
        );
    }
    let mut answer =
        serde_json::json!({ "config": { "polling": { "sleep": policy::sleep(secs) } } });
    if !links.is_empty() {
        answer["_links"] = serde_json::Value::Object(links);
    }
    Ok(answer)
}

/// `PUT …/configData`: the device's attributes, merged as its `mode` says.
pub async fn config_data(
    state: &Shared,
    host_id: &str,
    body: &serde_json::Value,
) -> ServiceResult<()> {
    let data = body["data"].as_object().ok_or_else(|| {
        ServiceError::invalid(
            "configData carries its attributes as \"data\": {\"NAME\": \"VALUE\"}",
        )
    })?;
    let existing: BTreeMap<String, String> = match state.store.ddi_attributes(host_id).await? {
        Some(text) => serde_json::from_str(&text).unwrap_or_default(),
        None => BTreeMap::new(),
    };
    let merged = policy::merge_attributes(&existing, body["mode"].as_str(), data)
        .map_err(ServiceError::Invalid)?;
    let text = serde_json::to_string(&merged)
        .map_err(|e| ServiceError::invalid(format!("the attributes cannot be kept: {e}")))?;
    state.store.set_ddi_attributes(host_id, &text).await?;
    state.changed();
    Ok(())
}
