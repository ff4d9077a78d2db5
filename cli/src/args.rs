//! Command-line arguments.

use clap::{Parser, Subcommand};

/// exmux: a transport layer for Microsoft Exchange over EWS and MAPI/HTTP.
#[derive(Debug, Parser)]
#[command(name = "exmux", version, about, long_about = None)]
pub struct Cli {
    /// Log more: -v info, -vv debug, -vvv trace (to standard error; RUST_LOG overrides).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the version and exit.
    Version,
}
