//! Helpers shared by the integration tests: reading shared samples and dispatching a
//! body to the parser of its operation.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use exmux_ews::EwsServerOperation;
use exmux_ews::error::EwsError;
use exmux_ews::operation::decode_response;
use exmux_ews::ops::folders::*;
use exmux_ews::ops::items::*;
use exmux_ews::ops::notify::*;
use exmux_ews::ops::sync::*;
use exmux_ews::soap;

/// The shared folder, or `None` (test skipped) outside CI; under CI a missing folder fails.
pub fn shared(rel: &str) -> Option<PathBuf> {
    let p = exmux_testkit::shared_path(rel);
    if p.is_none() && std::env::var_os("CI").is_some() {
        panic!("shared folder {rel} is missing under CI");
    }
    p
}

pub fn read(rel: &str) -> Option<Vec<u8>> {
    shared(rel).map(|p| std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
}

/// Decodes a response with the parser of `op` and returns its debug form.
pub fn decode_by_name(op: &str, status: u16, body: &[u8]) -> Result<String, EwsError> {
    macro_rules! d {
        ($t:ty) => {
            decode_response::<$t>(status, Some("text/xml; charset=utf-8"), body)
                .map(|r| format!("{r:?}"))
        };
    }
    match op {
        "GetFolder" => d!(GetFolder),
        "FindFolder" => d!(FindFolder),
        "SyncFolderHierarchy" => d!(SyncFolderHierarchy),
        "SyncFolderItems" => d!(SyncFolderItems),
        "FindItem" => d!(FindItem),
        "GetItem" => d!(GetItem),
        "CreateItem" => d!(CreateItem),
        "UpdateItem" => d!(UpdateItem),
        "DeleteItem" => d!(DeleteItem),
        "MoveItem" => d!(MoveItem),
        "CopyItem" => d!(CopyItem),
        "Subscribe" => d!(Subscribe),
        "GetEvents" => d!(GetEvents),
        "GetStreamingEvents" => d!(GetStreamingEvents),
        "Unsubscribe" => d!(Unsubscribe),
        "SendItem" => d!(SendItem),
        "CreateFolder" => d!(CreateFolder),
        "UpdateFolder" => d!(UpdateFolder),
        "MoveFolder" => d!(MoveFolder),
        "DeleteFolder" => d!(DeleteFolder),
        "ConvertId" => d!(ConvertId),
        _ => exmux_ews::operation::decode_unimplemented(status, Some("text/xml"), body)
            .map(|u| format!("{u:?}")),
    }
}

/// Parses a request with the request parser the emulator uses.
pub fn parse_request_by_name(body: &[u8]) -> Result<String, EwsError> {
    let req = soap::parse_request(body)?;
    let b = &req.body;
    let s = match req.operation() {
        "GetFolder" => format!("{:?}", GetFolder::from_request(b)?),
        "FindFolder" => format!("{:?}", FindFolder::from_request(b)?),
        "SyncFolderHierarchy" => format!("{:?}", SyncFolderHierarchy::from_request(b)?),
        "SyncFolderItems" => format!("{:?}", SyncFolderItems::from_request(b)?),
        "FindItem" => format!("{:?}", FindItem::from_request(b)?),
        "GetItem" => format!("{:?}", GetItem::from_request(b)?),
        "CreateItem" => format!("{:?}", CreateItem::from_request(b)?),
        "UpdateItem" => format!("{:?}", UpdateItem::from_request(b)?),
        "DeleteItem" => format!("{:?}", DeleteItem::from_request(b)?),
        "MoveItem" => format!("{:?}", MoveItem::from_request(b)?),
        "CopyItem" => format!("{:?}", CopyItem::from_request(b)?),
        "Subscribe" => format!("{:?}", Subscribe::from_request(b)?),
        "GetEvents" => format!("{:?}", GetEvents::from_request(b)?),
        "GetStreamingEvents" => format!("{:?}", GetStreamingEvents::from_request(b)?),
        "Unsubscribe" => format!("{:?}", Unsubscribe::from_request(b)?),
        "SendItem" => format!("{:?}", SendItem::from_request(b)?),
        "CreateFolder" => format!("{:?}", CreateFolder::from_request(b)?),
        "UpdateFolder" => format!("{:?}", UpdateFolder::from_request(b)?),
        "MoveFolder" => format!("{:?}", MoveFolder::from_request(b)?),
        "DeleteFolder" => format!("{:?}", DeleteFolder::from_request(b)?),
        "ConvertId" => format!("{:?}", ConvertId::from_request(b)?),
        other => format!("unimplemented request {other}"),
    };
    Ok(s)
}

/// The operation name of a capture file name (`syncfolderitems-2.xml`,
/// `36-SyncFolderItems-inbox-empty-state.response.xml`).
pub fn op_of_file(name: &str) -> String {
    const OPS: &[&str] = &[
        "GetFolder",
        "FindFolder",
        "SyncFolderHierarchy",
        "SyncFolderItems",
        "FindItem",
        "GetItem",
        "CreateItem",
        "UpdateItem",
        "DeleteItem",
        "MoveItem",
        "CopyItem",
        "Subscribe",
        "GetEvents",
        "GetStreamingEvents",
        "Unsubscribe",
        "SendItem",
        "CreateFolder",
        "UpdateFolder",
        "MoveFolder",
        "DeleteFolder",
        "ConvertId",
    ];
    let lower = name.to_ascii_lowercase();
    let head = lower.trim_start_matches(|c: char| c.is_ascii_digit() || c == '-');
    let head = head.split('-').next().unwrap_or_default();
    OPS.iter()
        .find(|o| o.to_ascii_lowercase() == head)
        .map(|s| s.to_string())
        .unwrap_or_else(|| head.to_string())
}

/// The HTTP status recorded in a gromox `.response.headers` file (200 when absent).
pub fn status_of(headers: Option<&[u8]>) -> u16 {
    let Some(h) = headers else { return 200 };
    let text = String::from_utf8_lossy(h);
    text.split_whitespace()
        .find_map(|w| w.parse::<u16>().ok().filter(|n| (100..600).contains(n)))
        .unwrap_or(200)
}
