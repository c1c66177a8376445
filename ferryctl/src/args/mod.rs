//! The command line, parsed in one place. Server connection and output flags are global: they
//! may stand before or after the subcommand, and come from the environment when absent.

use std::path::PathBuf;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

mod admin;
mod release;
pub use admin::{
    AuditCommand, DdiCommand, ItemsCommand, MqttCommand, MqttSettings, PackagesCommand,
    TenantsCommand, TokensCommand, UsersCommand, WebhooksCommand,
};
pub use release::{BuildArgs, IndexArgs, ReleaseCommand, RootCommand};

#[derive(Parser)]
#[command(
    name = "ferryctl",
    version,
    about = "Operate a Ferry fleet and sign releases"
)]
pub struct Cli {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Print JSON instead of text: one document, or with --follow one JSON object a line
    /// (JSON lines) as events come.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Clone)]
pub struct ServerArgs {
    /// The server's base URL, such as http://127.0.0.1:8080 or https://ferry.example.org.
    #[arg(
        long,
        env = "FERRY_SERVER",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub server: String,
    /// Operator token, or @FILE to read it from a file.
    #[arg(long, env = "FERRY_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
    /// PEM of the CA that signed the server's certificate (instead of the system's roots).
    #[arg(long, env = "FERRY_CA_CERT", global = true)]
    pub ca_cert: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Generate an ed25519 release key pair: OUT.key (mode 0600) and OUT.pub.
    Keygen {
        /// Path prefix of the key files.
        #[arg(long)]
        out: PathBuf,
    },
    /// Build, sign and publish releases.
    Release {
        #[command(subcommand)]
        command: ReleaseCommand,
    },
    /// Enrolled hosts.
    Hosts {
        #[command(subcommand)]
        command: HostsCommand,
    },
    /// Published releases.
    Releases {
        #[command(subcommand)]
        command: ReleasesCommand,
    },
    /// Update history.
    History {
        #[command(subcommand)]
        command: HistoryCommand,
    },
    /// Assign installs to hosts.
    Update {
        #[command(subcommand)]
        command: UpdateCommand,
    },
    /// Campaigns: fleet rollouts with targeting, acceptance, waves and thresholds.
    Campaigns {
        #[command(subcommand)]
        command: CampaignsCommand,
    },
    /// Software items: featured, icon, deactivated.
    Items {
        #[command(subcommand)]
        command: ItemsCommand,
    },
    /// Software on the hosts besides Ferry's items, as their agents' sources found it.
    Packages {
        #[command(subcommand)]
        command: PackagesCommand,
    },
    /// The audit log: every change an operator asked for (docs/users.md).
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Users and their roles (docs/users.md).
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// Tenants: separate fleets in one install (docs/users.md).
    Tenants {
        #[command(subcommand)]
        command: TenantsCommand,
    },
    /// Operator and enrolment tokens.
    Tokens {
        #[command(subcommand)]
        command: TokensCommand,
    },
    /// The MQTT bridge's broker connections (configured in server.toml `[[mqtt]]`).
    Mqtt {
        #[command(subcommand)]
        command: MqttCommand,
    },
    /// Devices that run a hawkBit DDI client (SWUpdate, rauc-hawkbit-updater): their tokens.
    Ddi {
        #[command(subcommand)]
        command: DdiCommand,
    },
    /// Webhooks: other systems told of installs, campaigns and releases as they happen.
    Webhooks {
        #[command(subcommand)]
        command: WebhooksCommand,
    },
    /// Update batches: list, show, follow.
    #[command(name = "update-batches")]
    UpdateBatches {
        #[command(subcommand)]
        command: BatchesCommand,
    },
    /// Ask hosts for a check now (hosts that long-poll answer within a second, refreshing
    /// what their sources know; the others at their next run).
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Check {
        #[command(subcommand)]
        what: Option<CheckCommand>,
        /// Host id or hostname.
        #[arg(long, conflicts_with = "item", required_unless_present = "item")]
        host: Option<String>,
        /// Every host that has this item.
        #[arg(long)]
        item: Option<String>,
    },
    /// The signed trust root: rotate release and root keys without reflashing devices.
    Root {
        #[command(subcommand)]
        command: RootCommand,
    },
}

#[derive(Subcommand)]
pub enum CheckCommand {
    /// Ask one host for a version check of one item now: a Ferry item, or software its
    /// sources found (`ferryctl check item openssl --host kiosk-1`).
    Item {
        /// The item, or the software's name as `ferryctl packages search` shows it.
        item: String,
        /// Host id or hostname.
        #[arg(long)]
        host: String,
    },
}

#[derive(Subcommand)]
pub enum HostsCommand {
    /// List hosts: online or not, what each has installed and what is available to it.
    List,
    /// Ask a host for a version check now: of its items and of the software its sources find
    /// (`apt-get update` first); a long-polling host within a second, another at its next run.
    Check {
        /// Host id or hostname.
        host: String,
    },
    /// Set a host's tags and friendly name (the operator's word wins over the device's).
    Edit {
        /// Host id or hostname.
        host: String,
        /// Comma-separated tags (campaigns target these); an empty value clears them.
        #[arg(long, visible_alias = "tag")]
        tags: Option<String>,
        /// A name shown beside the hostname; an empty value clears the operator's name.
        #[arg(long)]
        friendly_name: Option<String>,
        /// Offer the host to its site's devices as a peer again, after a report of bad bytes
        /// from it was looked into (docs/delivery.md).
        #[arg(long)]
        share_ok: bool,
    },
    /// Show one host: its facts, how it authenticates, its certificates, and whether two
    /// devices were seen using its identity at once.
    Show {
        /// Host id or hostname.
        host: String,
    },
    /// Accept a host that enrolled with a token requiring acceptance: it is given updates,
    /// campaigns and batches from now on.
    Accept {
        /// Host id or hostname.
        host: String,
    },
    /// Retire a host: its record and history go, and its credential stops working.
    Remove {
        /// Host id or hostname.
        host: String,
    },
}

#[derive(Subcommand)]
pub enum ReleasesCommand {
    /// List them, newest first (with --json, every field).
    List,
    /// Withdraw a bad release: it is no longer offered, counted or advertised; installs of it
    /// not yet started and its campaigns are cancelled. Devices that installed it keep it.
    Withdraw {
        /// The software item.
        item: String,
        /// The release to withdraw.
        version: semver::Version,
        /// Why, shown with the release and on what it cancels.
        #[arg(long)]
        reason: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum HistoryCommand {
    /// List update history.
    List {
        /// Only this host (id or hostname).
        #[arg(long)]
        host: Option<String>,
        /// Only this item.
        #[arg(long)]
        item: Option<String>,
    },
    /// Print an update's output; with --follow, live until it ends, exiting 0 only if it
    /// installed.
    Tail {
        /// The update's id, or a unique prefix of it.
        id: String,
        /// Follow the live output until the update ends.
        #[arg(long)]
        follow: bool,
        /// Give up following after this many seconds.
        #[arg(long, default_value_t = 3600)]
        timeout_secs: u64,
    },
    /// Show one entry with its full output.
    Show {
        /// The update's id, or a unique prefix of it.
        id: String,
    },
}

#[derive(Subcommand)]
pub enum CampaignsCommand {
    /// Create a campaign for one release.
    Create {
        /// The software item.
        #[arg(long)]
        item: String,
        /// The release to roll out.
        #[arg(long)]
        version: semver::Version,
        /// Every host that has the item (now or later).
        #[arg(long, group = "target")]
        all: bool,
        /// Hosts with any of these tags (comma-separated).
        #[arg(long = "tag", value_delimiter = ',', group = "target")]
        tags: Vec<String>,
        /// These hosts, ids or hostnames (comma-separated).
        #[arg(long = "host", value_delimiter = ',', group = "target")]
        hosts: Vec<String>,
        /// Devices must accept it (`ferry-agent --running-mode=campaign_accept`).
        #[arg(long)]
        require_acceptance: bool,
        /// Waves as cumulative shares or counts, e.g. 10%,50%,100%.
        #[arg(long)]
        waves: Option<String>,
        /// Share of finished installs that may fail before the campaign pauses (default 0.5).
        #[arg(long)]
        max_failure_rate: Option<f64>,
        /// Share of a wave that must install before the next starts (default 0.5).
        #[arg(long)]
        success_threshold: Option<f64>,
        /// Daily install window in the device's local time, e.g. 02:00-04:00.
        #[arg(long)]
        window: Option<String>,
        /// A name for people (default "ITEM VERSION").
        #[arg(long)]
        name: Option<String>,
        /// Create it even though no host matches now; hosts join as they check in.
        #[arg(long)]
        allow_empty: bool,
        /// Start it paused, until a user with the approver (or admin) role other than you
        /// approves it (`ferryctl campaigns approve`).
        #[arg(long)]
        require_approval: bool,
        /// Watch each wave's health for this long after its installs (90s, 30m, 2h) before
        /// the next opens; a wave that regresses against the hosts not yet updated pauses the
        /// campaign (docs/campaigns.md).
        #[arg(long, value_parser = parse_duration)]
        observe: Option<u64>,
        /// With --observe: a wave that regresses is rolled back to the release each host had.
        #[arg(long, requires = "observe")]
        rollback_on_regression: bool,
        /// With --observe: a wave regresses when more than this share of its hosts fail
        /// (default 0.2)…
        #[arg(long, requires = "observe")]
        regression_max_share: Option<f64>,
        /// …and that share exceeds the not-yet-updated hosts' by more than this (default 0.2).
        #[arg(long, requires = "observe")]
        regression_max_excess: Option<f64>,
        /// With --observe: hosts of a wave that must report for a verdict (default 1).
        #[arg(long, requires = "observe")]
        regression_min_hosts: Option<u64>,
    },
    /// Approve a campaign that waits for approval, which starts it (not one you created).
    Approve {
        /// The campaign\'s id, or a unique prefix of it.
        id: String,
    },
    /// List campaigns.
    List {
        /// Only campaigns in this status.
        #[arg(long, value_parser = ["running", "paused", "cancelled", "completed"])]
        status: Option<String>,
    },
    /// Show a campaign's progress per host and in total.
    Show {
        /// The campaign's id, or a unique prefix of it.
        id: String,
    },
    /// Change a campaign under way: thresholds, window, and waves that have not opened.
    Edit {
        /// The campaign's id, or a unique prefix of it.
        id: String,
        /// Share of a wave that must install before the next starts (0 to 1).
        #[arg(long)]
        success_threshold: Option<f64>,
        /// Share of installs finished since the last resume that may fail before the
        /// campaign pauses itself (0 to 1).
        #[arg(long)]
        max_failure_rate: Option<f64>,
        /// Daily install window in the device's local time, e.g. 02:00-04:00; "" removes it.
        #[arg(long)]
        window: Option<String>,
        /// All waves as at creation (those already open unchanged), e.g. 1,10%,100%.
        #[arg(long)]
        waves: Option<String>,
    },
    /// Stop dispatching new installs.
    Pause {
        /// The campaign\'s id, or a unique prefix of it.
        id: String,
    },
    /// Dispatch again; the failure threshold judges only installs that finish from now on.
    Resume {
        /// The campaign\'s id, or a unique prefix of it.
        id: String,
    },
    /// Stop for good: pending installs are cancelled and devices drop them.
    Cancel {
        /// The campaign\'s id, or a unique prefix of it.
        id: String,
    },
}

#[derive(Args, Clone)]
pub struct FollowArgs {
    /// Print progress until the batch finishes; exit 0 if every install succeeded.
    #[arg(long)]
    pub follow: bool,
    /// Give up following after this many seconds.
    #[arg(long, default_value_t = 3600)]
    pub timeout_secs: u64,
}

#[derive(Subcommand)]
pub enum BatchesCommand {
    /// List batches.
    List {
        /// Only batches in this status.
        #[arg(long, value_parser = ["running", "completed", "failed"])]
        status: Option<String>,
    },
    /// Show one batch with its entries.
    Show {
        /// The batch's id, or a unique prefix of it.
        id: String,
    },
    /// Print a batch's progress until it finishes.
    Follow {
        /// The batch's id, or a unique prefix of it.
        id: String,
        /// Give up following after this many seconds.
        #[arg(long, default_value_t = 3600)]
        timeout_secs: u64,
    },
}

#[derive(Subcommand)]
pub enum UpdateCommand {
    /// Install every available update on one host, one at a time.
    BatchHost {
        /// Host id or hostname.
        host: String,
        /// Only updates of this category.
        #[arg(long, value_parser = ["security", "bugfix", "feature", "unknown"])]
        category: Option<String>,
        /// Items to leave out, comma-separated.
        #[arg(long, value_delimiter = ',')]
        exclude: Vec<String>,
        /// Run each install's hooks in a terminal and attach to them one at a time, as
        /// `update trigger --interactive` does.
        #[arg(long)]
        interactive: bool,
        #[command(flatten)]
        follow: FollowArgs,
    },
    /// Cancel an install a host has not done yet; the device drops it at its next check-in.
    Cancel {
        /// The update's id, or a unique prefix of it.
        id: String,
    },
    /// Attach this terminal to an interactive install under way again (after a dropped
    /// connection, say), or watch it while another operator holds its input.
    Attach {
        /// The update's id, or a unique prefix of it.
        id: String,
    },
    /// Update one item to one version on every host that has it (or the listed hosts).
    BatchItem {
        /// The software item.
        item: String,
        /// The release every host gets; hosts at or past it are skipped.
        #[arg(long)]
        to_version: semver::Version,
        /// Only these hosts (ids or hostnames), comma-separated.
        #[arg(long = "host", value_delimiter = ',')]
        hosts: Vec<String>,
        #[command(flatten)]
        follow: FollowArgs,
    },
    /// Ask one host to install a release (the newest when --version is absent).
    Trigger {
        /// Host id or hostname.
        #[arg(long)]
        host: String,
        /// The software item; the host must manage it.
        #[arg(long)]
        item: String,
        /// The release to install; the newest when absent.
        #[arg(long)]
        version: Option<semver::Version>,
        /// Queue it even though the host already has that version (it re-verifies it and
        /// reports it in place).
        #[arg(long)]
        force: bool,
        /// Print the install's output live and exit with its outcome.
        #[arg(long)]
        follow: bool,
        /// Run the install's hooks in a terminal and attach to it: what you type goes to
        /// them (Ctrl-C interrupts the hook), their output comes back with its colours, and
        /// the command exits with the outcome. Another operator attaching meanwhile watches
        /// only.
        #[arg(long)]
        interactive: bool,
        /// With --interactive: do not keep what you type in the update's history (for
        /// passwords); the terminal's echo, if the hook leaves it on, stays in the output.
        #[arg(long, requires = "interactive")]
        hide_input: bool,
        /// The device may download it over a metered link (an urgent fix): other installs
        /// wait there for an unmetered one (the device's `metered` setting).
        #[arg(long)]
        metered_allowed: bool,
    },
}

#[cfg(test)]
mod tests;

/// Commands that never talk to a server: their help leaves the connection flags out (they
/// are accepted and ignored, so a shell with FERRY_SERVER set still runs them).
const OFFLINE: &[&[&str]] = &[
    &["keygen"],
    &["release", "build"],
    &["release", "index"],
    &["root", "init"],
    &["root", "update"],
    &["root", "show"],
];

/// The command line as its help shows it: the connection flags hidden from offline commands.
/// Only for rendering help: a command modified once built no longer parses those flags.
pub fn command() -> clap::Command {
    fn hide_connection(cmd: clap::Command, path: &[&str]) -> clap::Command {
        match path.split_first() {
            Some((first, rest)) => cmd.mut_subcommand(*first, |sc| hide_connection(sc, rest)),
            None => ["server", "token", "ca_cert"]
                .into_iter()
                .fold(cmd, |c, id| c.mut_arg(id, |a| a.hide(true))),
        }
    }
    let mut cmd = Cli::command();
    // Propagates the global flags into every subcommand, where they can be hidden.
    cmd.build();
    OFFLINE.iter().fold(cmd, |c, path| hide_connection(c, path))
}

/// Parses the process's arguments (exits with clap's message and code 2 on a mistake); help
/// is shown from [`command`].
pub fn parse() -> Cli {
    use clap::error::ErrorKind;
    match Cli::command().try_get_matches() {
        Ok(matches) => Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit()),
        Err(e) if e.kind() == ErrorKind::DisplayHelp => {
            let args: Vec<String> = std::env::args().skip(1).collect();
            print!("{}", help_for(&args));
            std::process::exit(0)
        }
        Err(e) => e.exit(),
    }
}

/// The help `--help` (long) or `-h` (short) asks for, of the subcommand the words in `args`
/// name, from [`command`].
fn help_for(args: &[String]) -> String {
    fn render(cmd: &mut clap::Command, words: &[&String], long: bool) -> String {
        if let Some((first, rest)) = words.split_first() {
            // A word that is not a subcommand is a flag's value or an argument: skipped.
            if let Some(sub) = cmd.find_subcommand_mut(first.as_str()) {
                return render(sub, rest, long);
            }
            return render(cmd, rest, long);
        }
        if long {
            cmd.render_long_help().to_string()
        } else {
            cmd.render_help().to_string()
        }
    }
    let words: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    render(&mut command(), &words, args.iter().any(|a| a == "--help"))
}

/// `--observe 30m`: a duration in seconds.
fn parse_duration(text: &str) -> Result<u64, String> {
    ferry_manifests::wire::parse_duration_secs(text)
}
