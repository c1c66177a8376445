//! ferry-server: starts with zero configuration on embedded defaults.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use ferry_server::config::{LogFormat, ServerConfig};

#[derive(Parser)]
#[command(name = "ferry-server", version, about = "Ferry's fleet update server")]
struct Cli {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "FERRY_LISTEN")]
    listen: Option<String>,
    /// Directory for the database, artifacts and first tokens [default: ./ferry-data].
    #[arg(long, env = "FERRY_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// Optional server.toml (flags win over it).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Serve HTTPS: certificate chain (PEM).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// Serve HTTPS: private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// PostgreSQL database shared by several instances (postgres://USER[:PASSWORD]@HOST:PORT/NAME)
    /// [default: SQLite in the data directory].
    #[arg(long, env = "FERRY_DATABASE_URL", value_name = "URL", global = true)]
    database: Option<String>,
    /// Trust device certificates from this factory CA (PEM): such devices join on first
    /// contact, without an enrolment token.
    #[arg(long, value_name = "FILE")]
    device_ca_file: Option<PathBuf>,
    /// How devices may prove who they are: `certificate` (client certificates only),
    /// `token` (bearer tokens only) or `both` [default: both].
    #[arg(long, value_name = "MODE")]
    device_auth: Option<ferry_server::identity::DeviceAuth>,
    /// Log lines as text (the default) or one JSON object a line (`log_format` in
    /// server.toml).
    #[arg(long, value_name = "FORMAT", env = "FERRY_LOG_FORMAT")]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Copy the data directory of a server, running or not, into one file: a consistent
    /// copy of its SQLite database (taken while it serves), the secrets key, the device CA,
    /// the first tokens and the artifacts (docs/operations.md, "Backups").
    Backup {
        /// The backup file to write (replaced atomically, mode 0600).
        #[arg(long, value_name = "FILE")]
        to: PathBuf,
        /// Leave the artifacts out (kept elsewhere, or too large to copy each time).
        #[arg(long)]
        without_artifacts: bool,
    },
    /// Make a new data directory from a backup (the directory must not exist or be empty);
    /// then start ferry-server on it.
    Restore {
        /// The backup file (`ferry-server backup --to FILE`).
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
    },
    /// Exit 0 when the server at URL is ready (its database answers), else 1 saying why: a
    /// container's HEALTHCHECK, which has no curl.
    Healthcheck {
        #[arg(long, default_value = "http://127.0.0.1:8080/readyz")]
        url: String,
    },
}

#[tokio::main]
async fn main() {
    let mut cli = Cli::parse();
    let format = match cli.log_format {
        Some(f) => f,
        None => match ferry_server::config::log_format(cli.config.as_deref()) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("ferry-server: {e:#}");
                std::process::exit(1);
            }
        },
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("FERRY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => logs
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    if let Some(command) = cli.command.take() {
        if let Err(e) = run_command(command, &cli).await {
            eprintln!("ferry-server: {e:#}");
            std::process::exit(1);
        }
        return;
    }
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

/// `backup`, `restore` and `healthcheck`.
async fn run_command(command: Command, cli: &Cli) -> anyhow::Result<()> {
    if let Command::Healthcheck { url } = &command {
        return healthcheck(url).await;
    }
    let config = ServerConfig::build_with_tls(
        cli.config.as_deref(),
        None,
        cli.data_dir.clone(),
        None,
        None,
    )?;
    let postgres = cli.database.is_some() || config.database_url.is_some();
    match command {
        Command::Backup {
            to,
            without_artifacts,
        } => {
            let s =
                ferry_server::backup::backup(&config.data_dir, !postgres, !without_artifacts, &to)
                    .await?;
            println!(
                "wrote {}: {}{} files, {} bytes",
                to.display(),
                if s.database { "the database and " } else { "" },
                s.files,
                s.bytes
            );
            if postgres {
                println!(
                    "the database is on PostgreSQL: back it up with pg_dump (docs/operations.md)"
                );
            }
        }
        Command::Healthcheck { .. } => {}
        Command::Restore { from } => {
            let s = ferry_server::backup::restore(&from, &config.data_dir)?;
            println!(
                "restored {} into {}: {}{} files; start ferry-server with --data-dir {}",
                from.display(),
                config.data_dir.display(),
                if s.database { "the database and " } else { "" },
                s.files,
                config.data_dir.display()
            );
        }
    }
    Ok(())
}

async fn healthcheck(url: &str) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .build()?;
    let resp = client
        .get(url)
        .send()
        .await
        .with_context(|| format!("no answer from {url}"))?;
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    if status.is_success() {
        println!("ready: {}", body.trim());
        Ok(())
    } else {
        anyhow::bail!("{url} answered {status}: {}", body.trim())
    }
}
