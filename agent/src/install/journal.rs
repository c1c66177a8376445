//! The install journal: one file per item (`STATE_DIR/journal/ITEM.json`), written atomically
//! *before* each irreversible step, so that after a crash the next run knows exactly which
//! step may have been interrupted and finishes or undoes it. The decision is [`recovery_for`],
//! plain code over the phase.

use std::collections::BTreeMap;
use std::path::PathBuf;

use ferry_manifests::wire::{now, Outcome, Report};
use serde::{Deserialize, Serialize};

/// Where an install of one item stands. Each phase is recorded before its step starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Phase {
    /// Unpacking into `releases/.staging-V` and renaming it to `releases/V`. The item's
    /// `current` link is untouched.
    Staging,
    /// Flipping `current` to `releases/V`, then running post-install and the health check.
    Switching,
    /// Hooks passed: recording V as installed, queueing the report, pruning.
    Committing { message: String, output: String },
    /// Hooks failed: flipping `current` back and removing V.
    RollingBack { message: String, output: String },
    /// A stop (SIGTERM/SIGINT) outlasted its grace time during the hooks: restoring the
    /// previous version; the release stays pending and is installed again at the next run.
    Postponing,
    /// `--running-mode=rollback`: flipping `current` from the installed V back to the
    /// previous version `to` and removing V.
    ManualRollback {
        to: semver::Version,
        message: String,
    },
}

impl Phase {
    /// The phase as the journal file spells it.
    pub fn name(&self) -> &'static str {
        match self {
            Phase::Staging => "staging",
            Phase::Switching => "switching",
            Phase::Committing { .. } => "committing",
            Phase::RollingBack { .. } => "rolling_back",
            Phase::Postponing => "postponing",
            Phase::ManualRollback { .. } => "manual_rollback",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    pub item: String,
    pub version: semver::Version,
    pub job_id: Option<String>,
    /// The report's id, fixed up front so a report re-queued by recovery is the same report.
    pub report_id: String,
    pub started_at: String,
    /// What the state said was installed when the install began.
    pub from_version: Option<semver::Version>,
    /// Target of `ROOT/current` when the install began (relative to ROOT), if any.
    pub previous_target: Option<PathBuf>,
    /// File names under the state directory: the verified envelope and the artifact.
    pub envelope: String,
    pub artifact: PathBuf,
    #[serde(default)]
    pub layout: ferry_manifests::Layout,
    /// For the overlay layout: what the swap changes (journalled before the first change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<super::overlay::Plan>,
    /// Configuration files of the release this ends with in place and their shipped sha256
    /// (the new release's; for a rollback by hand, the restored one's).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub configs: BTreeMap<String, String>,
    /// The configuration files of the release that was in place before.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub old_configs: BTreeMap<String, String>,
    /// Edited configuration files kept as they are; the new version goes beside each as
    /// `PATH.ferry-new`. Decided before the journal is first written.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kept_configs: Vec<String>,
    /// What was downloaded for this install, for its report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetched: Option<ferry_manifests::wire::Fetched>,
    pub phase: Phase,
}

impl Journal {
    /// The report of a journalled install; its id comes from the journal, so queueing it again
    /// during recovery replaces the same report rather than adding one.
    pub fn report(&self, outcome: Outcome, message: String, output: String) -> Report {
        // A rollback by hand goes from the installed version to the previous one: the report
        // says so (`1.3.0 -> 1.2.0 rolled_back`).
        let version = match &self.phase {
            Phase::ManualRollback { to, .. } => to.clone(),
            _ => self.version.clone(),
        };
        Report {
            report_id: self.report_id.clone(),
            job_id: self.job_id.clone(),
            item: self.item.clone(),
            version,
            from_version: self.from_version.clone(),
            outcome,
            message,
            output,
            started_at: self.started_at.clone(),
            finished_at: now(),
            fetched: self.fetched.clone(),
        }
    }
}

/// What recovery does with an interrupted install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovery {
    /// Nothing visible changed: remove the partial release and try the install again later.
    Undo,
    /// The new version may be live but unproven, or was failing: restore the previous one.
    RollBack { message: String, output: String },
    /// The new version passed its checks: record it.
    Commit { message: String, output: String },
    /// Restore the previous version without blaming the release; it stays pending.
    Postpone,
}

impl Recovery {
    /// What recovery does, in words for the log.
    pub fn describe(&self) -> &'static str {
        match self {
            Recovery::Undo => "removing the partial release; the install stays pending",
            Recovery::RollBack { .. } => "restoring the previous version",
            Recovery::Commit { .. } => "recording the proven release",
            Recovery::Postpone => "restoring the previous version; the install stays pending",
        }
    }
}

pub fn recovery_for(journal: &Journal) -> Recovery {
    match &journal.phase {
        Phase::Staging => Recovery::Undo,
        Phase::Switching => Recovery::RollBack {
            message: format!(
                "install of {} was interrupted after switching to it, before its post-install and health check finished; rolled back",
                journal.version
            ),
            output: String::new(),
        },
        Phase::Committing { message, output } => Recovery::Commit {
            message: message.clone(),
            output: output.clone(),
        },
        Phase::RollingBack { message, output } => Recovery::RollBack {
            message: message.clone(),
            output: output.clone(),
        },
        Phase::Postponing => Recovery::Postpone,
        Phase::ManualRollback { message, .. } => Recovery::RollBack {
            message: message.clone(),
            output: String::new(),
        },
    }
}

/// Installs interrupted while staging before the agent gives up on that release.
pub const MAX_INTERRUPTED: u32 = 3;

#[cfg(test)]
mod tests {
    use super::*;

    fn journal(phase: Phase) -> Journal {
        Journal {
            item: "web".into(),
            version: semver::Version::new(1, 1, 0),
            job_id: None,
            report_id: "r".into(),
            started_at: String::new(),
            from_version: Some(semver::Version::new(1, 0, 0)),
            previous_target: Some("releases/1.0.0".into()),
            envelope: "web-1.1.0.json".into(),
            artifact: "x.tar.gz".into(),
            layout: Default::default(),
            plan: None,
            configs: BTreeMap::new(),
            old_configs: BTreeMap::new(),
            kept_configs: Vec::new(),
            fetched: None,
            phase,
        }
    }

    #[test]
    fn only_a_proven_release_is_committed() {
        assert_eq!(recovery_for(&journal(Phase::Staging)), Recovery::Undo);
        assert!(matches!(
            recovery_for(&journal(Phase::Switching)),
            Recovery::RollBack { .. }
        ));
        let done = Phase::Committing {
            message: "m".into(),
            output: "o".into(),
        };
        assert_eq!(
            recovery_for(&journal(done)),
            Recovery::Commit {
                message: "m".into(),
                output: "o".into()
            }
        );
        let failing = Phase::RollingBack {
            message: "health".into(),
            output: "out".into(),
        };
        assert!(
            matches!(recovery_for(&journal(failing)), Recovery::RollBack { message, .. } if message == "health")
        );
        assert_eq!(
            recovery_for(&journal(Phase::Postponing)),
            Recovery::Postpone
        );
    }

    #[test]
    fn the_journal_round_trips_as_json() {
        let j = journal(Phase::RollingBack {
            message: "m".into(),
            output: "o".into(),
        });
        let text = serde_json::to_string(&j).unwrap();
        assert!(text.contains("\"phase\":\"rolling_back\""), "{text}");
        assert_eq!(serde_json::from_str::<Journal>(&text).unwrap(), j);
    }
}
