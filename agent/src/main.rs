//! ferry-agent's command line. Exit codes are documented in docs/operations.md and defined in
//! `ferry_agent::error::exit`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use clap::Parser;
use ferry_agent::config::{Config, DEFAULT_CONFIG};
use ferry_agent::error::Error;
use ferry_agent::{fsops, run_mode, Agent, Mode};

#[derive(Parser)]
#[command(
    name = "ferry-agent",
    version,
    about = "Ferry's on-device update agent"
)]
struct Cli {
    /// Path of the agent configuration.
    #[arg(long, short, default_value = DEFAULT_CONFIG, env = "FERRY_AGENT_CONFIG")]
    config: PathBuf,
    /// What to do: once, full, check, download, install, status, rollback, campaign_check,
    /// campaign_accept, share.
    #[arg(long = "running-mode", value_enum, default_value = "full")]
    running_mode: Mode,
    /// The item for `--running-mode=rollback`.
    #[arg(long)]
    item: Option<String>,
    /// The campaign for `--running-mode=campaign_accept`.
    #[arg(long = "campaign-id")]
    campaign_id: Option<String>,
    /// With `--running-mode=status`: one JSON object for a dashboard (docs/dashboard.md).
    #[arg(long)]
    json: bool,
    /// Print the directories the agent writes besides its state directory (each item's
    /// root), one a line, and exit: for a service manager's sandbox (ReadWritePaths).
    #[arg(long)]
    print_write_paths: bool,
}

fn main() {
    // The local offset can only be read safely while the process has a single thread.
    let utc_offset = time::UtcOffset::current_local_offset()
        .ok()
        .map(|o| o.whole_seconds());
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FERRY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let _ = rustls::crypto::ring::default_provider().install_default();
    std::process::exit(run(cli, utc_offset));
}

fn run(cli: Cli, utc_offset: Option<i32>) -> i32 {
    let cfg = match Config::load(&cli.config) {
        Ok(c) => c,
        // A fresh install (the package's config): one line, and no failed unit.
        Err(e @ ferry_agent::config::ConfigError::Unconfigured { .. }) => {
            eprintln!("ferry-agent: {e}");
            return 0;
        }
        Err(e) => {
            let e = Error::from(e);
            eprintln!("ferry-agent: {e}");
            return e.exit_code();
        }
    };
    if cli.print_write_paths {
        for item in &cfg.items {
            println!("{}", item.root.display());
        }
        return 0;
    }
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        if let Err(e) = signal_hook::flag::register(signal, Arc::clone(&stop)) {
            eprintln!("ferry-agent: cannot install signal handler: {e}");
        }
    }
    let wake = Arc::new(AtomicBool::new(false));
    if let Err(e) = signal_hook::flag::register(signal_hook::consts::SIGUSR1, Arc::clone(&wake)) {
        eprintln!("ferry-agent: cannot install signal handler: {e}");
    }
    let progress = std::io::stderr().is_terminal();
    let result = Agent::unlocked(cfg, progress, fsops::for_run()).and_then(|mut agent| {
        agent.stop = Arc::clone(&stop);
        agent.utc_offset_secs = utc_offset;
        agent.json = cli.json;
        agent.wake = Arc::clone(&wake);
        run_mode(
            cli.running_mode,
            cli.item.as_deref(),
            cli.campaign_id.as_deref(),
            &mut agent,
        )
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            // One clear line, not a stack of errors.
            eprintln!("ferry-agent: {e}");
            e.exit_code()
        }
    }
}
