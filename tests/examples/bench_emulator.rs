//! The emulator as its own process for the full-sync benchmark. It starts on 127.0.0.1
//! over plain HTTP with the EWS and MAPI/HTTP front ends, as `exmux emulator` does, and
//! fills the Inbox with N generated messages. Then it prints one JSON line with the
//! endpoint URLs and credentials, and serves until killed.
//!
//! ```text
//! cargo run --release -p exmux-tests --example bench_emulator -- --items 100000
//! ```
//!
//! The messages carry the properties a folder list shows (subject, sender, two To
//! recipients, sometimes a Cc, received time, read flag, follow-up flag, categories,
//! importance, attachment flag) and no body, since the benchmark syncs properties only.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use exmux_emulator::mapi::legacy_dn;
use exmux_emulator::store::{
    FlagStatus, Importance, ItemProps, Mailbox, NewItem, NewItemContent, WellKnownFolder,
};

const USAGE: &str = "usage: bench_emulator [--items N] [--port P]";

struct Args {
    items: u64,
    port: u16,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        items: 10_000,
        port: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let value = it
            .next()
            .ok_or_else(|| format!("{arg} needs a value; {USAGE}"))?;
        match arg.as_str() {
            "--items" => {
                args.items = value
                    .parse()
                    .map_err(|_| format!("--items {value:?} is not a count; {USAGE}"))?;
            }
            "--port" => {
                args.port = value
                    .parse()
                    .map_err(|_| format!("--port {value:?} is not a port; {USAGE}"))?;
            }
            _ => return Err(format!("unknown argument {arg:?}; {USAGE}")),
        }
    }
    Ok(args)
}

const WORDS: [&str; 16] = [
    "quarterly",
    "report",
    "meeting",
    "budget",
    "review",
    "project",
    "update",
    "draft",
    "invoice",
    "schedule",
    "release",
    "notes",
    "agenda",
    "contract",
    "travel",
    "follow-up",
];
const PEOPLE: [(&str, &str); 8] = [
    ("Alice Martin", "alice.martin@example.test"),
    ("Bob Nguyen", "bob.nguyen@example.test"),
    ("Carla Rossi", "carla.rossi@example.test"),
    ("Dmitri Volkov", "dmitri.volkov@example.test"),
    ("Eva Schmidt", "eva.schmidt@example.test"),
    ("Farid Haddad", "farid.haddad@example.test"),
    ("Grace Okafor", "grace.okafor@example.test"),
    ("Hiro Tanaka", "hiro.tanaka@example.test"),
];

/// A small deterministic generator (SplitMix64), so every run fills the same mailbox.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        // n is a small table length, so the modulo bias is irrelevant here.
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<'a, T>(&mut self, table: &'a [T]) -> Option<&'a T> {
        table.get(self.below(table.len()))
    }
}

fn person(rng: &mut Rng) -> Mailbox {
    let (name, address) = rng.pick(&PEOPLE).copied().unwrap_or(("", "x@example.test"));
    Mailbox::new(name, address)
}

fn message(rng: &mut Rng, index: u64, start: SystemTime) -> ItemProps {
    let words = 3 + rng.below(6);
    let mut subject = String::from(if rng.below(4) == 0 { "RE: " } else { "" });
    for n in 0..words {
        if n > 0 {
            subject.push(' ');
        }
        subject.push_str(rng.pick(&WORDS).copied().unwrap_or("note"));
    }
    subject.push_str(&format!(" #{index}"));
    let mut props = ItemProps {
        subject,
        sender: Some(person(rng)),
        to: vec![Mailbox::new("User One", "user1@example.test"), person(rng)],
        received: Some(start + Duration::from_secs(index.saturating_mul(37))),
        read: rng.below(3) != 0,
        has_attachments: rng.below(5) == 0,
        ..ItemProps::default()
    };
    if rng.below(3) == 0 {
        props.cc.push(person(rng));
    }
    props.flag = match rng.below(10) {
        0 => FlagStatus::Flagged,
        1 => FlagStatus::Complete,
        _ => FlagStatus::NotFlagged,
    };
    props.importance = match rng.below(20) {
        0 => Importance::High,
        1 => Importance::Low,
        _ => Importance::Normal,
    };
    if rng.below(4) == 0 {
        props.categories.push("Work".to_owned());
        if rng.below(2) == 0 {
            props.categories.push("Follow up".to_owned());
        }
    }
    props
}

fn fill(handle: &exmux_emulator::server::EmulatorHandle, items: u64) -> Result<(), String> {
    let mut store = handle
        .store()
        .lock()
        .map_err(|_| "the store lock is poisoned".to_owned())?;
    let session = store.open_session("bench delivery");
    let inbox = store
        .well_known_folder(WellKnownFolder::Inbox)
        .ok_or("the store has no Inbox")?;
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_735_689_600);
    let mut rng = Rng(0x0065_786d_7578);
    for index in 0..items {
        let props = message(&mut rng, index, start);
        store
            .create_item(
                session,
                inbox,
                NewItem {
                    content: NewItemContent::Props(props),
                    ..NewItem::default()
                },
            )
            .map_err(|e| format!("creating message {index} failed: {e}"))?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let listen = SocketAddr::from(([127, 0, 0, 1], args.port));
    let handle = match exmux::emulator::start(listen, None).await {
        Ok(handle) => handle,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    };
    let started = std::time::Instant::now();
    if let Err(message) = fill(&handle, args.items) {
        eprintln!("{message}");
        return ExitCode::FAILURE;
    }
    let line = serde_json::json!({
        "ews_url": handle.ews_url(),
        "mapi_url": handle.mapi_emsmdb_url(),
        "mailbox": exmux::emulator::MAILBOX,
        "user_dn": legacy_dn(exmux::emulator::MAILBOX),
        "username": exmux::emulator::MAILBOX,
        "password": exmux::emulator::PASSWORD,
        "items": args.items,
        "fill_seconds": started.elapsed().as_secs_f64(),
    });
    println!("{line}");
    // Serves until the process is killed; the benchmark script stops it.
    std::future::pending::<()>().await;
    ExitCode::SUCCESS
}
