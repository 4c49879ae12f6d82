//! The `updater` binary: parses the command line, sets up logging and runs
//! [`updater_cli::run`]. See the `updater_cli` crate docs for everything else.

use clap::Parser;
use tracing_subscriber::EnvFilter;
use updater_cli::cli::Cli;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let default_level = match cli.verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    std::process::ExitCode::from(updater_cli::run(&cli))
}
