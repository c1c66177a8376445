//! Server configuration: embedded defaults, overridden by `--config server.toml`, overridden
//! by flags. Every key is documented in docs/configuration.md.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATA_DIR: &str = "./ferry-data";
/// A host that has not checked in for this long shows as offline: two missed polls at the
/// agent's default hourly interval, plus a minute.
pub const DEFAULT_OFFLINE_AFTER_SECS: u64 = 2 * 3600 + 60;
/// Largest artifact accepted on upload.
pub const DEFAULT_MAX_ARTIFACT_BYTES: u64 = 8 * 1024 * 1024 * 1024;

/// What a DDI client is told to sleep between polls, unless `ddi_poll_secs` or
/// `poll_interval_secs` says otherwise.
const DEFAULT_DDI_POLL_SECS: u64 = 300;

/// Longest a device's check-in may wait for work (long-poll), whatever it asks.
pub const DEFAULT_LONG_POLL_MAX_SECS: u64 = 55;

/// A device's request budget: a burst of this many, then this many a second. An agent makes
/// a few requests per cycle and at most five a second while it streams live output.
pub const DEFAULT_DEVICE_REQUEST_BURST: u64 = 120;
pub const DEFAULT_DEVICE_REQUESTS_PER_SEC: u64 = 10;
/// Enrolments per minute, fleet-wide: a fleet coming up at once enrols over a few minutes.
pub const DEFAULT_ENROLMENTS_PER_MINUTE: u64 = 600;
/// Free space the data directory keeps (MiB): deltas that would leave less are skipped.
pub const DEFAULT_MIN_FREE_DISK_MB: u64 = 512;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// A second listener serving only `GET /metrics`, without a token (`metrics_listen`).
    pub metrics_listen: Option<SocketAddr>,
    /// How long one webhook delivery may take before it counts as failed.
    pub webhook_timeout: std::time::Duration,
    /// Artifacts and deltas in S3-compatible object storage (`artifact_store`, `[s3]`);
    /// `None`: in the data directory.
    pub artifact_store: Option<crate::artifact_store::ObjectStoreConfig>,
    /// The secrets key from this file (or `FERRY_SECRETS_KEY`) instead of
    /// `DATA_DIR/secrets.key`.
    pub secrets_key_file: Option<PathBuf>,
    pub data_dir: PathBuf,
    pub offline_after_secs: u64,
    pub max_artifact_bytes: u64,
    /// The poll interval the server suggests to devices (they clamp it to their own bounds).
    pub poll_interval_secs: Option<u64>,
    /// The sleep a DDI client is told between polls (`config.polling.sleep`).
    pub ddi_poll_secs: u64,
    /// Artifact and delta bytes per second the server sends in all, and per download.
    pub max_egress_rate: Option<u64>,
    pub max_egress_rate_per_device: Option<u64>,
    /// Devices of one site that fetch a release from the server at once while the site's
    /// others wait to take it from them (0: no limit; docs/delivery.md).
    pub site_max_downloads: u32,
    pub long_poll_max_secs: u64,
    /// Deltas built when a release is published: from this many of the item's previous
    /// releases (0: no deltas at all).
    pub delta_from_releases: usize,
    /// Free space (bytes) the data directory keeps: deltas that would leave less are not
    /// built (`min_free_disk_mb`).
    pub min_free_disk_bytes: u64,
    /// Serve HTTPS with this certificate chain and key (PEM), so a small deployment needs no
    /// proxy.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// MQTT broker connections (`[[mqtt]]`), published to by the bridge.
    pub mqtt: Vec<MqttConnection>,
    /// A PostgreSQL database (`postgres://…`) shared by several instances; `None`: the
    /// embedded SQLite database in the data directory.
    pub database_url: Option<String>,
    /// Connections each instance keeps to PostgreSQL.
    pub database_max_connections: u32,
    /// Requests each device may make: a burst, then a steady rate (per instance).
    pub device_requests: crate::budget::Rate,
    /// Long-polls one device may hold at once; more are answered at once.
    pub device_long_polls_max: u32,
    /// Enrolments the whole fleet may make per minute (the burst too).
    pub enrolments_per_minute: u32,
    /// Whether a device's own tags (agent.toml) count for campaign targeting when the
    /// operator has not tagged it. Off: devices cannot choose their campaigns.
    pub trust_device_tags: bool,
    /// Single sign-on to the web UI (`[oidc]`).
    pub oidc: Option<crate::auth::oidc::OidcConfig>,
    /// How devices prove who they are: certificates, tokens, the CAs (docs/security.md).
    pub identity: crate::identity::IdentityConfig,
}

/// Checks a `--database`/`database_url` value: PostgreSQL's URL, whose password is never
/// shown back.
pub fn check_database_url(url: &str) -> anyhow::Result<()> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(())
    } else {
        anyhow::bail!(
            "database_url must be a PostgreSQL URL such as postgres://ferry@127.0.0.1:5432/ferry \
             (leave it out to use the embedded SQLite database in data_dir)"
        )
    }
}

/// One broker connection's publishing settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publishing {
    /// Prefix of every state topic (default `ferry`).
    pub prefix: String,
    /// Whether Home Assistant discovery configs are published.
    pub discovery: bool,
    /// Home Assistant's discovery prefix (default `homeassistant`).
    pub discovery_prefix: String,
    /// Only this tenant's hosts (a connection a tenant added); `None`: every host.
    pub tenant: Option<String>,
}

impl Default for Publishing {
    fn default() -> Self {
        Publishing {
            prefix: "ferry".into(),
            discovery: true,
            discovery_prefix: "homeassistant".into(),
            tenant: None,
        }
    }
}

/// One `[[mqtt]]` table of server.toml.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttFileConfig {
    pub name: String,
    pub url: String,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub topic_prefix: Option<String>,
    #[serde(default)]
    pub discovery: Option<bool>,
    #[serde(default)]
    pub discovery_prefix: Option<String>,
}

/// A broker connection, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttConnection {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    /// Read from `password_file` at start; never logged.
    pub password: Option<String>,
    pub client_id: String,
    pub publishing: Publishing,
    /// `mqtts://`: TLS, trusting `ca_file`'s certificates (PEM) when given, else the system's.
    pub tls: Option<Option<Vec<u8>>>,
}

impl MqttConnection {
    /// A `[[mqtt]]` table of server.toml: reads its password and CA files, then checks it.
    fn from_file(c: MqttFileConfig, file: &str) -> anyhow::Result<MqttConnection> {
        let bad = |what: String| anyhow::anyhow!("[[mqtt]] {:?} in {file}: {what}", c.name);
        let password = match &c.password_file {
            Some(p) => Some(
                std::fs::read_to_string(p)
                    .map_err(|e| bad(format!("cannot read `password_file` {}: {e}", p.display())))?
                    .trim_end_matches(['\n', '\r'])
                    .to_string(),
            ),
            None => None,
        };
        let ca = match &c.ca_file {
            Some(path) => Some(
                std::fs::read(path)
                    .map_err(|e| bad(format!("cannot read `ca_file` {}: {e}", path.display())))?,
            ),
            None => None,
        };
        MqttConnection::check(&c, password, ca).map_err(bad)
    }

    /// Checks a connection's settings (`spec`'s file fields are ignored: the secrets come
    /// as `password` and `ca_pem`). The error says which key is wrong and why.
    pub fn check(
        spec: &MqttFileConfig,
        password: Option<String>,
        ca_pem: Option<Vec<u8>>,
    ) -> Result<MqttConnection, String> {
        let name = spec.name.trim();
        if name.is_empty()
            || name.len() > 64
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            return Err(format!(
                "`name` {:?} must be 1-64 characters of letters, digits, '.', '_', '-'",
                spec.name
            ));
        }
        let (tls, rest) = match spec.url.split_once("://") {
            Some(("mqtt", rest)) => (false, rest),
            Some(("mqtts", rest)) => (true, rest),
            _ => {
                return Err(format!(
                    "`url` {:?} must look like mqtt://HOST:PORT or mqtts://HOST:PORT",
                    spec.url
                ))
            }
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) => (
                h.to_string(),
                p.parse::<u16>()
                    .map_err(|_| format!("port {p:?} in `url` is not a port"))?,
            ),
            None => (rest.to_string(), if tls { 8883 } else { 1883 }),
        };
        if host.is_empty() {
            return Err("`url` has no host".into());
        }
        let ca = match (ca_pem, tls) {
            (Some(_), false) => return Err("a CA certificate needs an mqtts:// url".into()),
            (Some(pem), true) => {
                use rustls::pki_types::pem::PemObject as _;
                let certs = rustls::pki_types::CertificateDer::pem_slice_iter(&pem)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| format!("the CA certificate is not PEM: {e}"))?;
                if certs.is_empty() {
                    return Err("the CA certificate PEM holds no certificate".into());
                }
                Some(pem)
            }
            (None, _) => None,
        };
        let prefix = spec.topic_prefix.clone().unwrap_or_else(|| "ferry".into());
        let discovery_prefix = spec
            .discovery_prefix
            .clone()
            .unwrap_or_else(|| "homeassistant".into());
        for (key, value) in [
            ("topic_prefix", &prefix),
            ("discovery_prefix", &discovery_prefix),
        ] {
            if value.is_empty()
                || value.contains(['+', '#'])
                || value.starts_with('/')
                || value.ends_with('/')
            {
                return Err(format!(
                    "`{key}` {value:?} must be a topic without wildcards or leading or trailing /"
                ));
            }
        }
        Ok(MqttConnection {
            client_id: spec
                .client_id
                .clone()
                .unwrap_or_else(|| format!("ferry-server-{name}")),
            tls: tls.then_some(ca),
            name: name.to_string(),
            host,
            port,
            username: spec.username.clone(),
            password,
            publishing: Publishing {
                prefix,
                discovery: spec.discovery.unwrap_or(true),
                discovery_prefix,
                tenant: None,
            },
        })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<String>,
    pub metrics_listen: Option<String>,
    pub webhook_timeout_secs: Option<u64>,
    pub artifact_store: Option<String>,
    #[serde(default)]
    pub s3: Option<S3FileConfig>,
    pub secrets_key_file: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    pub offline_after_secs: Option<u64>,
    pub max_artifact_bytes: Option<u64>,
    pub poll_interval_secs: Option<u64>,
    pub ddi_poll_secs: Option<u64>,
    pub max_egress_rate: Option<String>,
    pub max_egress_rate_per_device: Option<String>,
    pub site_max_downloads: Option<u64>,
    pub long_poll_max_secs: Option<u64>,
    pub delta_from_releases: Option<u64>,
    pub min_free_disk_mb: Option<u64>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub database_url: Option<String>,
    pub database_max_connections: Option<u64>,
    pub device_requests_per_sec: Option<u64>,
    pub device_request_burst: Option<u64>,
    pub device_long_polls_max: Option<u64>,
    pub enrolments_per_minute: Option<u64>,
    pub trust_device_tags: Option<bool>,
    #[serde(default)]
    pub mqtt: Vec<MqttFileConfig>,
    #[serde(default)]
    pub oidc: Option<crate::auth::oidc::OidcFileConfig>,
    pub device_auth: Option<crate::identity::DeviceAuth>,
    pub device_ca_file: Option<PathBuf>,
    pub factory_devices: Option<crate::identity::FactoryDevices>,
    pub device_ca_cert: Option<PathBuf>,
    pub device_ca_key: Option<PathBuf>,
    pub device_certificate_lifetime_secs: Option<u64>,
    pub client_cert_header: Option<String>,
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    pub log_format: Option<LogFormat>,
}

/// `[s3]`: how the server reaches the object storage of `artifact_store`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3FileConfig {
    /// An S3-compatible service (`http://127.0.0.1:9000`); none: AWS S3.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// `access_key_id = "…"`, `secret_access_key = "…"` (`session_token`): else the
    /// environment's `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`.
    pub credentials_file: Option<PathBuf>,
    /// Devices download from URLs of the store signed for this long (60 … 604800); none:
    /// through the server.
    pub presigned_url_secs: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialsFile {
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
}

/// `artifact_store` and `[s3]`, checked.
fn object_store_config(
    fc: &FileConfig,
    from_file: &str,
) -> anyhow::Result<Option<crate::artifact_store::ObjectStoreConfig>> {
    let Some(url) = &fc.artifact_store else {
        if fc.s3.is_some() {
            anyhow::bail!("[s3] is set but artifact_store is not: give artifact_store = \"s3://BUCKET/PREFIX\" (in {from_file})");
        }
        return Ok(None);
    };
    let (bucket, prefix) = crate::artifact_store::parse_url(url)
        .map_err(|e| anyhow::anyhow!("{e} (in {from_file})"))?;
    let s3 = fc.s3.as_ref();
    let credentials = match s3.and_then(|s| s.credentials_file.as_ref()) {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                anyhow::anyhow!(
                    "cannot read the S3 credentials file {}: {e}",
                    path.display()
                )
            })?;
            let c: CredentialsFile = toml::from_str(&text).map_err(|e| {
                anyhow::anyhow!(
                    "the S3 credentials file {} is not access_key_id = \"…\" and secret_access_key = \"…\": {}",
                    path.display(),
                    e.message()
                )
            })?;
            Some(crate::artifact_store::Credentials {
                access_key_id: c.access_key_id,
                secret_access_key: c.secret_access_key,
                session_token: c.session_token,
            })
        }
        None => None,
    };
    let presign = s3
        .and_then(|s| s.presigned_url_secs)
        .map(|secs| in_range("presigned_url_secs", secs, 60..=7 * 24 * 3600, from_file))
        .transpose()?
        .map(std::time::Duration::from_secs);
    if let Some(e) = s3.and_then(|s| s.endpoint.as_ref()) {
        if !(e.starts_with("http://") || e.starts_with("https://")) {
            anyhow::bail!("[s3] endpoint {e:?} is not an http(s):// URL (in {from_file})");
        }
    }
    Ok(Some(crate::artifact_store::ObjectStoreConfig {
        bucket,
        prefix,
        endpoint: s3.and_then(|s| s.endpoint.clone()),
        region: s3.and_then(|s| s.region.clone()),
        credentials,
        presign,
    }))
}

/// How log lines are written: text for people and journald, or one JSON object a line for
/// log shippers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// `log_format` of server.toml, read before anything else is (logging starts first).
pub fn log_format(file: Option<&Path>) -> anyhow::Result<LogFormat> {
    Ok(FileConfig::read(file)?.log_format.unwrap_or_default())
}

impl ServerConfig {
    /// Merges defaults, the optional file and flags (flags win).
    pub fn build(
        file: Option<&Path>,
        listen: Option<String>,
        data_dir: Option<PathBuf>,
    ) -> anyhow::Result<ServerConfig> {
        Self::build_with_tls(file, listen, data_dir, None, None)
    }

    /// As [`ServerConfig::build`], with `--tls-cert`/`--tls-key` (which win over the file).
    pub fn build_with_tls(
        file: Option<&Path>,
        listen: Option<String>,
        data_dir: Option<PathBuf>,
        tls_cert: Option<PathBuf>,
        tls_key: Option<PathBuf>,
    ) -> anyhow::Result<ServerConfig> {
        let fc = FileConfig::read(file)?;
        let from_file = file.map(|p| p.display().to_string()).unwrap_or_default();
        let identity = identity_config(&fc, &from_file)?;
        let artifact_store = object_store_config(&fc, &from_file)?;
        // A flag wins over the file, but never silently.
        let overridden = |key: &str, flag: &Option<String>, file_value: &Option<String>| {
            if let (Some(f), Some(v)) = (flag, file_value) {
                if f != v {
                    tracing::info!("{key} {f} from the command line, over {v} in {from_file}");
                }
            }
        };
        overridden("listen", &listen, &fc.listen);
        overridden(
            "data_dir",
            &data_dir.as_ref().map(|p| p.display().to_string()),
            &fc.data_dir.as_ref().map(|p| p.display().to_string()),
        );
        let listen_text = listen
            .or(fc.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.to_string());
        let listen = resolve_listen(&listen_text)?;
        let metrics_listen = fc
            .metrics_listen
            .as_deref()
            .map(|m| {
                resolve_listen(m)
                    .map_err(|e| anyhow::anyhow!("metrics_listen: {e} (in {from_file})"))
            })
            .transpose()?;
        if metrics_listen == Some(listen) {
            anyhow::bail!(
                "metrics_listen is the same address as listen ({listen}): give it another port, or leave it out to serve /metrics on the listener (in {from_file})"
            );
        }
        let in_range = |key: &str, value: u64, range: std::ops::RangeInclusive<u64>| {
            in_range(key, value, range, &from_file)
        };
        let offline_after_secs = in_range(
            "offline_after_secs",
            fc.offline_after_secs.unwrap_or(DEFAULT_OFFLINE_AFTER_SECS),
            60..=30 * 24 * 3600,
        )?;
        let poll_interval_secs = fc
            .poll_interval_secs
            .map(|v| in_range("poll_interval_secs", v, 10..=7 * 24 * 3600))
            .transpose()?;
        // DDI clients cannot long-poll: their sleep is what makes an install start soon.
        let ddi_poll_secs = in_range(
            "ddi_poll_secs",
            fc.ddi_poll_secs
                .or(poll_interval_secs)
                .unwrap_or(DEFAULT_DDI_POLL_SECS),
            1..=7 * 24 * 3600,
        )?;
        let rate = |key: &str, text: &Option<String>| -> anyhow::Result<Option<u64>> {
            text.as_deref()
                .map(|t| {
                    t.parse::<ferry_manifests::rate::Rate>()
                        .map(|r| r.0)
                        .map_err(|e| anyhow::anyhow!("{key}: {e} (in {from_file})"))
                })
                .transpose()
        };
        let max_egress_rate = rate("max_egress_rate", &fc.max_egress_rate)?;
        let max_egress_rate_per_device =
            rate("max_egress_rate_per_device", &fc.max_egress_rate_per_device)?;
        let site_max_downloads = in_range(
            "site_max_downloads",
            fc.site_max_downloads.unwrap_or(1),
            0..=10_000,
        )? as u32;
        let long_poll_max_secs = in_range(
            "long_poll_max_secs",
            fc.long_poll_max_secs.unwrap_or(DEFAULT_LONG_POLL_MAX_SECS),
            0..=300,
        )?;
        let delta_from_releases = in_range(
            "delta_from_releases",
            fc.delta_from_releases.unwrap_or(3),
            0..=100,
        )? as usize;
        let min_free_disk_bytes = in_range(
            "min_free_disk_mb",
            fc.min_free_disk_mb.unwrap_or(DEFAULT_MIN_FREE_DISK_MB),
            0..=u64::MAX / (1024 * 1024),
        )? * 1024
            * 1024;
        let max_artifact_bytes = in_range(
            "max_artifact_bytes",
            fc.max_artifact_bytes.unwrap_or(DEFAULT_MAX_ARTIFACT_BYTES),
            1..=u64::MAX,
        )?;
        let tls = match (tls_cert.or(fc.tls_cert), tls_key.or(fc.tls_key)) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => anyhow::bail!("give both a TLS certificate and a key (--tls-cert and --tls-key)"),
        };
        if let Some(url) = &fc.database_url {
            check_database_url(url).map_err(|e| anyhow::anyhow!("{e} (in {from_file})"))?;
        }
        let database_max_connections = in_range(
            "database_max_connections",
            fc.database_max_connections.unwrap_or(16),
            1..=1000,
        )? as u32;
        let device_requests = crate::budget::Rate {
            burst: in_range(
                "device_request_burst",
                fc.device_request_burst
                    .unwrap_or(DEFAULT_DEVICE_REQUEST_BURST),
                1..=100_000,
            )? as u32,
            per_sec: in_range(
                "device_requests_per_sec",
                fc.device_requests_per_sec
                    .unwrap_or(DEFAULT_DEVICE_REQUESTS_PER_SEC),
                1..=10_000,
            )? as f64,
        };
        let device_long_polls_max = in_range(
            "device_long_polls_max",
            fc.device_long_polls_max.unwrap_or(2),
            1..=100,
        )? as u32;
        let enrolments_per_minute = in_range(
            "enrolments_per_minute",
            fc.enrolments_per_minute
                .unwrap_or(DEFAULT_ENROLMENTS_PER_MINUTE),
            1..=1_000_000,
        )? as u32;
        let webhook_timeout = std::time::Duration::from_secs(in_range(
            "webhook_timeout_secs",
            fc.webhook_timeout_secs.unwrap_or(10),
            1..=60,
        )?);
        let oidc = fc
            .oidc
            .map(|c| crate::auth::oidc::OidcConfig::from_file(c, &from_file))
            .transpose()?;
        Ok(ServerConfig {
            identity,
            oidc,
            trust_device_tags: fc.trust_device_tags.unwrap_or(false),
            device_requests,
            device_long_polls_max,
            enrolments_per_minute,
            mqtt: mqtt_connections(fc.mqtt, &from_file)?,
            database_url: fc.database_url,
            database_max_connections,
            tls,
            listen,
            metrics_listen,
            webhook_timeout,
            artifact_store,
            secrets_key_file: fc.secrets_key_file,
            data_dir: data_dir
                .or(fc.data_dir)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            offline_after_secs,
            max_artifact_bytes,
            poll_interval_secs,
            ddi_poll_secs,
            max_egress_rate,
            max_egress_rate_per_device,
            site_max_downloads,
            long_poll_max_secs,
            delta_from_releases,
            min_free_disk_bytes,
        })
    }
}

/// The device identity keys of server.toml, checked.
fn identity_config(
    fc: &FileConfig,
    from_file: &str,
) -> anyhow::Result<crate::identity::IdentityConfig> {
    let mut c = crate::identity::IdentityConfig::default();
    if let Some(mode) = fc.device_auth {
        c.device_auth = mode;
    }
    c.device_ca_file = fc.device_ca_file.clone();
    if let Some(f) = fc.factory_devices {
        c.factory_devices = f;
    }
    c.issuing_ca = match (&fc.device_ca_cert, &fc.device_ca_key) {
        (Some(cert), Some(key)) => Some((cert.clone(), key.clone())),
        (None, None) => None,
        _ => anyhow::bail!(
            "give both device_ca_cert and device_ca_key (the CA that issues devices' certificates), or neither (in {from_file})"
        ),
    };
    if let Some(secs) = fc.device_certificate_lifetime_secs {
        let secs = in_range(
            "device_certificate_lifetime_secs",
            secs,
            10..=3650 * 24 * 3600,
            from_file,
        )?;
        c.certificate_lifetime = time::Duration::seconds(secs as i64);
    }
    if let Some(h) = &fc.client_cert_header {
        c.client_cert_header = Some(h.parse().map_err(|_| {
            anyhow::anyhow!("client_cert_header {h:?} is not an HTTP header name (in {from_file})")
        })?);
        if fc.trusted_proxies.is_empty() {
            anyhow::bail!(
                "client_cert_header needs trusted_proxies: the addresses of the proxies allowed to send it (in {from_file})"
            );
        }
    }
    for p in &fc.trusted_proxies {
        c.trusted_proxies.push(p.parse().map_err(|_| {
            anyhow::anyhow!("trusted_proxies: {p:?} is not an IP address (in {from_file})")
        })?);
    }
    Ok(c)
}

/// `HOST:PORT`, with HOST an address or a name (`localhost:8080`); a name resolves to its
/// first address.
fn resolve_listen(text: &str) -> anyhow::Result<SocketAddr> {
    use std::net::ToSocketAddrs;
    if let Ok(addr) = text.parse() {
        return Ok(addr);
    }
    let mut addrs = text.to_socket_addrs().map_err(|e| {
        anyhow::anyhow!("listen address {text:?} must be HOST:PORT, such as 127.0.0.1:8080 or localhost:8080: {e}")
    })?;
    addrs
        .next()
        .ok_or_else(|| anyhow::anyhow!("listen address {text:?} resolves to no address"))
}

impl FileConfig {
    /// server.toml, or the defaults without one.
    fn read(file: Option<&Path>) -> anyhow::Result<FileConfig> {
        let Some(path) = file else {
            return Ok(FileConfig::default());
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read config {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("invalid config {}: {e}", path.display()))
    }
}

/// `value` when it is in `range`; else an error naming the key (and the file it came from).
fn in_range(
    key: &str,
    value: u64,
    range: std::ops::RangeInclusive<u64>,
    from_file: &str,
) -> anyhow::Result<u64> {
    if range.contains(&value) {
        return Ok(value);
    }
    let place = if from_file.is_empty() {
        String::new()
    } else {
        format!(" (in {from_file})")
    };
    Err(anyhow::anyhow!(
        "{key} = {value} must be between {} and {}{place}",
        range.start(),
        range.end()
    ))
}

/// The `[[mqtt]]` tables, each checked, names unique.
fn mqtt_connections(
    tables: Vec<MqttFileConfig>,
    from_file: &str,
) -> anyhow::Result<Vec<MqttConnection>> {
    let mut mqtt: Vec<MqttConnection> = Vec::new();
    for c in tables {
        let c = MqttConnection::from_file(c, from_file)?;
        if mqtt.iter().any(|m| m.name == c.name) {
            anyhow::bail!("[[mqtt]] {:?} appears twice in {from_file}", c.name);
        }
        mqtt.push(c);
    }
    Ok(mqtt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_file_and_flags_merge_with_flags_winning() {
        let c = ServerConfig::build(None, None, None).unwrap();
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("server.example.toml");
        let c = ServerConfig::build(Some(&example), Some("127.0.0.1:9999".into()), None).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:9999");
        assert_eq!(c.data_dir, PathBuf::from("/var/lib/ferry-server"));
    }

    #[test]
    fn values_are_checked_and_names_resolve() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("server.toml");
        for (text, key) in [
            ("poll_interval_secs = 0\n", "poll_interval_secs"),
            ("long_poll_max_secs = 100000\n", "long_poll_max_secs"),
            ("offline_after_secs = 0\n", "offline_after_secs"),
        ] {
            std::fs::write(&p, text).unwrap();
            let err = ServerConfig::build(Some(&p), None, None)
                .unwrap_err()
                .to_string();
            assert!(err.contains(key) && err.contains("between"), "{err}");
            assert!(err.contains("server.toml"), "{err}");
        }
        let c = ServerConfig::build(None, Some("localhost:8097".into()), None).unwrap();
        assert_eq!(c.listen.port(), 8097);
        assert!(c.listen.ip().is_loopback());
        assert!(ServerConfig::build(None, Some("no-port".into()), None).is_err());
    }

    #[test]
    fn unknown_keys_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("server.toml");
        std::fs::write(&p, "lisen = \"x\"\n").unwrap();
        let err = ServerConfig::build(Some(&p), None, None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("lisen") && err.contains("server.toml"),
            "{err}"
        );
    }

    #[test]
    fn the_object_store_and_its_credentials_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("server.toml");
        let creds = dir.path().join("s3.toml");
        std::fs::write(
            &creds,
            "access_key_id = \"AKIA1\"\nsecret_access_key = \"s3cret\"\n",
        )
        .unwrap();
        std::fs::write(
            &p,
            format!(
                "artifact_store = \"s3://fleet/prod/\"\n[s3]\nendpoint = \"http://127.0.0.1:9000\"\ncredentials_file = \"{}\"\npresigned_url_secs = 300\n",
                creds.display()
            ),
        )
        .unwrap();
        let c = ServerConfig::build(Some(&p), None, None).unwrap();
        let store = c.artifact_store.unwrap();
        assert_eq!(
            (store.bucket.as_str(), store.prefix.as_str()),
            ("fleet", "prod")
        );
        assert_eq!(store.credentials.unwrap().access_key_id, "AKIA1");
        assert_eq!(store.presign, Some(std::time::Duration::from_secs(300)));
        for (text, says) in [
            ("artifact_store = \"/srv/artifacts\"\n", "s3://"),
            ("[s3]\nregion = \"eu-west-1\"\n", "artifact_store"),
            (
                "artifact_store = \"s3://b\"\n[s3]\nendpoint = \"127.0.0.1:9000\"\n",
                "http",
            ),
            (
                "artifact_store = \"s3://b\"\n[s3]\npresigned_url_secs = 5\n",
                "presigned_url_secs",
            ),
            (
                "artifact_store = \"s3://b\"\n[s3]\ncredentials_file = \"/nonexistent/s3.toml\"\n",
                "/nonexistent/s3.toml",
            ),
        ] {
            std::fs::write(&p, text).unwrap();
            let err = format!(
                "{:#}",
                ServerConfig::build(Some(&p), None, None).unwrap_err()
            );
            assert!(err.contains(says), "{text}: {err}");
        }
        std::fs::write(&creds, "access_key = \"x\"\n").unwrap();
        std::fs::write(
            &p,
            format!(
                "artifact_store = \"s3://b\"\n[s3]\ncredentials_file = \"{}\"\n",
                creds.display()
            ),
        )
        .unwrap();
        let err = format!(
            "{:#}",
            ServerConfig::build(Some(&p), None, None).unwrap_err()
        );
        assert!(
            err.contains("secret_access_key") && !err.contains("\"x\""),
            "{err}"
        );
    }
}
