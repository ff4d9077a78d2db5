//! The client side of the full-sync benchmark: one full sync of the Inbox of a
//! `bench_emulator` process over EWS (SyncFolderItems) or MAPI/HTTP (ICS contents
//! download), counting items, bytes on the wire, elapsed time and this process's peak
//! resident memory. Prints one JSON line.
//!
//! ```text
//! bench_full_sync --protocol ews|mapi --server '<the JSON line of bench_emulator>'
//! ```
//!
//! Bytes are counted at the TCP level by a relay inside this process, between the
//! client and the emulator. So `bytes_received` and `bytes_sent` cover whole HTTP
//! exchanges (request and status lines, headers, chunk framing and bodies), after any
//! compression the protocol applies. Peak memory is `VmHWM` from `/proc/self/status`
//! at the end of the run, so it includes the relay's small buffers and the runtime.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use exmux_core::Secret;
use exmux_core::auth::Credentials;
use exmux_core::http::{HttpOptions, ProxySetting};
use exmux_ews::client::EwsClient;
use exmux_ews::ops::Shape;
use exmux_ews::ops::sync::{SyncChange, SyncFolderItems};
use exmux_ews::types::{BaseShape, DistinguishedFolder, FolderRef, PropertyPath};
use exmux_mapihttp::prop::tags;
use exmux_mapihttp::session::{MapiSession, SessionConfig, StreamOptions, SyncState};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const USAGE: &str = "usage: bench_full_sync --protocol ews|mapi --server '<JSON line>'";

/// The largest MaxChangesReturned EWS accepts, which sync engines use.
const EWS_PAGE: u32 = 512;

/// The item properties a folder list needs, asked for on top of `IdOnly` (which brings
/// the ItemId and ChangeKey).
const EWS_FIELDS: [&str; 10] = [
    "item:ItemClass",
    "item:Subject",
    "item:DateTimeReceived",
    "item:Size",
    "item:Categories",
    "item:Importance",
    "item:HasAttachments",
    "message:From",
    "message:IsRead",
    "item:Flag",
];

struct Server {
    ews_url: String,
    mapi_url: String,
    mailbox: String,
    user_dn: String,
    username: String,
    password: String,
}

fn field(json: &serde_json::Value, name: &str) -> Result<String, String> {
    json.get(name)
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| format!("the server line has no string {name:?}"))
}

fn parse_args() -> Result<(String, Server), String> {
    let mut protocol = None;
    let mut server = None;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let value = it
            .next()
            .ok_or_else(|| format!("{arg} needs a value; {USAGE}"))?;
        match arg.as_str() {
            "--protocol" if value == "ews" || value == "mapi" => protocol = Some(value),
            "--protocol" => return Err(format!("unknown protocol {value:?}; {USAGE}")),
            "--server" => server = Some(value),
            _ => return Err(format!("unknown argument {arg:?}; {USAGE}")),
        }
    }
    let protocol = protocol.ok_or_else(|| format!("--protocol is missing; {USAGE}"))?;
    let line = server.ok_or_else(|| format!("--server is missing; {USAGE}"))?;
    let json: serde_json::Value = serde_json::from_str(&line)
        .map_err(|e| format!("--server is not the emulator's JSON line: {e}"))?;
    Ok((
        protocol,
        Server {
            ews_url: field(&json, "ews_url")?,
            mapi_url: field(&json, "mapi_url")?,
            mailbox: field(&json, "mailbox")?,
            user_dn: field(&json, "user_dn")?,
            username: field(&json, "username")?,
            password: field(&json, "password")?,
        },
    ))
}

/// Bytes that went through the relay, in each direction.
#[derive(Default)]
struct Counters {
    received: AtomicU64,
    sent: AtomicU64,
}

async fn pump<R, W>(mut from: R, mut to: W, counter: &AtomicU64)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        counter.fetch_add(n as u64, Ordering::Relaxed);
        let Some(chunk) = buffer.get(..n) else { break };
        if to.write_all(chunk).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// Starts a TCP relay on 127.0.0.1 to `target` that counts bytes, and returns its
/// address.
async fn start_relay(target: SocketAddr, counters: Arc<Counters>) -> Result<SocketAddr, String> {
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .await
        .map_err(|e| format!("binding the counting relay failed: {e}"))?;
    let address = listener
        .local_addr()
        .map_err(|e| format!("reading the relay's address failed: {e}"))?;
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let counters = Arc::clone(&counters);
            tokio::spawn(async move {
                let Ok(upstream) = TcpStream::connect(target).await else {
                    return;
                };
                let _ = client.set_nodelay(true);
                let _ = upstream.set_nodelay(true);
                let (client_read, client_write) = client.into_split();
                let (upstream_read, upstream_write) = upstream.into_split();
                tokio::join!(
                    pump(client_read, upstream_write, &counters.sent),
                    pump(upstream_read, client_write, &counters.received),
                );
            });
        }
    });
    Ok(address)
}

/// Rewrites `url` to go through the relay at `relay`, and returns the target address.
fn through_relay(url: &str, relay: SocketAddr) -> Result<String, String> {
    let mut parsed = reqwest::Url::parse(url).map_err(|e| format!("bad URL {url:?}: {e}"))?;
    parsed
        .set_port(Some(relay.port()))
        .map_err(|()| format!("cannot set a port on {url:?}"))?;
    Ok(parsed.to_string())
}

fn target_of(url: &str) -> Result<SocketAddr, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("bad URL {url:?}: {e}"))?;
    let host = parsed.host_str().unwrap_or_default();
    let port = parsed.port_or_known_default().unwrap_or(80);
    format!("{host}:{port}")
        .parse()
        .map_err(|e| format!("the emulator must listen on a literal loopback address: {e}"))
}

/// `VmHWM` of this process, in KiB.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

fn credentials(server: &Server) -> Credentials {
    Credentials::Basic {
        username: server.username.clone(),
        password: Secret::new(server.password.clone()),
    }
}

/// Tallies of one sync, kept as counters so no change outlives its page.
#[derive(Default)]
struct Tally {
    items: u64,
    /// Items that came with a subject: a check that properties, not only ids, arrived.
    with_subject: u64,
    /// SyncFolderItems responses (EWS only).
    pages: Option<u64>,
    /// Properties received over all items (MAPI only; EWS elements are not counted).
    props: u64,
}

async fn sync_ews(server: &Server, url: String) -> Result<Tally, String> {
    let client = EwsClient::builder(url, server.mailbox.clone(), credentials(server))
        .timeout(Duration::from_secs(600))
        .build()
        .map_err(|e| e.to_string())?;
    let request = SyncFolderItems {
        shape: Shape {
            base: BaseShape::IdOnly,
            include_mime_content: false,
            additional: EWS_FIELDS
                .iter()
                .map(|f| PropertyPath::Field((*f).to_owned()))
                .collect(),
        },
        folder: FolderRef::distinguished(DistinguishedFolder::Inbox),
        sync_state: None,
        ignore: Vec::new(),
        max_changes: EWS_PAGE,
    };
    let mut tally = Tally::default();
    client
        .sync_folder_items(&request, |page| {
            *tally.pages.get_or_insert(0) += 1;
            for change in &page.changes {
                if let SyncChange::Create(item) | SyncChange::Update(item) = change {
                    tally.items += 1;
                    if item.subject.is_some() {
                        tally.with_subject += 1;
                    }
                }
            }
        })
        .await
        .map_err(|e| e.to_string())?;
    Ok(tally)
}

async fn sync_mapi(server: &Server, url: String) -> Result<Tally, String> {
    let http = HttpOptions {
        proxy: ProxySetting::Disabled,
        ..HttpOptions::default()
    }
    .build_client()
    .map_err(|e| e.to_string())?;
    let session = MapiSession::new(SessionConfig::new(
        url,
        server.user_dn.clone(),
        credentials(server),
        http,
    ));

    let info = session.connect().await.map_err(|e| e.to_string())?;
    // The streaming download hands each GetBuffer's changes over and drops them after
    // counting, so the client's memory does not grow with the folder.
    let mut tally = Tally {
        items: 0,
        with_subject: 0,
        pages: None,
        props: 0,
    };
    session
        .sync_contents_streaming(
            info.inbox(),
            &SyncState::default(),
            StreamOptions::default(),
            |part| {
                for change in &part.changes {
                    tally.items += 1;
                    tally.props += change.props().len() as u64;
                    if change
                        .props()
                        .iter()
                        .any(|p| p.tag == tags::PID_TAG_SUBJECT)
                    {
                        tally.with_subject += 1;
                    }
                }
                Ok(())
            },
        )
        .await
        .map_err(|e| e.to_string())?;
    let _ = session.close().await;
    Ok(tally)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let (protocol, server) = match parse_args() {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let url = if protocol == "ews" {
        &server.ews_url
    } else {
        &server.mapi_url
    };
    let counters = Arc::new(Counters::default());
    let relayed = match target_of(url) {
        Ok(target) => match start_relay(target, Arc::clone(&counters)).await {
            Ok(relay) => through_relay(url, relay),
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    let relayed = match relayed {
        Ok(relayed) => relayed,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::FAILURE;
        }
    };

    let rss_before = peak_rss_kib();
    let started = Instant::now();
    let result = if protocol == "ews" {
        sync_ews(&server, relayed).await
    } else {
        sync_mapi(&server, relayed).await
    };
    let elapsed = started.elapsed().as_secs_f64();
    let tally = match result {
        Ok(tally) => tally,
        Err(message) => {
            eprintln!("{protocol} sync failed: {message}");
            return ExitCode::FAILURE;
        }
    };

    let received = counters.received.load(Ordering::Relaxed);
    let sent = counters.sent.load(Ordering::Relaxed);
    let line = serde_json::json!({
        "protocol": protocol,
        "items": tally.items,
        "items_with_subject": tally.with_subject,
        "ews_pages": tally.pages,
        "mapi_props": tally.props,
        "seconds": elapsed,
        "items_per_second": tally.items as f64 / elapsed.max(1e-9),
        "bytes_received": received,
        "bytes_sent": sent,
        "bytes_per_item": (received + sent) as f64 / (tally.items.max(1) as f64),
        "bytes_counted_at": "tcp (HTTP headers, chunk framing and bodies)",
        "peak_rss_kib": peak_rss_kib(),
        "rss_before_sync_kib": rss_before,
    });
    println!("{line}");
    ExitCode::SUCCESS
}
