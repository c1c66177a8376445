//! ferry-server: starts with zero configuration on embedded defaults.

use std::path::PathBuf;

use clap::Parser;
use ferry_server::config::ServerConfig;

#[derive(Parser)]
#[command(name = "ferry-server", version, about = "Ferry's fleet update server")]
struct Cli {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "FERRY_LISTEN")]
    listen: Option<String>,
    /// Directory for the database, artifacts and first tokens [default: ./ferry-data].
    #[arg(long, env = "FERRY_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Optional server.toml (flags win over it).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Serve HTTPS: certificate chain (PEM).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// Serve HTTPS: private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// PostgreSQL database shared by several instances (postgres://USER[:PASSWORD]@HOST:PORT/NAME)
    /// [default: SQLite in the data directory].
    #[arg(long, env = "FERRY_DATABASE_URL", value_name = "URL")]
    database: Option<String>,
    /// Trust device certificates from this factory CA (PEM): such devices join on first
    /// contact, without an enrolment token.
    #[arg(long, value_name = "FILE")]
    device_ca_file: Option<PathBuf>,
    /// How devices may prove who they are: `certificate` (client certificates only),
    /// `token` (bearer tokens only) or `both` [default: both].
    #[arg(long, value_name = "MODE")]
    device_auth: Option<ferry_server::identity::DeviceAuth>,
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FERRY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let result = match ServerConfig::build_with_tls(
        cli.config.as_deref(),
        cli.listen,
        cli.data_dir,
        cli.tls_cert,
        cli.tls_key,
    ) {
        Ok(mut config) => {
            if let Some(file) = cli.device_ca_file {
                config.identity.device_ca_file = Some(file);
            }
            if let Some(mode) = cli.device_auth {
                config.identity.device_auth = mode;
            }
            match cli.database {
                Some(url) => match ferry_server::config::check_database_url(&url) {
                    Ok(()) => {
                        config.database_url = Some(url);
                        ferry_server::serve(config).await
                    }
                    Err(e) => Err(e),
                },
                None => ferry_server::serve(config).await,
            }
        }
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        eprintln!("ferry-server: {e:#}");
        std::process::exit(1);
    }
}
