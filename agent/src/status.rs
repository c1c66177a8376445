//! `--running-mode=status`: what is installed, available, downloaded and pending.

use std::fmt::Write as _;

use crate::error::Error;
use crate::install::journal::Journal;
use crate::state::read_json;
use crate::{report, Agent};

pub fn render(agent: &Agent) -> Result<String, Error> {
    let mut out = String::new();
    let cred = agent.dir.credential()?;
    let _ = writeln!(out, "server:      {}", agent.cfg.server_url);
    let _ = writeln!(
        out,
        "host id:     {}",
        cred.map(|c| c.host_id)
            .unwrap_or_else(|| "(not enrolled)".into())
    );
    let _ = writeln!(
        out,
        "last check:  {}",
        agent.state.last_check.as_deref().unwrap_or("never")
    );
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
    let _ = writeln!(out, "queued reports: {}", report::queued(&agent.dir)?.len());
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
        let journal = agent.dir.journal().join(format!("{}.json", item.name));
        if let Some(j) = read_json::<Journal>(&journal)? {
            let _ = writeln!(
                out,
                "  install under way or interrupted: {} (phase {}); the next run finishes or undoes it",
                j.version,
                j.phase.name()
            );
        }
    }
    Ok(out)
}
