//! Who this device is to the server: the facts it reports and its enrolment (one identity
//! per server, a credential kept in the state directory).

use ferry_manifests::wire::{DeviceFacts, InstalledItem};

use crate::agent::Agent;
use crate::error::Error;
use crate::identity;
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
        site: crate::share::site(agent),
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

/// Whether the agent talks to its server over https, where it presents its certificate.
fn https(agent: &Agent) -> bool {
    agent.api.base.scheme() == "https"
}

/// The server's clock, as well as this device knows it.
fn server_now(agent: &Agent) -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc() - time::Duration::seconds(agent.clock_skew_secs.unwrap_or(0))
}

/// Makes sure the API client carries this device's credential, enrolling if needed: its
/// client certificate over https (a factory one, or the one the server issued), and its
/// bearer token if it has one. A device keeps one identity per server: when `server_url`
/// changes (127.0.0.1 to localhost, a new DNS name) the credential is tried first and kept
/// if the server still accepts it.
pub fn ensure_enrolled(agent: &mut Agent) -> Result<(), Error> {
    let Some(server) = agent.cfg.server_url.as_ref().map(|u| u.to_string()) else {
        return Ok(()); // a device with only a repository has no server to enrol with
    };
    // A factory certificate is presented from the first request on.
    if https(agent) && !agent.api.has_identity() {
        if let Some(cert) = identity::factory_certificate(&agent.cfg.identity)? {
            let key = agent.device_key()?;
            agent
                .api
                .set_identity(&identity::ClientAuth::new(&cert, &key)?)?;
        }
    }
    if let Some(mut cred) = agent.dir.credential()? {
        present(agent, &cred)?;
        if cred.server_url == server {
            return Ok(());
        }
        match agent.api.check_in(&facts(agent), 0, None, Vec::new()) {
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

/// Makes the client present what the stored credential holds.
fn present(agent: &mut Agent, cred: &DeviceCredential) -> Result<(), Error> {
    agent.api.set_token(cred.device_token.clone());
    if let (true, false, Some(cert)) = (
        https(agent),
        agent.api.has_identity(),
        cred.certificate.as_deref(),
    ) {
        let key = agent.device_key()?;
        agent
            .api
            .set_identity(&identity::ClientAuth::new(cert, &key)?)?;
    }
    Ok(())
}

/// Enrols and stores the credential: with a factory certificate and no token, or with the
/// enrolment token and (over https) a certificate request for this device's key.
pub(super) fn enrol(agent: &mut Agent) -> Result<(), Error> {
    let server = agent.api.base.to_string();
    let factory = https(agent) && agent.cfg.identity.certificate.is_some();
    let refused = |agent: &Agent, e: Error| match e {
        Error::Server {
            url,
            status: 401,
            message,
        } => Error::EnrolRefused {
            url,
            message,
            config: agent.cfg.path.clone(),
        },
        other => other,
    };
    if factory {
        let resp = agent
            .api
            .enrol("", &facts(agent), None)
            .map_err(|e| refused(agent, e))?;
        tracing::info!(host_id = %resp.host_id, "joined the fleet with the factory certificate");
        agent.api.set_token(String::new());
        return agent.dir.save_credential(&DeviceCredential {
            host_id: resp.host_id,
            device_token: String::new(),
            server_url: server,
            certificate: None,
            certificate_not_after: None,
            certificate_received_at: None,
        });
    }
    let Some(token) = agent.cfg.enrol_token.clone() else {
        return Err(Error::NotEnrolled {
            config: agent.cfg.path.clone(),
        });
    };
    let token = token.read().map_err(|reason| Error::EnrolTokenUnreadable {
        reason,
        config: agent.cfg.path.clone(),
    })?;
    let key = if https(agent) {
        Some(agent.device_key()?)
    } else {
        None
    };
    let csr = key.as_ref().map(identity::DeviceKey::csr).transpose()?;
    let facts = facts(agent);
    let resp = agent
        .api
        .enrol(&token, &facts, csr)
        .map_err(|e| refused(agent, e))?;
    tracing::info!(host_id = %resp.host_id, certificate = resp.certificate.is_some(), "enrolled with the server");
    let received = resp
        .certificate
        .as_ref()
        .map(|_| ferry_manifests::wire::timestamp(server_now(agent)));
    // Saved before it is used: a crash in between finds it at the next run.
    agent.dir.save_credential(&DeviceCredential {
        host_id: resp.host_id,
        device_token: resp.device_token.clone(),
        server_url: server,
        certificate: resp.certificate.clone(),
        certificate_not_after: resp.certificate_not_after,
        certificate_received_at: received,
    })?;
    agent.api.set_token(resp.device_token);
    if let (Some(cert), Some(key)) = (resp.certificate, key) {
        agent
            .api
            .set_identity(&identity::ClientAuth::new(&cert, &key)?)?;
    }
    Ok(())
}

/// Over https, to a server that issues certificates: takes one when this device has none
/// (it moves from its bearer token), and renews it after two thirds of its life, over the
/// connection it has. A failure is logged and tried again at the next check-in; it never
/// fails the check.
pub fn keep_certificate(agent: &mut Agent, server_issues: bool) -> Result<(), Error> {
    if !server_issues || !https(agent) || agent.cfg.identity.certificate.is_some() {
        return Ok(());
    }
    let Some(mut cred) = agent.dir.credential()? else {
        return Ok(());
    };
    let now = server_now(agent);
    let parse = |t: &Option<String>| {
        t.as_deref()
            .and_then(ferry_manifests::wire::parse_timestamp)
    };
    let due = match (
        &cred.certificate,
        parse(&cred.certificate_received_at),
        parse(&cred.certificate_not_after),
    ) {
        (Some(_), Some(received), Some(not_after)) => {
            crate::policy::renewal_due(received, not_after, now)
        }
        _ => true,
    };
    if !due {
        return Ok(());
    }
    let key = agent.device_key()?;
    let csr = key.csr()?;
    let renewing = cred.certificate.is_some();
    match agent.api.certificate(csr) {
        Ok(resp) => {
            cred.certificate = Some(resp.certificate.clone());
            cred.certificate_not_after = Some(resp.not_after.clone());
            cred.certificate_received_at = Some(ferry_manifests::wire::timestamp(now));
            agent.dir.save_credential(&cred)?;
            agent
                .api
                .set_identity(&identity::ClientAuth::new(&resp.certificate, &key)?)?;
            if renewing {
                tracing::info!(not_after = %resp.not_after, "renewed this device's certificate");
            } else {
                tracing::info!(not_after = %resp.not_after, "this device now authenticates with a certificate");
            }
        }
        Err(e) => {
            tracing::warn!(
                "cannot get a device certificate ({e}); it is asked for again at the next check-in"
            )
        }
    }
    Ok(())
}
