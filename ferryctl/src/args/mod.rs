//! The command line, parsed in one place. Server connection and output flags are global: they
//! may stand before or after the subcommand, and come from the environment when absent.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use ferry_manifests::manifest::Layout;
use ferry_manifests::Category;

mod admin;
pub use admin::{ItemsCommand, MqttCommand, MqttSettings, TokensCommand};

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
        command: ListCommand,
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
    /// Update batches: list, show, follow.
    #[command(name = "update-batches")]
    UpdateBatches {
        #[command(subcommand)]
        command: BatchesCommand,
    },
    /// Ask hosts to check in now (hosts that long-poll answer within a second).
    Check {
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
pub enum RootCommand {
    /// Write version 1 of a trust root, signed by its root keys (offline).
    Init {
        /// Private root key that signs (repeatable); their public halves become the root keys.
        #[arg(long = "root-key", required = true)]
        root_keys: Vec<PathBuf>,
        /// Public release key devices will trust (repeatable).
        #[arg(long = "release-key", required = true)]
        release_keys: Vec<PathBuf>,
        /// How many root keys must sign the next root version.
        #[arg(long, default_value_t = 1)]
        root_threshold: usize,
        /// How many release keys must sign a release.
        #[arg(long, default_value_t = 1)]
        release_threshold: usize,
        /// Days until devices stop trusting this root unless a newer one arrives.
        #[arg(long, default_value_t = 365)]
        expires_in_days: u32,
        /// Where to write the signed root (e.g. root-1.json).
        #[arg(long)]
        out: PathBuf,
    },
    /// Write the next version of a trust root (offline): add or retire keys, change
    /// thresholds, extend the expiry. It must be signed by enough of the current root keys
    /// and of the new ones.
    Update {
        /// The current root (e.g. root-1.json).
        #[arg(long)]
        from: PathBuf,
        /// Private root key that signs (repeatable).
        #[arg(long = "sign-with", required = true)]
        sign_with: Vec<PathBuf>,
        /// Public release key to trust from this version on (repeatable).
        #[arg(long = "add-release-key")]
        add_release_keys: Vec<PathBuf>,
        /// Key id of a release key to retire.
        #[arg(long = "remove-release-key")]
        remove_release_keys: Vec<String>,
        /// Public root key to add (repeatable); it must sign this version too.
        #[arg(long = "add-root-key")]
        add_root_keys: Vec<PathBuf>,
        /// Key id of a root key to retire.
        #[arg(long = "remove-root-key")]
        remove_root_keys: Vec<String>,
        /// New root-key threshold (unchanged when absent).
        #[arg(long)]
        root_threshold: Option<usize>,
        /// New release-key threshold (unchanged when absent).
        #[arg(long)]
        release_threshold: Option<usize>,
        /// Days until devices stop trusting this version unless a newer one arrives.
        #[arg(long, default_value_t = 365)]
        expires_in_days: u32,
        /// Where to write the signed next version (e.g. root-2.json).
        #[arg(long)]
        out: PathBuf,
    },
    /// Upload a root version to the server; devices fetch it at their next check-in.
    Publish {
        /// The signed root file.
        file: PathBuf,
    },
    /// Print a root file's version, expiry, keys and thresholds.
    Show {
        /// The signed root file.
        file: PathBuf,
    },
}

#[derive(Subcommand)]
pub enum ReleaseCommand {
    /// Pack a directory into a tarball and write the signed manifest beside it (offline).
    Build(Box<BuildArgs>),
    /// Upload the tarballs and signed manifests in OUTDIR to the server; with --to-dir, add
    /// them to a static release repository instead (offline, no server).
    Publish {
        /// Directory written by `ferryctl release build`.
        outdir: PathBuf,
        /// A static release repository (served by any web host): the release goes into DIR
        /// and the item's signed index DIR/ITEM.index.json is written again.
        #[arg(long, value_name = "DIR")]
        to_dir: Option<PathBuf>,
        /// A base URL that also serves the artifacts (a mirror, a CDN, an object store's public
        /// URL): devices fetch BASE/ARTIFACT_NAME before the server's own copy. Upload the
        /// artifacts there yourself (repeatable, tried in order).
        #[arg(long = "mirror", value_name = "URL")]
        mirrors: Vec<String>,
        #[command(flatten)]
        index: IndexArgs,
    },
    /// Record where else a published release's artifact is served, replacing what was
    /// recorded (no --mirror: none, devices use the server's copy).
    Mirrors {
        /// The release's item.
        item: String,
        /// The release's version.
        version: String,
        /// A base URL serving the artifact as BASE/ARTIFACT_NAME (repeatable, tried in order).
        #[arg(long = "mirror", value_name = "URL")]
        mirrors: Vec<String>,
    },
    /// Sign the release index of every item in a static release repository again, with a new
    /// expiry (run it before the index expires: devices refuse an expired index).
    Index {
        /// The repository directory.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        #[command(flatten)]
        index: IndexArgs,
    },
}

#[derive(Args)]
pub struct IndexArgs {
    /// Private release key that signs the repository's index (with --to-dir; repeatable).
    #[arg(long = "key")]
    pub key: Vec<PathBuf>,
    /// Days until devices refuse the index unless a fresher one is signed.
    #[arg(long, default_value_t = 7)]
    pub index_expires_in_days: u32,
}

#[derive(Args)]
pub struct BuildArgs {
    /// Software item name.
    #[arg(long)]
    pub item: String,
    /// Version (semver).
    #[arg(long)]
    pub version: semver::Version,
    /// Directory whose contents become the release.
    #[arg(long)]
    pub from: PathBuf,
    /// Private release key (from `ferryctl keygen`); repeat to sign with several keys.
    #[arg(long, required = true)]
    pub key: Vec<PathBuf>,
    /// Where to write the tarball and the signed manifest.
    #[arg(long)]
    pub out: PathBuf,
    /// What kind of update this is: security, bugfix, feature or unknown.
    #[arg(long, default_value = "unknown")]
    pub category: Category,
    /// How it is placed on the device: symlink (each version under ROOT/releases, ROOT/current
    /// points at one) or overlay (files placed into existing paths under ROOT, with backups).
    #[arg(long, default_value = "symlink")]
    pub layout: Layout,
    /// Compression of the tarball: gzip or zstd.
    #[arg(long, default_value = "gzip")]
    pub compression: ferry_manifests::manifest::Compression,
    /// Command to run after install, in the new release directory (repeatable, in order).
    #[arg(long = "post-install")]
    pub post_install: Vec<String>,
    /// Command that must exit 0 after post-install, or the install rolls back.
    #[arg(long)]
    pub health_check: Option<String>,
    /// Days until devices refuse this manifest.
    #[arg(long, default_value_t = 365)]
    pub expires_in_days: u32,
    /// Release notes.
    #[arg(long, default_value = "")]
    pub notes: String,
    /// Link to a changelog or release page.
    #[arg(long)]
    pub release_url: Option<String>,
    /// Device class this release is for (repeatable; none means any device).
    #[arg(long)]
    pub compatible: Vec<String>,
    /// Extra artifact URL (a mirror), tried before the server's own copy (repeatable).
    #[arg(long = "url")]
    pub urls: Vec<String>,
    /// Let devices that have a newer version install this one.
    #[arg(long)]
    pub allow_downgrade: bool,
    /// Mark files matching GLOB (relative to --from, e.g. `etc/*.conf`) as configuration a
    /// person may edit on the device: an edited one is kept on install and the new version
    /// is written beside it as FILE.ferry-new (repeatable).
    #[arg(long = "config-file", value_name = "GLOB")]
    pub config_files: Vec<String>,
}

#[derive(Subcommand)]
pub enum HostsCommand {
    /// List hosts: online or not, what each has installed and what is available to it.
    List,
    /// Set a host's tags and friendly name (the operator's word wins over the device's).
    Edit {
        /// Host id or hostname.
        host: String,
        /// Comma-separated tags; an empty value clears the operator's tags.
        #[arg(long)]
        tags: Option<String>,
        /// A name shown beside the hostname; an empty value clears the operator's name.
        #[arg(long)]
        friendly_name: Option<String>,
    },
    /// Retire a host: its record and history go, and its credential stops working.
    Remove {
        /// Host id or hostname.
        host: String,
    },
}

#[derive(Subcommand)]
pub enum ListCommand {
    /// List them, newest first (with --json, every field).
    List,
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
    },
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every subcommand, flag and argument says what it is for.
    #[test]
    fn every_command_flag_and_argument_is_described() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            if cmd.get_about().is_none() {
                missing.push(format!("{path}: no description"));
            }
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {id}: no description"));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&super::Cli::command(), "ferryctl", &mut missing);
        assert!(missing.is_empty(), "undescribed:\n{}", missing.join("\n"));
    }
}
