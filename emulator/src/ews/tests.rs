//! Unit tests of the EWS front end: requests written by the client's codec, handled by
//! the front end, parsed by the client's codec, and every response body checked against
//! the official schema with xmllint when it is installed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use exmux_core::ManualClock;
use exmux_ews::ops::Shape;
use exmux_ews::ops::folders::{FindFolder, GetFolder, SyncFolderHierarchy};
use exmux_ews::ops::items::{CreateItem, GetItem, ItemUpdate, UpdateItem};
use exmux_ews::ops::notify::{
    ConnectionStatus, EventKind, GetEvents, GetStreamingEvents, StreamingReader, Subscribe,
    SubscriptionKind,
};
use exmux_ews::ops::sync::{FindItem, SyncFolderItems};
use exmux_ews::types::{
    BaseShape, ConflictResolution, DistinguishedFolder, EventType, FolderRef, Item, ItemKind,
    MessageDisposition, Traversal,
};
use exmux_ews::{EwsOperation, RequestHeader, decode_response, encode_request};
use tokio_util::sync::CancellationToken;

use super::{EwsFrontEnd, Quirk};
use crate::server::{
    AuthenticatedUser, FaultSwitches, MailboxFacts, RequestContext, ResponseBody, SharedState,
};
use crate::store::{Store, StoreOptions};

struct Harness {
    front_end: EwsFrontEnd,
    state: Arc<SharedState>,
    clock: ManualClock,
}

impl Harness {
    fn new() -> Self {
        let clock = ManualClock::default();
        let store = Store::new(StoreOptions {
            clock: Arc::new(clock.clone()),
            ..StoreOptions::default()
        });
        let state = Arc::new(SharedState {
            store: Arc::new(Mutex::new(store)),
            clock: Arc::new(clock.clone()),
            faults: Arc::new(FaultSwitches::default()),
            mailbox: MailboxFacts {
                address: "user1@example.test".to_owned(),
                domain: "example.test".to_owned(),
                mailbox_guid: uuid::Uuid::from_bytes([7; 16]),
                username: "user1@example.test".to_owned(),
                base_url: "http://127.0.0.1:1".to_owned(),
            },
            shutdown: CancellationToken::new(),
            validators: Default::default(),
        });
        Self {
            front_end: EwsFrontEnd::new(),
            state,
            clock,
        }
    }

    fn context(&self) -> RequestContext {
        RequestContext {
            user: AuthenticatedUser {
                name: "user1@example.test".to_owned(),
                scheme: None,
            },
            state: Arc::clone(&self.state),
            connection_id: 1,
            request_id: 1,
            peer: SocketAddr::from(([127, 0, 0, 1], 1)),
            tls: false,
        }
    }

    /// Sends `op` and returns the HTTP status and the complete body.
    async fn raw<O: EwsOperation>(&self, op: &O) -> (u16, Vec<u8>) {
        let body = encode_request(op, &RequestHeader::default()).unwrap();
        let request = http::Request::post("/EWS/Exchange.asmx")
            .body(Bytes::from(body))
            .unwrap();
        let response = self.front_end.clone().serve(request, self.context()).await;
        let status = response.status().as_u16();
        match response.into_body() {
            ResponseBody::Full(bytes) => (status, bytes.to_vec()),
            ResponseBody::Stream(_) => panic!("a complete body was expected"),
        }
    }

    /// Sends `op`, checks the response body against the schema and decodes it.
    async fn call<O: EwsOperation>(&self, op: &O) -> O::Response {
        let (status, body) = self.raw(op).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        validate(&body);
        decode_response::<O>(status, Some("text/xml"), &body).unwrap()
    }
}

/// Returns the command and schema path for validation, or `None` to skip outside CI
/// when xmllint or the schema is missing.
fn validator() -> Option<(PathBuf, String)> {
    let schema = exmux_testkit::shared_path("schema/ews/messages.xsd")?;
    let found = Command::new("xmllint").arg("--version").output().is_ok();
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "xmllint is missing; install Debian's libxml2-utils"
        );
        return None;
    }
    Some((schema, "xmllint".to_owned()))
}

/// Validates the SOAP body element of `envelope` against the EWS schema. `t:Flag`
/// elements are removed first: they are Exchange 2013 elements that the Exchange 2010
/// SP2 schema does not have.
fn validate(envelope: &[u8]) {
    let Some((schema, command)) = validator() else {
        return;
    };
    let text = String::from_utf8(envelope.to_vec()).unwrap();
    let start = text.find("<soap:Body>").unwrap() + "<soap:Body>".len();
    let end = text.rfind("</soap:Body>").unwrap();
    let mut body = text[start..end].to_owned();
    while let Some(open) = body.find("<t:Flag>") {
        let close = body[open..].find("</t:Flag>").unwrap() + open + "</t:Flag>".len();
        body.replace_range(open..close, "");
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("body.xml");
    std::fs::write(&file, &body).unwrap();
    let output = Command::new(command)
        .args(["--noout", "--nonet", "--schema"])
        .arg(&schema)
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "schema validation failed: {}\n{body}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn inbox() -> FolderRef {
    FolderRef::distinguished(DistinguishedFolder::Inbox)
}

fn new_message(subject: &str) -> CreateItem {
    let mut item = Item::new(ItemKind::Message);
    item.subject = Some(subject.to_owned());
    item.body = Some(("Hello".to_owned(), false));
    CreateItem {
        disposition: Some(MessageDisposition::SaveOnly),
        saved_folder: Some(inbox()),
        items: vec![item],
    }
}

#[tokio::test]
async fn responses_validate_against_schema() {
    let harness = Harness::new();
    let created = harness.call(&new_message("schema")).await;
    let id = created.messages[0].as_ref().unwrap()[0]
        .item_id
        .clone()
        .unwrap();

    harness
        .call(&GetFolder {
            shape: Shape::base(BaseShape::AllProperties),
            folder_ids: vec![inbox()],
        })
        .await;
    harness
        .call(&FindFolder {
            traversal: Traversal::Deep,
            shape: Shape::base(BaseShape::Default),
            page: None,
            parents: vec![FolderRef::distinguished(DistinguishedFolder::MsgFolderRoot)],
        })
        .await;
    harness
        .call(&SyncFolderHierarchy {
            shape: Shape::base(BaseShape::Default),
            folder: None,
            sync_state: None,
        })
        .await;
    let mut shape = Shape::base(BaseShape::AllProperties);
    shape.include_mime_content = true;
    let got = harness
        .call(&GetItem {
            shape,
            item_ids: vec![id.clone()],
        })
        .await;
    assert_eq!(
        got.messages[0].as_ref().unwrap()[0].subject.as_deref(),
        Some("schema")
    );
    harness
        .call(&UpdateItem {
            conflict_resolution: ConflictResolution::AutoResolve,
            disposition: MessageDisposition::SaveOnly,
            changes: vec![(id, vec![ItemUpdate::SetIsRead(true)])],
        })
        .await;
    harness
        .call(&FindItem {
            traversal: Traversal::Shallow,
            shape: Shape::base(BaseShape::AllProperties),
            page: None,
            parents: vec![inbox()],
        })
        .await;
    let sync = harness
        .call(&SyncFolderItems {
            shape: Shape::base(BaseShape::Default),
            folder: inbox(),
            sync_state: None,
            ignore: Vec::new(),
            max_changes: 10,
        })
        .await;
    assert_eq!(sync.messages[0].as_ref().unwrap().changes.len(), 1);
    let bad_state = harness
        .call(&SyncFolderItems {
            shape: Shape::base(BaseShape::Default),
            folder: inbox(),
            sync_state: Some("AAAA".to_owned()),
            ignore: Vec::new(),
            max_changes: 10,
        })
        .await;
    assert!(bad_state.messages[0].is_err());

    let subscription = harness
        .call(&Subscribe {
            kind: SubscriptionKind::Pull {
                watermark: None,
                timeout_minutes: 5,
            },
            folders: vec![inbox()],
            event_types: vec![EventType::Created],
        })
        .await;
    let subscription = subscription.messages[0].as_ref().unwrap().clone();
    harness.call(&new_message("event")).await;
    let events = harness
        .call(&GetEvents {
            subscription_id: subscription.subscription_id,
            watermark: subscription.watermark.unwrap(),
        })
        .await;
    let notification = events.messages[0].as_ref().unwrap();
    assert_eq!(notification.events[0].kind, EventKind::Created);
}

#[tokio::test]
async fn busy_message_switch_answers_200() {
    let harness = Harness::new();
    harness
        .front_end
        .busy_in_response_message(1, Duration::from_millis(5000));
    let op = GetFolder {
        shape: Shape::base(BaseShape::IdOnly),
        folder_ids: vec![inbox()],
    };
    let response = harness.call(&op).await;
    let error = response.messages[0].as_ref().unwrap_err();
    assert_eq!(error.throttle_hint().unwrap().back_off_millis, Some(5000));
    assert!(harness.call(&op).await.messages[0].is_ok());
}

#[tokio::test]
async fn malformed_request_gets_a_fault() {
    let harness = Harness::new();
    let request = http::Request::post("/EWS/Exchange.asmx")
        .body(Bytes::from_static(b"<soap:Envelope"))
        .unwrap();
    let response = harness
        .front_end
        .clone()
        .serve(request, harness.context())
        .await;
    assert_eq!(response.status(), 500);
}

/// Opens a streaming subscription on the inbox and returns the chunk receiver.
async fn open_stream(harness: &Harness) -> (String, tokio::sync::mpsc::Receiver<Bytes>) {
    let subscription = harness
        .call(&Subscribe {
            kind: SubscriptionKind::Streaming,
            folders: vec![inbox()],
            event_types: vec![EventType::Created],
        })
        .await;
    let id = subscription.messages[0]
        .as_ref()
        .unwrap()
        .subscription_id
        .clone();
    let body = encode_request(
        &GetStreamingEvents {
            subscription_ids: vec![id.clone()],
            connection_timeout_minutes: 1,
        },
        &RequestHeader::default(),
    )
    .unwrap();
    let request = http::Request::post("/EWS/Exchange.asmx")
        .body(Bytes::from(body))
        .unwrap();
    let response = harness
        .front_end
        .clone()
        .serve(request, harness.context())
        .await;
    match response.into_body() {
        ResponseBody::Stream(receiver) => (id, receiver),
        ResponseBody::Full(bytes) => panic!("not a stream: {}", String::from_utf8_lossy(&bytes)),
    }
}

async fn next_chunk(receiver: &mut tokio::sync::mpsc::Receiver<Bytes>) -> Option<Bytes> {
    tokio::time::timeout(Duration::from_secs(5), receiver.recv())
        .await
        .expect("the stream stalled")
}

#[tokio::test]
async fn stream_heartbeats_follow_the_clock() {
    let harness = Harness::new();
    let (_, mut receiver) = open_stream(&harness).await;
    harness.call(&new_message("streamed")).await;

    let mut reader = StreamingReader::new();
    let chunk = next_chunk(&mut receiver).await.unwrap();
    validate(&chunk);
    assert!(
        String::from_utf8_lossy(&chunk).contains("<t:Notification>"),
        "the schema's namespace by default"
    );
    reader.push(&chunk);
    let events = reader.next_message().unwrap().unwrap();
    let message = events.messages[0].as_ref().unwrap();
    assert_eq!(message.notifications[0].events[0].kind, EventKind::Created);

    harness.clock.advance(Duration::from_secs(45));
    let heartbeat = next_chunk(&mut receiver).await.unwrap();
    reader.push(&heartbeat);
    let heartbeat = reader.next_message().unwrap().unwrap();
    let heartbeat = heartbeat.messages[0].as_ref().unwrap();
    assert!(heartbeat.notifications.is_empty());
    assert_eq!(heartbeat.connection_status, Some(ConnectionStatus::Ok));

    harness.clock.advance(Duration::from_secs(60));
    let closed = next_chunk(&mut receiver).await.unwrap();
    reader.push(&closed);
    let closed = reader.next_message().unwrap().unwrap();
    assert_eq!(
        closed.messages[0].as_ref().unwrap().connection_status,
        Some(ConnectionStatus::Closed)
    );
    assert!(next_chunk(&mut receiver).await.is_none(), "the body ends");
}

#[tokio::test]
async fn split_envelopes_reassemble() {
    let harness = Harness::new();
    harness.front_end.enable(Quirk::SplitStreamEnvelopes);
    harness
        .front_end
        .enable(Quirk::MessagesNamespaceNotification);
    let (_, mut receiver) = open_stream(&harness).await;
    harness.call(&new_message("split")).await;

    let first = next_chunk(&mut receiver).await.unwrap();
    let second = next_chunk(&mut receiver).await.unwrap();
    assert!(
        exmux_ews::xml::parse_document(&first).is_err(),
        "half an envelope"
    );
    let whole = [first.as_ref(), second.as_ref()].concat();
    assert!(String::from_utf8_lossy(&whole).contains("<m:Notification>"));
    let mut reader = StreamingReader::new();
    reader.push(&first);
    assert!(reader.next_message().unwrap().is_none());
    reader.push(&second);
    let events = reader.next_message().unwrap().unwrap();
    assert_eq!(
        events.messages[0].as_ref().unwrap().notifications[0].events[0].kind,
        EventKind::Created
    );
}

#[tokio::test]
async fn expired_subscription_closes_the_stream() {
    let harness = Harness::new();
    let (id, mut receiver) = open_stream(&harness).await;
    assert!(
        harness
            .front_end
            .expire_subscription(&harness.state.store, &id)
    );
    let chunk = next_chunk(&mut receiver).await.unwrap();
    validate(&chunk);
    let mut reader = StreamingReader::new();
    reader.push(&chunk);
    let message = reader.next_message().unwrap().unwrap();
    let error = message.messages[0].as_ref().unwrap_err();
    assert!(error.is_subscription_lost(), "{error}");
    assert_eq!(error.subscription_ids, [id]);
    assert!(next_chunk(&mut receiver).await.is_none());
}

#[tokio::test]
async fn stale_response_follows_a_fault_on_one_connection() {
    let harness = Harness::new();
    harness.front_end.enable(Quirk::StaleResponseAfterFault);
    let get_folder = GetFolder {
        shape: Shape::base(BaseShape::IdOnly),
        folder_ids: vec![inbox()],
    };
    harness.call(&get_folder).await;
    {
        let mut store = harness.state.store.lock().unwrap();
        let session = harness
            .front_end
            .session_for(&mut store, "user1@example.test");
        store.inject_front_end_fault(
            Some(session),
            crate::store::FrontEndFault::ServerBusy {
                back_off: Duration::from_millis(10),
            },
        );
    }
    let (status, _) = harness.raw(&get_folder).await;
    assert_eq!(status, 500);

    // The harness sends every request on connection 1, as a keep-alive client would.
    let (status, body) = harness.raw(&new_message("late")).await;
    assert_eq!(status, 200);
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.contains("GetFolderResponse"),
        "the stale answer: {text}"
    );
    let (_, body) = harness.raw(&new_message("in step again")).await;
    assert!(String::from_utf8_lossy(&body).contains("CreateItemResponse"));
}

#[tokio::test]
async fn stale_change_key_is_rejected_unless_ignored() {
    let harness = Harness::new();
    let created = harness.call(&new_message("keys")).await;
    let id = created.messages[0].as_ref().unwrap()[0]
        .item_id
        .clone()
        .unwrap();
    let update = |importance| UpdateItem {
        conflict_resolution: ConflictResolution::NeverOverwrite,
        disposition: MessageDisposition::SaveOnly,
        changes: vec![(id.clone(), vec![ItemUpdate::SetImportance(importance)])],
    };
    assert!(harness.call(&update("High".to_owned())).await.messages[0].is_ok());
    let stale = harness.call(&update("Low".to_owned())).await;
    assert!(stale.messages[0].as_ref().unwrap_err().is_conflict());

    harness.front_end.enable(Quirk::IgnoreChangeKeys);
    assert!(harness.call(&update("Low".to_owned())).await.messages[0].is_ok());
}

#[test]
fn schema_check_rejects_an_unknown_element() {
    let Some((schema, command)) = validator() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("body.xml");
    let body = r#"<m:GetFolderResponse xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages"><m:Unknown/></m:GetFolderResponse>"#;
    std::fs::write(&file, body).unwrap();
    let output = Command::new(command)
        .args(["--noout", "--nonet", "--schema"])
        .arg(&schema)
        .arg(&file)
        .output()
        .unwrap();
    assert!(!output.status.success(), "the check can fail");
}
