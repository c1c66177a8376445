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

/// Longest a device's check-in may wait for work (long-poll), whatever it asks.
pub const DEFAULT_LONG_POLL_MAX_SECS: u64 = 55;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub offline_after_secs: u64,
    pub max_artifact_bytes: u64,
    /// The poll interval the server suggests to devices (they clamp it to their own bounds).
    pub poll_interval_secs: Option<u64>,
    pub long_poll_max_secs: u64,
    /// Serve HTTPS with this certificate chain and key (PEM), so a small deployment needs no
    /// proxy.
    pub tls: Option<(PathBuf, PathBuf)>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub offline_after_secs: Option<u64>,
    pub max_artifact_bytes: Option<u64>,
    pub poll_interval_secs: Option<u64>,
    pub long_poll_max_secs: Option<u64>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
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
        let fc: FileConfig = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| anyhow::anyhow!("cannot read config {}: {e}", path.display()))?;
                toml::from_str(&text)
                    .map_err(|e| anyhow::anyhow!("invalid config {}: {e}", path.display()))?
            }
            None => FileConfig::default(),
        };
        let listen_text = listen
            .or(fc.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.to_string());
        let listen = listen_text
            .parse()
            .map_err(|e| anyhow::anyhow!("listen address {listen_text:?} is not HOST:PORT: {e}"))?;
        let offline_after_secs = fc.offline_after_secs.unwrap_or(DEFAULT_OFFLINE_AFTER_SECS);
        if offline_after_secs == 0 {
            anyhow::bail!("offline_after_secs must be at least 1");
        }
        let tls = match (tls_cert.or(fc.tls_cert), tls_key.or(fc.tls_key)) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => anyhow::bail!("give both a TLS certificate and a key (--tls-cert and --tls-key)"),
        };
        Ok(ServerConfig {
            tls,
            listen,
            data_dir: data_dir
                .or(fc.data_dir)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            offline_after_secs,
            max_artifact_bytes: fc.max_artifact_bytes.unwrap_or(DEFAULT_MAX_ARTIFACT_BYTES),
            poll_interval_secs: fc.poll_interval_secs,
            long_poll_max_secs: fc.long_poll_max_secs.unwrap_or(DEFAULT_LONG_POLL_MAX_SECS),
        })
    }
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
}
