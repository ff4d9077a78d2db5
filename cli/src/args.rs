//! Command-line arguments.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use exmux::decode::Kind;

/// exmux: a transport layer for Microsoft Exchange over EWS and MAPI/HTTP.
///
/// Exit codes: 0 success, 1 the command ran and found a problem, 2 invalid usage or
/// configuration, 3 the server or network failed. Problems that exit 1 are a replica
/// that does not match the server, a full resync or a broken invariant (demo, sim), a
/// state that cannot be saved (sync) and a body that does not decode (decode). A full
/// resync that the server demands during sync is reported, not an error.
#[derive(Debug, Parser)]
#[command(name = "exmux", version, about, long_about)]
pub struct Cli {
    /// Log more: -v info, -vv debug, -vvv trace (to standard error; RUST_LOG overrides).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

/// A named routing of the demo.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RoutingArg {
    /// Everything over EWS.
    Ews,
    /// Everything over MAPI/HTTP.
    Mapi,
    /// Everything over MAPI/HTTP except fetching item content, which stays on EWS.
    Hybrid,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Play the read-then-delete race against a loopback emulator and check the result.
    ///
    /// Starts the emulator on 127.0.0.1, connects with the routing, marks a message read
    /// and deletes it 5 ms later while a second client changes other messages. Then it
    /// deletes another message while the emulator delays that delete by 1 s and the
    /// second client marks the message read. Prints every event with its origin and a
    /// summary. Exits 1 when the replica differs from the server, or a full resync
    /// happened.
    Demo {
        /// The routing to play.
        #[arg(long, value_enum, default_value = "hybrid")]
        routing: RoutingArg,
        /// Print only the summary, as one JSON object.
        #[arg(long)]
        json: bool,
        /// Record every exchange the emulator serves to DIR, in the captures/ layout.
        #[arg(long, value_name = "DIR")]
        record: Option<PathBuf>,
    },
    /// Incrementally sync every mail folder of the configured mailbox.
    ///
    /// The sync state is saved after the run; the next run reports only what changed.
    Sync {
        /// The configuration file (TOML: [server], [auth], [routing]).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// The sync state file. Default: the configuration file's name with
        /// `.state.json` appended, beside it (exmux.toml -> exmux.toml.state.json).
        #[arg(long, value_name = "FILE")]
        state: Option<PathBuf>,
        /// Record every HTTP request and response of both backends to DIR, in the
        /// captures/ layout (DIR/ews/001-SyncFolderItems-ok.request.body, ...), with
        /// Authorization, cookie and WWW-Authenticate token values replaced by
        /// [redacted]. Created when missing.
        #[arg(long, value_name = "DIR")]
        record: Option<PathBuf>,
    },
    /// Print live events with their origin until interrupted (Ctrl-C).
    Watch {
        /// The configuration file.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// The sync state file (default as for `sync`).
        #[arg(long, value_name = "FILE")]
        state: Option<PathBuf>,
        /// Record every request and response to DIR (see `sync --record`).
        #[arg(long, value_name = "DIR")]
        record: Option<PathBuf>,
    },
    /// Print the capability table and, with a configuration, each operation's route and
    /// what the server offered.
    ///
    /// With --config, the server column comes from a probe of each backend. Endpoints
    /// missing from [server] are looked up with autodiscover from [server] mailbox,
    /// which also lists the protocols the server offers.
    Capabilities {
        /// The configuration file.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Send autodiscover requests for HOST to BASE instead (for an emulator on
        /// loopback), as HOST=BASE, for example example.test=http://127.0.0.1:8080.
        #[arg(long, value_name = "HOST=BASE", requires = "config")]
        loopback: Vec<String>,
    },
    /// Decode a captured EWS SOAP message or MAPI/HTTP body.
    ///
    /// A MAPI/HTTP file may start with its HTTP request or status line and headers; the
    /// request type then comes from X-RequestType.
    Decode {
        /// The content type of the file.
        #[arg(value_enum)]
        kind: Kind,
        /// The file.
        file: PathBuf,
        /// The MAPI/HTTP request type when the file has no X-RequestType header.
        /// Default: Execute.
        #[arg(
            long,
            value_name = "TYPE",
            ignore_case = true,
            value_parser = clap::builder::PossibleValuesParser::new([
                "Connect",
                "Execute",
                "Disconnect",
                "NotificationWait",
                "PING",
                "Bind",
                "Unbind",
            ])
        )]
        request_type: Option<String>,
        /// Print JSON instead of indented text.
        #[arg(long)]
        json: bool,
    },
    /// Find a mailbox's EWS and MAPI/HTTP endpoints with autodiscover, showing each
    /// attempt and why it failed.
    Discover {
        /// The mailbox's SMTP address.
        address: String,
        /// The environment variable holding the password (Basic). Without it or
        /// --config the attempts are anonymous.
        #[arg(long, value_name = "VAR")]
        password_env: Option<String>,
        /// Take the credentials from [auth] and the TLS and proxy options from [http]
        /// of this configuration file (any method; oauth2 uses the token cache that
        /// `exmux login` filled).
        #[arg(long, value_name = "FILE", conflicts_with = "password_env")]
        config: Option<PathBuf>,
        /// Send requests for HOST to BASE instead (for an emulator on loopback), as
        /// HOST=BASE, for example example.test=http://127.0.0.1:8080.
        #[arg(long, value_name = "HOST=BASE")]
        loopback: Vec<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Sign in with the configuration's OAuth2 flow and store the tokens.
    ///
    /// device-code prints a code to enter at a web page on any device. auth-code prints
    /// a URL to open in a browser on this machine and receives the redirect on
    /// [auth] redirect_uri. The tokens go to [auth] token_cache (default: the
    /// configuration file's name with .tokens.json appended), readable only by you.
    Login {
        /// The configuration file, with [auth] method = "oauth2".
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Run the emulator alone on a loopback address, for other clients.
    Emulator {
        /// The address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Record every exchange to DIR, in the captures/ layout.
        #[arg(long, value_name = "DIR")]
        record: Option<PathBuf>,
        /// Put N sample messages into the Inbox before serving (at most 100000).
        #[arg(long, value_name = "N", default_value_t = 0)]
        messages: u32,
    },
    /// Run the deterministic race simulation of the router against the store.
    ///
    /// Runs N seeded schedules of writes, other clients' changes, notices and faults in
    /// one process, checks the invariants at quiescence and prints the counts. A failing
    /// seed is replayed with fewer steps and its shortest trace printed. Exits 1 when an
    /// exmux mode breaks an invariant (the naive-ews model is expected to).
    Sim {
        /// The client: ews, mapi, hybrid (exmux routings) or naive-ews (the usual client).
        #[arg(long, default_value = "hybrid")]
        mode: exmux_sim::Mode,
        /// How many schedules to run, at least 1.
        #[arg(long, default_value_t = 10_000, value_parser = at_least_one)]
        seeds: u64,
        /// The first seed.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Print one JSON object instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Print the version and exit.
    Version,
}

/// Parses a count that must be at least 1.
fn at_least_one(text: &str) -> Result<u64, String> {
    match text.parse::<u64>() {
        Ok(0) => Err("it must be at least 1".to_owned()),
        Ok(count) => Ok(count),
        Err(error) => Err(format!("not a whole number ({error})")),
    }
}
