//! Entry points shared by the cargo-fuzz targets and the stable test that runs the same
//! code over generated inputs. Each must return without panicking for any input.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use crate::operation::{EwsOperation, decode_response, decode_unimplemented};
use crate::ops::folders::{GetFolder, SyncFolderHierarchy};
use crate::ops::framer::{Framer, ListKind};
use crate::ops::items::{GetItem, MoveItem, UpdateItem};
use crate::ops::notify::{GetEvents, GetStreamingEvents, StreamingReader};
use crate::ops::sync::{FindItem, FindItemReader, SyncFolderItems, SyncItemsReader};
use crate::soap;

/// Runs `data` through every response parser, the incremental readers and the request
/// parser. The first byte picks the HTTP status, so fault and non-XML paths are reached.
pub fn parse_response(data: &[u8]) {
    let (status, body) = match data.split_first() {
        Some((&b, rest)) => (if b & 1 == 0 { 200 } else { 500 }, rest),
        None => (200, data),
    };
    let _ = decode_response::<SyncFolderItems>(status, Some("text/xml"), body);
    let _ = decode_response::<FindItem>(status, Some("text/xml"), body);
    let _ = decode_response::<GetItem>(status, None, body);
    let _ = decode_response::<GetFolder>(status, None, body);
    let _ = decode_response::<SyncFolderHierarchy>(status, None, body);
    let _ = decode_response::<UpdateItem>(status, None, body);
    let _ = decode_response::<MoveItem>(status, None, body);
    let _ = decode_response::<GetEvents>(status, None, body);
    let _ = GetStreamingEvents::parse_response(body);
    let _ = decode_unimplemented(status, None, body);
    if let Ok(reader) = SyncItemsReader::new(body) {
        for _ in reader {}
    }
    if let Ok(reader) = FindItemReader::new(body) {
        for _ in reader {}
    }
    let _ = soap::parse_request(body);
    frame_lists(status, body);
}

/// Runs the chunked list reader over `body` in 7-byte chunks, parses every fragment it
/// cuts out, and decodes what is left. The list kind is picked by the body's length, so
/// each input costs one pass.
fn frame_lists(status: u16, body: &[u8]) {
    let kinds = [
        ListKind::SyncChanges,
        ListKind::FindItems,
        ListKind::GetItems,
    ];
    let Some(&kind) = kinds.get(body.len() % kinds.len()) else {
        return;
    };
    let mut framer = Framer::new(kind);
    for piece in body.chunks(7) {
        framer.push(piece);
        while let Some(fragment) = framer.next_fragment() {
            let _ = fragment.parse_change();
            let _ = fragment.parse_item();
        }
    }
    let skeleton = framer.finish();
    let _ = match kind {
        ListKind::SyncChanges => {
            decode_response::<SyncFolderItems>(status, Some("text/xml"), &skeleton).is_ok()
        }
        ListKind::FindItems => {
            decode_response::<FindItem>(status, Some("text/xml"), &skeleton).is_ok()
        }
        _ => decode_response::<GetItem>(status, None, &skeleton).is_ok(),
    };
}

/// Splits `data` into pieces (sizes taken from its first bytes) and feeds them to the
/// streaming reader. Checks that the documents framed do not depend on the split.
pub fn frame_stream(data: &[u8]) {
    let (sizes, body) = data.split_at(data.len().min(4));
    let whole = collect_documents(body, &[body.len().max(1)]);
    let sizes: Vec<usize> = sizes.iter().map(|&s| usize::from(s % 64) + 1).collect();
    let split = collect_documents(body, &sizes);
    // Framing is independent of chunk boundaries up to the first framing error.
    assert_eq!(whole, split, "framing depends on chunk boundaries");
}

fn collect_documents(body: &[u8], sizes: &[usize]) -> Vec<Result<String, String>> {
    let mut reader = StreamingReader::new();
    let mut out = Vec::new();
    let mut rest = body;
    let mut i = 0;
    while !rest.is_empty() {
        let size = sizes
            .get(i % sizes.len().max(1))
            .copied()
            .unwrap_or(1)
            .min(rest.len());
        let (piece, tail) = rest.split_at(size);
        rest = tail;
        i += 1;
        reader.push(piece);
        loop {
            match reader.next_message() {
                Ok(Some(m)) => out.push(Ok(format!("{m:?}"))),
                Ok(None) => break,
                Err(e) => {
                    // The first framing or parse error ends the comparison: the framer
                    // resets, so what follows depends on where the error was seen.
                    let _ = e;
                    out.push(Err(String::new()));
                    return out;
                }
            }
        }
    }
    out
}
