//! The install stage: take each pending, downloaded release, verify it again, place it with its
//! layout, run its hooks, and roll back when they fail.

pub mod hooks;
pub mod symlink;
pub mod unpack;

use std::time::Duration;

use ferry_manifests::wire::Outcome;

use crate::error::Error;
use crate::report::{self, Attempt};
use crate::{check, Agent};

/// The result of placing one release.
#[derive(Debug, Clone)]
pub struct Placed {
    pub outcome: Outcome,
    pub message: String,
    pub output: String,
}

/// Installs every pending release whose artifact is downloaded. Returns the outcomes.
pub fn run(agent: &mut Agent) -> Result<Vec<Outcome>, Error> {
    let mut outcomes = Vec::new();
    let names: Vec<String> = agent.cfg.items.iter().map(|i| i.name.clone()).collect();
    for name in names {
        let Some(pending) = agent.item_state(&name).pending.clone() else {
            continue;
        };
        if !pending.downloaded {
            continue;
        }
        let mut attempt =
            Attempt::start(&name, &pending, agent.item_state(&name).installed.clone());
        let verified = match check::load_verified(agent, &name, &pending) {
            Ok(v) => v,
            Err(refusal) => {
                let outcome = agent.finish(attempt.refused(refusal), &pending)?;
                outcomes.push(outcome);
                continue;
            }
        };
        let Some(item_cfg) = agent.cfg.item(&name).cloned() else {
            continue;
        };
        let artifact = agent.dir.artifact_path(&verified.artifact.sha256);
        tracing::info!(item = %name, version = %verified.version, root = %item_cfg.root.display(), "installing");
        if let Some(progress) = &agent.progress {
            progress.line(&format!(
                "installing {name} {} into {}",
                verified.version,
                item_cfg.root.display()
            ));
        }
        let placed = symlink::install(&symlink::Request {
            item: &name,
            root: &item_cfg.root,
            manifest: &verified,
            artifact: &artifact,
            hook_timeout: Duration::from_secs(agent.cfg.hook_timeout_secs),
            keep_releases: agent.cfg.keep_releases,
        });
        if placed.outcome == Outcome::Installed {
            let st = agent.state.items.entry(name.clone()).or_default();
            if st.installed.as_ref() != Some(&verified.version) {
                st.previous = st.installed.take();
            }
            st.installed = Some(verified.version.clone());
            if st.highest.as_ref().is_none_or(|h| &verified.version > h) {
                st.highest = Some(verified.version.clone());
            }
            if st
                .available
                .as_ref()
                .is_some_and(|a| a <= &verified.version)
            {
                st.available = None;
            }
        }
        attempt.output = placed.output;
        let outcome = agent.finish(attempt.with(placed.outcome, placed.message), &pending)?;
        // The artifact is no longer needed whatever happened; a retry downloads it again.
        let _ = std::fs::remove_file(&artifact);
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

impl Agent {
    /// Records a finished attempt: queue its report, clear the pending install, save state.
    pub(crate) fn finish(
        &mut self,
        attempt: report::Finished,
        pending: &crate::state::Pending,
    ) -> Result<Outcome, Error> {
        let outcome = attempt.report.outcome;
        match outcome {
            Outcome::Installed => {
                tracing::info!(item = %attempt.report.item, version = %attempt.report.version, "{}", attempt.report.message)
            }
            _ => {
                tracing::warn!(item = %attempt.report.item, version = %attempt.report.version, outcome = outcome.as_str(), "{}", attempt.report.message)
            }
        }
        if let Some(progress) = &self.progress {
            progress.line(&format!(
                "{} {}: {} — {}",
                attempt.report.item,
                attempt.report.version,
                outcome.as_str(),
                attempt.report.message
            ));
        }
        report::queue(&self.dir, &attempt.report)?;
        self.outcomes.push(outcome);
        if let Some(st) = self.state.items.get_mut(&attempt.report.item) {
            if st.pending.as_ref() == Some(pending) {
                st.pending = None;
            }
            if outcome != Outcome::Installed {
                st.last_failed = Some(attempt.report.version.clone());
            }
        }
        let _ = std::fs::remove_file(self.dir.manifests().join(&pending.envelope));
        self.dir.save_state(&self.state)?;
        Ok(outcome)
    }
}
