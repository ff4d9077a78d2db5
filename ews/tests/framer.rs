//! The chunked reader of SyncFolderItems, FindItem and GetItem responses
//! (`ops::framer`) gives what the whole-body parser gives, whatever the chunk
//! boundaries, and keeps about one item in memory at a time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use exmux_ews::error::EwsError;
use exmux_ews::operation::{EwsOperation, Response, decode_response};
use exmux_ews::ops::framer::{Framer, ListKind};
use exmux_ews::ops::items::GetItem;
use exmux_ews::ops::sync::{FindItem, FindItemPage, ItemSync, SyncFolderItems};
use exmux_ews::types::Item;
use proptest::prelude::*;

const CHUNK_SIZES: &[usize] = &[1, 2, 3, 7, 64, 1000, 4096, usize::MAX];

/// The values parsed from the fragments, each with its message index, and the skeleton.
type Framed<T> = (Vec<(usize, T)>, Vec<u8>);

/// Feeds `body` in `chunk`-byte pieces and returns the fragments' values per message and
/// the skeleton.
fn frame<T>(
    kind: ListKind,
    body: &[u8],
    chunk: usize,
    parse: impl Fn(&exmux_ews::ops::framer::Fragment) -> Result<Option<T>, EwsError>,
) -> Result<Framed<T>, EwsError> {
    let mut framer = Framer::new(kind);
    let mut values = Vec::new();
    for piece in body.chunks(chunk.max(1)) {
        framer.push(piece);
        while let Some(fragment) = framer.next_fragment() {
            if let Some(value) = parse(&fragment)? {
                values.push((fragment.message_index, value));
            }
        }
    }
    Ok((values, framer.finish()))
}

fn streamed_sync(body: &[u8], chunk: usize) -> Result<Response<ItemSync>, EwsError> {
    let (changes, skeleton) = frame(ListKind::SyncChanges, body, chunk, |f| f.parse_change())?;
    let mut response = decode_response::<SyncFolderItems>(200, Some("text/xml"), &skeleton)?;
    if let Some(Ok(page)) = response.messages.first_mut() {
        assert!(page.changes.is_empty(), "the skeleton keeps no change");
        page.changes = changes.into_iter().map(|(_, change)| change).collect();
    }
    Ok(response)
}

fn streamed_find(body: &[u8], chunk: usize) -> Result<Response<FindItemPage>, EwsError> {
    let (items, skeleton) = frame(ListKind::FindItems, body, chunk, |f| f.parse_item())?;
    let mut response = decode_response::<FindItem>(200, Some("text/xml"), &skeleton)?;
    for (index, item) in items {
        match response.messages.get_mut(index) {
            Some(Ok(page)) => page.items.push(item),
            other => panic!("item for message {index}, which is {other:?}"),
        }
    }
    Ok(response)
}

fn streamed_get(body: &[u8], chunk: usize) -> Result<Response<Vec<Item>>, EwsError> {
    let (items, skeleton) = frame(ListKind::GetItems, body, chunk, |f| f.parse_item())?;
    let mut response = decode_response::<GetItem>(200, Some("text/xml"), &skeleton)?;
    for (index, item) in items {
        match response.messages.get_mut(index) {
            Some(Ok(list)) => list.push(item),
            other => panic!("item for message {index}, which is {other:?}"),
        }
    }
    Ok(response)
}

fn whole<O: EwsOperation>(body: &[u8]) -> Result<O::Response, EwsError> {
    decode_response::<O>(200, Some("text/xml"), body)
}

/// Checks that every chunk size gives the whole-body result, or an error when the
/// whole-body parser gives one.
fn check_all_chunkings(name: &str, body: &[u8]) {
    let lower = name.to_ascii_lowercase();
    for &chunk in CHUNK_SIZES {
        if lower.contains("syncfolderitems") {
            let expected = whole::<SyncFolderItems>(body);
            let got = streamed_sync(body, chunk);
            compare(name, chunk, expected, got);
        } else if lower.contains("finditem") {
            compare(
                name,
                chunk,
                whole::<FindItem>(body),
                streamed_find(body, chunk),
            );
        } else if lower.contains("getitem") {
            compare(
                name,
                chunk,
                whole::<GetItem>(body),
                streamed_get(body, chunk),
            );
        }
    }
}

fn compare<T: PartialEq + std::fmt::Debug>(
    name: &str,
    chunk: usize,
    expected: Result<T, EwsError>,
    got: Result<T, EwsError>,
) {
    match (expected, got) {
        (Ok(expected), Ok(got)) => assert_eq!(got, expected, "{name} in {chunk}-byte chunks"),
        (Err(_), Err(_)) => {}
        (expected, got) => {
            panic!("{name} in {chunk}-byte chunks: whole body {expected:?}, chunked {got:?}")
        }
    }
}

#[test]
fn shared_samples_match_whole_body() {
    let mut checked = 0;
    for folder in ["captures/ews", "captures/ews-gromox"] {
        let Some(dir) = shared(folder) else {
            return;
        };
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let lower = name.to_ascii_lowercase();
            let wanted = ["syncfolderitems", "finditem", "getitem"]
                .iter()
                .any(|op| lower.contains(op));
            if !wanted || lower.contains("request") || !lower.ends_with(".xml") {
                continue;
            }
            check_all_chunkings(&name, &std::fs::read(&path).unwrap());
            checked += 1;
        }
    }
    assert!(checked >= 14, "only {checked} samples found");
}

#[test]
fn generated_responses_match_whole_body() {
    let sync = exmux_ews::sample::sync_folder_items_response(40).unwrap();
    check_all_chunkings("SyncFolderItems sample", &sync);
    let find = exmux_ews::sample::find_item_response(40).unwrap();
    check_all_chunkings("FindItem sample", &find);
    assert_eq!(
        streamed_sync(&sync, 100).unwrap().messages[0]
            .as_ref()
            .unwrap()
            .changes
            .len(),
        40
    );
}

/// Memory is bounded by one item plus one chunk: a 5000-change response of about 9 MB
/// read in 16 KiB chunks never keeps more than one chunk and one item in memory.
#[test]
fn large_response_holds_one_item() {
    let body = exmux_ews::sample::sync_folder_items_response(5000).unwrap();
    assert!(body.len() > 8_000_000, "{} bytes", body.len());
    let chunk = 16 * 1024;

    let mut framer = Framer::new(ListKind::SyncChanges);
    let mut largest = 0;
    let mut count = 0;
    for piece in body.chunks(chunk) {
        framer.push(piece);
        while let Some(fragment) = framer.next_fragment() {
            largest = largest.max(fragment.document.len());
            assert!(fragment.parse_change().unwrap().is_some());
            count += 1;
        }
    }
    let high_water = framer.high_water();
    let skeleton = framer.finish();

    assert_eq!(count, 5000);
    assert!(
        high_water <= chunk + largest,
        "held {high_water} bytes with {chunk}-byte chunks and items up to {largest} bytes"
    );
    assert!(
        skeleton.len() < 4096,
        "skeleton of {} bytes",
        skeleton.len()
    );
    let page = whole::<SyncFolderItems>(&skeleton)
        .unwrap()
        .messages
        .remove(0)
        .unwrap();
    assert!(page.changes.is_empty());
    assert!(!page.sync_state.is_empty());
}

#[test]
fn truncated_body_fails_like_whole_body() {
    let body = exmux_ews::sample::sync_folder_items_response(5).unwrap();
    for cut in [10, body.len() / 2, body.len() - 20] {
        let truncated = &body[..cut];
        assert!(whole::<SyncFolderItems>(truncated).is_err());
        for &chunk in CHUNK_SIZES {
            assert!(
                streamed_sync(truncated, chunk).is_err(),
                "cut at {cut}, {chunk}-byte chunks"
            );
        }
    }
}

#[test]
fn dtd_is_rejected_in_chunks() {
    let body = exmux_ews::sample::sync_folder_items_response(2).unwrap();
    let text = String::from_utf8(body).unwrap();
    let with_dtd = text.replacen(
        "<soap:Envelope",
        "<!DOCTYPE x [<!ENTITY e \"boom\">]><soap:Envelope",
        1,
    );
    assert_ne!(with_dtd, text);
    assert!(whole::<SyncFolderItems>(with_dtd.as_bytes()).is_err());
    for &chunk in CHUNK_SIZES {
        assert!(
            streamed_sync(with_dtd.as_bytes(), chunk).is_err(),
            "{chunk}"
        );
    }
}

#[test]
fn html_error_page_stays_in_skeleton() {
    let body = b"<html><body><h1>502 Bad Gateway</h1></body></html>";
    let (items, skeleton) = frame(ListKind::FindItems, body, 5, |f| f.parse_item()).unwrap();
    assert!(items.is_empty());
    assert_eq!(skeleton, body);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any split of the body into chunks gives the whole-body result.
    #[test]
    fn any_chunking_matches(cuts in proptest::collection::vec(0usize..20_000, 0..40)) {
        let body = exmux_ews::sample::sync_folder_items_response(8).unwrap();
        let mut cuts: Vec<usize> = cuts.into_iter().map(|cut| cut % body.len()).collect();
        cuts.sort_unstable();
        cuts.dedup();

        let mut framer = Framer::new(ListKind::SyncChanges);
        let mut changes = Vec::new();
        let mut start = 0;
        for cut in cuts.into_iter().chain([body.len()]) {
            framer.push(&body[start..cut]);
            start = cut;
            while let Some(fragment) = framer.next_fragment() {
                changes.push(fragment.parse_change().unwrap().unwrap());
            }
        }
        let skeleton = framer.finish();
        let mut got = whole::<SyncFolderItems>(&skeleton).unwrap();
        if let Some(Ok(page)) = got.messages.first_mut() {
            page.changes = changes;
        }
        prop_assert_eq!(got, whole::<SyncFolderItems>(&body).unwrap());
    }
}
