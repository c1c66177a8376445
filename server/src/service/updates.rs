//! An install asked for by a person: through the API (`ferryctl update trigger`), or by
//! pressing Install in Home Assistant (the MQTT bridge). The same checks either way.

use super::error::{ServiceError, ServiceResult};
use ferry_manifests::wire::{HistoryView, TerminalInput, TerminalLease, TriggerRequest};

use super::Actor;
use crate::state::Shared;
use crate::store::IdKind;

/// An interactive install's options.
#[derive(Debug, Clone, Copy)]
pub struct Interactive {
    /// Keep what the operator types in the history.
    pub record_input: bool,
}

/// An install asked for.
#[derive(Debug, Clone)]
pub struct Install<'a> {
    pub host_id: &'a str,
    pub item: &'a str,
    /// `None`: the newest release.
    pub version: Option<&'a semver::Version>,
    /// Queue it even when the host already has that version.
    pub force: bool,
    /// Run its hooks in an operator's terminal.
    pub interactive: Option<Interactive>,
    pub actor: Actor,
    /// It may download over a metered link.
    pub metered_allowed: bool,
}

/// Queues an install, with its actor in the history; returns the update's id. Refused (409)
/// when the item is deactivated, the host does not manage it, already has that version
/// (unless `force`) or has an update of it pending; 404 without such a host or release.
pub async fn trigger(state: &Shared, install: Install<'_>) -> ServiceResult<String> {
    let Install {
        host_id,
        item,
        version,
        force,
        interactive,
        actor,
        metered_allowed,
    } = install;
    let actor = actor.to_text();
    let actor = actor.as_str();
    super::items::ensure_active(state, item).await?;
    let release = super::releases::installable(state, item, version).await?;
    let release = &release;
    let (host, installed) = state
        .store
        .host(host_id)
        .await?
        .ok_or_else(|| ServiceError::not_found(format!("no host {host_id}")))?;
    if !host.accepted {
        return Err(ServiceError::conflict(format!(
            "{} waits for an operator's acceptance; accept it first (ferryctl hosts accept {host_id})",
            host.facts.hostname
        )));
    }
    // Only its tenant's items.
    super::releases::require_item_of(state, item, host.tenant_id.as_deref()).await?;
    // A DDI device takes bundles, an agent tarballs.
    let installed = match (host.kind.as_str(), &release.bundle) {
        ("ddi", Some(_)) => super::ddi::managed(state, host_id, &installed).await?,
        ("ddi", None) => {
            return Err(ServiceError::conflict(format!(
                "{} updates through a hawkBit client and takes SWUpdate or RAUC bundles; {item} is released as tarballs for the Ferry agent",
                host.facts.hostname
            )))
        }
        (_, Some(bundle)) => {
            return Err(ServiceError::conflict(format!(
                "{item} is released as {bundle} bundles for devices with a hawkBit client; {} runs the Ferry agent",
                host.facts.hostname
            )))
        }
        _ => installed,
    };
    let Some(current) = installed.iter().find(|i| i.item == item) else {
        let items: Vec<&str> = installed.iter().map(|i| i.item.as_str()).collect();
        return Err(ServiceError::conflict(format!(
            "{} does not manage {item} (its items: {}); add it to [[items]] in the device's agent config first",
            host.facts.hostname,
            if items.is_empty() { "none".to_string() } else { items.join(", ") }
        )));
    };
    if current.version.as_ref() == Some(&release.version) && !force {
        return Err(ServiceError::conflict(format!(
            "{} already has {item} {}; pass --force (\"force\": true) to queue it anyway",
            host.facts.hostname, release.version
        )));
    }
    if let Some(existing) = state.store.active_update(host_id, item).await? {
        return Err(ServiceError::conflict(format!(
            "host already has a pending update of {item} ({existing})"
        )));
    }
    let id = state
        .store
        .create_update(
            host_id,
            item,
            &release.version,
            actor,
            interactive.map(|how| how.record_input),
        )
        .await?;
    // Before the device hears of it.
    if metered_allowed {
        state.store.allow_metered(&id).await?;
    }
    tracing::info!(%host_id, %item, version = %release.version, update = %id, %actor, "update triggered");
    state.wake(host_id);
    state.changed();
    Ok(id)
}

/// An install asked for through the API or the web UI: the host by id, id prefix or
/// hostname; the new history entry.
pub async fn ask(state: &Shared, req: &TriggerRequest, actor: Actor) -> ServiceResult<HistoryView> {
    let (host_id, _) = super::hosts::resolve(state, &req.host).await?;
    let install = Install {
        host_id: &host_id,
        item: &req.item,
        version: req.version.as_ref(),
        force: req.force,
        interactive: req.interactive.then_some(Interactive {
            record_input: !req.hide_input,
        }),
        actor,
        metered_allowed: req.metered_allowed,
    };
    let id = trigger(state, install).await?;
    let mut entry = state.store.history(None, None, Some(&id)).await?;
    entry.pop().ok_or(ServiceError::Vanished("update"))
}

/// The history, newest last: every update, or one host's (id, prefix or hostname), or one
/// item's.
pub async fn history(
    state: &Shared,
    host: Option<&str>,
    item: Option<&str>,
) -> ServiceResult<Vec<HistoryView>> {
    let host_id = match host {
        Some(h) => Some(super::hosts::resolve(state, h).await?.0),
        None => None,
    };
    Ok(state.store.history(host_id.as_deref(), item, None).await?)
}

/// One history entry by id or unique id prefix.
pub async fn entry(state: &Shared, id: &str) -> ServiceResult<HistoryView> {
    let id = super::full_id(state, IdKind::Update, id).await?;
    state
        .store
        .history(None, None, Some(&id))
        .await?
        .pop()
        .ok_or_else(|| ServiceError::not_found(format!("no update {id}")))
}

/// Cancels one install the device has not finished: it drops the job at its next check-in
/// (at once when it long-polls), or, if it is installing already, the install completes and
/// its report is kept beside the cancellation. A finished update is a conflict.
pub async fn cancel(state: &Shared, id: &str) -> ServiceResult<HistoryView> {
    let entry = entry(state, id).await?;
    if !state
        .store
        .cancel_update(&entry.id, "cancelled by an operator")
        .await?
    {
        return Err(ServiceError::conflict(format!(
            "update {} is {} already; only a pending update can be cancelled",
            entry.id, entry.status
        )));
    }
    state.live.publish(
        &entry.id,
        crate::live::LiveEvent::End {
            status: "cancelled".into(),
        },
    );
    state.wake(&entry.host_id);
    state.changed();
    tracing::info!(update = %entry.id, host = %entry.host_id, item = %entry.item, "update cancelled");
    super::updates::entry(state, &entry.id).await
}

/// An interactive install's terminal: without a `lease`, attach (the answer's lease holds the
/// input, unless another operator's live lease does: then `holder` is false and the output
/// stream is yours to watch only); with one, send keystrokes (`text`), a window size (`cols`
/// and `rows`) or nothing (a keep-alive). The output comes from
/// `/api/v1/update-history/{id}/output/stream`.
pub async fn terminal(
    state: &Shared,
    id: &str,
    req: TerminalInput,
    owner: &str,
) -> ServiceResult<TerminalLease> {
    let id = super::full_id(state, IdKind::Update, id).await?;
    if state.store.interactive_host(&id).await?.is_none() {
        return Err(ServiceError::conflict(format!(
            "update {id} is not an interactive install under way (ferryctl update trigger --interactive starts one)"
        )));
    }
    let size = match (req.cols, req.rows) {
        (Some(c), Some(r)) if (1..=1000).contains(&c) && (1..=1000).contains(&r) => Some((c, r)),
        (None, None) => None,
        _ => {
            return Err(ServiceError::invalid(
                "cols and rows go together, each 1 to 1000",
            ))
        }
    };
    if req.text.as_ref().is_some_and(|t| t.len() > 65536) {
        return Err(ServiceError::invalid("at most 64 KiB of input per request"));
    }
    match req.lease {
        None => {
            // A holder whose token was revoked (or whose user was removed) holds nothing.
            if let Some(held_by) = state.terminals.holder(&id).filter(|h| h != owner) {
                let live = match held_by.strip_prefix("user:") {
                    Some(user_id) => state.store.live_user(user_id).await?.is_some(),
                    None => state.store.live_operator(&held_by).await?.is_some(),
                };
                if !live {
                    state.terminals.release(&id, &held_by);
                }
            }
            let (lease, holder) = state.terminals.attach(&id, owner);
            Ok(TerminalLease { lease, holder })
        }
        Some(lease) => {
            let typed = req.text.as_deref().map(crate::terminal::transcript_line);
            state
                .terminals
                .input(&id, &lease, req.text, size)
                .map_err(|_| {
                    ServiceError::conflict(
                        "this lease does not hold the terminal's input (another operator holds it, or it lapsed after 15 s unused): attach again",
                    )
                })?;
            if let Some(line) = typed.filter(|l| !l.is_empty()) {
                state.store.append_typed(&id, &line).await?;
            }
            Ok(TerminalLease {
                lease,
                holder: true,
            })
        }
    }
}
