//! `--running-mode=status`: what is installed, available, downloaded and pending.

use std::fmt::Write as _;

use crate::agent::Agent;
use crate::error::Error;
use crate::install::journal::Journal;
use crate::report;
use crate::state::read_json;

/// Outcomes of a device with no server that `--json` lists, newest first.
const HISTORY_SHOWN: usize = 20;

pub fn render(agent: &Agent) -> Result<String, Error> {
    let mut out = String::new();
    let cred = agent.dir.credential()?;
    if let Some(server) = &agent.cfg.server_url {
        let _ = writeln!(out, "server:      {server}");
    }
    if let Some(repo) = &agent.cfg.repository_url {
        let _ = writeln!(out, "repository:  {repo}");
    }
    if agent.cfg.server_url.is_some() {
        let _ = writeln!(
            out,
            "host id:     {}",
            cred.map(|c| c.host_id)
                .unwrap_or_else(|| "(not enrolled)".into())
        );
    }
    // The last attempt, failed or not (the same facts as `--json`), then the last success.
    let last: Option<crate::dashboard::LastCheck> =
        read_json(&crate::dashboard::last_check_path(&agent.dir))?;
    match last.filter(|c| !c.ok) {
        Some(failed) => {
            let _ = writeln!(
                out,
                "last check:  FAILED at {}: {}",
                failed.at,
                failed.error.as_deref().unwrap_or("(no message)")
            );
            let _ = writeln!(
                out,
                "last good:   {}",
                agent.state.last_check.as_deref().unwrap_or("never")
            );
        }
        None => {
            let _ = writeln!(
                out,
                "last check:  {}",
                agent.state.last_check.as_deref().unwrap_or("never")
            );
        }
    }
    match agent.trust.root_version() {
        Some(v) => {
            let _ = writeln!(out, "trust root:  version {v}");
        }
        None => {
            let _ = writeln!(
                out,
                "trusted keys: {} (from the config)",
                agent.trust.keys.len()
            );
        }
    }
    reports_or_history(agent, &mut out)?;
    // Read without the lock: every state file is replaced atomically, so this is a
    // consistent picture even while the service works.
    let _ = writeln!(
        out,
        "run:         {}",
        match crate::lock::current_holder(&agent.dir.lock_path()) {
            Some(h) => format!("{h} is working"),
            None => "none under way".to_string(),
        }
    );
    for item in &agent.cfg.items {
        render_item(agent, item, &mut out)?;
    }
    Ok(out)
}

/// The reports waiting for the server or, with no server, the outcomes kept here.
fn reports_or_history(agent: &Agent, out: &mut String) -> Result<(), Error> {
    if agent.cfg.server_url.is_some() {
        let _ = writeln!(out, "queued reports: {}", report::queued(&agent.dir)?.len());
    } else {
        // No server: the outcomes stay here.
        let history = report::local_history(&agent.dir)?;
        let _ = writeln!(
            out,
            "history:     {} outcomes kept on this device",
            history.len()
        );
        for r in history.iter().take(10) {
            let _ = writeln!(
                out,
                "  {}  {} {}{}  {}  {}",
                r.finished_at,
                r.item,
                r.from_version
                    .as_ref()
                    .map(|v| format!("{v} -> "))
                    .unwrap_or_default(),
                r.version,
                r.outcome.as_str(),
                r.message
            );
        }
    }
    Ok(())
}

/// One configured item: its versions, what is pending, kept configuration, an interrupted
/// install.
fn render_item(
    agent: &Agent,
    item: &crate::config::ItemConfig,
    out: &mut String,
) -> Result<(), Error> {
    let st = agent.item_state(&item.name);
    let v = |v: &Option<semver::Version>| v.as_ref().map_or("-".to_string(), |v| v.to_string());
    let pending = match &st.pending {
        Some(p) => format!(
            "{}{}{}",
            p.version,
            if p.downloaded {
                " (downloaded)"
            } else {
                " (not downloaded)"
            },
            p.job_id
                .as_ref()
                .map(|j| format!(" job {j}"))
                .unwrap_or_default()
        ),
        None => "-".into(),
    };
    let _ = writeln!(
        out,
        "\n[{}] root {}\n  installed: {}\n  previous:  {}\n  available: {}\n  pending:   {}",
        item.name,
        item.root.display(),
        v(&st.installed),
        v(&st.previous),
        v(&st.available),
        pending
    );
    if let Some(why) = st.pending.as_ref().and_then(|p| p.waiting.as_ref()) {
        let _ = writeln!(out, "  waiting:   {why}");
    }
    for p in &st.kept_configs {
        let _ = writeln!(
            out,
            "  kept edited config: {p} (this version's is {p}.ferry-new)"
        );
    }
    let journal = agent.dir.journal().join(format!("{}.json", item.name));
    if let Some(j) = read_json::<Journal>(&journal)? {
        let _ = writeln!(
            out,
            "  install under way or interrupted: {} (phase {}); the next run finishes or undoes it",
            j.version,
            j.phase.name()
        );
    }
    Ok(())
}

/// The same picture as one JSON object, for a local dashboard (docs/dashboard.md). Read
/// without the lock: every file it reads is replaced atomically.
pub fn json(agent: &Agent) -> Result<serde_json::Value, Error> {
    use crate::dashboard;
    use serde_json::json;
    let cred = agent.dir.credential()?;
    let last_check: Option<dashboard::LastCheck> =
        read_json(&dashboard::last_check_path(&agent.dir))?;
    let v = |v: &Option<semver::Version>| v.as_ref().map(|v| v.to_string());
    let mut items = Vec::new();
    for item in &agent.cfg.items {
        let st = agent.item_state(&item.name);
        let last: Option<ferry_manifests::wire::Report> =
            read_json(&dashboard::last_outcome_path(&agent.dir, &item.name))?;
        let journal = agent.dir.journal().join(format!("{}.json", item.name));
        let under_way = read_json::<Journal>(&journal)?;
        items.push(json!({
            "name": item.name,
            "root": item.root,
            "installed": v(&st.installed),
            "backup": v(&st.previous),
            "available": st.offered.as_ref().filter(|o| Some(&o.version) == st.available.as_ref()).map(|o| json!({
                "version": o.version.to_string(),
                "category": o.category,
                "notes": o.notes,
                "release_url": o.release_url,
            })),
            "update_available": st.available.is_some(),
            "pending": st.pending.as_ref().map(|p| json!({
                "version": p.version.to_string(),
                "downloaded": p.downloaded,
                "job_id": p.job_id,
                "waiting": p.waiting,
            })),
            "last_failed": v(&st.last_failed),
            "rolled_back_by_hand": v(&st.rolled_back_by_hand),
            "kept_configs": st.kept_configs.iter().map(|p| json!({
                "path": p,
                "new_version": format!("{p}.ferry-new"),
            })).collect::<Vec<_>>(),
            "install_under_way": under_way.map(|j| json!({
                "version": j.version.to_string(),
                "phase": j.phase.name(),
            })),
            "last_install": last.map(|r| json!({
                "version": r.version.to_string(),
                "from_version": r.from_version.map(|v| v.to_string()),
                "outcome": r.outcome.as_str(),
                "message": r.message,
                "log": r.output,
                "finished_at": r.finished_at,
                "fetched": r.fetched,
            })),
        }));
    }
    Ok(json!({
        "server_url": agent.cfg.server_url.as_ref().map(|u| u.to_string()),
        "repository_url": agent.cfg.repository_url.as_ref().map(|u| u.to_string()),
        "history": report::local_history(&agent.dir)?.iter().take(HISTORY_SHOWN).map(|r| json!({
            "item": r.item,
            "version": r.version.to_string(),
            "from_version": r.from_version.as_ref().map(|v| v.to_string()),
            "outcome": r.outcome.as_str(),
            "message": r.message,
            "finished_at": r.finished_at,
        })).collect::<Vec<_>>(),
        "host_id": cred.map(|c| c.host_id),
        "last_check": last_check.map(|c| json!({"at": c.at, "ok": c.ok, "error": c.error})),
        "queued_reports": report::queued(&agent.dir)?.len(),
        "run": crate::lock::current_holder(&agent.dir.lock_path()).map(|h| h.to_string()),
        "progress": dashboard::current_progress(&agent.dir),
        "items": items,
    }))
}
