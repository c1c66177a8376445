//! Devices that speak hawkBit's Direct Device Integration API (SWUpdate's suricatta,
//! rauc-hawkbit-updater; docs/ddi.md): their tokens, how a request proves itself, the poll
//! and the attributes they send. They are hosts of kind `ddi`, named by their controller id.

use std::collections::BTreeMap;

use ferry_manifests::wire::{DdiTokenView, Outcome, ReleaseView, Report};

use super::{ServiceError, ServiceResult};
use crate::policy::ddi::{self as policy, DdiAuth, Feedback};
use crate::state::Shared;
use crate::store::{DdiAction, LiveOperator};

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
    state.cache.forget_ddi_tokens();
    state.store.announce(crate::store::Notice::DdiTokens);
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

/// The host a DDI request speaks for, as `authenticate` found it.
pub struct DdiDevice {
    pub host_id: String,
    /// It has sent its attributes (`configData` is no longer asked for).
    pub attributes_sent: bool,
}

/// The host a DDI request of `controller_id` in tenant `tenant_name` speaks for: its target
/// token's, or any controller id with the tenant's gateway token (a new host on first
/// contact). Marks it seen. One read of the database for a device already known.
pub async fn authenticate(
    state: &Shared,
    tenant_name: &str,
    controller_id: &str,
    authorization: Option<&str>,
) -> ServiceResult<DdiDevice> {
    let auth = policy::authorization(authorization).map_err(ServiceError::Unauthorized)?;
    policy::check_controller_id(controller_id).map_err(ServiceError::Invalid)?;
    let (DdiAuth::Target(token) | DdiAuth::Gateway(token)) = auth;
    let key = (
        crate::auth::tokens::token_digest(token),
        tenant_name.to_string(),
        controller_id.to_string(),
    );
    if let Some((host_id, attributes_sent)) = state.cache.ddi_device(&key) {
        state
            .cache
            .check_in(&host_id, 0, time::OffsetDateTime::now_utc());
        return Ok(DdiDevice {
            host_id,
            attributes_sent,
        });
    }
    let hash = crate::auth::tokens::hash_token(token);
    let Some(caller) = state
        .store
        .ddi_caller(&hash, tenant_name, controller_id)
        .await?
    else {
        // Unknown token, or one of another tenant: say which when the tenant is unknown.
        super::tenants::id_of(state, tenant_name).await?;
        return Err(ServiceError::Unauthorized(
            "the DDI token is unknown or was replaced".into(),
        ));
    };
    let refused = || ServiceError::Unauthorized("the DDI token is unknown or was replaced".into());
    let (host_id, attributes_sent) = match (auth, &caller.token_host, &caller.host) {
        (DdiAuth::Target(_), Some(owner), Some((id, _))) if owner == id => {
            (id.clone(), caller.attributes_sent)
        }
        (DdiAuth::Target(_), Some(_), _) => {
            return Err(ServiceError::Unauthorized(format!(
                "this target token is not {controller_id}'s"
            )))
        }
        (DdiAuth::Gateway(_), None, Some((id, kind))) if kind == "ddi" => {
            (id.clone(), caller.attributes_sent)
        }
        (DdiAuth::Gateway(_), None, Some(_)) => {
            return Err(ServiceError::conflict(format!(
                "{controller_id} is a host with the Ferry agent: a DDI device needs another controller id"
            )))
        }
        (DdiAuth::Gateway(_), None, None) => {
            let id = uuid::Uuid::new_v4().to_string();
            state
                .store
                .create_ddi_host(&id, &caller.tenant_id, controller_id)
                .await?;
            tracing::info!(host = %id, controller = %controller_id, "DDI device joined with the gateway token");
            state.changed();
            (id, false)
        }
        _ => return Err(refused()),
    };
    state
        .cache
        .check_in(&host_id, 0, time::OffsetDateTime::now_utc());
    state
        .cache
        .remember_ddi_device(key, &host_id, attributes_sent);
    Ok(DdiDevice {
        host_id,
        attributes_sent,
    })
}

/// The poll's answer: the interval, and the links to what the device should do (`base`: the
/// absolute URL of this controller). The device joins the campaigns it matches, as an
/// agent does at check-in.
pub async fn poll(
    state: &Shared,
    device: &DdiDevice,
    base: &str,
) -> ServiceResult<serde_json::Value> {
    let host_id = device.host_id.as_str();
    let secs = state.config.ddi_poll_secs;
    join_campaigns(state, host_id).await?;
    let mut links = serde_json::Map::new();
    // Asked for until the device sent its attributes once: SWUpdate installs nothing while
    // the link is offered.
    if !device.attributes_sent {
        links.insert(
            "configData".into(),
            serde_json::json!({ "href": format!("{base}/configData") }),
        );
    }
    // Unless an update changed anywhere since this host last had no work, it still has none.
    let epoch = state.store.updates_epoch();
    if !state.cache.idle_at(host_id, epoch) {
        let cancels = state.store.ddi_cancels(host_id).await?;
        if let Some(id) = cancels.first() {
            links.insert(
                "cancelAction".into(),
                serde_json::json!({ "href": format!("{base}/cancelAction/{id}") }),
            );
        } else if let Some(id) = offered_action(state, host_id).await? {
            links.insert(
                "deploymentBase".into(),
                serde_json::json!({ "href": format!("{base}/deploymentBase/{id}") }),
            );
        }
        let idle = !links.contains_key("cancelAction") && !links.contains_key("deploymentBase");
        state.cache.set_idle(host_id, idle.then_some(epoch));
    }
    let mut answer =
        serde_json::json!({ "config": { "polling": { "sleep": policy::sleep(secs) } } });
    if !links.is_empty() {
        answer["_links"] = serde_json::Value::Object(links);
    }
    Ok(answer)
}

/// What the DDI host takes: its catalog's bundle items (`policy::ddi::managed`).
pub async fn managed(
    state: &Shared,
    host_id: &str,
    installed: &[ferry_manifests::wire::InstalledItem],
) -> ServiceResult<Vec<ferry_manifests::wire::InstalledItem>> {
    let releases = state.host_releases(host_id).await?;
    Ok(policy::managed(installed, &releases))
}

/// The device joins the running campaigns of its bundle items that target it, and its
/// membership is dispatched as the campaign's gate allows (acceptance is not asked of DDI
/// clients: they have no way to give it).
async fn join_campaigns(state: &Shared, host_id: &str) -> ServiceResult<()> {
    if !state.campaigns_active().await? {
        return Ok(());
    }
    let Some((_, installed)) = state.store.host(host_id).await? else {
        return Ok(());
    };
    let items = managed(state, host_id, &installed).await?;
    let (device_tags, operator_tags, tenant) = state.store.host_tags(host_id).await?;
    let (tags, _) = crate::policy::fleet::effective_labels(
        &device_tags,
        None,
        operator_tags.as_deref(),
        None,
        false,
    );
    super::campaigns::on_check_in(state, host_id, (&tags, tenant.as_deref()), &items, &[]).await?;
    Ok(())
}

/// The action of the host's oldest pending install of a bundle release, numbered when first
/// offered. Other pending work (a tarball item) is not a DDI device's and is left alone.
async fn offered_action(state: &Shared, host_id: &str) -> ServiceResult<Option<i64>> {
    let releases = state.host_releases(host_id).await?;
    for job in state.store.pending_jobs(host_id).await? {
        let bundle = releases
            .iter()
            .any(|r| r.item == job.item && r.version == job.version && r.bundle.is_some());
        if bundle && job.rollback.is_none() {
            return Ok(Some(state.store.ddi_action_for(&job.id, host_id).await?));
        }
    }
    Ok(None)
}

/// A host's action that is still to be installed, and its release.
async fn open_action(
    state: &Shared,
    host_id: &str,
    action_id: i64,
) -> ServiceResult<(DdiAction, ReleaseView)> {
    let action = state
        .store
        .ddi_action(host_id, action_id)
        .await?
        .filter(|a| a.status == "pending")
        .ok_or_else(|| {
            ServiceError::not_found(format!("no open action {action_id} for this device"))
        })?;
    let release = state
        .host_releases(host_id)
        .await?
        .iter()
        .find(|r| r.item == action.item && r.version.to_string() == action.version)
        .cloned()
        .ok_or_else(|| {
            ServiceError::not_found(format!(
                "the release {} {} of action {action_id} is no longer published",
                action.item, action.version
            ))
        })?;
    Ok((action, release))
}

/// `GET …/deploymentBase/{actionId}`: the chunk to install, its artifact with the hashes
/// clients check (sha1 by SWUpdate and rauc-hawkbit-updater) and where to download it.
/// `update: skip` when the device already has the version (SWUpdate then closes it).
pub async fn deployment_base(
    state: &Shared,
    host_id: &str,
    base: &str,
    action_id: i64,
) -> ServiceResult<serde_json::Value> {
    let (action, release) = open_action(state, host_id, action_id).await?;
    let (sha1, md5) = artifact_hashes(state, &release).await?;
    let has = state
        .store
        .host(host_id)
        .await?
        .and_then(|(_, installed)| installed.into_iter().find(|i| i.item == action.item))
        .and_then(|i| i.version);
    let update = if has.as_ref() == Some(&release.version) {
        "skip"
    } else {
        "forced"
    };
    let href = format!(
        "{base}/softwaremodules/{action_id}/artifacts/{}",
        release.artifact_name
    );
    Ok(serde_json::json!({
        "id": action_id.to_string(),
        "deployment": {
            "download": "forced",
            "update": update,
            "chunks": [{
                "part": "os",
                "version": release.version.to_string(),
                "name": release.item,
                "artifacts": [{
                    "filename": release.artifact_name,
                    "size": release.artifact_size,
                    "hashes": { "sha1": sha1, "md5": md5, "sha256": release.artifact_sha256 },
                    "_links": {
                        "download": { "href": href },
                        "download-http": { "href": href },
                    },
                }],
            }],
        },
    }))
}

/// The artifact's sha1 and md5, which DDI clients check and Ferry's manifest does not
/// carry: computed once per artifact and instance (the sha256 in the signed manifest is
/// what the server checked at publish).
async fn artifact_hashes(state: &Shared, release: &ReleaseView) -> ServiceResult<(String, String)> {
    static KNOWN: std::sync::Mutex<BTreeMap<String, (String, String)>> =
        std::sync::Mutex::new(BTreeMap::new());
    let sha256 = release.artifact_sha256.clone();
    if let Some(h) = KNOWN.lock().ok().and_then(|k| k.get(&sha256).cloned()) {
        return Ok(h);
    }
    let path = artifact_file(state, &release.artifact_name).await?;
    let hashed = path.clone();
    let hashes = tokio::task::spawn_blocking(move || -> std::io::Result<(String, String)> {
        use sha1::Digest as _;
        let mut file = std::fs::File::open(&hashed)?;
        let (mut sha1, mut md5) = (sha1::Sha1::new(), md5::Md5::new());
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = std::io::Read::read(&mut file, &mut buf)?;
            if n == 0 {
                break;
            }
            sha1.update(&buf[..n]);
            md5.update(&buf[..n]);
        }
        Ok((hex::encode(sha1.finalize()), hex::encode(md5.finalize())))
    })
    .await
    .map_err(|e| ServiceError::Io {
        action: "hashing",
        path: path.clone(),
        source: std::io::Error::other(e),
    })?
    .map_err(|source| ServiceError::Io {
        action: "hashing",
        path,
        source,
    })?;
    if let Ok(mut k) = KNOWN.lock() {
        k.insert(sha256, hashes.clone());
    }
    Ok(hashes)
}

/// The artifact's file on this instance (fetched from the artifact store if need be).
async fn artifact_file(state: &Shared, name: &str) -> ServiceResult<std::path::PathBuf> {
    let path = state.artifacts_dir().join(name);
    if !state
        .artifact_store
        .fetch(&format!("artifacts/{name}"), &path)
        .await?
    {
        return Err(ServiceError::not_found(format!("no artifact named {name}")));
    }
    Ok(path)
}

/// The file a DDI download of `filename` for action `action_id` serves.
pub async fn download(
    state: &Shared,
    host_id: &str,
    action_id: i64,
    filename: &str,
) -> ServiceResult<std::path::PathBuf> {
    let (_, release) = open_action(state, host_id, action_id).await?;
    if release.artifact_name != filename {
        return Err(ServiceError::not_found(format!(
            "action {action_id} has no artifact {filename} (it has {})",
            release.artifact_name
        )));
    }
    state
        .presence
        .contact(host_id, crate::policy::fleet::Contact::Other);
    artifact_file(state, filename).await
}

/// `POST …/deploymentBase/{actionId}/feedback` (`cancel`: `…/cancelAction/{actionId}/feedback`):
/// progress and details go to the update's live output; `closed` ends it as a report does
/// (history, campaigns, batches, webhooks, MQTT).
pub async fn feedback(
    state: &Shared,
    host_id: &str,
    action_id: i64,
    body: &[u8],
    cancel: bool,
) -> ServiceResult<()> {
    let Some(action) = state.store.ddi_action(host_id, action_id).await? else {
        return Err(ServiceError::not_found(format!(
            "no action {action_id} for this device"
        )));
    };
    let said = policy::feedback(body).map_err(ServiceError::Invalid)?;
    if action.closed {
        // A client repeating itself (after a lost answer, or its restart).
        return Ok(());
    }
    state
        .presence
        .contact(host_id, crate::policy::fleet::Contact::Other);
    if cancel {
        let text = match &said {
            Feedback::Progress(t) => {
                output(state, host_id, &action.update_id, t).await?;
                return Ok(());
            }
            Feedback::Rejected(t) => {
                tracing::warn!(host = %host_id, action = action_id, "the device refused to cancel the action; it may still install it");
                format!("the device refused the cancellation: {t}")
            }
            Feedback::Closed { text, .. } | Feedback::Canceled(text) => {
                format!("cancellation confirmed by the device: {text}")
            }
        };
        // The update is cancelled already: the answer ends its output all the same.
        state.store.close_ddi_action(action_id, Some(&text)).await?;
        state.changed();
        return Ok(());
    }
    let (outcome, text) = match said {
        Feedback::Progress(text) => {
            output(state, host_id, &action.update_id, &text).await?;
            return Ok(());
        }
        Feedback::Closed {
            success: true,
            text,
        } => (Outcome::Installed, text),
        Feedback::Closed {
            success: false,
            text,
        } => (Outcome::Failed, text),
        Feedback::Rejected(text) => (Outcome::Refused, text),
        Feedback::Canceled(text) => {
            output(state, host_id, &action.update_id, &text).await?;
            state.store.close_ddi_action(action_id, None).await?;
            state
                .store
                .cancel_update(&action.update_id, "cancelled by the device")
                .await?;
            state.changed();
            return Ok(());
        }
    };
    output(state, host_id, &action.update_id, &text).await?;
    let so_far = state
        .store
        .output_slice(&action.update_id, 0, i64::from(i32::MAX))
        .await?
        .unwrap_or_default();
    let version: semver::Version =
        action
            .version
            .parse()
            .map_err(|source| ServiceError::StoredVersion {
                text: action.version.clone(),
                source,
            })?;
    let from_version = state
        .store
        .update_from_version(&action.update_id)
        .await?
        .and_then(|v| v.parse().ok());
    let message = match outcome {
        Outcome::Installed => format!(
            "{} {version} installed by the device's installer",
            action.item
        ),
        Outcome::Refused => "the device rejected the update".to_string(),
        _ => format!(
            "the device's installer failed: {}",
            text.lines().last().unwrap_or_default()
        ),
    };
    let at = ferry_manifests::wire::now();
    let report = Report {
        report_id: format!("ddi-{}", action.update_id),
        job_id: Some(action.update_id.clone()),
        item: action.item.clone(),
        version,
        from_version,
        outcome,
        message,
        output: so_far,
        started_at: at.clone(),
        finished_at: at,
        fetched: None,
    };
    state.store.close_ddi_action(action_id, None).await?;
    super::report::reports_arrived(state, host_id, vec![report], vec![], None).await?;
    Ok(())
}

/// A line of the client's feedback on the update's live output.
async fn output(state: &Shared, host_id: &str, update_id: &str, text: &str) -> ServiceResult<()> {
    let line = format!("{text}\n");
    if let Some(offset) = state.store.append_output(update_id, host_id, &line).await? {
        state.publish_live(
            update_id,
            crate::live::LiveEvent::Chunk { offset, text: line },
        );
    }
    Ok(())
}

/// `GET …/cancelAction/{actionId}`: the action the device should stop.
pub async fn cancel_action(
    state: &Shared,
    host_id: &str,
    action_id: i64,
) -> ServiceResult<serde_json::Value> {
    match state.store.ddi_action(host_id, action_id).await? {
        Some(a) if a.status == "cancelled" => Ok(serde_json::json!({
            "id": action_id.to_string(),
            "cancelAction": { "stopId": action_id.to_string() },
        })),
        _ => Err(ServiceError::not_found(format!(
            "action {action_id} of this device is not being cancelled"
        ))),
    }
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
    state.cache.ddi_attributes_sent(host_id);
    state.changed();
    Ok(())
}
