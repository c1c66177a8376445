//! The agent's TOML configuration. Every key is documented in docs/configuration.md and in
//! `agent/ferry-agent.example.toml`; unknown keys and bad values are errors that name the key
//! and the file.

use std::path::{Path, PathBuf};

use ferry_manifests::TrustedKeys;
use serde::Deserialize;

mod checks;
pub mod identity;
use checks::{enrol_token, items, server_ca, trust, Numbers};

/// Default path of the config file.
pub const DEFAULT_CONFIG: &str = "/etc/ferry/agent.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    /// Nothing to do yet: no server, no repository, no item (a package's fresh config).
    #[error("not configured yet: set `server_url` or `repository_url`, and an [[items]] table, in {path} (docs/configuration.md); nothing to do until then")]
    Unconfigured { path: PathBuf },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    server_url: Option<String>,
    repository_url: Option<String>,
    enrol_token: Option<String>,
    enrol_token_file: Option<PathBuf>,
    state_dir: Option<PathBuf>,
    #[serde(default)]
    trusted_keys: Vec<PathBuf>,
    signature_threshold: Option<usize>,
    trust_root: Option<PathBuf>,
    poll_interval_secs: Option<u64>,
    auto_install: Option<bool>,
    device_class: Option<String>,
    hostname: Option<String>,
    hook_timeout_secs: Option<u64>,
    interactive_timeout_secs: Option<u64>,
    stop_grace_secs: Option<u64>,
    keep_releases: Option<usize>,
    connect_timeout_secs: Option<u64>,
    read_timeout_secs: Option<u64>,
    min_download_rate: Option<u64>,
    max_download_rate: Option<String>,
    download_window: Option<String>,
    metered: Option<toml::Value>,
    share_listen: Option<String>,
    site: Option<String>,
    download_retries: Option<u32>,
    #[serde(default)]
    tags: Vec<String>,
    friendly_name: Option<String>,
    long_poll_secs: Option<u64>,
    lock_wait_secs: Option<u64>,
    server_ca: Option<PathBuf>,
    key: Option<String>,
    key_type: Option<String>,
    certificate: Option<PathBuf>,
    health_probe: Option<String>,
    metrics_file: Option<PathBuf>,
    poll_interval_min_secs: Option<u64>,
    poll_interval_max_secs: Option<u64>,
    #[serde(default)]
    items: Vec<ItemConfig>,
    #[serde(default)]
    sources: Vec<RawSource>,
}

/// `[[sources]]`: where the agent finds software installed by other means than Ferry; each
/// kind takes only its own keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
enum RawSource {
    Apt {
        /// The dpkg status database to read.
        dpkg_status: Option<PathBuf>,
        /// APT's package lists (`Dir::State::lists`).
        lists_dir: Option<PathBuf>,
        /// How often the agent refreshes the lists (`apt-get update`); 0 leaves it to the
        /// host.
        refresh_interval_secs: Option<u64>,
    },
    Command {
        /// The source's name as the fleet sees it (`npm`, `pip`).
        name: String,
        /// A shell command printing the software as JSON.
        check: String,
        /// How long `check` may run.
        timeout_secs: Option<u64>,
        /// A shell command that upgrades the packages named as its arguments.
        install: Option<String>,
    },
    Containers {
        /// `podman` (the default) or `docker`.
        engine: Option<String>,
        /// Registries spoken to over plain HTTP (`127.0.0.1:5000`), as the engine's own
        /// insecure registries.
        #[serde(default)]
        insecure_registries: Vec<String>,
        /// How often the registries are asked for newer tags; 0: only on a manual check.
        refresh_interval_secs: Option<u64>,
    },
    Forge {
        /// The software's name in the fleet (`zigbee2mqtt`).
        name: String,
        /// `github`, `gitea` or `forgejo`.
        api: String,
        /// The forge's address; GitHub's API by default.
        url: Option<String>,
        /// `OWNER/NAME`.
        repo: String,
        /// A shell command printing the installed version (`/opt/tool/bin/tool --version`).
        installed: Option<String>,
        /// Or the Ferry item whose installed version it is.
        item: Option<String>,
        /// How often the forge is asked; 0: only on a manual check.
        refresh_interval_secs: Option<u64>,
        /// A file holding an API token (a private repository, or GitHub's rate limit).
        token_file: Option<PathBuf>,
    },
}

/// A configured source of installed software (docs/sources.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceConfig {
    /// The host's Debian packages and the upgrades APT offers for them.
    Apt(AptSource),
    /// Whatever a command prints as JSON (npm globals, pip, flatpak, a vendor tool).
    Command(CommandSource),
    /// Running containers and the newer tags their registries offer.
    Containers(ContainersSource),
    /// An upstream project's releases on a forge.
    Forge(ForgeSource),
}

/// `[[sources]] kind = "forge"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForgeSource {
    pub name: String,
    /// Whether the forge speaks GitHub's API (else Gitea's, which Forgejo keeps).
    pub github: bool,
    /// The API's base: `https://api.github.com`, or `URL/api/v1` for Gitea and Forgejo.
    pub api_base: String,
    pub repo: String,
    pub installed: ForgeInstalled,
    pub refresh_interval_secs: u64,
    pub token_file: Option<PathBuf>,
}

/// Where a forge source's installed version comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForgeInstalled {
    /// A shell command's output (its first version-like word).
    Command(String),
    /// A Ferry item of this device.
    Item(String),
}

/// `[[sources]] kind = "containers"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainersSource {
    /// The engine's command: `podman` or `docker`.
    pub engine: String,
    pub insecure_registries: Vec<String>,
    pub refresh_interval_secs: u64,
}

/// Default seconds between asking registries for newer tags: six hours.
pub const CONTAINERS_REFRESH_SECS: u64 = 21_600;

/// `[[sources]] kind = "command"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandSource {
    /// 1–16 lowercase letters: the source's name in the fleet (`npm`).
    pub name: String,
    /// Run with `/bin/sh -c`; prints a JSON array (docs/sources.md).
    pub check: String,
    pub timeout: std::time::Duration,
    /// Run with `/bin/sh -c`, the package names as its arguments (`"$@"`); without it, the
    /// source's software is tracked but not upgraded through Ferry.
    pub install: Option<String>,
}

/// Default seconds a command source's check may run.
pub const COMMAND_TIMEOUT_SECS: u64 = 60;

/// `[[sources]] kind = "apt"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AptSource {
    /// The dpkg status database (`/var/lib/dpkg/status`).
    pub dpkg_status: PathBuf,
    /// APT's package lists (`/var/lib/apt/lists`).
    pub lists_dir: PathBuf,
    /// Seconds between the agent's own `apt-get update` runs (a manual check always
    /// refreshes); 0: never, the host refreshes its lists itself.
    pub refresh_interval_secs: u64,
}

/// Default seconds between refreshes of APT's lists: a day, as Debian's apt-daily.timer.
pub const APT_REFRESH_SECS: u64 = 86_400;

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ItemConfig {
    /// The software item's name, as in its releases.
    pub name: String,
    /// Where the item lives on this device.
    pub root: PathBuf,
}

/// The fleet enrolment token: in the config, or in a file read when the device enrols.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnrolToken {
    Inline(String),
    File(PathBuf),
}

impl EnrolToken {
    /// The token; a file that is missing, unreadable or empty says so, naming it.
    pub fn read(&self) -> Result<String, String> {
        match self {
            EnrolToken::Inline(token) => Ok(token.clone()),
            EnrolToken::File(path) => match std::fs::read_to_string(path) {
                Ok(text) if text.trim().is_empty() => Err(format!(
                    "the enrolment token file {} is empty",
                    path.display()
                )),
                Ok(text) => Ok(text.trim().to_string()),
                Err(e) => Err(format!(
                    "cannot read the enrolment token file {}: {e}",
                    path.display()
                )),
            },
        }
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    /// The ferry-server this device checks in with and reports to, if any.
    pub server_url: Option<reqwest::Url>,
    /// A static release repository (`ferryctl release publish --to-dir`) releases come from
    /// instead of the server, if set.
    pub repository_url: Option<reqwest::Url>,
    pub enrol_token: Option<EnrolToken>,
    pub state_dir: PathBuf,
    /// Release keys pinned in the config (`trusted_keys`); empty when `trust_root` is used.
    pub trusted: TrustedKeys,
    pub signature_threshold: usize,
    /// The signed trust root shipped with the device, when keys rotate through the server.
    pub trust_root: Option<PathBuf>,
    pub poll_interval_secs: u64,
    pub auto_install: bool,
    pub device_class: Option<String>,
    pub hostname: Option<String>,
    pub hook_timeout_secs: u64,
    /// An interactive install's hook with no operator at its terminal for this long is
    /// killed, and the install rolls back.
    pub interactive_timeout_secs: u64,
    /// After SIGTERM/SIGINT, how long an install's running hooks may go on before they are
    /// killed, the previous version restored and the release left pending for the next run.
    pub stop_grace_secs: u64,
    /// Releases kept per item: the current one plus this many previous ones minus one.
    pub keep_releases: usize,
    /// Seconds to wait for a connection before calling the server unreachable.
    pub connect_timeout_secs: u64,
    /// Seconds without a byte before a request is abandoned; also the window over which
    /// `min_download_rate` is measured.
    pub read_timeout_secs: u64,
    /// Bytes per second below which a download is abandoned for the next mirror (0: off).
    pub min_download_rate: u64,
    /// The most a download takes of the link (`max_download_rate = "200KiB/s"`).
    pub max_download_rate: Option<crate::delivery::Rate>,
    /// Local hours in which downloads may run (`download_window = "01:00-05:00"`); outside
    /// them a job waits, and the server hears why.
    pub download_window: Option<crate::delivery::Window>,
    /// Whether the link costs money: then only installs allowed on a metered link download.
    pub metered: crate::delivery::Metered,
    /// Where to serve the verified artifacts this device keeps to its site's peers
    /// (`share_listen = "0.0.0.0:8089"`; off when absent).
    pub share_listen: Option<std::net::SocketAddr>,
    /// The site this device is at (`site = "NAME"`); absent: named after the default gateway.
    pub site: Option<String>,
    /// Further passes over the mirror list after a network failure, with exponential backoff.
    pub download_retries: u32,
    /// Tags this device reports (an operator's tags on the server win over them).
    pub tags: Vec<String>,
    /// A friendly name this device reports (an operator's name wins over it).
    pub friendly_name: Option<String>,
    /// In `full` mode, between cycles, keep a check-in open up to this long waiting for work
    /// (0: sleep the poll interval instead).
    pub long_poll_secs: u64,
    /// How long a run waits for another run (the service's cycle, say) to let go of the
    /// state directory's lock before it gives up with exit code 4.
    pub lock_wait_secs: u64,
    /// PEM of the CA that must have signed the server's certificate (pinned: the system's
    /// roots are then not used).
    pub server_ca: Option<Vec<u8>>,
    /// This device's key and certificate for talking to the server over https.
    pub identity: identity::IdentityConfig,
    /// A shell command that exits 0 while the device is healthy, run with every health
    /// sample a campaign's observation window asks for.
    pub health_probe: Option<String>,
    /// The agent's state as Prometheus text, rewritten after every run for node_exporter's
    /// textfile collector (`metrics_file`, a `.prom` file in its directory).
    pub metrics_file: Option<PathBuf>,
    /// Bounds on the poll interval the server may suggest.
    pub poll_interval_min_secs: u64,
    pub poll_interval_max_secs: u64,
    pub items: Vec<ItemConfig>,
    /// Where installed software besides Ferry's items is found (`[[sources]]`).
    pub sources: Vec<SourceConfig>,
}

/// The `[[sources]]` tables, checked.
fn sources(
    raw: Vec<RawSource>,
    resolve: &dyn Fn(&Path) -> PathBuf,
) -> Result<Vec<SourceConfig>, String> {
    let mut names = std::collections::BTreeSet::new();
    raw.into_iter()
        .map(|s| match s {
            RawSource::Apt {
                dpkg_status,
                lists_dir,
                refresh_interval_secs,
            } => Ok(SourceConfig::Apt(AptSource {
                dpkg_status: dpkg_status
                    .map(|p| resolve(&p))
                    .unwrap_or_else(|| PathBuf::from("/var/lib/dpkg/status")),
                lists_dir: lists_dir
                    .map(|p| resolve(&p))
                    .unwrap_or_else(|| PathBuf::from("/var/lib/apt/lists")),
                refresh_interval_secs: refresh_interval_secs.unwrap_or(APT_REFRESH_SECS),
            })),
            RawSource::Command {
                name,
                check,
                timeout_secs,
                install,
            } => {
                if name.is_empty()
                    || name.len() > 16
                    || !name.bytes().all(|b| b.is_ascii_lowercase())
                    || name == "apt"
                    || name == "containers"
                {
                    return Err(format!(
                        "[[sources]] kind = \"command\": `name` {name:?} must be 1-16 lowercase letters, not `apt` or `containers` (it names the source in the fleet, e.g. \"npm\")"
                    ));
                }
                if !names.insert(name.clone()) {
                    return Err(format!(
                        "[[sources]]: two command sources are named {name:?}; give each its own `name`"
                    ));
                }
                if check.trim().is_empty() {
                    return Err(format!(
                        "[[sources]] {name:?}: `check` is empty; give the command that prints the software as JSON"
                    ));
                }
                let secs = timeout_secs.unwrap_or(COMMAND_TIMEOUT_SECS);
                if !(1..=3600).contains(&secs) {
                    return Err(format!(
                        "[[sources]] {name:?}: `timeout_secs` is {secs}; give 1 to 3600"
                    ));
                }
                if install.as_deref().is_some_and(|i| i.trim().is_empty()) {
                    return Err(format!(
                        "[[sources]] {name:?}: `install` is empty; give the command that upgrades the packages named as its arguments, or leave it out"
                    ));
                }
                Ok(SourceConfig::Command(CommandSource {
                    name,
                    check,
                    timeout: std::time::Duration::from_secs(secs),
                    install,
                }))
            }
            RawSource::Forge {
                name,
                api,
                url,
                repo,
                installed,
                item,
                refresh_interval_secs,
                token_file,
            } => {
                let at = format!("[[sources]] kind = \"forge\" {name:?}");
                if name.is_empty()
                    || name.len() > 256
                    || name.chars().any(|c| c.is_control() || c.is_whitespace())
                {
                    return Err(format!(
                        "{at}: `name` must be 1-256 characters without spaces (the software's name in the fleet)"
                    ));
                }
                if !names.insert(format!("forge:{name}")) {
                    return Err(format!("{at}: two forge sources are named {name:?}"));
                }
                let parts: Vec<&str> = repo.split('/').collect();
                if parts.len() != 2
                    || parts.iter().any(|p| {
                        p.is_empty()
                            || !p
                                .bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
                    })
                {
                    return Err(format!("{at}: `repo` is {repo:?}; give OWNER/NAME"));
                }
                let (github, api_base) = match (api.as_str(), url) {
                    ("github", None) => (true, "https://api.github.com".to_string()),
                    ("github", Some(u)) => (true, u.trim_end_matches('/').to_string()),
                    ("gitea" | "forgejo", Some(u)) => {
                        (false, format!("{}/api/v1", u.trim_end_matches('/')))
                    }
                    ("gitea" | "forgejo", None) => {
                        return Err(format!(
                            "{at}: `url` is required for {api} (the forge's address, https://git.example.org)"
                        ))
                    }
                    (other, _) => {
                        return Err(format!(
                            "{at}: `api` is {other:?}; give \"github\", \"gitea\" or \"forgejo\""
                        ))
                    }
                };
                if !(api_base.starts_with("https://") || api_base.starts_with("http://")) {
                    return Err(format!("{at}: `url` must be an http(s) address"));
                }
                let installed = match (installed, item) {
                    (Some(c), None) if !c.trim().is_empty() => ForgeInstalled::Command(c),
                    (None, Some(i)) => ForgeInstalled::Item(i),
                    _ => {
                        return Err(format!(
                            "{at}: give one of `installed` (a command printing the installed version) or `item` (the Ferry item it is)"
                        ))
                    }
                };
                Ok(SourceConfig::Forge(ForgeSource {
                    name,
                    github,
                    api_base,
                    repo,
                    installed,
                    refresh_interval_secs: refresh_interval_secs
                        .unwrap_or(CONTAINERS_REFRESH_SECS),
                    token_file: token_file.map(|p| resolve(&p)),
                }))
            }
            RawSource::Containers {
                engine,
                insecure_registries,
                refresh_interval_secs,
            } => {
                let engine = engine.unwrap_or_else(|| "podman".into());
                if engine != "podman" && engine != "docker" {
                    return Err(format!(
                        "[[sources]] kind = \"containers\": `engine` is {engine:?}; give \"podman\" or \"docker\""
                    ));
                }
                if !names.insert("containers".into()) {
                    return Err(
                        "[[sources]]: two `containers` sources; one lists every running container of its engine".into(),
                    );
                }
                Ok(SourceConfig::Containers(ContainersSource {
                    engine,
                    insecure_registries,
                    refresh_interval_secs: refresh_interval_secs
                        .unwrap_or(CONTAINERS_REFRESH_SECS),
                }))
            }
        })
        .collect()
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Parses and validates config text; `path` names the file in errors and anchors
    /// relative paths inside it.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let raw: RawConfig = toml::from_str(text).map_err(|e| invalid(describe(&e, text)))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let resolve = |p: &Path| -> PathBuf {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };
        let server_url = raw
            .server_url
            .as_deref()
            .map(parse_server_url)
            .transpose()
            .map_err(|e| invalid(format!("key `server_url`: {e}")))?;
        let repository_url = raw
            .repository_url
            .as_deref()
            .map(parse_server_url)
            .transpose()
            .map_err(|e| invalid(format!("key `repository_url`: {e}")))?;
        if server_url.is_none() && repository_url.is_none() && raw.items.is_empty() {
            return Err(ConfigError::Unconfigured {
                path: path.to_path_buf(),
            });
        }
        if server_url.is_none() && repository_url.is_none() {
            return Err(invalid(
                "set `server_url` (a ferry-server), `repository_url` (a static release repository made by `ferryctl release publish --to-dir`), or both".into(),
            ));
        }

        let enrol_token = enrol_token(
            raw.enrol_token.clone(),
            raw.enrol_token_file.clone(),
            &resolve,
        )
        .map_err(invalid)?;
        let (trusted, signature_threshold, trust_root) = trust(&raw, &resolve).map_err(invalid)?;
        let n = Numbers::check(&raw).map_err(invalid)?;
        let server_ca = server_ca(raw.server_ca.as_deref(), &resolve).map_err(invalid)?;
        let identity = identity::IdentityConfig::check(
            raw.key.as_deref(),
            raw.key_type.as_deref(),
            raw.certificate.as_deref(),
            &resolve,
        )
        .map_err(invalid)?;
        ferry_manifests::wire::validate_labels(&raw.tags, raw.friendly_name.as_deref())
            .map_err(|e| invalid(format!("key `tags` or `friendly_name`: {e}")))?;
        let items = items(raw.items).map_err(invalid)?;
        let sources = sources(raw.sources, &resolve).map_err(invalid)?;

        Ok(Config {
            path: path.to_path_buf(),
            server_url,
            repository_url,
            enrol_token,
            state_dir: raw
                .state_dir
                .map(|p| resolve(&p))
                .unwrap_or_else(|| PathBuf::from("/var/lib/ferry-agent")),
            trusted,
            signature_threshold,
            trust_root,
            poll_interval_secs: n.poll_interval_secs,
            auto_install: raw.auto_install.unwrap_or(false),
            device_class: raw.device_class,
            hostname: raw.hostname,
            hook_timeout_secs: n.hook_timeout_secs,
            health_probe: raw.health_probe.clone().filter(|c| !c.trim().is_empty()),
            metrics_file: raw.metrics_file.as_deref().map(&resolve),
            interactive_timeout_secs: n.interactive_timeout_secs,
            stop_grace_secs: n.stop_grace_secs,
            keep_releases: n.keep_releases,
            connect_timeout_secs: n.connect_timeout_secs,
            read_timeout_secs: n.read_timeout_secs,
            min_download_rate: n.min_download_rate,
            max_download_rate: n.max_download_rate,
            download_window: n.download_window,
            metered: n.metered,
            share_listen: n.share_listen,
            site: raw.site,
            download_retries: n.download_retries,
            tags: raw.tags,
            friendly_name: raw.friendly_name,
            long_poll_secs: n.long_poll_secs,
            lock_wait_secs: n.lock_wait_secs,
            server_ca,
            identity,
            poll_interval_min_secs: n.poll_interval_min_secs,
            poll_interval_max_secs: n.poll_interval_max_secs,
            items,
            sources,
        })
    }

    pub fn item(&self, name: &str) -> Option<&ItemConfig> {
        self.items.iter().find(|i| i.name == name)
    }
}

/// A TOML error for a person: an unknown key says which known key was probably meant
/// instead of listing them all.
fn describe(e: &toml::de::Error, text: &str) -> String {
    let message = e.message();
    let line = e
        .span()
        .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
    let at = line.map(|l| format!("line {l}: ")).unwrap_or_default();
    let Some(rest) = message.strip_prefix("unknown field `") else {
        return e.to_string();
    };
    let Some((key, known)) = rest.split_once('`') else {
        return e.to_string();
    };
    let known: Vec<&str> = known.split('`').skip(1).step_by(2).collect();
    let guess = known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(key, k), *k))
        .filter(|(d, k)| *d <= 3.max(k.len() / 4))
        .min();
    match guess {
        Some((_, k)) => format!("{at}unknown key `{key}`; did you mean `{k}`?"),
        None => format!("{at}unknown key `{key}` (docs/configuration.md lists every key)"),
    }
}

fn parse_server_url(text: &str) -> Result<reqwest::Url, String> {
    let mut url = reqwest::Url::parse(text).map_err(|e| format!("{text:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{text:?} must start with http:// or https://"));
    }
    if url.cannot_be_a_base() || url.host().is_none() {
        return Err(format!("{text:?} has no host"));
    }
    // Make relative joins append rather than replace the last path segment.
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

#[cfg(test)]
mod tests;
