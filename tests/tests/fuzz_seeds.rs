//! Seed corpora for the cargo-fuzz targets in `fuzz/`, built at run time.
//!
//! Seeds come from the shared real-server captures and specification vectors beside the
//! checkout, from this repository's own emulator recordings in `captures/`, and from
//! what the codecs' encoders write. Shared capture bytes must never be committed, so the
//! corpora are written only when `EXMUX_FUZZ_SEEDS` names a folder (`fuzz/smoke` sets it
//! to a folder outside git's view). Each seed has the input layout of its target, for
//! example a leading status byte for `ews_response`.
//!
//! Without that variable the test still builds every corpus and runs each seed through
//! its target's entry point on stable, so a seed that panics fails the ordinary suite.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use exmux_mapihttp::body::{ExecuteRequest, ExecuteResponse, Response, WireBody};
use exmux_mapihttp::ext::{self, EncodeOptions};
use exmux_mapihttp::fxics::FxWriter;
use exmux_mapihttp::ids::Guid;
use exmux_mapihttp::idset::{IcsState, IdSet, IdsetForm, Replica};
use exmux_mapihttp::prop::{PropTag, PropValue};
use exmux_mapihttp::{http, lz77};

/// Seeds larger than this are left out: libFuzzer sets its maximum input length from
/// the largest seed, and long inputs slow every execution of a bounded run.
const MAX_SEED_LEN: usize = 64 * 1024;

/// Target name to (file name, bytes).
type Corpora = BTreeMap<&'static str, Vec<(String, Vec<u8>)>>;

/// The target names, as in `fuzz/Cargo.toml`.
const TARGETS: [&str; 8] = [
    "ews_response",
    "ews_stream",
    "mapi_body",
    "mapi_ext_lz77",
    "mapi_fasttransfer",
    "mapi_http_response",
    "mapi_idset",
    "mapi_rop_response",
];

#[test]
fn seed_corpora_build_and_run() {
    let corpora = build_corpora();

    for target in TARGETS {
        let seeds = corpora.get(target).map_or(&[][..], Vec::as_slice);
        assert!(!seeds.is_empty(), "no seeds for fuzz target {target}");
        for (name, bytes) in seeds {
            // Printed before the run so that a seed that panics is named in the output.
            eprintln!("running {target} seed {name}");
            run_entry_point(target, bytes);
        }
    }

    if let Some(out) = std::env::var_os("EXMUX_FUZZ_SEEDS") {
        write_corpora(&corpora, Path::new(&out));
    }
}

fn run_entry_point(target: &str, data: &[u8]) {
    match target {
        "ews_response" => exmux_ews::fuzzing::parse_response(data),
        "ews_stream" => exmux_ews::fuzzing::frame_stream(data),
        "mapi_body" => exmux_mapihttp::body::fuzz_check(data),
        "mapi_ext_lz77" => {
            ext::fuzz_check(data);
            let packed = lz77::compress(data);
            assert_eq!(lz77::decompress(&packed, data.len()).as_deref(), Ok(data));
        }
        "mapi_fasttransfer" => exmux_mapihttp::fxics::fuzz_stream(data),
        "mapi_http_response" => http::fuzz_check(data),
        "mapi_idset" => exmux_mapihttp::idset::fuzz_idset(data),
        "mapi_rop_response" => exmux_mapihttp::rop::fuzz::rop_buffers(data),
        other => panic!("unknown fuzz target {other}"),
    }
}

fn write_corpora(corpora: &Corpora, out: &Path) {
    for (target, seeds) in corpora {
        let dir = out.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in seeds {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
        eprintln!("wrote {} seeds to {}", seeds.len(), dir.display());
    }
}

fn build_corpora() -> Corpora {
    let mut corpora = Corpora::new();
    let mut add = |target: &'static str, name: String, bytes: Vec<u8>| {
        if !bytes.is_empty() && bytes.len() <= MAX_SEED_LEN {
            corpora.entry(target).or_default().push((name, bytes));
        }
    };

    if let Some(shared) = exmux_testkit::shared_dir() {
        ews_capture_seeds(&shared.join("captures/ews"), "ews", &mut add);
        ews_capture_seeds(&shared.join("captures/ews-gromox"), "ews-gromox", &mut add);
        mapi_vector_seeds(&shared.join("captures/mapi"), &mut add);
        mapi_exchange_seeds(&shared.join("captures/mapi-gromox"), "gromox", &mut add);
    }

    let own = exmux_testkit::workspace_root().join("captures");
    ews_capture_seeds(&own.join("ews"), "emulator", &mut add);
    mapi_exchange_seeds(&own.join("mapi"), "emulator", &mut add);

    encoder_seeds(&mut add);
    corpora
}

/// Adds every EWS response or request body in `dir`, behind the status byte that
/// `ews_response` reads (even for HTTP 200, odd for HTTP 500), and the GetStreamingEvents
/// responses behind the four chunk-size bytes that `ews_stream` reads.
fn ews_capture_seeds(dir: &Path, label: &str, add: &mut impl FnMut(&'static str, String, Vec<u8>)) {
    let mut streaming = Vec::new();
    for (name, path) in files(dir) {
        if !(name.ends_with(".xml") || name.ends_with(".body")) {
            continue;
        }
        let body = std::fs::read(&path).unwrap();
        let status = if contains(&body, b"Fault>") { 1 } else { 0 };
        add(
            "ews_response",
            format!("{label}-{name}"),
            prefixed(&[status], &body),
        );

        if contains(&body, b"GetStreamingEventsResponse") {
            add(
                "ews_stream",
                format!("{label}-{name}"),
                prefixed(&[7, 64, 1, 200], &body),
            );
            streaming.extend_from_slice(&body);
        }
    }
    // One HTTP response of GetStreamingEvents carries several SOAP documents in a row.
    if !streaming.is_empty() {
        add(
            "ews_stream",
            format!("{label}-all-streaming"),
            prefixed(&[3, 17, 250, 32], &streaming),
        );
    }
}

/// Adds the `*.hex` vectors in `dir`: specification examples, buffers cut from real
/// Outlook traffic and labelled synthetic vectors.
fn mapi_vector_seeds(dir: &Path, add: &mut impl FnMut(&'static str, String, Vec<u8>)) {
    for (name, path) in files(dir) {
        if !name.ends_with(".hex") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let seed_name = format!("vector-{name}");

        if name.starts_with("lz77-") {
            // Two data lines, `A: <plain>` and `B: <compressed>`: the target reads a
            // little-endian u16 declared size, then the compressed stream.
            let line = |prefix: &str| {
                text.lines()
                    .find_map(|l| l.trim().strip_prefix(prefix))
                    .map(parse_hex)
                    .unwrap_or_default()
            };
            let (plain, packed) = (line("A:"), line("B:"));
            let size = u16::try_from(plain.len()).unwrap_or(u16::MAX);
            add(
                "mapi_ext_lz77",
                seed_name,
                prefixed(&size.to_le_bytes(), &packed),
            );
            continue;
        }

        let bytes = parse_hex(&text);
        let target = if name.starts_with("idset-") {
            "mapi_idset"
        } else if name.starts_with("rop-") {
            "mapi_rop_response"
        } else if name.starts_with("rgbin-") || name.starts_with("auxin-xor") {
            "mapi_ext_lz77"
        } else if name.starts_with("mapihttp-") {
            "mapi_body"
        } else {
            continue;
        };
        add(target, seed_name, bytes);
    }
}

/// Adds what recorded MAPI/HTTP exchanges in `dir` contain: framed response bodies, the
/// binary bodies inside them, their extended buffers, the decoded ROP buffers and the
/// FastTransfer streams.
fn mapi_exchange_seeds(
    dir: &Path,
    label: &str,
    add: &mut impl FnMut(&'static str, String, Vec<u8>),
) {
    for (name, path) in files(dir) {
        let seed_name = format!("{label}-{name}");

        if name.ends_with(".rops.hex") {
            let text = std::fs::read_to_string(&path).unwrap();
            add("mapi_rop_response", seed_name, parse_hex(&text));
        } else if name.ends_with(".fxstream.bin") {
            add(
                "mapi_fasttransfer",
                seed_name,
                std::fs::read(&path).unwrap(),
            );
        } else if name.ends_with(".request.body") {
            let body = std::fs::read(&path).unwrap();
            if let Ok(request) = ExecuteRequest::decode(&body) {
                add(
                    "mapi_ext_lz77",
                    format!("{seed_name}-rops"),
                    request.rop_buffer,
                );
                add("mapi_ext_lz77", format!("{seed_name}-aux"), request.aux);
            }
            add("mapi_body", seed_name, body);
        } else if name.ends_with(".response.body") {
            let framed = std::fs::read(&path).unwrap();
            if let Ok(parsed) = http::parse_body(&framed) {
                if let Ok(Response::Success(execute)) = ExecuteResponse::decode(&parsed.body) {
                    add(
                        "mapi_ext_lz77",
                        format!("{seed_name}-rops"),
                        execute.rop_buffer,
                    );
                }
                add("mapi_body", format!("{seed_name}-binary"), parsed.body);
            }
            add("mapi_http_response", seed_name, framed);
        }
    }
}

/// Adds inputs that the codecs' own encoders write, so every target also starts from
/// bytes that this project produces (compressed and obfuscated buffers, framing with keep-alives,
/// FastTransfer elements and IDSETs of both forms).
fn encoder_seeds(add: &mut impl FnMut(&'static str, String, Vec<u8>)) {
    let sync = exmux_ews::sample::sync_folder_items_response(3).unwrap();
    let find = exmux_ews::sample::find_item_response(2).unwrap();
    add(
        "ews_response",
        "encoder-syncfolderitems".into(),
        prefixed(&[0], &sync),
    );
    add(
        "ews_response",
        "encoder-finditem".into(),
        prefixed(&[0], &find),
    );

    // A ROP payload with repeats, so LZ77 finds matches.
    let rops = exmux_ews::sample::mail_item(1)
        .subject
        .unwrap_or_default()
        .repeat(4);
    for (name, compress, xor) in [
        ("plain", false, false),
        ("compressed", true, false),
        ("xor", false, true),
        ("compressed-xor", true, true),
    ] {
        let options = EncodeOptions { compress, xor };
        let chain = ext::encode_chain(&[rops.as_bytes(), b"second segment"], options).unwrap();
        add(
            "mapi_ext_lz77",
            format!("encoder-chain-{name}"),
            chain.clone(),
        );

        let request = ExecuteRequest {
            flags: 0,
            rop_buffer: chain,
            max_rop_out: 0x8000,
            aux: Vec::new(),
        };
        add(
            "mapi_body",
            format!("encoder-execute-{name}"),
            request.encode().unwrap(),
        );
    }
    let packed = lz77::compress(rops.as_bytes());
    let size = u16::try_from(rops.len()).unwrap();
    add(
        "mapi_ext_lz77",
        "encoder-lz77".into(),
        prefixed(&size.to_le_bytes(), &packed),
    );

    let mut framed = Vec::new();
    http::write_preamble(3, 12, "Fri, 04 Dec 2026 20:08:24 GMT", &mut framed);
    framed.extend_from_slice(b"\x00\x00\x00\x00binary body");
    add("mapi_http_response", "encoder-preamble".into(), framed);

    let guid = Guid([3; 16]);
    let mut state = IcsState::default();
    state.idset_given.insert_range(Replica::Guid(guid), 1, 100);
    state
        .cnset_seen
        .insert_range(Replica::Guid(guid), 0x10, 0x4000);
    let mut writer = FxWriter::new();
    writer
        .folder_change(&[])
        .value(PropTag(0x3001_001F), PropValue::Unicode("Inbox".into()))
        .state(&state, false)
        .end();
    add(
        "mapi_fasttransfer",
        "encoder-folder-change".into(),
        writer.bytes().to_vec(),
    );

    let mut set = IdSet::new();
    set.insert_range(Replica::Id(1), 0x1000, 0x1010);
    set.insert(Replica::Id(2), 0xFFFF_FFFF_FFFF);
    set.insert_range(Replica::Id(2), 0x20, 0x3F);
    add(
        "mapi_idset",
        "encoder-replid".into(),
        set.encode(IdsetForm::ReplId),
    );
    let mut set = IdSet::new();
    set.insert_range(Replica::Guid(guid), 1, 0x1_0000);
    set.insert(Replica::Guid(Guid([9; 16])), 7);
    add(
        "mapi_idset",
        "encoder-replguid".into(),
        set.encode(IdsetForm::ReplGuid),
    );
}

/// Returns the (file name, path) pairs of `dir` in name order; an absent folder (the
/// repository's own recordings may not exist yet) gives none.
fn files(dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<(String, PathBuf)> = entries
        .flatten()
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect();
    files.sort();
    files
}

/// Parses the `*.hex` format: `#` lines are comments, the rest are hex byte pairs.
fn parse_hex(text: &str) -> Vec<u8> {
    text.lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .flat_map(str::split_whitespace)
        .filter_map(|pair| u8::from_str_radix(pair, 16).ok())
        .collect()
}

fn prefixed(prefix: &[u8], body: &[u8]) -> Vec<u8> {
    [prefix, body].concat()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
