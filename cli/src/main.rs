//! The `exmux` command line.
//!
//! Exit codes: 0 success; 1 the command ran and found a problem (a failed invariant, a
//! replica that does not match the server, a routing that cannot run); 2 invalid usage
//! or configuration; 3 the server or network failed.

/// Prints a line to standard output, as `println!` does, except that a closed pipe
/// (`exmux demo | head -1`) ends the process quietly instead of panicking.
macro_rules! outln {
    () => {
        $crate::write_stdout(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// Prints to standard output, as `print!` does, with the closed-pipe rule of `outln!`.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::write_stdout(format_args!($($arg)*))
    };
}

mod args;
mod sim;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use exmux::decode;
use exmux::demo::{self, DemoError, DemoEvent};
use exmux_autodiscover::{Autodiscover, AutodiscoverOptions, LoopbackMap};
use exmux_core::Secret;
use exmux_core::auth::Credentials;
use exmux_router::core::{Event, Origin, ResyncReason};
use exmux_router::persist::{load_state, save_state};
use exmux_router::transport::{
    CaptureRecorder, Events, Transport, TransportError, TransportOptions,
};
use exmux_router::{Backend, CapabilityTable, Config, Operation, Preset};
use indicatif::{ProgressBar, ProgressStyle};

use crate::args::{Cli, Command, RoutingArg};

/// Exit code: the command ran and found a problem.
const EXIT_PROBLEM: u8 = 1;
/// Exit code: invalid usage or configuration.
const EXIT_USAGE: u8 = 2;
/// Exit code: the server or network failed.
const EXIT_SERVER: u8 = 3;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(EXIT_PROBLEM);
        }
    };
    let result = runtime.block_on(run(cli.command));
    match result {
        Ok(code) => code,
        Err((code, message)) => {
            eprintln!("error: {message}");
            ExitCode::from(code)
        }
    }
}

type Outcome = Result<ExitCode, (u8, String)>;

/// Writes to standard output. A closed pipe ends the process with success, because
/// the reader no longer wants the output. Any other write failure ends it with exit
/// code 1.
fn write_stdout(text: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    if let Err(error) = stdout.write_fmt(text) {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to standard output: {error}");
        std::process::exit(i32::from(EXIT_PROBLEM));
    }
}

async fn run(command: Command) -> Outcome {
    match command {
        Command::Demo {
            routing,
            json,
            record,
        } => run_demo(routing, json, record).await,
        Command::Sync {
            config,
            state,
            record,
        } => run_sync(&config, state, record, false).await,
        Command::Watch {
            config,
            state,
            record,
        } => run_sync(&config, state, record, true).await,
        Command::Capabilities { config, loopback } => {
            run_capabilities(config.as_deref(), &loopback).await
        }
        Command::Decode {
            kind,
            file,
            request_type,
            json,
        } => run_decode(kind, &file, request_type.as_deref(), json),
        Command::Discover {
            address,
            password_env,
            config,
            loopback,
            json,
        } => run_discover(&address, password_env, config.as_deref(), &loopback, json).await,
        Command::Login { config } => run_login(&config).await,
        Command::Emulator {
            listen,
            record,
            messages,
        } => run_emulator(listen, record, messages).await,
        Command::Sim {
            mode,
            seeds,
            from,
            json,
        } => {
            // Seeds run from `from` to `from + seeds - 1`; a range past the largest seed
            // would wrap around to seed 0.
            if from.checked_add(seeds - 1).is_none() {
                return Err((
                    EXIT_USAGE,
                    format!(
                        "--from {from} --seeds {seeds} goes past the largest seed {}; lower --from or --seeds",
                        u64::MAX
                    ),
                ));
            }
            Ok(sim::run(mode, seeds, from, json))
        }
        Command::Version => {
            outln!("exmux {}", env!("CARGO_PKG_VERSION"));
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_event(event: &DemoEvent) {
    let item = event
        .item
        .map_or_else(String::new, |item| format!(" item-{item}"));
    let origin = event
        .origin
        .as_deref()
        .map_or_else(String::new, |origin| format!(" origin={origin}"));
    let read = event
        .read
        .map_or_else(String::new, |read| format!(" read={read}"));
    outln!(
        "[{:<8}] {:<11}{item}{origin}{read}",
        event.phase,
        event.kind
    );
}

async fn run_demo(routing: RoutingArg, json: bool, record: Option<PathBuf>) -> Outcome {
    let preset = match routing {
        RoutingArg::Ews => Preset::Ews,
        RoutingArg::Mapi => Preset::Mapi,
        RoutingArg::Hybrid => Preset::Hybrid,
    };
    if let Some(dir) = &record {
        check_writable_dir(dir).map_err(|reason| {
            (
                EXIT_USAGE,
                format!(
                    "--record {}: {reason}; name a writable folder",
                    dir.display()
                ),
            )
        })?;
    }
    let summary = match demo::run(preset, record, move |event| {
        if !json {
            print_event(event);
        }
    })
    .await
    {
        Ok(summary) => summary,
        Err(error @ DemoError::RoutingUnavailable { .. }) => {
            if json {
                outln!(
                    "{}",
                    serde_json::json!({
                        "routing": demo::routing_name(preset),
                        "available": false,
                        "error": error.to_string(),
                    })
                );
            }
            return Err((EXIT_PROBLEM, error.to_string()));
        }
        Err(error) => return Err((EXIT_SERVER, error.to_string())),
    };

    if json {
        let mut value = serde_json::to_value(&summary).unwrap_or_default();
        if let Some(object) = value.as_object_mut() {
            object.remove("events");
        }
        outln!("{value}");
    } else {
        outln!();
        outln!("routing                  {}", summary.routing);
        outln!("remote changes delivered {}", summary.remote_delivered);
        outln!("own changes dropped      {}", summary.own_dropped);
        outln!("superseded dropped       {}", summary.superseded_dropped);
        outln!("unknown origin delivered {}", summary.unknown_delivered);
        outln!("full resyncs             {}", summary.full_resyncs);
        outln!(
            "replica matches server   {} ({} items held, {} on the server)",
            summary.replica_matches_server,
            summary.replica_items,
            summary.server_items
        );
    }
    Ok(if summary.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_PROBLEM)
    })
}

/// Returns the default state file of a configuration: its path with `.state.json`
/// appended.
fn default_state_path(config: &Path) -> PathBuf {
    let mut name = config.as_os_str().to_owned();
    name.push(".state.json");
    PathBuf::from(name)
}

fn transport_error(error: TransportError) -> (u8, String) {
    let code = match error {
        TransportError::Config(_)
        | TransportError::BackendNotOffered { .. }
        | TransportError::MissingMailbox => EXIT_USAGE,
        _ => EXIT_SERVER,
    };
    (code, error.to_string())
}

/// Checks that `dir` exists or can be created, and that a file can be created in it.
fn check_writable_dir(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|error| format!("cannot create it: {error}"))?;
    let probe = dir.join(format!(".exmux-write-check-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(|error| format!("cannot write in it: {error}"))?;
    std::fs::remove_file(&probe).map_err(|error| format!("cannot clean up in it: {error}"))
}

/// Checks that `path` can be written: an existing file opened for appending, or a new
/// file created in its folder (and removed again).
fn check_writable_file(path: &Path) -> Result<(), String> {
    if path.exists() {
        return std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map(drop)
            .map_err(|error| format!("cannot write it: {error}"));
    }
    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    if !folder.is_dir() {
        return Err(format!("its folder {} does not exist", folder.display()));
    }
    let probe = folder.join(format!(".exmux-write-check-{}", std::process::id()));
    std::fs::write(&probe, b"")
        .map_err(|error| format!("cannot create a file in its folder: {error}"))?;
    std::fs::remove_file(&probe).map_err(|error| format!("cannot clean up in its folder: {error}"))
}

async fn run_sync(
    config_path: &Path,
    state: Option<PathBuf>,
    record: Option<PathBuf>,
    watch: bool,
) -> Outcome {
    let config = Config::load(config_path).map_err(|error| (EXIT_USAGE, error.to_string()))?;
    for warning in &config.warnings {
        eprintln!("warning: {warning}");
    }
    // A CA bundle or proxy that cannot be used is a configuration error, reported
    // before any connection.
    config
        .http
        .tls_config()
        .and_then(|_| config.http.build_client())
        .map_err(|error| (EXIT_USAGE, format!("{}: {error}", config_path.display())))?;
    let state_path = state.unwrap_or_else(|| default_state_path(config_path));
    let saved = load_state(&state_path).map_err(|error| (EXIT_USAGE, error.to_string()))?;
    // The state is saved after the sync; a path that cannot be written fails now, before
    // any work is done.
    check_writable_file(&state_path).map_err(|reason| {
        (
            EXIT_USAGE,
            format!(
                "--state {}: {reason}; name a writable file",
                state_path.display()
            ),
        )
    })?;
    let first_run = saved.is_none();
    let recorder = match &record {
        Some(dir) => Some(Arc::new(CaptureRecorder::create(dir).map_err(|error| {
            (
                EXIT_USAGE,
                format!(
                    "cannot create the recording folder {}: {error}; name a writable folder",
                    dir.display()
                ),
            )
        })?)),
        None => None,
    };
    // The token cache of an oauth2 configuration defaults to the file `exmux login`
    // writes beside the configuration.
    let credentials = exmux::login::credentials(&config, config_path)
        .map_err(|error| (EXIT_USAGE, error.to_string()))?;
    let options = TransportOptions {
        state: saved,
        recorder: recorder.clone(),
        credentials: Some(credentials),
        // Runs only when [server] lacks an endpoint that the routing needs.
        autodiscover: Some(exmux_autodiscover::AutodiscoverOptions::default()),
        ..TransportOptions::default()
    };
    let (transport, mut events) = Transport::connect(&config, options)
        .await
        .map_err(transport_error)?;

    let folders = transport.remote_folders().await.map_err(transport_error)?;
    let mut keys = Vec::new();
    for folder in &folders {
        keys.push(
            transport
                .add_folder(&folder.id)
                .await
                .map_err(transport_error)?,
        );
    }
    if watch {
        transport.subscribe(&keys).await.map_err(transport_error)?;
    }

    let bar = ProgressBar::new(keys.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} folders {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut tally = Tally::default();
    for key in &keys {
        transport.sync(*key).map_err(transport_error)?;
        transport.wait_idle().await;
        tally.drain(&mut events, watch);
        bar.inc(1);
    }
    bar.finish_and_clear();
    save_state(&transport.state(), &state_path)
        .map_err(|error| (EXIT_PROBLEM, error.to_string()))?;
    outln!(
        "{} folders synced{}: {} new or changed, {} read-state changes, {} deleted, {} full resyncs; state saved to {}",
        keys.len(),
        if first_run { " (first run)" } else { "" },
        tally.changed,
        tally.read,
        tally.deleted,
        tally.resyncs,
        state_path.display()
    );
    if !watch {
        report_recording(recorder.as_deref());
        return Ok(ExitCode::SUCCESS);
    }

    outln!("watching; Ctrl-C stops");
    let mut failures = FailureLog::default();
    loop {
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else { break };
                let show = match &event {
                    Event::SyncFailed { message, .. } => {
                        failures.first_in_window(message, std::time::Instant::now())
                    }
                    _ => {
                        failures.end();
                        true
                    }
                };
                if show {
                    print_live(&event);
                }
                if let Err(error) = save_state(&transport.state(), &state_path) {
                    eprintln!("warning: {error}");
                }
            }
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    save_state(&transport.state(), &state_path)
        .map_err(|error| (EXIT_PROBLEM, error.to_string()))?;
    report_recording(recorder.as_deref());
    Ok(ExitCode::SUCCESS)
}

/// Says where the recording went and how many exchanges could not be written.
fn report_recording(recorder: Option<&CaptureRecorder>) {
    let Some(recorder) = recorder else {
        return;
    };
    outln!("recorded to {}", recorder.dir().display());
    if recorder.failures() > 0 {
        eprintln!(
            "warning: {} exchanges could not be written to {}",
            recorder.failures(),
            recorder.dir().display()
        );
    }
}

#[derive(Default)]
struct Tally {
    changed: u64,
    read: u64,
    deleted: u64,
    resyncs: u64,
}

impl Tally {
    fn drain(&mut self, events: &mut Events, print: bool) {
        while let Some(event) = events.try_recv() {
            match &event {
                Event::ItemChanged { .. } => self.changed += 1,
                Event::ReadStateChanged { .. } => self.read += 1,
                Event::ItemDeleted { .. } => self.deleted += 1,
                Event::FullResync { .. } => self.resyncs += 1,
                _ => {}
            }
            if print {
                print_live(&event);
            }
        }
    }
}

/// Collapses one sync failure repeated for many folders, as a server outage produces,
/// into one line per minute and a count of the repeats.
#[derive(Debug, Default)]
struct FailureLog {
    last: Option<(String, std::time::Instant)>,
    repeats: u64,
}

impl FailureLog {
    const WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

    /// Returns whether a failure with `message` at `now` is printed: the first of its
    /// kind within [`FailureLog::WINDOW`]. The others are counted.
    fn first_in_window(&mut self, message: &str, now: std::time::Instant) -> bool {
        if let Some((last, at)) = &self.last
            && last == message
            && now.duration_since(*at) < Self::WINDOW
        {
            self.repeats += 1;
            return false;
        }
        self.end();
        self.last = Some((message.to_owned(), now));
        true
    }

    /// Prints how many failures were collapsed, if any, and starts over.
    fn end(&mut self) {
        if let Some(line) = self.take_summary() {
            outln!("{line}");
        }
        self.last = None;
    }

    fn take_summary(&mut self) -> Option<String> {
        let repeats = std::mem::take(&mut self.repeats);
        (repeats > 0).then(|| format!("(the same failure in {repeats} more folder syncs)"))
    }
}

fn print_live(event: &Event) {
    let origin = |origin: &Origin| origin.to_string();
    match event {
        Event::ItemChanged {
            folder,
            item,
            origin: who,
            read,
            ..
        } => match read {
            Some(read) => outln!("{folder} {item} changed origin={} read={read}", origin(who)),
            None => outln!("{folder} {item} changed origin={}", origin(who)),
        },
        Event::ReadStateChanged {
            folder,
            item,
            origin: who,
            read,
        } => outln!("{folder} {item} read={read} origin={}", origin(who)),
        Event::ItemDeleted {
            folder,
            item,
            origin: who,
        } => outln!("{folder} {item} deleted origin={}", origin(who)),
        Event::FullResync { folder, reason } => {
            let reason = match reason {
                ResyncReason::SyncStateRejected => "the server rejected the sync state",
                ResyncReason::ServerDiscardedSyncState => {
                    "the server discarded the sync state and sent everything again"
                }
                _ => "the router cannot continue from the sync state",
            };
            outln!("{folder} full resync: {reason}");
        }
        Event::SyncFailed {
            folder, message, ..
        } => outln!("{folder} sync failed: {message}"),
        _ => {}
    }
}

async fn run_capabilities(config_path: Option<&Path>, loopback: &[String]) -> Outcome {
    let table = CapabilityTable::default();
    outln!("{table}");
    let Some(path) = config_path else {
        return Ok(ExitCode::SUCCESS);
    };
    let config = Config::load(path).map_err(|error| (EXIT_USAGE, error.to_string()))?;
    for warning in &config.warnings {
        outln!("warning: {warning}");
    }
    outln!("{:<16} {:<6} support", "operation", "route");
    for operation in Operation::ALL {
        let backend = config.routing.backend_for(operation);
        outln!(
            "{:<16} {:<6} {}",
            operation.key(),
            backend.key(),
            table.support(operation, backend)
        );
    }
    outln!();

    let loopback = loopback_map(loopback)?;
    let discovered = discover_for_capabilities(&config, path, loopback).await;
    let mut probed = config.clone();
    if let Some(settings) = &discovered {
        fill_endpoints(&mut probed, settings);
    }
    outln!("server offers:");
    for backend in Backend::ALL {
        let listed = discovered
            .as_ref()
            .map(|settings| offers(settings, backend));
        let source = if config.server.endpoint(backend).is_some() {
            "configured"
        } else {
            "from autodiscover"
        };
        match (probed.server.endpoint(backend), listed) {
            (None, Some(false)) => outln!(
                "  {:<5} not offered: autodiscover lists no {} endpoint",
                backend.key(),
                backend.key()
            ),
            (None, _) => outln!(
                "  {:<5} no endpoint configured or discovered",
                backend.key()
            ),
            (Some(url), _) => {
                let probe = probe(&probed, path, backend).await;
                outln!("  {:<5} {url} ({source}): {probe}", backend.key());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs autodiscover from `[server] mailbox` when an endpoint key is missing, prints
/// the source of the settings, and returns them. Returns `None` when it did not run or
/// failed, after printing the reason.
async fn discover_for_capabilities(
    config: &Config,
    config_path: &Path,
    loopback: Option<LoopbackMap>,
) -> Option<exmux_autodiscover::Settings> {
    let complete = config.server.ews_url.is_some()
        && config.server.mapi_url.is_some()
        && config.server.user_dn.is_some();
    if complete {
        return None;
    }
    let Some(address) = config.server.mailbox.as_deref() else {
        outln!("autodiscover: not run, [server] mailbox is not set");
        return None;
    };
    let credentials = match exmux::login::credentials(config, config_path) {
        Ok(credentials) => credentials,
        Err(error) => {
            outln!("autodiscover for {address}: not run, the credentials are not usable: {error}");
            return None;
        }
    };
    let setup = config
        .http
        .tls_config()
        .and_then(|tls| Ok((tls, config.http.build_client()?)));
    let (tls, http) = match setup {
        Ok(setup) => setup,
        Err(error) => {
            outln!("autodiscover for {address}: not run: {error}");
            return None;
        }
    };
    let options = AutodiscoverOptions {
        credentials: Some(credentials),
        loopback,
        owned_tls: Some(tls),
        owned_proxy: config.http.proxy.clone(),
        ..AutodiscoverOptions::default()
    };
    match Autodiscover::new(http, options).discover(address).await {
        Ok(discovery) => {
            let mut protocols: Vec<&str> = Vec::new();
            for protocol in &discovery.settings.protocols {
                let name = protocol_name(*protocol);
                if !protocols.contains(&name) {
                    protocols.push(name);
                }
            }
            outln!(
                "autodiscover for {address}: {} at {}; protocols: {}",
                discovery.source.method,
                discovery.source.url,
                if protocols.is_empty() {
                    "none listed".to_owned()
                } else {
                    protocols.join(", ")
                }
            );
            Some(discovery.settings)
        }
        Err(error) => {
            outln!("autodiscover for {address} failed: {error}");
            None
        }
    }
}

/// Returns the usual name of an autodiscover protocol.
fn protocol_name(protocol: exmux_autodiscover::Protocol) -> &'static str {
    use exmux_autodiscover::Protocol;
    match protocol {
        Protocol::Ews => "EWS",
        Protocol::MapiHttp => "MAPI/HTTP",
        Protocol::RpcOverHttp => "RPC over HTTP (not spoken by exmux)",
        Protocol::RpcInternal => "RPC (not spoken by exmux)",
        _ => "another protocol",
    }
}

/// Fills the endpoint keys that `config` lacks from discovered settings.
fn fill_endpoints(config: &mut Config, settings: &exmux_autodiscover::Settings) {
    let server = &mut config.server;
    if server.ews_url.is_none() {
        server.ews_url.clone_from(&settings.ews_url);
    }
    if server.mapi_url.is_none() {
        server.mapi_url.clone_from(&settings.mapi_emsmdb_url);
    }
    if server.user_dn.is_none() {
        server.user_dn.clone_from(&settings.legacy_dn);
    }
}

/// Returns whether discovered settings carry an endpoint for `backend`.
fn offers(settings: &exmux_autodiscover::Settings, backend: Backend) -> bool {
    match backend {
        Backend::Mapi => settings.mapi_emsmdb_url.is_some(),
        _ => settings.ews_url.is_some(),
    }
}

/// Connects with every operation routed to `backend` and reports whether the server
/// answered: GetFolder of the inbox over EWS, Connect and RopLogon over MAPI/HTTP.
async fn probe(config: &Config, config_path: &Path, backend: Backend) -> String {
    let mut only = config.clone();
    only.routing = match backend {
        Backend::Mapi => Preset::Mapi.routing(),
        _ => Preset::Ews.routing(),
    };
    let credentials = match exmux::login::credentials(config, config_path) {
        Ok(credentials) => credentials,
        Err(error) => return format!("not usable: {error}"),
    };
    let options = TransportOptions {
        credentials: Some(credentials),
        ..TransportOptions::default()
    };
    match Transport::connect(&only, options).await {
        Ok((transport, _events)) => match transport.add_folder("inbox").await {
            Ok(_) => "reachable (the inbox was opened)".to_owned(),
            Err(error) => format!("not usable: {error}"),
        },
        Err(error) => format!("not usable: {error}"),
    }
}

fn run_decode(kind: decode::Kind, file: &Path, request_type: Option<&str>, json: bool) -> Outcome {
    let bytes = decode::read_input(file).map_err(|reason| {
        (
            EXIT_USAGE,
            format!("cannot read {}: {reason}", file.display()),
        )
    })?;
    // A body recorded with --record has its headers, X-RequestType among them, in the
    // file beside it.
    let sibling = match request_type {
        Some(_) => None,
        None => decode::sibling_request_type(file),
    };
    let decoded = decode::decode(kind, &bytes, request_type.or(sibling.as_deref()))
        .map_err(|error| (EXIT_PROBLEM, format!("{}: {error}", file.display())))?;
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&decoded.json).unwrap_or_default()
        );
    } else {
        out!("{}", decode::to_text(&decoded.json));
    }
    Ok(ExitCode::SUCCESS)
}

/// Parses `--loopback HOST=BASE` entries. Returns `None` when there are none.
fn loopback_map(loopback: &[String]) -> Result<Option<LoopbackMap>, (u8, String)> {
    if loopback.is_empty() {
        return Ok(None);
    }
    let mut map = LoopbackMap::new();
    for entry in loopback {
        let Some((host, base)) = entry.split_once('=') else {
            return Err((
                EXIT_USAGE,
                format!(
                    "--loopback {entry:?} is not HOST=BASE, for example example.test=http://127.0.0.1:8080"
                ),
            ));
        };
        let base = url::Url::parse(base).map_err(|error| {
            (
                EXIT_USAGE,
                format!("--loopback {entry:?}: {base:?} is not a URL ({error})"),
            )
        })?;
        map.insert(host, base);
    }
    Ok(Some(map))
}

async fn run_discover(
    address: &str,
    password_env: Option<String>,
    config_path: Option<&Path>,
    loopback: &[String],
    json: bool,
) -> Outcome {
    let config = match config_path {
        Some(path) => Some(Config::load(path).map_err(|error| (EXIT_USAGE, error.to_string()))?),
        None => None,
    };
    let from_config = match (&config, config_path) {
        (Some(config), Some(path)) => Some(
            exmux::login::credentials(config, path)
                .map_err(|error| (EXIT_USAGE, error.to_string()))?,
        ),
        _ => None,
    };
    let anonymous = password_env.is_none() && from_config.is_none();
    let credentials = match password_env {
        Some(var) => {
            let password = std::env::var(&var).map_err(|_| {
                (
                    EXIT_USAGE,
                    format!("--password-env {var}: the variable is not set; export it first"),
                )
            })?;
            Some(Credentials::Basic {
                username: address.to_owned(),
                password: Secret::new(password),
            })
        }
        None => from_config,
    };
    let http_options = config.map(|config| config.http).unwrap_or_default();
    let options = AutodiscoverOptions {
        credentials,
        loopback: loopback_map(loopback)?,
        owned_tls: Some(
            http_options
                .tls_config()
                .map_err(|error| (EXIT_USAGE, error.to_string()))?,
        ),
        owned_proxy: http_options.proxy.clone(),
        ..AutodiscoverOptions::default()
    };
    let http = http_options
        .build_client()
        .map_err(|error| (EXIT_USAGE, error.to_string()))?;
    match Autodiscover::new(http, options).discover(address).await {
        Ok(discovery) => {
            if json {
                outln!(
                    "{}",
                    serde_json::to_string_pretty(&discovery).unwrap_or_default()
                );
            } else {
                for attempt in &discovery.attempts {
                    outln!(
                        "attempt {} {}: {}",
                        attempt.method,
                        attempt.url,
                        attempt.failure.as_deref().unwrap_or("ok")
                    );
                }
                let settings = &discovery.settings;
                let show = |value: &Option<String>| {
                    value
                        .clone()
                        .unwrap_or_else(|| "(not in the answer)".to_owned())
                };
                outln!("ews_url  = {}", show(&settings.ews_url));
                outln!("mapi_url = {}", show(&settings.mapi_emsmdb_url));
                outln!("user_dn  = {}", show(&settings.legacy_dn));
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            if json {
                outln!(
                    "{}",
                    serde_json::json!({ "error": error.to_string(), "attempts": error.attempts() })
                );
            } else {
                for attempt in error.attempts() {
                    outln!(
                        "attempt {} {}: {}",
                        attempt.method,
                        attempt.url,
                        attempt.failure.as_deref().unwrap_or("ok")
                    );
                }
            }
            let code = match error {
                exmux_autodiscover::DiscoverError::InvalidAddress { .. } => EXIT_USAGE,
                _ => EXIT_SERVER,
            };
            let needs_credentials = error.attempts().iter().any(|attempt| {
                attempt
                    .failure
                    .as_deref()
                    .is_some_and(|failure| failure.starts_with("HTTP 401"))
            });
            let hint = if anonymous && needs_credentials {
                "; the server asks for credentials: pass --password-env VAR or --config FILE"
            } else {
                ""
            };
            Err((code, format!("{error}{hint}")))
        }
    }
}

async fn run_login(config_path: &Path) -> Outcome {
    use exmux::login::{LoginError, LoginPrompt};

    let config = Config::load(config_path).map_err(|error| (EXIT_USAGE, error.to_string()))?;
    let print_prompt = |prompt: &LoginPrompt| match prompt {
        LoginPrompt::DeviceCode {
            verification_uri,
            user_code,
            expires_in,
        } => outln!(
            "To sign in, open {verification_uri} and enter the code {user_code} (valid for {} minutes).",
            expires_in.as_secs() / 60
        ),
        LoginPrompt::Browser { url } => {
            outln!("To sign in, open this URL in a browser on this machine:\n{url}");
        }
        _ => {}
    };
    match exmux::login::login(&config, config_path, print_prompt).await {
        Ok(cache) => {
            outln!("Signed in; tokens stored in {}", cache.display());
            Ok(ExitCode::SUCCESS)
        }
        Err(
            error @ (LoginError::Config(_) | LoginError::NotOAuth2 { .. } | LoginError::Http(_)),
        ) => Err((EXIT_USAGE, error.to_string())),
        Err(error) => Err((EXIT_SERVER, error.to_string())),
    }
}

async fn run_emulator(
    listen: std::net::SocketAddr,
    record: Option<PathBuf>,
    messages: u32,
) -> Outcome {
    if !listen.ip().is_loopback() {
        return Err((
            EXIT_USAGE,
            format!("--listen {listen}: the emulator serves loopback only; use 127.0.0.1:PORT"),
        ));
    }
    let limit = exmux::emulator::MAX_SEED_MESSAGES;
    if messages > limit {
        return Err((
            EXIT_USAGE,
            format!("--messages {messages}: at most {limit} sample messages are supported"),
        ));
    }
    let handle = exmux::emulator::start(listen, record)
        .await
        .map_err(|error| (EXIT_SERVER, format!("--listen {listen}: {error}")))?;
    exmux::emulator::seed_inbox(&handle, messages)
        .map_err(|error| (EXIT_SERVER, format!("--messages {messages}: {error}")))?;
    let handle = Arc::new(handle);
    outln!("exmux emulator on {}", handle.base_url());
    outln!("  ews_url      = {}", handle.ews_url());
    outln!("  mapi_url     = {}", handle.mapi_emsmdb_url());
    outln!("  nspi_url     = {}", handle.mapi_nspi_url());
    outln!(
        "  autodiscover = {}/autodiscover/autodiscover.xml",
        handle.base_url()
    );
    outln!(
        "  user_dn      = {}",
        exmux_emulator::mapi::legacy_dn(exmux::emulator::MAILBOX)
    );
    outln!("  mailbox      = {}", exmux::emulator::MAILBOX);
    outln!("  username     = {}", exmux::emulator::MAILBOX);
    outln!("  password     = {}", exmux::emulator::PASSWORD);
    outln!("  token_url    = {}", exmux::emulator::token_url(&handle));
    outln!("  client_id    = {}", exmux::emulator::OAUTH_CLIENT_ID);
    outln!("  inbox        = {messages} sample messages");
    outln!("Ctrl-C stops it.");
    let _ = tokio::signal::ctrl_c().await;
    Ok(ExitCode::SUCCESS)
}

/// Installs the log subscriber: warnings by default, more with each `-v`, and
/// `RUST_LOG` when set. Logs go to standard error so JSON output stays clean.
fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn,exmux_emulator::ews::notify=error",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colour only on a terminal: a log redirected to a file gets no escape sequences.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_log_collapses_repeats() {
        let mut log = FailureLog::default();
        let start = std::time::Instant::now();
        assert!(log.first_in_window("server busy", start));
        assert!(!log.first_in_window("server busy", start));
        assert!(!log.first_in_window("server busy", start));
        // Another failure prints, and so does the first one after the window.
        assert!(log.first_in_window("connection refused", start));
        let later = start + FailureLog::WINDOW;
        assert!(log.first_in_window("connection refused", later));
        assert!(!log.first_in_window("connection refused", later));
        assert_eq!(
            log.take_summary().as_deref(),
            Some("(the same failure in 1 more folder syncs)")
        );
        assert_eq!(log.take_summary(), None);
    }
}
