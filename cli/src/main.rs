//! The `exmux` command line.
//!
//! Exit codes: 0 success; 1 the command ran and found a problem (a failed invariant, a
//! replica that does not match the server); 2 invalid usage or configuration; 3 the
//! server or network failed.

mod args;

use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    match cli.command {
        Command::Version => {
            println!("exmux {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
    }
}

/// Installs the log subscriber: warnings by default, more with each `-v`, and
/// `RUST_LOG` when set. Logs go to standard error so JSON output stays clean.
fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
