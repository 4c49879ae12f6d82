//! The `updater` binary: parses the command line, sets up logging and runs
//! [`updater_cli::run`]. See the `updater_cli` crate docs for everything else.

use std::io::IsTerminal;

use clap::Parser;
use tracing_subscriber::EnvFilter;
use updater_cli::cli::Cli;

fn main() -> std::process::ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return std::process::ExitCode::from(updater_cli::usage_error(&error)),
    };
    let default_level = match cli.verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    // Colours only for a person at a terminal, and never with NO_COLOR (no-color.org).
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr)
        .init();
    std::process::ExitCode::from(updater_cli::run(&cli))
}
