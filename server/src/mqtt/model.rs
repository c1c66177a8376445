//! The fleet as the bridge publishes it: a snapshot, built from the store, that the topic
//! functions turn into messages. Plain data, no I/O.

pub use crate::config::Publishing;

/// One host and what it has.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostState {
    pub id: String,
    /// The id of the host's tenant (hex).
    pub tenant: String,
    pub hostname: String,
    /// The effective friendly name (the operator's, else the device's), if any.
    pub friendly_name: Option<String>,
    pub os: String,
    pub os_version: String,
    pub arch: String,
    pub agent_version: String,
    pub last_seen: String,
    /// Keeping its check-in rhythm (docs/mqtt.md gives the rule).
    pub online: bool,
    pub tags: Vec<String>,
    pub items: Vec<ItemState>,
    /// A batch update of this host is pending or running.
    pub batch_in_progress: bool,
    /// What the host's `[[sources]]` found (docs/sources.md), in numbers, if it reported any.
    pub software: Option<SoftwareCounts>,
}

/// A host's discovered software in numbers: all of it, with an upgrade offered, and those
/// upgrades per category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SoftwareCounts {
    pub total: usize,
    pub pending: usize,
    pub security: usize,
    pub bugfix: usize,
    pub feature: usize,
}

impl HostState {
    /// The name people see: the friendly name, else the hostname.
    pub fn display_name(&self) -> &str {
        self.friendly_name
            .as_deref()
            .filter(|n| !n.is_empty())
            .unwrap_or(&self.hostname)
    }
}

/// One item on one host.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ItemState {
    /// The item's id: its name, which is unique and safe in a topic.
    pub name: String,
    /// Featured items get an entity each; the others are summed up per host.
    pub featured: bool,
    pub icon_url: Option<String>,
    pub installed: Option<String>,
    /// The newest release newer than what is installed, if any.
    pub latest: Option<String>,
    /// That release's category (`security`, `bugfix`, `feature`, `unknown`).
    pub category: Option<String>,
    /// That release's date, `YYYY-MM-DD`.
    pub release_date: Option<String>,
    pub release_url: Option<String>,
    pub notes: String,
    /// An update of this item on this host is pending or running.
    pub in_progress: bool,
    /// When the host last reported what it has installed.
    pub last_checked_at: Option<String>,
    /// The offered release (`latest`) already failed here: (outcome, message).
    pub failed_here: Option<(String, String)>,
}

impl ItemState {
    /// The version shown as the newest: the newer release, else what is installed.
    pub fn latest_or_installed(&self) -> Option<&str> {
        self.latest.as_deref().or(self.installed.as_deref())
    }

    pub fn outdated(&self) -> bool {
        self.latest.is_some()
    }
}

/// Everything the bridge publishes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Snapshot {
    pub hosts: Vec<HostState>,
}

/// A campaign as the bridge publishes it.
#[derive(Debug, Clone, PartialEq)]
pub struct CampaignState {
    pub id: String,
    pub name: String,
    pub item: String,
    pub version: String,
    /// running, observing, paused, regressed, cancelled, completed
    pub state: String,
    pub reason: String,
    /// The wave being watched (1-based) and when its window ends.
    pub observing: Option<(usize, String)>,
}
