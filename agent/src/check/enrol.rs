//! Who this device is to the server: the facts it reports and its enrolment (one identity
//! per server, a credential kept in the state directory).

use ferry_manifests::wire::{DeviceFacts, InstalledItem};

use crate::agent::Agent;
use crate::error::Error;
use crate::state::DeviceCredential;

/// What this device tells the server about itself at each check-in.
pub fn facts(agent: &Agent) -> DeviceFacts {
    let (os, os_version) = os_release();
    DeviceFacts {
        hostname: agent.cfg.hostname.clone().unwrap_or_else(hostname),
        os,
        os_version,
        arch: std::env::consts::ARCH.to_string(),
        agent_version: env!("CARGO_PKG_VERSION").to_string(),
        device_class: agent.cfg.device_class.clone(),
        newest_manifest_at: agent.state.newest_manifest_at.clone(),
        tags: agent.cfg.tags.clone(),
        friendly_name: agent.cfg.friendly_name.clone(),
        utc_offset_secs: agent.utc_offset_secs,
        installed: agent
            .cfg
            .items
            .iter()
            .map(|i| InstalledItem {
                item: i.name.clone(),
                version: agent
                    .state
                    .items
                    .get(&i.name)
                    .and_then(|s| s.installed.clone()),
            })
            .collect(),
    }
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "unknown".into())
}

/// `(NAME, VERSION_ID)` from /etc/os-release.
fn os_release() -> (String, String) {
    let text = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(|v| v.trim_matches('"').to_string())
            .unwrap_or_default()
    };
    let name = field("NAME");
    (
        if name.is_empty() {
            std::env::consts::OS.to_string()
        } else {
            name
        },
        field("VERSION_ID"),
    )
}

/// Makes sure the API client carries this device's credential, enrolling if needed. A device
/// keeps one identity per server: when `server_url` changes (127.0.0.1 to localhost, a new
/// DNS name) the credential is tried first and kept if the server still accepts it.
pub fn ensure_enrolled(agent: &mut Agent) -> Result<(), Error> {
    let Some(server) = agent.cfg.server_url.as_ref().map(|u| u.to_string()) else {
        return Ok(()); // a device with only a repository has no server to enrol with
    };
    if let Some(mut cred) = agent.dir.credential()? {
        agent.api.set_token(cred.device_token.clone());
        if cred.server_url == server {
            return Ok(());
        }
        match agent.api.check_in(&facts(agent), 0, None) {
            Ok(_) => {
                tracing::info!(old = %cred.server_url, new = %server, "server_url changed; the server still knows this device");
                cred.server_url = server;
                return agent.dir.save_credential(&cred);
            }
            Err(Error::Server { status: 401, .. }) => {
                tracing::info!(old = %cred.server_url, new = %server, "server_url changed to a server that does not know this device; enrolling")
            }
            Err(e) => return Err(e),
        }
    }
    enrol(agent)
}

/// Enrols with the configured enrolment token and stores the credential.
pub(super) fn enrol(agent: &mut Agent) -> Result<(), Error> {
    let server = agent.api.base.to_string();
    let Some(token) = agent.cfg.enrol_token.clone() else {
        return Err(Error::NotEnrolled {
            config: agent.cfg.path.clone(),
        });
    };
    let token = token.read().map_err(|reason| Error::EnrolTokenUnreadable {
        reason,
        config: agent.cfg.path.clone(),
    })?;
    let facts = facts(agent);
    let resp = match agent.api.enrol(&token, &facts) {
        Err(Error::Server {
            url,
            status: 401,
            message,
        }) => {
            return Err(Error::EnrolRefused {
                url,
                message,
                config: agent.cfg.path.clone(),
            })
        }
        other => other?,
    };
    tracing::info!(host_id = %resp.host_id, "enrolled with the server");
    agent.dir.save_credential(&DeviceCredential {
        host_id: resp.host_id,
        device_token: resp.device_token.clone(),
        server_url: server,
    })?;
    agent.api.set_token(resp.device_token);
    Ok(())
}
