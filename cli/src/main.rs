//! The `exmux` command line.

use clap::{Parser, Subcommand};

/// exmux: a transport layer for Microsoft Exchange over EWS and MAPI/HTTP.
#[derive(Debug, Parser)]
#[command(name = "exmux", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the version and exit.
    Version,
}

fn main() {
    let cli = Cli::parse();
    match cli.command {
        Command::Version => println!("exmux {}", env!("CARGO_PKG_VERSION")),
    }
}
