//! Items, MQTT connections and tokens: the server's settings.

use std::path::PathBuf;

use clap::{Args, Subcommand};

#[derive(Subcommand)]
pub enum PackagesCommand {
    /// The hosts that have a package (found by their agents' `[[sources]]`), with its
    /// version and any upgrade offered, e.g. `ferryctl packages search openssl --older-than
    /// 3.0.15`; without a name, every upgrade pending: `ferryctl packages search --category
    /// security`.
    Search {
        /// The package's name, exactly (`openssl`, `libc6:i386`).
        #[arg(required_unless_present_any = ["pending", "category"])]
        name: Option<String>,
        /// Only hosts whose version sorts before this one (as dpkg compares versions).
        #[arg(long, value_name = "VERSION")]
        older_than: Option<String>,
        /// Only packages with an upgrade offered.
        #[arg(long)]
        pending: bool,
        /// Only upgrades of this category (security, bugfix, feature, unknown).
        #[arg(long, value_name = "CATEGORY", value_parser = ["security", "bugfix", "feature", "unknown"])]
        category: Option<String>,
    },
    /// The hosts with upgrades pending, in numbers: "which hosts have security updates
    /// pending" (`ferryctl packages hosts --category security`).
    Hosts {
        /// Only upgrades of this category (security, bugfix, feature, unknown).
        #[arg(long, value_name = "CATEGORY", value_parser = ["security", "bugfix", "feature", "unknown"])]
        category: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum ItemsCommand {
    /// List items with their releases, newest version and presentation.
    List,
    /// Feature an item, set its icon, or (de)activate it.
    Edit {
        /// The item's name.
        name: String,
        /// Show it first in lists and on dashboards: true or false.
        #[arg(long)]
        featured: Option<bool>,
        /// https URL of an icon (at most 2048 characters); empty to clear it.
        #[arg(long)]
        icon_url: Option<String>,
        /// Stop offering its releases (and refuse triggers, batches and campaigns of it).
        #[arg(long, conflicts_with = "activate")]
        deactivate: bool,
        /// Offer its releases again.
        #[arg(long)]
        activate: bool,
    },
}

#[derive(Subcommand)]
pub enum MqttCommand {
    /// List the connections: connected or not, the last error, messages published.
    List,
    /// Add a broker connection (stored in the server's database, secrets sealed) and start it.
    Add {
        /// A name for the connection (letters, digits, `-`, `_`, `.`).
        name: String,
        /// mqtt://HOST[:PORT] or mqtts://HOST[:PORT] (ports default to 1883 and 8883).
        #[arg(long)]
        url: String,
        #[command(flatten)]
        settings: MqttSettings,
    },
    /// Change a connection added through the API (server.toml's are changed there).
    Edit {
        /// The connection's name.
        name: String,
        /// mqtt://HOST[:PORT] or mqtts://HOST[:PORT].
        #[arg(long)]
        url: Option<String>,
        #[command(flatten)]
        settings: MqttSettings,
        /// Connect without a password from now on.
        #[arg(long, conflicts_with = "password_file")]
        no_password: bool,
        /// Trust the system's roots again instead of a CA file.
        #[arg(long, conflicts_with = "ca_file")]
        no_ca: bool,
    },
    /// Stop and remove a connection added through the API.
    Remove {
        /// The connection's name.
        name: String,
    },
    /// Wait up to 5 s for a connection to be up; exit 1 with its last error if it is not.
    Test {
        /// The connection's name.
        name: String,
    },
}

#[derive(Subcommand)]
pub enum DdiCommand {
    /// Print the target token of the DDI device HOST (its controller id), adding the host
    /// when there is none: the device sends it as `Authorization: TargetToken …`.
    Token {
        /// The device's controller id (its host name in the fleet).
        host: String,
    },
    /// Print this tenant's gateway token, with which any DDI device joins under its own
    /// controller id (`Authorization: GatewayToken …`).
    GatewayToken {
        /// Make a new one; devices configured with the old one are refused from then on.
        #[arg(long)]
        rotate: bool,
    },
}

#[derive(Subcommand)]
pub enum WebhooksCommand {
    /// List this tenant's webhooks.
    List,
    /// Send events to URL, signed (Standard Webhooks: webhook-id, webhook-timestamp,
    /// webhook-signature).
    Add {
        /// http(s)://HOST[:PORT]/PATH the events are POSTed to.
        url: String,
        /// Event types, comma-separated: install.finished, campaign.paused, campaign.resumed,
        /// campaign.completed, campaign.cancelled, release.published, release.withdrawn; or all.
        #[arg(long, value_delimiter = ',', required = true)]
        events: Vec<String>,
        /// File holding the signing secret: whsec_ and base64 of 24 to 64 random bytes
        /// (echo "whsec_$(openssl rand -base64 32)" > F). Sent once, stored encrypted.
        #[arg(long)]
        secret_file: PathBuf,
        /// What it is for.
        #[arg(long)]
        description: Option<String>,
    },
    /// Remove a webhook, with what it had still to deliver.
    Remove {
        /// The webhook's id.
        id: String,
    },
    /// Deliveries, newest first: delivered, pending (tried again later) or failed (given up).
    Deliveries {
        /// Only those not delivered: pending retries and failures.
        #[arg(long)]
        failing: bool,
    },
}

#[derive(Args)]
pub struct MqttSettings {
    /// User name for the broker.
    #[arg(long)]
    pub username: Option<String>,
    /// File holding the broker password (a trailing newline is dropped). Sent once, stored
    /// encrypted, never shown again.
    #[arg(long)]
    pub password_file: Option<PathBuf>,
    /// PEM file of the CA that signed the broker's certificate (mqtts only; default: the
    /// system's roots). Stored encrypted.
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// MQTT client id (default: ferry-server-NAME).
    #[arg(long)]
    pub client_id: Option<String>,
    /// Prefix of every state and command topic (default: ferry).
    #[arg(long)]
    pub topic_prefix: Option<String>,
    /// Publish Home Assistant discovery configs: true or false (default: true).
    #[arg(long)]
    pub discovery: Option<bool>,
    /// Home Assistant's discovery prefix (default: homeassistant).
    #[arg(long)]
    pub discovery_prefix: Option<String>,
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// The changes operators asked for, refused or not, oldest first (the newest 10,000).
    List {
        /// Only this user's.
        #[arg(long)]
        user: Option<String>,
        /// Only those at or after this time (2026-12-06T08:00:00Z).
        #[arg(long)]
        since: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum UsersCommand {
    /// Add a user with a role (docs/users.md); then give them a token with `ferryctl tokens
    /// create --user NAME --name N`.
    Add {
        /// The user's name (a-z 0-9 . _ -).
        name: String,
        /// viewer, operator, publisher, approver or admin.
        #[arg(long, value_parser = ["viewer", "operator", "publisher", "approver", "admin"])]
        role: String,
        /// Limit the user to hosts with this tag.
        #[arg(long)]
        tag: Option<String>,
        /// A file holding the user's web UI password (12 characters or more; its first line).
        #[arg(long, value_name = "F")]
        password_file: Option<std::path::PathBuf>,
        /// Add them to this tenant (an admin of the default tenant only; default: yours).
        #[arg(long)]
        tenant: Option<String>,
    },
    /// List users and their roles.
    List,
    /// Change a user's role (or tag; an empty tag clears it).
    Edit {
        /// The user's name.
        name: String,
        /// The new role: viewer, operator, publisher, approver or admin.
        #[arg(long, value_parser = ["viewer", "operator", "publisher", "approver", "admin"])]
        role: Option<String>,
        /// The new tag; "" clears it.
        #[arg(long)]
        tag: Option<String>,
        /// A file holding the user's new web UI password (their web sessions end).
        #[arg(long, value_name = "F")]
        password_file: Option<std::path::PathBuf>,
    },
    /// Remove a user; their tokens are refused from the next request.
    Remove {
        /// The user's name.
        name: String,
    },
}

#[derive(Subcommand)]
pub enum TokensCommand {
    /// Create a token; it is printed once and only its hash is stored.
    Create {
        /// What the token is for (shown in the list).
        #[arg(long)]
        name: String,
        /// operator (drives the API) or enrol (lets devices enrol).
        #[arg(long, default_value = "operator", value_parser = ["operator", "enrol"])]
        kind: String,
        /// Refused after this many days (1-3650); without it, until revoked.
        #[arg(long, value_name = "D")]
        expires_in_days: Option<u32>,
        /// Enrolment tokens: how many devices it may enrol.
        #[arg(long, value_name = "N")]
        uses: Option<u32>,
        /// Enrolment tokens: hosts it enrols are given nothing until `ferryctl hosts accept`.
        #[arg(long)]
        require_acceptance: bool,
        /// Operator tokens: the user it belongs to (default: yours).
        #[arg(long, value_name = "NAME")]
        user: Option<String>,
    },
    /// List tokens (never the tokens themselves).
    List,
    /// Revoke a token by id.
    Revoke {
        /// The token's id (from the list), or a unique prefix of it.
        id: String,
    },
}

#[derive(Subcommand)]
pub enum TenantsCommand {
    /// Add a tenant (an admin of the default tenant only); then give it its first admin:
    /// `ferryctl users add NAME --role admin --tenant T`.
    Add {
        /// The tenant's name (a-z 0-9 . _ -).
        name: String,
    },
    /// List tenants (yours, unless you are an admin of the default tenant).
    List,
}
