//! ferryctl: operate a Ferry fleet and sign releases.

use clap::Parser;

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = ferry_server::cli::Cli::parse();
    if let Err(e) = ferry_server::cli::run(cli) {
        eprintln!("ferryctl: {e:#}");
        std::process::exit(1);
    }
}
