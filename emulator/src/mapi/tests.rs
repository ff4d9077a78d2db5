//! Tests of the MAPI front end, driven with request bodies built by the codec: no client,
//! no sockets (the NotificationWait tests run the handler's async path on a channel).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use exmux_core::ManualClock;
use exmux_mapihttp::body::{
    ConnectRequest, ConnectResponse, DisconnectRequest, ExecuteRequest, ExecuteResponse,
    NotificationWaitRequest, NotificationWaitResponse, Response, WireBody,
};
use exmux_mapihttp::ext::{self, EncodeOptions};
use exmux_mapihttp::fxics::{FxElement, FxReader, SyncEvent, SyncParser};
use exmux_mapihttp::ids::{Guid as WireGuid, ObjectId};
use exmux_mapihttp::idset::{IcsState, StateProperty};
use exmux_mapihttp::prop::tags::*;
use exmux_mapihttp::prop::{PropTag, PropValue, TaggedValue};
use exmux_mapihttp::rop::{
    self, MessageReadState, ResponseBody, ResponseContext, RopBuffer, RopRequest, RopResponse,
    RopResult, rop_id,
};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::server::{MailboxFacts, SharedState};
use crate::store::{
    Fid, ItemProps, NewItem, NewItemContent, SessionId, Store, StoreOptions, WellKnownFolder, Xid,
};

const CLIENT_GUID: [u8; 16] = [0xC1; 16];
const OTHER_GUID: [u8; 16] = [0x07; 16];

struct Rig {
    front: Arc<MapiFrontEnd>,
    clock: Arc<ManualClock>,
    state: Arc<SharedState>,
}

fn rig(quirks: Quirks) -> Rig {
    rig_with(MapiOptions {
        quirks,
        ..MapiOptions::default()
    })
}

fn rig_with(options: MapiOptions) -> Rig {
    let clock = Arc::new(ManualClock::new(1_780_000_000_000));
    let store = Store::new(StoreOptions {
        seed: 7,
        clock: clock.clone(),
        mailbox: "user1@example.test".to_owned(),
    });
    let state = Arc::new(SharedState {
        store: Arc::new(Mutex::new(store)),
        clock: clock.clone(),
        faults: Arc::default(),
        mailbox: MailboxFacts {
            address: "user1@example.test".to_owned(),
            domain: "example.test".to_owned(),
            mailbox_guid: uuid::Uuid::from_bytes([0x42; 16]),
            username: "user1@example.test".to_owned(),
            base_url: "http://127.0.0.1:1".to_owned(),
        },
        validators: Default::default(),
        shutdown: CancellationToken::new(),
    });
    let front = MapiFrontEnd::new(Arc::clone(&state), options);
    Rig {
        front,
        clock,
        state,
    }
}

impl Rig {
    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.state.store.lock().unwrap()
    }

    fn inbox(&self) -> Fid {
        self.store()
            .well_known_folder(WellKnownFolder::Inbox)
            .unwrap()
    }

    fn add_item(&self, subject: &str) -> crate::store::Mid {
        let inbox = self.inbox();
        let mut store = self.store();
        let new = NewItem {
            content: NewItemContent::Props(ItemProps {
                subject: subject.to_owned(),
                ..ItemProps::default()
            }),
            ..NewItem::default()
        };
        store.create_item(SessionId::SYSTEM, inbox, new).unwrap().id
    }
}

/// A minimal client: cookies and request bodies, nothing else.
struct Client<'r> {
    rig: &'r Rig,
    endpoint: Endpoint,
    cookies: HashMap<String, String>,
    handles: Vec<u32>,
    /// Column sets of tables set in earlier batches, by handle index.
    columns: HashMap<u8, Vec<PropTag>>,
}

impl<'r> Client<'r> {
    fn new(rig: &'r Rig) -> Client<'r> {
        Client {
            rig,
            endpoint: Endpoint::Emsmdb,
            cookies: HashMap::new(),
            handles: Vec::new(),
            columns: HashMap::new(),
        }
    }

    fn send(&mut self, request_type: &str, body: Vec<u8>) -> Outcome {
        let incoming = Incoming {
            endpoint: self.endpoint,
            request_type: Some(request_type.to_owned()),
            has_ids: true,
            cookies: self
                .cookies
                .iter()
                .map(|(name, value)| (name.clone(), exmux_core::Secret::new(value.clone())))
                .collect(),
            body: Bytes::from(body),
        };
        let outcome = self.rig.front.process(&incoming);
        if let Outcome::Reply { set_cookies, .. } | Outcome::Wait { set_cookies, .. } = &outcome {
            for (name, value) in set_cookies {
                self.cookies.insert(name.clone(), value.expose().to_owned());
            }
        }
        outcome
    }

    fn connect(&mut self) {
        let body = ConnectRequest {
            user_dn: legacy_dn("user1@example.test"),
            flags: 0,
            default_code_page: 1252,
            lcid_sort: 0x409,
            lcid_string: 0x409,
            aux: Vec::new(),
        }
        .encode()
        .unwrap();
        let Outcome::Reply { body, .. } = self.send("Connect", body) else {
            panic!("Connect refused");
        };
        let Response::Success(success) = ConnectResponse::decode(&body).unwrap() else {
            panic!("Connect failed");
        };
        assert_eq!(success.error_code, 0);
    }

    fn execute_raw(&mut self, requests: &[RopRequest], flags: u32) -> Outcome {
        let buffer = rop::encode_request_buffer(&RopBuffer {
            rops: requests.to_vec(),
            handles: self.handles.clone(),
        });
        let rop_buffer = ext::encode_chain(&[&buffer], EncodeOptions::default()).unwrap();
        let body = ExecuteRequest {
            flags,
            rop_buffer,
            max_rop_out: 0x40000,
            aux: Vec::new(),
        }
        .encode()
        .unwrap();
        self.send("Execute", body)
    }

    /// Runs a batch; `slots` is the handle table size (outputs are 0xFFFFFFFF unless the
    /// caller set them). Returns the responses and keeps the new handle table.
    fn execute(&mut self, requests: &[RopRequest]) -> Vec<RopResponse> {
        let outcome = self.execute_raw(requests, 0x3);
        let Outcome::Reply { body, .. } = outcome else {
            panic!("Execute refused: {outcome:?}");
        };
        let Response::Success(success) = ExecuteResponse::decode(&body).unwrap() else {
            panic!("Execute failed");
        };
        assert_eq!(success.error_code, 0);
        let payload = ext::decode_payload(&success.rop_buffer).unwrap();
        let context = ResponseContext {
            requests,
            columns: self.columns.clone(),
        };
        let decoded = rop::decode_response_buffer(&payload, &context).unwrap();
        self.handles = decoded.handles;
        decoded.rops
    }

    fn slots(&mut self, count: usize) {
        self.handles = vec![0xFFFF_FFFF; count];
    }
}

fn result(response: &RopResponse) -> &RopResult {
    response.as_result().expect("an ordinary response")
}

fn ok(responses: &[RopResponse]) {
    for response in responses {
        if let Some(result) = response.as_result() {
            assert_eq!(
                result.return_value,
                0,
                "{} failed",
                rop_id::name(result.rop_id)
            );
        }
    }
}

fn logon_request() -> RopRequest {
    RopRequest::Logon {
        logon_id: 0,
        output_handle: 0,
        logon_flags: 0x01,
        open_flags: 0x0100_040C,
        store_state: 0,
        essdn: legacy_dn("user1@example.test").into_bytes(),
    }
}

fn open_folder(input: u8, output: u8, fid: Fid) -> RopRequest {
    RopRequest::OpenFolder {
        logon_id: 0,
        input_handle: input,
        output_handle: output,
        folder_id: ObjectId(fid.to_u64()),
        open_mode_flags: 0,
    }
}

/// Logs on and opens the inbox: handle slot 0 is the logon, slot 1 the inbox.
fn logon_inbox(client: &mut Client<'_>, inbox: Fid) {
    client.slots(2);
    let responses = client.execute(&[logon_request(), open_folder(0, 1, inbox)]);
    ok(&responses);
}

fn upload_state(input: u8, state: &IcsState) -> Vec<RopRequest> {
    let mut requests = Vec::new();
    for (tag, bytes) in state.to_upload() {
        requests.push(RopRequest::SynchronizationUploadStateStreamBegin {
            logon_id: 0,
            input_handle: input,
            state_property: PropTag(tag),
            transfer_buffer_size: u32::try_from(bytes.len()).unwrap(),
        });
        requests.push(RopRequest::SynchronizationUploadStateStreamContinue {
            logon_id: 0,
            input_handle: input,
            stream_data: bytes,
        });
        requests.push(RopRequest::SynchronizationUploadStateStreamEnd {
            logon_id: 0,
            input_handle: input,
        });
    }
    requests
}

fn get_buffer(input: u8) -> RopRequest {
    RopRequest::FastTransferSourceGetBuffer {
        logon_id: 0,
        input_handle: input,
        buffer_size: 0xBABE,
        maximum_buffer_size: Some(0x100),
    }
}

/// Reads a download context at slot `slot` to the end and returns the stream.
fn drain(client: &mut Client<'_>, slot: u8) -> Vec<u8> {
    let mut stream = Vec::new();
    for _ in 0..10_000 {
        let responses = client.execute(&[get_buffer(slot)]);
        ok(&responses);
        let ResponseBody::FastTransferBuffer {
            transfer_status,
            transfer_buffer,
            ..
        } = &result(&responses[0]).body
        else {
            panic!("not a FastTransfer buffer");
        };
        stream.extend_from_slice(transfer_buffer);
        if *transfer_status == 3 {
            return stream;
        }
    }
    panic!("the download never finished");
}

fn parse_sync(stream: &[u8]) -> Vec<SyncEvent> {
    let mut reader = FxReader::new();
    reader.feed(stream);
    let mut parser = SyncParser::new();
    let mut events = Vec::new();
    loop {
        let offset = reader.offset();
        match reader.next_element().unwrap() {
            Some(element) => parser.push(element, offset, &mut events).unwrap(),
            None => break,
        }
    }
    assert!(parser.is_done(), "the stream ends with IncrSyncEnd");
    events
}

/// Reads the state of a checkpoint stream (one `state` element).
fn parse_state(stream: &[u8]) -> IcsState {
    let elements = FxReader::read_all(stream).unwrap();
    let mut state = IcsState::default();
    for element in elements {
        if let FxElement::Property(prop) = element
            && let Some(property) = StateProperty::from_tag(prop.tag.0)
            && let PropValue::Binary(bytes) = &prop.value
        {
            state.set_from_bytes(property, bytes).unwrap();
        }
    }
    state
}

fn subjects(events: &[SyncEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|event| match event {
            SyncEvent::MessageChange(change) => change
                .content
                .props
                .iter()
                .find(|p| p.tag == PID_TAG_SUBJECT)
                .and_then(|p| match &p.value {
                    PropValue::Unicode(text) => Some(text.clone()),
                    _ => None,
                }),
            _ => None,
        })
        .collect()
}

fn final_state(events: &[SyncEvent]) -> IcsState {
    events
        .iter()
        .find_map(|event| match event {
            SyncEvent::State(state) => Some(state.clone()),
            _ => None,
        })
        .expect("a state element")
}

fn configure_contents(input: u8, output: u8) -> RopRequest {
    RopRequest::SynchronizationConfigure {
        logon_id: 0,
        input_handle: input,
        output_handle: output,
        synchronization_type: 1,
        send_options: 0x01,
        synchronization_flags: 0x0001 | 0x0008 | 0x0020,
        restriction_data: Vec::new(),
        synchronization_extra_flags: 0x0007,
        tags: Vec::new(),
    }
}

/// Downloads the inbox from `state`; needs slot 1 = inbox, uses slot 2.
fn download(client: &mut Client<'_>, state: &IcsState) -> Vec<SyncEvent> {
    client.handles.resize(3, 0xFFFF_FFFF);
    client.handles[2] = 0xFFFF_FFFF;
    let mut requests = vec![configure_contents(1, 2)];
    requests.extend(upload_state(2, state));
    ok(&client.execute(&requests));
    parse_sync(&drain(client, 2))
}

fn xid(guid: [u8; 16], counter: u64) -> Vec<u8> {
    Xid::from_globcnt(
        crate::store::Guid(guid),
        crate::store::Globcnt::new(counter).unwrap(),
    )
    .to_bytes()
}

fn pcl_of(key: &[u8]) -> Vec<u8> {
    let mut pcl = vec![u8::try_from(key.len()).unwrap()];
    pcl.extend_from_slice(key);
    pcl
}

/// Uploads one new message through a collector on the inbox (slot 1) with a client
/// change key, and returns the checkpoint state. Uses slots 3 to 5.
fn import_new(
    client: &mut Client<'_>,
    state: &IcsState,
    guid: [u8; 16],
    counter: u64,
    subject: &str,
) -> IcsState {
    client.handles.resize(6, 0xFFFF_FFFF);
    for slot in 3..6 {
        client.handles[slot] = 0xFFFF_FFFF;
    }
    let key = xid(guid, counter);
    let mut requests = vec![RopRequest::SynchronizationOpenCollector {
        logon_id: 0,
        input_handle: 1,
        output_handle: 3,
        is_contents_collector: true,
    }];
    requests.extend(upload_state(3, state));
    requests.push(RopRequest::SynchronizationImportMessageChange {
        logon_id: 0,
        input_handle: 3,
        output_handle: 4,
        import_flag: 0,
        values: vec![
            TaggedValue::new(PID_TAG_SOURCE_KEY, PropValue::Binary(key.clone())).unwrap(),
            TaggedValue::new(PID_TAG_LAST_MODIFICATION_TIME, PropValue::Time(0)).unwrap(),
            TaggedValue::new(PID_TAG_CHANGE_KEY, PropValue::Binary(key.clone())).unwrap(),
            TaggedValue::new(
                PID_TAG_PREDECESSOR_CHANGE_LIST,
                PropValue::Binary(pcl_of(&key)),
            )
            .unwrap(),
        ],
    });
    requests.push(RopRequest::SetProperties {
        logon_id: 0,
        input_handle: 4,
        values: vec![
            TaggedValue::new(PID_TAG_SUBJECT, PropValue::Unicode(subject.to_owned())).unwrap(),
        ],
    });
    requests.push(RopRequest::SaveChangesMessage {
        logon_id: 0,
        response_handle: 4,
        input_handle: 4,
        save_flags: 0x02,
    });
    requests.push(RopRequest::SynchronizationGetTransferState {
        logon_id: 0,
        input_handle: 3,
        output_handle: 5,
    });
    ok(&client.execute(&requests));
    parse_state(&drain(client, 5))
}

#[test]
fn ics_download_returns_store_items() {
    let rig = rig(Quirks::default());
    for subject in ["one", "two", "three"] {
        rig.add_item(subject);
    }
    let mut client = Client::new(&rig);
    client.connect();
    assert!(client.cookies.contains_key("MapiContext"));
    assert!(client.cookies.contains_key("MapiSequence"));
    logon_inbox(&mut client, rig.inbox());

    let events = download(&mut client, &IcsState::default());
    assert_eq!(subjects(&events), ["one", "two", "three"]);
    let state = final_state(&events);
    assert!(!state.idset_given.is_empty());

    // From the returned state, nothing is new.
    let again = download(&mut client, &state);
    assert!(subjects(&again).is_empty());
}

#[test]
fn ics_upload_keeps_client_change_key() {
    let rig = rig(Quirks::default());
    let mut client = Client::new(&rig);
    client.connect();
    logon_inbox(&mut client, rig.inbox());
    import_new(
        &mut client,
        &IcsState::default(),
        CLIENT_GUID,
        9,
        "uploaded",
    );

    let store = rig.store();
    let page = store
        .list_items(rig_inbox(&store), crate::store::ListOptions::default())
        .unwrap();
    let item = page
        .items
        .iter()
        .find(|i| i.props.subject == "uploaded")
        .unwrap();
    assert_eq!(item.stamp.change_key.to_bytes(), xid(CLIENT_GUID, 9));
    assert_eq!(item.stamp.pcl.to_bytes(), pcl_of(&xid(CLIENT_GUID, 9)));
}

fn rig_inbox(store: &Store) -> Fid {
    store.well_known_folder(WellKnownFolder::Inbox).unwrap()
}

#[test]
fn checkpoint_excludes_only_own_uploads() {
    let rig = rig(Quirks::default());
    rig.add_item("before");
    let mut mine = Client::new(&rig);
    mine.connect();
    logon_inbox(&mut mine, rig.inbox());
    let first = final_state(&download(&mut mine, &IcsState::default()));

    let mut other = Client::new(&rig);
    other.connect();
    logon_inbox(&mut other, rig.inbox());
    import_new(&mut other, &IcsState::default(), OTHER_GUID, 1, "theirs");

    let checkpoint = import_new(&mut mine, &first, CLIENT_GUID, 1, "mine");
    let events = download(&mut mine, &checkpoint);
    assert_eq!(subjects(&events), ["theirs"]);

    // The change that came down carries the other session's change key.
    let change = events
        .iter()
        .find_map(|e| match e {
            SyncEvent::MessageChange(change) => Some(change.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        change.header_value(PID_TAG_CHANGE_KEY),
        Some(&PropValue::Binary(xid(OTHER_GUID, 1)))
    );
}

#[test]
fn expired_context_gets_code_10() {
    for (quirks, code) in [(Quirks::default(), 10), (Quirks::gromox(), 2)] {
        let rig = rig(quirks);
        let mut client = Client::new(&rig);
        client.connect();
        rig.clock.advance(Duration::from_secs(901));
        let outcome = client.execute_raw(&[], 0x3);
        assert_eq!(
            outcome,
            Outcome::Rejected {
                failure: Failure::ContextNotFound,
                code
            }
        );
        assert_eq!(rig.front.context_count(), 0);
    }
}

#[test]
fn ping_and_activity_keep_a_context_alive() {
    let rig = rig(Quirks::default());
    let mut client = Client::new(&rig);
    client.connect();
    for _ in 0..3 {
        rig.clock.advance(Duration::from_secs(600));
        assert!(
            matches!(client.send("PING", Vec::new()), Outcome::Reply { body, .. } if body.is_empty())
        );
    }
    assert!(matches!(
        client.execute_raw(&[], 0x3),
        Outcome::Reply { .. }
    ));
}

#[test]
fn stale_sequence_rejected_then_reconnect() {
    let rig = rig(Quirks::default());
    let mut client = Client::new(&rig);
    client.connect();
    let old = client.cookies.clone();
    assert!(matches!(
        client.execute_raw(&[], 0x3),
        Outcome::Reply { .. }
    ));
    assert_ne!(old["MapiSequence"], client.cookies["MapiSequence"]);

    client.cookies = old.clone();
    let outcome = client.execute_raw(&[], 0x3);
    assert_eq!(
        outcome,
        Outcome::Rejected {
            failure: Failure::StaleSequence,
            code: 15
        }
    );
    // Connect with the old cookies replaces the context.
    client.connect();
    assert_ne!(old["MapiContext"], client.cookies["MapiContext"]);
    assert_eq!(rig.front.context_count(), 1);
    assert!(matches!(
        client.execute_raw(&[], 0x3),
        Outcome::Reply { .. }
    ));
}

#[test]
fn disconnect_ends_the_context() {
    let rig = rig(Quirks::default());
    let mut client = Client::new(&rig);
    client.connect();
    let body = DisconnectRequest::default().encode().unwrap();
    assert!(matches!(
        client.send("Disconnect", body),
        Outcome::Reply { .. }
    ));
    assert_eq!(
        client.execute_raw(&[], 0x3),
        Outcome::Rejected {
            failure: Failure::ContextNotFound,
            code: 10
        }
    );
}

#[test]
fn missing_type_or_cookie_rejected() {
    let rig = rig(Quirks::default());
    let incoming = Incoming {
        endpoint: Endpoint::Emsmdb,
        request_type: None,
        has_ids: true,
        cookies: HashMap::new(),
        body: Bytes::new(),
    };
    assert!(matches!(
        rig.front.process(&incoming),
        Outcome::Rejected { code: 7, .. }
    ));
    let mut client = Client::new(&rig);
    assert!(matches!(
        client.execute_raw(&[], 0),
        Outcome::Rejected { code: 13, .. }
    ));
    assert!(matches!(
        client.send("Frobnicate", Vec::new()),
        Outcome::Rejected { code: 5, .. }
    ));
}

#[test]
fn quirk_gromox_cookies_and_codes() {
    let rig = rig(Quirks {
        gromox_cookies: true,
        own_response_codes: true,
        ..Quirks::default()
    });
    let mut client = Client::new(&rig);
    client.connect();
    assert!(client.cookies.contains_key("sid"));
    assert!(client.cookies.contains_key("sequence"));
    let old = client.cookies.clone();
    client.execute_raw(&[], 0x3);
    client.cookies = old;
    assert!(matches!(
        client.execute_raw(&[], 0x3),
        Outcome::Rejected { code: 7, .. }
    ));
    assert!(matches!(
        client.send("Frobnicate", Vec::new()),
        Outcome::Rejected { code: 8, .. }
    ));
}

#[test]
fn quirk_sequence_drift() {
    for drift in [false, true] {
        let rig = rig(Quirks {
            sequence_drift: drift,
            ..Quirks::default()
        });
        let mut client = Client::new(&rig);
        client.connect();
        assert!(matches!(
            client.send("Frobnicate", Vec::new()),
            Outcome::Rejected { .. }
        ));
        let next = client.execute_raw(&[], 0x3);
        if drift {
            assert!(matches!(
                next,
                Outcome::Rejected {
                    failure: Failure::StaleSequence,
                    ..
                }
            ));
            client.connect();
            assert!(matches!(
                client.execute_raw(&[], 0x3),
                Outcome::Reply { .. }
            ));
        } else {
            assert!(matches!(next, Outcome::Reply { .. }));
        }
    }
}

#[test]
fn quirk_foreign_logon_replica() {
    for foreign in [false, true] {
        let rig = rig(Quirks {
            foreign_logon_replica: foreign,
            ..Quirks::default()
        });
        let inbox = rig.inbox();
        let mut client = Client::new(&rig);
        client.connect();
        client.slots(1);
        let responses = client.execute(&[
            logon_request(),
            RopRequest::LongTermIdFromId {
                logon_id: 0,
                input_handle: 0,
                object_id: ObjectId(inbox.to_u64()),
            },
        ]);
        ok(&responses);
        let ResponseBody::Logon(logon) = &result(&responses[0]).body else {
            panic!("not a logon response");
        };
        let ResponseBody::LongTermId(long_term) = &result(&responses[1]).body else {
            panic!("not a long-term id");
        };
        let replica = WireGuid(rig.store().replica_guid().0);
        assert_eq!(long_term.database_guid, replica);
        assert_eq!(logon.folder_ids[4], ObjectId(inbox.to_u64()));
        assert_eq!(logon.repl_guid == replica, !foreign);
        assert_eq!(logon.repl_id, if foreign { 5 } else { 1 });

        let back = client.execute(&[RopRequest::IdFromLongTermId {
            logon_id: 0,
            input_handle: 0,
            long_term_id: *long_term,
        }]);
        assert_eq!(
            result(&back[0]).body,
            ResponseBody::ObjectId(ObjectId(inbox.to_u64()))
        );
    }
}

#[test]
fn quirk_deletions_as_out_of_scope() {
    for out_of_scope in [false, true] {
        let rig = rig(Quirks {
            deletions_as_out_of_scope: out_of_scope,
            ..Quirks::default()
        });
        let doomed = rig.add_item("doomed");
        let mut client = Client::new(&rig);
        client.connect();
        logon_inbox(&mut client, rig.inbox());
        let state = final_state(&download(&mut client, &IcsState::default()));
        let responses = client.execute(&[RopRequest::DeleteMessages {
            logon_id: 0,
            input_handle: 1,
            want_asynchronous: false,
            notify_non_read: false,
            message_ids: vec![ObjectId(doomed.to_u64())],
        }]);
        ok(&responses);
        let events = download(&mut client, &state);
        let (deleted, gone) = events
            .iter()
            .find_map(|e| match e {
                SyncEvent::Deletions {
                    deleted,
                    no_longer_in_scope,
                    ..
                } => Some((deleted.clone(), no_longer_in_scope.clone())),
                _ => None,
            })
            .expect("a deletions unit");
        let set = if out_of_scope { &gone } else { &deleted };
        assert!(
            set.as_ref()
                .unwrap()
                .contains(exmux_mapihttp::idset::Replica::Id(1), doomed.0.get())
        );
        assert_eq!(deleted.is_none(), out_of_scope);
    }
}

fn register_inbox(client: &mut Client<'_>, inbox: Fid, slot: u8) {
    client.handles.resize(usize::from(slot) + 1, 0xFFFF_FFFF);
    let responses = client.execute(&[RopRequest::RegisterNotification {
        logon_id: 0,
        input_handle: 0,
        output_handle: slot,
        notification_types: 0x04 | 0x08 | 0x10 | 0x20 | 0x40,
        reserved: 0,
        want_whole_store: false,
        folder_id: ObjectId(inbox.to_u64()),
        message_id: ObjectId(0),
    }]);
    ok(&responses);
}

fn notifies(responses: &[RopResponse]) -> Vec<exmux_mapihttp::notify::Notification> {
    responses
        .iter()
        .filter_map(|r| match r {
            RopResponse::Notify { data, .. } => Some(data.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn writer_gets_own_notification_last() {
    let rig = rig(Quirks::default());
    let inbox = rig.inbox();
    let mut client = Client::new(&rig);
    client.connect();
    logon_inbox(&mut client, inbox);
    register_inbox(&mut client, inbox, 2);
    client.handles.resize(4, 0xFFFF_FFFF);
    let responses = client.execute(&[
        RopRequest::CreateMessage {
            logon_id: 0,
            input_handle: 1,
            output_handle: 3,
            code_page_id: 0x0FFF,
            folder_id: ObjectId(inbox.to_u64()),
            associated: false,
        },
        RopRequest::SetProperties {
            logon_id: 0,
            input_handle: 3,
            values: vec![
                TaggedValue::new(PID_TAG_SUBJECT, PropValue::Unicode("new".to_owned())).unwrap(),
            ],
        },
        RopRequest::SaveChangesMessage {
            logon_id: 0,
            response_handle: 3,
            input_handle: 3,
            save_flags: 0x02,
        },
        RopRequest::GetPropertiesSpecific {
            logon_id: 0,
            input_handle: 3,
            property_size_limit: 0,
            want_unicode: 1,
            tags: vec![PID_TAG_CHANGE_KEY, PID_TAG_SUBJECT],
        },
    ]);
    ok(&responses);
    assert!(matches!(responses[3], RopResponse::Result(_)));
    let notes = notifies(&responses);
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].flags, 0x8004);
    let ResponseBody::SaveChangesMessage { message_id, .. } = result(&responses[2]).body else {
        panic!("not a save response");
    };
    assert_eq!(notes[0].message_id, Some(message_id));
    assert_eq!(notes[0].folder_id, Some(ObjectId(inbox.to_u64())));
}

#[test]
fn quirk_notify_out_of_order() {
    for reversed in [false, true] {
        let rig = rig_with(MapiOptions {
            quirks: Quirks {
                notify_out_of_order: reversed,
                ..Quirks::default()
            },
            max_notifications_per_response: 1,
            ..MapiOptions::default()
        });
        let inbox = rig.inbox();
        let mut client = Client::new(&rig);
        client.connect();
        logon_inbox(&mut client, inbox);
        register_inbox(&mut client, inbox, 2);
        let mids: Vec<u64> = ["a", "b", "c"]
            .iter()
            .map(|s| rig.add_item(s).to_u64())
            .collect();
        let first = client.execute(&[]);
        assert_eq!(notifies(&first)[0].message_id, Some(ObjectId(mids[0])));
        assert!(matches!(first.last(), Some(RopResponse::Pending { .. })));
        let second = client.execute(&[]);
        let third = client.execute(&[]);
        let rest = [
            notifies(&second)[0].message_id,
            notifies(&third)[0].message_id,
        ];
        let expected = if reversed {
            [Some(ObjectId(mids[2])), Some(ObjectId(mids[1]))]
        } else {
            [Some(ObjectId(mids[1])), Some(ObjectId(mids[2]))]
        };
        assert_eq!(rest, expected);
    }
}

#[test]
fn ordinary_rops_reach_the_store() {
    let rig = rig(Quirks::default());
    let inbox = rig.inbox();
    let a = rig.add_item("a");
    let b = rig.add_item("b");
    let mut client = Client::new(&rig);
    client.connect();
    logon_inbox(&mut client, inbox);
    let deleted = rig
        .store()
        .well_known_folder(WellKnownFolder::DeletedItems)
        .unwrap();
    client.handles.resize(5, 0xFFFF_FFFF);
    let responses = client.execute(&[
        RopRequest::SetReadFlags {
            logon_id: 0,
            input_handle: 1,
            want_asynchronous: false,
            read_flags: 0,
            message_ids: vec![ObjectId(a.to_u64())],
        },
        open_folder(0, 2, deleted),
        RopRequest::MoveCopyMessages {
            logon_id: 0,
            source_handle: 1,
            destination_handle: 2,
            message_ids: vec![ObjectId(b.to_u64())],
            want_asynchronous: false,
            want_copy: false,
        },
        RopRequest::GetContentsTable {
            logon_id: 0,
            input_handle: 1,
            output_handle: 3,
            table_flags: 0x40,
        },
        RopRequest::SetColumns {
            logon_id: 0,
            input_handle: 3,
            set_columns_flags: 0,
            tags: vec![PID_TAG_MID, PID_TAG_SUBJECT, PID_TAG_MESSAGE_FLAGS],
        },
        RopRequest::QueryRows {
            logon_id: 0,
            input_handle: 3,
            query_rows_flags: 0,
            forward_read: true,
            row_count: 100,
        },
        RopRequest::CreateFolder {
            logon_id: 0,
            input_handle: 1,
            output_handle: 4,
            folder_type: 1,
            use_unicode: true,
            open_existing: false,
            reserved: 0,
            display_name: exmux_mapihttp::rop::RopString::Unicode("Projects".to_owned()),
            comment: exmux_mapihttp::rop::RopString::Unicode(String::new()),
        },
    ]);
    ok(&responses);
    let ResponseBody::QueryRows { rows, origin } = &result(&responses[5]).body else {
        panic!("not rows");
    };
    assert_eq!(*origin, 2);
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0].cells[2].value(),
        Some(&PropValue::I32(1)),
        "the read flag is set"
    );
    let store = rig.store();
    assert!(store.item(a).unwrap().props.read);
    assert!(store.item(b).is_none());
    assert_eq!(
        store.list_items(deleted, Default::default()).unwrap().total,
        1
    );
    assert!(
        store
            .child_folders(inbox)
            .iter()
            .any(|f| f.display_name == "Projects")
    );
}

#[test]
fn read_state_and_delete_imports_reach_the_store() {
    let rig = rig(Quirks::default());
    let keep = rig.add_item("keep");
    let gone = rig.add_item("gone");
    let mut client = Client::new(&rig);
    client.connect();
    logon_inbox(&mut client, rig.inbox());
    let replica = rig.store().replica_guid().0;
    client.handles.resize(4, 0xFFFF_FFFF);
    let responses = client.execute(&[
        RopRequest::SynchronizationOpenCollector {
            logon_id: 0,
            input_handle: 1,
            output_handle: 3,
            is_contents_collector: true,
        },
        RopRequest::SynchronizationImportReadStateChanges {
            logon_id: 0,
            input_handle: 3,
            read_states: vec![MessageReadState {
                message_id: xid(replica, keep.0.get()),
                mark_as_read: true,
            }],
        },
        RopRequest::SynchronizationImportDeletes {
            logon_id: 0,
            input_handle: 3,
            import_delete_flags: 0x02,
            values: vec![
                TaggedValue::new(
                    PropTag(0x0000_1102),
                    PropValue::MvBinary(vec![xid(replica, gone.0.get())]),
                )
                .unwrap(),
            ],
        },
    ]);
    ok(&responses);
    let store = rig.store();
    assert!(store.item(keep).unwrap().props.read);
    assert!(store.item(gone).is_none());
}

#[test]
fn responses_are_compressed_and_obfuscated_when_allowed() {
    let rig = rig(Quirks::default());
    for i in 0..20 {
        rig.add_item(&format!("repetitive subject {i}"));
    }
    let mut client = Client::new(&rig);
    client.connect();
    client.slots(3);
    let requests = [
        logon_request(),
        open_folder(0, 1, rig.inbox()),
        RopRequest::GetContentsTable {
            logon_id: 0,
            input_handle: 1,
            output_handle: 2,
            table_flags: 0x40,
        },
        RopRequest::SetColumns {
            logon_id: 0,
            input_handle: 2,
            set_columns_flags: 0,
            tags: vec![PID_TAG_SUBJECT],
        },
        RopRequest::QueryRows {
            logon_id: 0,
            input_handle: 2,
            query_rows_flags: 0,
            forward_read: true,
            row_count: 100,
        },
    ];
    let Outcome::Reply { body, .. } = client.execute_raw(&requests, 0) else {
        panic!("refused");
    };
    let Response::Success(success) = ExecuteResponse::decode(&body).unwrap() else {
        panic!("failed");
    };
    let segments = ext::decode_chain(&success.rop_buffer).unwrap();
    assert!(segments[0].header.flags.compressed());
    assert!(segments[0].header.flags.xor_magic());
    let payload = ext::decode_payload(&success.rop_buffer).unwrap();
    let context = ResponseContext {
        requests: &requests,
        columns: HashMap::new(),
    };
    let decoded = rop::decode_response_buffer(&payload, &context).unwrap();
    let ResponseBody::QueryRows { rows, .. } = &result(&decoded.rops[4]).body else {
        panic!("not rows");
    };
    assert_eq!(rows.len(), 20);
}

#[test]
fn armed_faults_fire_once() {
    let rig = rig(Quirks::default());
    let mut client = Client::new(&rig);
    client.connect();
    rig.front.faults().stale_next_sequence();
    assert!(matches!(
        client.execute_raw(&[], 0x3),
        Outcome::Rejected { code: 15, .. }
    ));
    assert!(matches!(
        client.execute_raw(&[], 0x3),
        Outcome::Reply { .. }
    ));

    rig.front.faults().server_busy_next(Duration::from_secs(3));
    assert_eq!(
        client.execute_raw(&[], 0x3),
        Outcome::Busy(Duration::from_secs(3))
    );
    assert!(matches!(
        client.execute_raw(&[], 0x3),
        Outcome::Reply { .. }
    ));

    rig.front.faults().drop_next_notification_wait();
    let wait = NotificationWaitRequest::default().encode().unwrap();
    assert_eq!(client.send("NotificationWait", wait.clone()), Outcome::Drop);
    assert!(matches!(
        client.send("NotificationWait", wait),
        Outcome::Wait { .. }
    ));

    rig.front.faults().expire_next_context();
    assert!(matches!(
        client.execute_raw(&[], 0x3),
        Outcome::Rejected { code: 10, .. }
    ));
}

#[test]
fn store_faults_reach_mapi_requests() {
    let rig = rig(Quirks::default());
    let mut client = Client::new(&rig);
    client.connect();
    let session = rig
        .front
        .store_session(&client.cookies["MapiContext"])
        .unwrap();
    rig.store().inject_front_end_fault(
        Some(session),
        crate::store::FrontEndFault::ServerBusy {
            back_off: Duration::from_millis(500),
        },
    );
    assert_eq!(
        client.execute_raw(&[], 0x3),
        Outcome::Busy(Duration::from_millis(500))
    );
    rig.store().expire_session(session);
    assert!(matches!(
        client.execute_raw(&[], 0x3),
        Outcome::Rejected { code: 10, .. }
    ));
}

#[test]
fn nspi_bind_and_unbind() {
    let rig = rig(Quirks::default());
    let mut client = Client::new(&rig);
    client.endpoint = Endpoint::Nspi;
    let bind = exmux_mapihttp::body::BindRequest {
        flags: 0,
        state: None,
        aux: Vec::new(),
    }
    .encode()
    .unwrap();
    let Outcome::Reply { body, .. } = client.send("Bind", bind) else {
        panic!("Bind refused");
    };
    let Response::Success(success) = exmux_mapihttp::body::BindResponse::decode(&body).unwrap()
    else {
        panic!("Bind failed");
    };
    assert_eq!(success.error_code, 0);
    let unbind = exmux_mapihttp::body::UnbindRequest {
        reserved: 0,
        aux: Vec::new(),
    }
    .encode()
    .unwrap();
    assert!(matches!(
        client.send("Unbind", unbind),
        Outcome::Reply { .. }
    ));
    assert_eq!(rig.front.context_count(), 0);
}

/// Runs the handler's async path for one request and collects the body chunks as they
/// come, so a test can advance the clock between them.
async fn start_wait(
    rig: &Rig,
    cookies: &HashMap<String, String>,
) -> tokio::sync::mpsc::Receiver<Bytes> {
    let cookie = cookies
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ");
    let request = http::Request::builder()
        .method("POST")
        .uri("/mapi/emsmdb/")
        .header("X-RequestType", "NotificationWait")
        .header("X-RequestId", "{00000000-0000-0000-0000-000000000001}:9")
        .header("X-ClientInfo", "{00000000-0000-0000-0000-000000000002}:1")
        .header("Cookie", cookie)
        .body(Bytes::from(
            NotificationWaitRequest::default().encode().unwrap(),
        ))
        .unwrap();
    let response = Arc::clone(&rig.front)
        .respond(Endpoint::Emsmdb, request)
        .await;
    assert_eq!(response.headers()["x-responsecode"], "0");
    assert_eq!(
        response.headers()["x-requestid"],
        "{00000000-0000-0000-0000-000000000001}:9"
    );
    match response.into_body() {
        crate::server::ResponseBody::Stream(receiver) => receiver,
        _ => panic!("a NotificationWait streams its body"),
    }
}

async fn next_chunk(receiver: &mut tokio::sync::mpsc::Receiver<Bytes>) -> Bytes {
    tokio::time::timeout(Duration::from_secs(10), receiver.recv())
        .await
        .expect("a chunk in time")
        .expect("the stream is open")
}

fn wait_result(tail: &[u8]) -> u32 {
    let mut framed = b"PROCESSING\r\n".to_vec();
    framed.extend_from_slice(tail);
    let body = exmux_mapihttp::http::parse_body(&framed).unwrap().body;
    let Response::Success(success) = NotificationWaitResponse::decode(&body).unwrap() else {
        panic!("NotificationWait failed");
    };
    success.event_pending
}

#[tokio::test]
async fn notification_wait_held_for_minutes() {
    let rig = rig(Quirks::default());
    let inbox = rig.inbox();
    let mut client = Client::new(&rig);
    client.connect();
    logon_inbox(&mut client, inbox);
    register_inbox(&mut client, inbox, 2);

    let mut chunks = start_wait(&rig, &client.cookies).await;
    assert_eq!(next_chunk(&mut chunks).await, "PROCESSING\r\n");
    // Four minutes pass: eight keep-alives, and the context does not expire meanwhile.
    rig.clock.advance(Duration::from_secs(240));
    for _ in 0..8 {
        assert_eq!(next_chunk(&mut chunks).await, "PENDING\r\n");
    }
    rig.clock.advance(Duration::from_secs(61));
    let mut tail = Vec::new();
    loop {
        let chunk = next_chunk(&mut chunks).await;
        if chunk.as_ref() == b"PENDING\r\n" {
            continue;
        }
        tail.extend_from_slice(&chunk);
        break;
    }
    assert_eq!(wait_result(&tail), 0, "nothing happened: EventPending 0");
    assert!(matches!(
        client.execute_raw(&[], 0x3),
        Outcome::Reply { .. }
    ));
}

#[tokio::test]
async fn notification_wait_woken_by_change() {
    let rig = rig(Quirks::default());
    let inbox = rig.inbox();
    let mut client = Client::new(&rig);
    client.connect();
    logon_inbox(&mut client, inbox);
    register_inbox(&mut client, inbox, 2);

    let mut chunks = start_wait(&rig, &client.cookies).await;
    assert_eq!(next_chunk(&mut chunks).await, "PROCESSING\r\n");
    rig.add_item("wake up");
    let tail = next_chunk(&mut chunks).await;
    assert_eq!(wait_result(&tail), 1);

    // The Execute that follows collects the notification.
    let responses = client.execute(&[]);
    assert_eq!(notifies(&responses).len(), 1);
}

#[test]
fn ics_hierarchy_download_and_deletion() {
    let rig = rig(Quirks::default());
    let root = rig
        .store()
        .well_known_folder(WellKnownFolder::MsgFolderRoot)
        .unwrap();
    let mut client = Client::new(&rig);
    client.connect();
    client.slots(3);
    ok(&client.execute(&[logon_request(), open_folder(0, 1, root)]));

    let hierarchy = |client: &mut Client<'_>, state: &IcsState| {
        client.handles[2] = 0xFFFF_FFFF;
        let mut requests = vec![RopRequest::SynchronizationConfigure {
            logon_id: 0,
            input_handle: 1,
            output_handle: 2,
            synchronization_type: 2,
            send_options: 0x01,
            synchronization_flags: 0x0001,
            restriction_data: Vec::new(),
            synchronization_extra_flags: 0x0001,
            tags: Vec::new(),
        }];
        requests.extend(upload_state(2, state));
        ok(&client.execute(&requests));
        parse_sync(&drain(client, 2))
    };
    let names = |events: &[SyncEvent]| -> Vec<String> {
        events
            .iter()
            .filter_map(|e| match e {
                SyncEvent::FolderChange(props) => props
                    .iter()
                    .find(|p| p.tag == PID_TAG_DISPLAY_NAME)
                    .and_then(|p| match &p.value {
                        PropValue::Unicode(name) => Some(name.clone()),
                        _ => None,
                    }),
                _ => None,
            })
            .collect()
    };

    let first = hierarchy(&mut client, &IcsState::default());
    assert!(names(&first).contains(&"Inbox".to_owned()));
    let state = final_state(&first);
    assert!(
        state.cnset_read.is_empty(),
        "a hierarchy state has no read set"
    );

    let created = {
        let mut store = rig.store();
        store
            .create_folder(
                SessionId::SYSTEM,
                root,
                "Archive",
                None,
                &Default::default(),
            )
            .unwrap()
            .id
    };
    let second = hierarchy(&mut client, &state);
    assert_eq!(names(&second), ["Archive"]);

    rig.store()
        .delete_folder(SessionId::SYSTEM, created)
        .unwrap();
    let third = hierarchy(&mut client, &final_state(&second));
    assert!(names(&third).is_empty());
    let deleted = third.iter().any(|e| {
        matches!(e, SyncEvent::Deletions { deleted: Some(set), .. }
            if set.contains(exmux_mapihttp::idset::Replica::Id(1), created.0.get()))
    });
    assert!(deleted, "the folder deletion is reported");
}

#[test]
fn ics_import_conflict_and_move() {
    let rig = rig(Quirks::default());
    let inbox = rig.inbox();
    let mid = rig.add_item("original");
    let replica = rig.store().replica_guid().0;
    let deleted_items = rig
        .store()
        .well_known_folder(WellKnownFolder::DeletedItems)
        .unwrap();
    let mut client = Client::new(&rig);
    client.connect();
    logon_inbox(&mut client, inbox);

    // A change whose PCL does not include the server's version conflicts under
    // FailOnConflict.
    let key = xid(CLIENT_GUID, 5);
    client.handles.resize(5, 0xFFFF_FFFF);
    let responses = client.execute(&[
        RopRequest::SynchronizationOpenCollector {
            logon_id: 0,
            input_handle: 1,
            output_handle: 3,
            is_contents_collector: true,
        },
        RopRequest::SynchronizationImportMessageChange {
            logon_id: 0,
            input_handle: 3,
            output_handle: 4,
            import_flag: 0x40,
            values: vec![
                TaggedValue::new(
                    PID_TAG_SOURCE_KEY,
                    PropValue::Binary(xid(replica, mid.0.get())),
                )
                .unwrap(),
                TaggedValue::new(PID_TAG_LAST_MODIFICATION_TIME, PropValue::Time(0)).unwrap(),
                TaggedValue::new(PID_TAG_CHANGE_KEY, PropValue::Binary(key.clone())).unwrap(),
                TaggedValue::new(
                    PID_TAG_PREDECESSOR_CHANGE_LIST,
                    PropValue::Binary(pcl_of(&key)),
                )
                .unwrap(),
            ],
        },
    ]);
    assert_eq!(result(&responses[1]).return_value, 0x8004_0802);

    // A move through the collector of Deleted Items gives the item a new MID there.
    client.handles.resize(7, 0xFFFF_FFFF);
    let responses = client.execute(&[
        open_folder(0, 5, deleted_items),
        RopRequest::SynchronizationOpenCollector {
            logon_id: 0,
            input_handle: 5,
            output_handle: 6,
            is_contents_collector: true,
        },
        RopRequest::SynchronizationImportMessageMove {
            logon_id: 0,
            input_handle: 6,
            source_folder_id: xid(replica, inbox.0.get()),
            source_message_id: xid(replica, mid.0.get()),
            predecessor_change_list: Vec::new(),
            destination_message_id: xid(CLIENT_GUID, 6),
            change_number: Vec::new(),
        },
    ]);
    ok(&responses);
    let store = rig.store();
    assert!(store.item(mid).is_none());
    assert_eq!(
        store
            .list_items(deleted_items, Default::default())
            .unwrap()
            .total,
        1
    );
}

#[test]
fn checkpoint_excludes_own_read_changes() {
    let rig = rig(Quirks::default());
    let mid = rig.add_item("unread");
    let replica = rig.store().replica_guid().0;
    let mut client = Client::new(&rig);
    client.connect();
    logon_inbox(&mut client, rig.inbox());
    let state = final_state(&download(&mut client, &IcsState::default()));

    client.handles.resize(5, 0xFFFF_FFFF);
    let mut requests = vec![RopRequest::SynchronizationOpenCollector {
        logon_id: 0,
        input_handle: 1,
        output_handle: 3,
        is_contents_collector: true,
    }];
    requests.extend(upload_state(3, &state));
    requests.push(RopRequest::SynchronizationImportReadStateChanges {
        logon_id: 0,
        input_handle: 3,
        read_states: vec![MessageReadState {
            message_id: xid(replica, mid.0.get()),
            mark_as_read: true,
        }],
    });
    requests.push(RopRequest::SynchronizationGetTransferState {
        logon_id: 0,
        input_handle: 3,
        output_handle: 4,
    });
    ok(&client.execute(&requests));
    let checkpoint = parse_state(&drain(&mut client, 4));

    let read_changes = |events: &[SyncEvent]| {
        events
            .iter()
            .filter(|e| matches!(e, SyncEvent::ReadStateChanges { .. }))
            .count()
    };
    assert_eq!(read_changes(&download(&mut client, &checkpoint)), 0);
    assert_eq!(read_changes(&download(&mut client, &state)), 1);
}

#[test]
fn fetch_message_props_and_attachments() {
    let rig = rig(Quirks::default());
    let inbox = rig.inbox();
    let mid = {
        let mut store = rig.store();
        let new = NewItem {
            content: NewItemContent::Props(ItemProps {
                subject: "hello".to_owned(),
                sender: Some(crate::store::Mailbox::new("Ann", "ann@example.test")),
                attachments: vec![crate::store::Attachment {
                    number: 0,
                    file_name: Some("notes.txt".to_owned()),
                    mime_type: Some("text/plain".to_owned()),
                    content_id: None,
                    data: b"abc".to_vec(),
                }],
                ..ItemProps::default()
            }),
            ..NewItem::default()
        };
        store.create_item(SessionId::SYSTEM, inbox, new).unwrap().id
    };
    let mut client = Client::new(&rig);
    client.connect();
    logon_inbox(&mut client, inbox);
    client.handles.resize(4, 0xFFFF_FFFF);
    let responses = client.execute(&[
        RopRequest::OpenMessage {
            logon_id: 0,
            input_handle: 0,
            output_handle: 2,
            code_page_id: 0x0FFF,
            folder_id: ObjectId(inbox.to_u64()),
            open_mode_flags: 0,
            message_id: ObjectId(mid.to_u64()),
        },
        RopRequest::GetPropertiesAll {
            logon_id: 0,
            input_handle: 2,
            property_size_limit: 0,
            want_unicode: 1,
        },
        RopRequest::GetAttachmentTable {
            logon_id: 0,
            input_handle: 2,
            output_handle: 3,
            table_flags: 0x40,
        },
        RopRequest::SetColumns {
            logon_id: 0,
            input_handle: 3,
            set_columns_flags: 0,
            tags: vec![PID_TAG_ATTACH_NUMBER],
        },
        RopRequest::QueryRows {
            logon_id: 0,
            input_handle: 3,
            query_rows_flags: 0,
            forward_read: true,
            row_count: 0x100,
        },
    ]);
    ok(&responses);
    let ResponseBody::PropertyValues(values) = &result(&responses[1]).body else {
        panic!("not property values");
    };
    let find = |tag: u32| {
        values
            .iter()
            .find(|v| v.tag.0 == tag)
            .map(|v| v.value.clone())
    };
    assert_eq!(
        find(0x5D01_001F),
        Some(PropValue::Unicode("ann@example.test".to_owned()))
    );
    assert_eq!(
        find(PID_TAG_SUBJECT.0),
        Some(PropValue::Unicode("hello".to_owned()))
    );
    let ResponseBody::QueryRows { rows, .. } = &result(&responses[4]).body else {
        panic!("not rows");
    };
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0].cells,
        vec![exmux_mapihttp::prop::RowCell::Value(PropValue::I32(0))]
    );
    assert_eq!(find(PID_TAG_HAS_ATTACHMENTS.0), Some(PropValue::Bool(true)));
}

#[test]
fn attachment_rops_write_store_and_mime() {
    use exmux_mapihttp::prop::RowCell;

    let rig = rig(Quirks::default());
    let inbox = rig.inbox();
    let mid = rig.add_item("with attachment");
    let mut client = Client::new(&rig);
    client.connect();
    logon_inbox(&mut client, inbox);
    client.handles.resize(6, 0xFFFF_FFFF);
    let open = RopRequest::OpenMessage {
        logon_id: 0,
        input_handle: 0,
        output_handle: 2,
        code_page_id: 0x0FFF,
        folder_id: ObjectId(inbox.to_u64()),
        open_mode_flags: 1,
        message_id: ObjectId(mid.to_u64()),
    };
    let save_message = RopRequest::SaveChangesMessage {
        logon_id: 0,
        response_handle: 2,
        input_handle: 2,
        save_flags: 0x02,
    };
    // Larger than the 16 KiB the emulator returns inline.
    let data: Vec<u8> = (0..20_000u32).map(|i| (i % 253) as u8).collect();
    let (first, second) = data.split_at(10_000);
    let responses = client.execute(&[
        open.clone(),
        RopRequest::CreateAttachment {
            logon_id: 0,
            input_handle: 2,
            output_handle: 3,
        },
        RopRequest::SetProperties {
            logon_id: 0,
            input_handle: 3,
            values: vec![
                TaggedValue {
                    tag: PID_TAG_ATTACH_LONG_FILENAME,
                    value: PropValue::Unicode("data.bin".to_owned()),
                },
                TaggedValue {
                    tag: PropTag(0x370E_001F),
                    value: PropValue::Unicode("application/octet-stream".to_owned()),
                },
            ],
        },
        RopRequest::OpenStream {
            logon_id: 0,
            input_handle: 3,
            output_handle: 4,
            tag: PID_TAG_ATTACH_DATA_BINARY,
            open_mode_flags: 0x02,
        },
        RopRequest::WriteStream {
            logon_id: 0,
            input_handle: 4,
            data: first.to_vec(),
        },
        RopRequest::WriteStream {
            logon_id: 0,
            input_handle: 4,
            data: second.to_vec(),
        },
        RopRequest::CommitStream {
            logon_id: 0,
            input_handle: 4,
        },
        RopRequest::SaveChangesAttachment {
            logon_id: 0,
            response_handle: 2,
            input_handle: 3,
            save_flags: 0x02,
        },
        save_message.clone(),
    ]);
    ok(&responses);
    assert_eq!(result(&responses[1]).body, ResponseBody::AttachmentId(0));
    {
        let store = rig.store();
        let item = store.item(mid).unwrap();
        assert!(item.props.has_attachments);
        assert_eq!(item.props.attachments.len(), 1);
        assert_eq!(item.props.attachments[0].data, data);
        let mime = item
            .mime
            .as_deref()
            .expect("MIME composed with the attachment");
        let parsed = mail_parser::MessageParser::default().parse(mime).unwrap();
        assert_eq!(parsed.attachment_count(), 1);
        assert_eq!(parsed.attachment(0).unwrap().contents(), data.as_slice());
    }

    // The data is too large to return inline, so it comes back as ecMAPIOOM.
    let responses = client.execute(&[
        open.clone(),
        RopRequest::OpenAttachment {
            logon_id: 0,
            input_handle: 2,
            output_handle: 3,
            open_attachment_flags: 0,
            attachment_id: 0,
        },
        RopRequest::GetPropertiesSpecific {
            logon_id: 0,
            input_handle: 3,
            property_size_limit: 0,
            want_unicode: 1,
            tags: vec![PID_TAG_ATTACH_SIZE, PID_TAG_ATTACH_DATA_BINARY],
        },
        RopRequest::SetProperties {
            logon_id: 0,
            input_handle: 3,
            values: Vec::new(),
        },
    ]);
    let ResponseBody::PropertyRow(row) = &result(&responses[2]).body else {
        panic!("not a property row");
    };
    let RowCell::Value(PropValue::I32(size)) = row.cells[0] else {
        panic!("PidTagAttachSize missing: {:?}", row.cells[0]);
    };
    assert!(
        size > 20_000,
        "PidTagAttachSize {size} counts the data and more"
    );
    assert_eq!(
        row.cells[1],
        RowCell::Error {
            code: 0x8007_000E,
            ptype: None
        }
    );
    assert_eq!(
        result(&responses[3]).return_value,
        0x8007_0005,
        "a read-only attachment rejects writes"
    );

    let responses = client.execute(&[
        open,
        RopRequest::DeleteAttachment {
            logon_id: 0,
            input_handle: 2,
            attachment_id: 0,
        },
        save_message,
    ]);
    ok(&responses);
    let store = rig.store();
    let item = store.item(mid).unwrap();
    assert!(item.props.attachments.is_empty());
    assert!(!item.props.has_attachments);
}

#[tokio::test]
async fn quirk_gromox_framing() {
    let rig = rig(Quirks {
        gromox_framing: true,
        ..Quirks::default()
    });
    let inbox = rig.inbox();
    let mut client = Client::new(&rig);
    client.connect();
    logon_inbox(&mut client, inbox);
    register_inbox(&mut client, inbox, 2);

    let mut chunks = start_wait(&rig, &client.cookies).await;
    assert_eq!(next_chunk(&mut chunks).await, "PROCESSING\r\n");
    rig.clock.advance(Duration::from_secs(31));
    assert_eq!(next_chunk(&mut chunks).await, "PENDING");
    rig.add_item("wake up");
    let tail = next_chunk(&mut chunks).await;
    assert!(tail.starts_with(b"PROCESSING\r\nDONE\r\nX-ElapsedTime: 31\r\n"));

    // The codec's reader accepts the whole body as that server sends it.
    let mut whole = b"PROCESSING\r\nPENDING".to_vec();
    whole.extend_from_slice(&tail);
    let framed = exmux_mapihttp::http::parse_body(&whole).unwrap();
    let Response::Success(success) = NotificationWaitResponse::decode(&framed.body).unwrap() else {
        panic!("NotificationWait failed");
    };
    assert_eq!(success.event_pending, 1);
}

#[test]
fn contents_table_pages_and_seeks() {
    let rig = rig(Quirks::default());
    for i in 0..250 {
        rig.add_item(&format!("item {i}"));
    }
    let mut client = Client::new(&rig);
    client.connect();
    logon_inbox(&mut client, rig.inbox());
    client.handles.resize(3, 0xFFFF_FFFF);
    let responses = client.execute(&[
        RopRequest::GetContentsTable {
            logon_id: 0,
            input_handle: 1,
            output_handle: 2,
            table_flags: 0x40,
        },
        RopRequest::SetColumns {
            logon_id: 0,
            input_handle: 2,
            set_columns_flags: 0,
            tags: vec![PID_TAG_SUBJECT],
        },
    ]);
    ok(&responses);
    assert_eq!(result(&responses[0]).body, ResponseBody::RowCount(250));

    let query = RopRequest::QueryRows {
        logon_id: 0,
        input_handle: 2,
        query_rows_flags: 0,
        forward_read: true,
        row_count: 100,
    };
    let page = |client: &mut Client<'_>| {
        let responses = client.execute(std::slice::from_ref(&query));
        let ResponseBody::QueryRows { origin, rows } = &result(&responses[0]).body else {
            panic!("not rows");
        };
        (
            *origin,
            rows.len(),
            rows.first().and_then(|r| r.cells[0].value().cloned()),
        )
    };
    client.columns.insert(2, vec![PID_TAG_SUBJECT]);
    let first = page(&mut client);
    assert_eq!((first.0, first.1), (1, 100));
    assert_eq!(first.2, Some(PropValue::Unicode("item 0".to_owned())));
    assert_eq!(page(&mut client).1, 100);
    let last = page(&mut client);
    assert_eq!((last.0, last.1), (2, 50));

    let responses = client.execute(&[RopRequest::SeekRow {
        logon_id: 0,
        input_handle: 2,
        origin: 0,
        row_count: 240,
        want_row_moved_count: true,
    }]);
    ok(&responses);
    let tail = page(&mut client);
    assert_eq!((tail.0, tail.1), (2, 10));
    assert_eq!(tail.2, Some(PropValue::Unicode("item 240".to_owned())));
}

#[test]
fn buffer_too_small_takes_back_query_rows() {
    let rig = rig_with(MapiOptions {
        max_rop_out: 600,
        ..MapiOptions::default()
    });
    for i in 0..50 {
        rig.add_item(&format!("item {i:02}"));
    }
    let mut client = Client::new(&rig);
    client.connect();
    logon_inbox(&mut client, rig.inbox());
    client.handles.resize(3, 0xFFFF_FFFF);
    let responses = client.execute(&[
        RopRequest::GetContentsTable {
            logon_id: 0,
            input_handle: 1,
            output_handle: 2,
            table_flags: 0x40,
        },
        RopRequest::SetColumns {
            logon_id: 0,
            input_handle: 2,
            set_columns_flags: 0,
            tags: vec![PID_TAG_SUBJECT],
        },
    ]);
    ok(&responses);
    client.columns.insert(2, vec![PID_TAG_SUBJECT]);
    let query = |row_count: u16| RopRequest::QueryRows {
        logon_id: 0,
        input_handle: 2,
        query_rows_flags: 0,
        forward_read: true,
        row_count,
    };
    let seek = RopRequest::SeekRow {
        logon_id: 0,
        input_handle: 2,
        origin: 0,
        row_count: 0,
        want_row_moved_count: true,
    };

    // 50 rows of about 17 bytes do not fit in 600: the QueryRows is taken back and
    // listed with the SeekRow behind it.
    let batch = [query(50), seek.clone()];
    let responses = client.execute(&batch);
    assert_eq!(responses.len(), 1, "{responses:?}");
    let RopResponse::BufferTooSmall {
        size_needed,
        request_buffers,
    } = &responses[0]
    else {
        panic!("expected RopBufferTooSmall, got {responses:?}");
    };
    assert!(*size_needed > 600, "SizeNeeded {size_needed}");
    let mut expected = Vec::new();
    for request in &batch {
        request.encode(&mut expected);
    }
    assert_eq!(request_buffers, &expected);
    assert_eq!(client.handles.len(), 3);

    // The table did not move: a smaller page starts at the first row.
    let responses = client.execute(&[query(20)]);
    ok(&responses);
    let ResponseBody::QueryRows { rows, .. } = &result(&responses[0]).body else {
        panic!("not rows");
    };
    assert_eq!(rows.len(), 20);
    assert_eq!(
        rows[0].cells[0].value(),
        Some(&PropValue::Unicode("item 00".to_owned()))
    );
    assert_eq!(rig.front.execute_counts().1, 1);
}

#[test]
fn buffer_too_small_keeps_processed_results() {
    let rig = rig_with(MapiOptions {
        max_rop_out: 400,
        ..MapiOptions::default()
    });
    let mut client = Client::new(&rig);
    client.connect();
    logon_inbox(&mut client, rig.inbox());
    // Each RopOpenFolder is a committed ROP: it runs only while 256 bytes are free, so
    // only the first few of twenty fit in one response.
    client.handles.resize(22, 0xFFFF_FFFF);
    let batch: Vec<RopRequest> = (2..22u8)
        .map(|slot| open_folder(0, slot, rig.inbox()))
        .collect();
    let responses = client.execute(&batch);

    let processed = responses.iter().filter(|r| r.as_result().is_some()).count();
    assert!(processed > 0, "no request ran");
    assert!(processed < batch.len(), "every request ran");
    ok(&responses);
    let Some(RopResponse::BufferTooSmall {
        request_buffers, ..
    }) = responses.last()
    else {
        panic!("expected RopBufferTooSmall last, got {responses:?}");
    };
    let mut rest = Vec::new();
    for request in &batch[processed..] {
        request.encode(&mut rest);
    }
    assert_eq!(request_buffers, &rest);

    for slot in 2..2 + processed {
        assert_ne!(client.handles[slot], 0xFFFF_FFFF, "slot {slot} not filled");
    }
    for slot in 2 + processed..22 {
        assert_eq!(client.handles[slot], 0xFFFF_FFFF, "slot {slot} filled");
    }
}

#[test]
fn contents_table_sorts_and_restricts() {
    let rig = rig(Quirks::default());
    for subject in [
        "delta report",
        "alpha",
        "Charlie report",
        "bravo report",
        "echo",
    ] {
        rig.add_item(subject);
    }
    let mut client = Client::new(&rig);
    client.connect();
    logon_inbox(&mut client, rig.inbox());
    client.handles.resize(3, 0xFFFF_FFFF);
    let contains_report = exmux_mapihttp::prop::Restriction::Content {
        fuzzy_low: 0x0001,
        fuzzy_high: 0x0001,
        tag: PID_TAG_SUBJECT,
        value: TaggedValue {
            tag: PID_TAG_SUBJECT,
            value: PropValue::Unicode("REPORT".to_owned()),
        },
    };
    let query = RopRequest::QueryRows {
        logon_id: 0,
        input_handle: 2,
        query_rows_flags: 0,
        forward_read: true,
        row_count: 100,
    };
    let responses = client.execute(&[
        RopRequest::GetContentsTable {
            logon_id: 0,
            input_handle: 1,
            output_handle: 2,
            table_flags: 0x40,
        },
        RopRequest::SetColumns {
            logon_id: 0,
            input_handle: 2,
            set_columns_flags: 0,
            tags: vec![PID_TAG_SUBJECT],
        },
        RopRequest::SortTable {
            logon_id: 0,
            input_handle: 2,
            sort_table_flags: 0,
            categorized_count: 0,
            expanded_count: 0,
            sort_orders: vec![exmux_mapihttp::rop::SortOrder {
                tag: PID_TAG_SUBJECT,
                order: 0x01,
            }],
        },
        RopRequest::Restrict {
            logon_id: 0,
            input_handle: 2,
            restrict_flags: 0,
            restriction: Some(contains_report),
        },
        query.clone(),
    ]);
    ok(&responses);

    let ResponseBody::QueryRows { rows, .. } = &result(&responses[4]).body else {
        panic!("not rows");
    };
    let subjects: Vec<Option<&PropValue>> = rows.iter().map(|r| r.cells[0].value()).collect();
    let expected: Vec<PropValue> = ["delta report", "Charlie report", "bravo report"]
        .map(|s| PropValue::Unicode(s.to_owned()))
        .to_vec();
    assert_eq!(subjects, expected.iter().map(Some).collect::<Vec<_>>());

    // Removing the restriction keeps the sort and shows every row again.
    client.columns.insert(2, vec![PID_TAG_SUBJECT]);
    let responses = client.execute(&[
        RopRequest::Restrict {
            logon_id: 0,
            input_handle: 2,
            restrict_flags: 0,
            restriction: None,
        },
        query,
    ]);
    ok(&responses);
    let ResponseBody::QueryRows { rows, .. } = &result(&responses[1]).body else {
        panic!("not rows");
    };
    assert_eq!(rows.len(), 5);
    assert_eq!(
        rows[0].cells[0].value(),
        Some(&PropValue::Unicode("echo".to_owned()))
    );
}

#[test]
fn copy_folder_copies_items_and_subfolders() {
    let rig = rig(Quirks::default());
    let (source, child, target) = {
        let mut store = rig.store();
        let inbox = store.well_known_folder(WellKnownFolder::Inbox).unwrap();
        let session = SessionId::SYSTEM;
        let none = crate::store::ImportStamp::default();
        let source = store
            .create_folder(session, inbox, "Projects", None, &none)
            .unwrap()
            .id;
        let child = store
            .create_folder(session, source, "Old", None, &none)
            .unwrap()
            .id;
        let target = store
            .create_folder(session, inbox, "Archive", None, &none)
            .unwrap()
            .id;
        for (folder, subject) in [(source, "plan"), (child, "notes")] {
            let new = NewItem {
                content: NewItemContent::Props(ItemProps {
                    subject: subject.to_owned(),
                    ..ItemProps::default()
                }),
                ..NewItem::default()
            };
            store.create_item(session, folder, new).unwrap();
        }
        (source, child, target)
    };
    let mut client = Client::new(&rig);
    client.connect();
    logon_inbox(&mut client, rig.inbox());
    client.handles.resize(4, 0xFFFF_FFFF);

    let responses = client.execute(&[
        open_folder(0, 2, source),
        open_folder(0, 3, target),
        RopRequest::CopyFolder {
            logon_id: 0,
            source_handle: 1,
            destination_handle: 3,
            want_asynchronous: false,
            want_recursive: true,
            use_unicode: true,
            folder_id: ObjectId(source.to_u64()),
            new_folder_name: exmux_mapihttp::rop::RopString::Unicode("Projects 2025".to_owned()),
        },
    ]);
    ok(&responses);

    let store = rig.store();
    let copies = store.child_folders(target);
    assert_eq!(copies.len(), 1);
    assert_eq!(copies[0].display_name, "Projects 2025");
    let copy = copies[0].fid;
    assert_ne!(copy, source);
    let subject_in = |fid| {
        store
            .list_items(fid, crate::store::ListOptions::default())
            .unwrap()
            .items
            .iter()
            .map(|item| item.props.subject.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(subject_in(copy), vec!["plan".to_owned()]);
    let sub_copies = store.child_folders(copy);
    assert_eq!(sub_copies.len(), 1);
    assert_eq!(sub_copies[0].display_name, "Old");
    assert_eq!(subject_in(sub_copies[0].fid), vec!["notes".to_owned()]);
    // The source keeps its items and subfolder.
    assert_eq!(subject_in(source), vec!["plan".to_owned()]);
    assert_eq!(subject_in(child), vec!["notes".to_owned()]);
}

#[test]
fn copy_folder_into_itself_fails() {
    let rig = rig(Quirks::default());
    let source = {
        let mut store = rig.store();
        let inbox = store.well_known_folder(WellKnownFolder::Inbox).unwrap();
        store
            .create_folder(
                SessionId::SYSTEM,
                inbox,
                "Loop",
                None,
                &crate::store::ImportStamp::default(),
            )
            .unwrap()
            .id
    };
    let mut client = Client::new(&rig);
    client.connect();
    logon_inbox(&mut client, rig.inbox());
    client.handles.resize(3, 0xFFFF_FFFF);

    let responses = client.execute(&[
        open_folder(0, 2, source),
        RopRequest::CopyFolder {
            logon_id: 0,
            source_handle: 1,
            destination_handle: 2,
            want_asynchronous: false,
            want_recursive: true,
            use_unicode: true,
            folder_id: ObjectId(source.to_u64()),
            new_folder_name: exmux_mapihttp::rop::RopString::Unicode(String::new()),
        },
    ]);

    assert_ne!(result(&responses[1]).return_value, 0);
    assert!(rig.store().child_folders(source).is_empty());
}

#[test]
fn ics_hierarchy_import_creates_renames_deletes() {
    let rig = rig(Quirks::default());
    let mut client = Client::new(&rig);
    client.connect();
    logon_inbox(&mut client, rig.inbox());
    client.handles.resize(3, 0xFFFF_FFFF);
    let source_key = xid(OTHER_GUID, 1);
    let tagged = |tag: PropTag, value: PropValue| TaggedValue { tag, value };
    let hierarchy = |name: &str, change: u64| {
        let change_key = xid(OTHER_GUID, change);
        vec![
            tagged(PID_TAG_PARENT_SOURCE_KEY, PropValue::Binary(Vec::new())),
            tagged(PID_TAG_SOURCE_KEY, PropValue::Binary(source_key.clone())),
            tagged(PropTag(0x3008_0040), PropValue::Time(0)),
            tagged(PID_TAG_CHANGE_KEY, PropValue::Binary(change_key.clone())),
            tagged(
                PID_TAG_PREDECESSOR_CHANGE_LIST,
                PropValue::Binary(pcl_of(&change_key)),
            ),
            tagged(PID_TAG_DISPLAY_NAME, PropValue::Unicode(name.to_owned())),
        ]
    };
    let import = |name: &str, change: u64| RopRequest::SynchronizationImportHierarchyChange {
        logon_id: 0,
        input_handle: 2,
        hierarchy_values: hierarchy(name, change),
        values: vec![tagged(
            PID_TAG_CONTAINER_CLASS,
            PropValue::Unicode("IPF.Note".to_owned()),
        )],
    };

    let responses = client.execute(&[
        RopRequest::SynchronizationOpenCollector {
            logon_id: 0,
            input_handle: 1,
            output_handle: 2,
            is_contents_collector: false,
        },
        import("Imported", 2),
    ]);
    ok(&responses);
    let ResponseBody::ObjectId(created) = result(&responses[1]).body else {
        panic!("no folder id");
    };
    let fid = Fid::from_u64(created.0).unwrap();
    let inbox = rig.inbox();
    {
        let store = rig.store();
        let folder = store.folder(fid).unwrap();
        assert_eq!(folder.display_name, "Imported");
        assert_eq!(folder.parent, Some(inbox));
        assert_eq!(folder.container_class.as_deref(), Some("IPF.Note"));
        assert_eq!(folder.stamp.change_key.to_bytes(), xid(OTHER_GUID, 2));
    }

    // The same source key renames the folder it created.
    let responses = client.execute(&[import("Renamed", 3)]);
    ok(&responses);
    assert_eq!(result(&responses[0]).body, ResponseBody::ObjectId(created));
    assert_eq!(rig.store().folder(fid).unwrap().display_name, "Renamed");

    let responses = client.execute(&[RopRequest::SynchronizationImportDeletes {
        logon_id: 0,
        input_handle: 2,
        import_delete_flags: 0x01,
        values: vec![tagged(
            PropTag(0x0000_1102),
            PropValue::MvBinary(vec![source_key.clone()]),
        )],
    }]);
    ok(&responses);
    assert!(rig.store().folder(fid).is_none());
}

/// The real exchanges of the open-source server, compared structure by structure with
/// the front end's responses to the same request bytes.
mod captures {
    use super::*;
    use exmux_mapihttp::prop::RowCell;

    fn capture(name: &str) -> Option<Vec<u8>> {
        let path = exmux_testkit::shared_path(&format!("captures/mapi-gromox/{name}"))?;
        Some(std::fs::read(path).unwrap())
    }

    fn framed_body(bytes: &[u8]) -> Vec<u8> {
        exmux_mapihttp::http::parse_body(bytes).unwrap().body
    }

    fn requests_of(body: &[u8]) -> (ExecuteRequest, RopBuffer<RopRequest>) {
        let request = ExecuteRequest::decode(body).unwrap();
        let payload = ext::decode_payload(&request.rop_buffer).unwrap();
        let buffer = rop::decode_request_buffer(&payload).unwrap();
        (request, buffer)
    }

    fn responses_of(body: &[u8], requests: &[RopRequest]) -> RopBuffer<RopResponse> {
        let Response::Success(success) = ExecuteResponse::decode(body).unwrap() else {
            panic!("a failed Execute");
        };
        let payload = ext::decode_payload(&success.rop_buffer).unwrap();
        let context = ResponseContext {
            requests,
            columns: HashMap::new(),
        };
        rop::decode_response_buffer(&payload, &context).unwrap()
    }

    /// Returns the captured server's well-known folder ids, by RopLogon position.
    fn gromox_folder_ids() -> [ObjectId; 13] {
        let request =
            capture("06-Execute-multi-logon-openfolder-contents-plain.request.body").unwrap();
        let response =
            capture("06-Execute-multi-logon-openfolder-contents-plain.response.body").unwrap();
        let (_, requests) = requests_of(&request);
        let responses = responses_of(&framed_body(&response), &requests.rops);
        let ResponseBody::Logon(logon) = &result(&responses.rops[0]).body else {
            panic!("the first response is RopLogon");
        };
        logon.folder_ids
    }

    /// Rewrites the captured server's ids and handles into this emulator's: folder ids by
    /// their RopLogon position, message ids to `message`, live handles to `logon`.
    fn rewrite(
        buffer: &mut RopBuffer<RopRequest>,
        theirs: &[ObjectId; 13],
        ours: &[ObjectId; 13],
        message: ObjectId,
        logon: u32,
    ) {
        let map = |id: &mut ObjectId| {
            *id = match theirs.iter().position(|f| f == id) {
                Some(index) => ours[index],
                None => message,
            };
        };
        for rop in &mut buffer.rops {
            match rop {
                RopRequest::OpenFolder { folder_id, .. } => map(folder_id),
                RopRequest::OpenMessage {
                    folder_id,
                    message_id,
                    ..
                } => {
                    map(folder_id);
                    map(message_id);
                }
                RopRequest::LongTermIdFromId { object_id, .. } => map(object_id),
                RopRequest::SetReadFlags { message_ids, .. }
                | RopRequest::DeleteMessages { message_ids, .. } => {
                    message_ids.iter_mut().for_each(map);
                }
                _ => {}
            }
        }
        for handle in &mut buffer.handles {
            if *handle != 0xFFFF_FFFF {
                *handle = logon;
            }
        }
    }

    struct Compared {
        theirs: RopBuffer<RopResponse>,
        ours: RopBuffer<RopResponse>,
    }

    /// Replays one captured Execute against a fresh emulator holding one inbox message.
    fn replay(prefix: &str) -> Option<Compared> {
        let request = capture(&format!("{prefix}.request.body"))?;
        let response = capture(&format!("{prefix}.response.body"))?;
        let (execute, original) = requests_of(&request);
        let theirs = responses_of(&framed_body(&response), &original.rops);

        let rig = rig(Quirks::default());
        let message = rig.add_item("[capture-mapi] message 1");
        rig.add_item("[capture-mapi] message 2");
        let mut client = Client::new(&rig);
        client.connect();
        client.slots(1);
        let logon = client.execute(&[logon_request()]);
        let ResponseBody::Logon(ours_logon) = &result(&logon[0]).body else {
            panic!("not a logon");
        };
        let mut buffer = original.clone();
        rewrite(
            &mut buffer,
            &gromox_folder_ids(),
            &ours_logon.folder_ids,
            ObjectId(message.to_u64()),
            client.handles[0],
        );
        client.handles = buffer.handles.clone();
        let Outcome::Reply { body, .. } = client.execute_raw(&buffer.rops, execute.flags) else {
            panic!("the replay was refused");
        };
        let ours = responses_of(&body, &buffer.rops);
        Some(Compared { theirs, ours })
    }

    fn kind(body: &ResponseBody) -> std::mem::Discriminant<ResponseBody> {
        std::mem::discriminant(body)
    }

    /// Same ROPs in the same order, same return values, same response layouts, same
    /// handle table size; RopNotify and RopPending entries are left out.
    fn assert_same_structure(compared: &Compared) {
        let results = |buffer: &RopBuffer<RopResponse>| -> Vec<RopResult> {
            buffer
                .rops
                .iter()
                .filter_map(|r| r.as_result().cloned())
                .collect()
        };
        let (theirs, ours) = (results(&compared.theirs), results(&compared.ours));
        assert_eq!(theirs.len(), ours.len());
        for (a, b) in theirs.iter().zip(&ours) {
            assert_eq!(a.rop_id, b.rop_id);
            assert_eq!(a.handle_index, b.handle_index, "{}", rop_id::name(a.rop_id));
            assert_eq!(a.return_value, b.return_value, "{}", rop_id::name(a.rop_id));
            assert_eq!(kind(&a.body), kind(&b.body), "{}", rop_id::name(a.rop_id));
        }
        assert_eq!(compared.theirs.handles.len(), compared.ours.handles.len());
    }

    fn cell_types(row: &exmux_mapihttp::prop::PropertyRow) -> Vec<Option<u16>> {
        row.cells
            .iter()
            .map(|cell| match cell {
                RowCell::Value(value) => Some(value.ptype().0),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn connect_answers_as_the_captured_server() {
        let Some(request) = capture("02-Connect-plain.request.body") else {
            return;
        };
        let response = capture("02-Connect-plain.response.body").unwrap();
        let Response::Success(theirs) = ConnectResponse::decode(&framed_body(&response)).unwrap()
        else {
            panic!("the captured Connect failed");
        };
        let rig = rig(Quirks::default());
        let mut client = Client::new(&rig);
        let Outcome::Reply { body, set_cookies } = client.send("Connect", request) else {
            panic!("Connect refused");
        };
        let Response::Success(ours) = ConnectResponse::decode(&body).unwrap() else {
            panic!("Connect failed");
        };
        assert_eq!(ours.error_code, theirs.error_code);
        assert_eq!(set_cookies.len(), 2, "a context and a sequence cookie");
        assert_eq!(ours.display_name.is_empty(), theirs.display_name.is_empty());
    }

    #[test]
    fn logon_and_contents_table_match_the_captures() {
        for prefix in [
            "05-Execute-roplogon",
            "06-Execute-multi-logon-openfolder-contents-plain",
            "07-Execute-multi-flags0-allow-compression-xor",
            "08-Execute-multi-flags0-request-compressed-xored",
        ] {
            let Some(compared) = replay(prefix) else {
                return;
            };
            assert_same_structure(&compared);
            let find_rows = |buffer: &RopBuffer<RopResponse>| {
                buffer
                    .rops
                    .iter()
                    .find_map(|r| match r.as_result().map(|r| &r.body) {
                        Some(ResponseBody::QueryRows { rows, origin }) => {
                            Some((rows.clone(), *origin))
                        }
                        _ => None,
                    })
            };
            if let (Some((theirs, their_origin)), Some((ours, our_origin))) =
                (find_rows(&compared.theirs), find_rows(&compared.ours))
            {
                assert_eq!(their_origin, our_origin);
                assert_eq!(theirs[0].flagged, ours[0].flagged);
                assert_eq!(cell_types(&theirs[0]), cell_types(&ours[0]));
            }
        }
    }

    #[test]
    fn hierarchy_openmessage_readflags_and_delete_match_the_captures() {
        for prefix in [
            "09-Execute-hierarchy-root-depth-longtermid",
            "10-Execute-openmessage-getpropertiesspecific",
            "11-Execute-setreadflags-clear-read-own-table-open",
            "29-Execute-deletemessages-message5",
        ] {
            let Some(compared) = replay(prefix) else {
                return;
            };
            assert_same_structure(&compared);
        }
    }

    #[test]
    fn get_properties_specific_answers_with_the_captured_types() {
        let Some(compared) = replay("10-Execute-openmessage-getpropertiesspecific") else {
            return;
        };
        let row = |buffer: &RopBuffer<RopResponse>| {
            buffer
                .rops
                .iter()
                .find_map(|r| match r.as_result().map(|r| &r.body) {
                    Some(ResponseBody::PropertyRow(row)) => Some(row.clone()),
                    _ => None,
                })
                .unwrap()
        };
        let (theirs, ours) = (row(&compared.theirs), row(&compared.ours));
        assert!(
            theirs.flagged && ours.flagged,
            "the nonexistent tag flags the row"
        );
        assert_eq!(cell_types(&theirs), cell_types(&ours));
    }

    #[test]
    fn table_notification_matches_capture() {
        let prefix = "11-Execute-setreadflags-clear-read-own-table-open";
        let Some(request) = capture(&format!("{prefix}.request.body")) else {
            return;
        };
        let response = capture(&format!("{prefix}.response.body")).unwrap();
        let (_, captured) = requests_of(&request);
        let theirs = responses_of(&framed_body(&response), &captured.rops);
        let their_notify = theirs
            .rops
            .iter()
            .find_map(|r| match r {
                RopResponse::Notify { data, .. } => Some(data.clone()),
                _ => None,
            })
            .unwrap();

        let rig = rig(Quirks::default());
        let inbox = rig.inbox();
        let mid = rig.add_item("[capture-mapi] message 1");
        rig.store().set_read(SessionId::SYSTEM, mid, true).unwrap();
        let mut client = Client::new(&rig);
        client.connect();
        logon_inbox(&mut client, inbox);
        let columns = vec![
            PID_TAG_MID,
            PID_TAG_SUBJECT,
            PID_TAG_MESSAGE_FLAGS,
            PID_TAG_CHANGE_KEY,
            PID_TAG_LAST_MODIFICATION_TIME,
        ];
        client.handles.resize(3, 0xFFFF_FFFF);
        ok(&client.execute(&[
            RopRequest::GetContentsTable {
                logon_id: 0,
                input_handle: 1,
                output_handle: 2,
                table_flags: 0x40,
            },
            RopRequest::SetColumns {
                logon_id: 0,
                input_handle: 2,
                set_columns_flags: 0,
                tags: columns.clone(),
            },
        ]));
        let responses = client.execute(&[RopRequest::SetReadFlags {
            logon_id: 0,
            input_handle: 1,
            want_asynchronous: false,
            read_flags: 0x04,
            message_ids: vec![ObjectId(mid.to_u64())],
        }]);
        ok(&responses);
        let ours = notifies(&responses);
        assert_eq!(ours.len(), 1);
        assert_eq!(ours[0].flags, their_notify.flags);
        let (our_table, their_table) = (
            ours[0].table.clone().unwrap(),
            their_notify.table.clone().unwrap(),
        );
        assert_eq!(our_table.event_type, their_table.event_type);
        assert_eq!(
            our_table.row_message.map(|(id, _)| id),
            Some(ObjectId(mid.to_u64()))
        );
        let row = our_table.row(&columns).unwrap().unwrap();
        assert_eq!(row.cells[2].value(), Some(&PropValue::I32(0)), "now unread");
        let their_row = their_table.row(&columns).unwrap().unwrap();
        assert_eq!(cell_types(&row), cell_types(&their_row));
    }

    #[test]
    fn ics_download_matches_the_captured_stream_grammar() {
        let prefix = "12-Execute-ics-syncconfigure-contents-emptystate-getbuffer";
        let Some(compared) = replay(prefix) else {
            return;
        };
        assert_same_structure(&compared);
        let stream = capture(&format!("{prefix}.fxstream.bin")).unwrap();
        let theirs = parse_sync(&stream);

        let rig = rig(Quirks::default());
        rig.add_item("[capture-mapi] message 1");
        let mut client = Client::new(&rig);
        client.connect();
        logon_inbox(&mut client, rig.inbox());
        let (_, captured) = requests_of(&capture(&format!("{prefix}.request.body")).unwrap());
        let (flags, extra) = captured
            .rops
            .iter()
            .find_map(|r| match r {
                RopRequest::SynchronizationConfigure {
                    synchronization_flags,
                    synchronization_extra_flags,
                    ..
                } => Some((*synchronization_flags, *synchronization_extra_flags)),
                _ => None,
            })
            .unwrap();
        client.handles.resize(3, 0xFFFF_FFFF);
        let mut requests = vec![RopRequest::SynchronizationConfigure {
            logon_id: 0,
            input_handle: 1,
            output_handle: 2,
            synchronization_type: 1,
            send_options: 0x01,
            synchronization_flags: flags,
            restriction_data: Vec::new(),
            synchronization_extra_flags: extra,
            tags: Vec::new(),
        }];
        requests.extend(upload_state(2, &IcsState::default()));
        ok(&client.execute(&requests));
        let ours = parse_sync(&drain(&mut client, 2));

        let first_change = |events: &[SyncEvent]| {
            events
                .iter()
                .find_map(|e| match e {
                    SyncEvent::MessageChange(change) => Some(change.clone()),
                    _ => None,
                })
                .unwrap()
        };
        let (a, b) = (first_change(&theirs), first_change(&ours));
        let tags = |c: &exmux_mapihttp::fxics::MessageChange| -> Vec<PropTag> {
            c.header.iter().map(|p| p.tag).collect()
        };
        assert_eq!(
            tags(&a),
            tags(&b),
            "the change header lists the same properties"
        );
        assert_eq!(a.progress.is_some(), b.progress.is_some());
        let units = |events: &[SyncEvent]| -> Vec<&'static str> {
            let mut seen: Vec<&'static str> = Vec::new();
            for event in events {
                let name = match event {
                    SyncEvent::ProgressTotal(_) => "progress",
                    SyncEvent::MessageChange(_) => "change",
                    SyncEvent::State(_) => "state",
                    SyncEvent::End => "end",
                    _ => "other",
                };
                if seen.last() != Some(&name) {
                    seen.push(name);
                }
            }
            seen
        };
        assert_eq!(units(&theirs), units(&ours));
    }
}

/// The captured server's error and keep-alive replies, compared through the handler's
/// HTTP path.
mod capture_replies {
    use super::*;

    fn capture(name: &str) -> Option<String> {
        let path = exmux_testkit::shared_path(&format!("captures/mapi-gromox/{name}"))?;
        Some(String::from_utf8_lossy(&std::fs::read(path).unwrap()).into_owned())
    }

    fn header<'a>(text: &'a str, name: &str) -> Option<&'a str> {
        text.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }

    async fn http(
        rig: &Rig,
        request_type: &str,
        cookies: &HashMap<String, String>,
        body: Vec<u8>,
    ) -> (http::HeaderMap, Vec<u8>) {
        let cookie = cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let request = http::Request::builder()
            .method("POST")
            .uri("/mapi/emsmdb/")
            .header("X-RequestType", request_type)
            .header("X-RequestId", "{00000000-0000-0000-0000-000000000001}:9")
            .header("X-ClientInfo", "{00000000-0000-0000-0000-000000000002}:1")
            .header("Cookie", cookie)
            .body(Bytes::from(body))
            .unwrap();
        let response = Arc::clone(&rig.front)
            .respond(Endpoint::Emsmdb, request)
            .await;
        let headers = response.headers().clone();
        let body = match response.into_body() {
            crate::server::ResponseBody::Full(bytes) => bytes.to_vec(),
            crate::server::ResponseBody::Stream(mut receiver) => {
                let mut out = Vec::new();
                while let Some(chunk) = receiver.recv().await {
                    out.extend_from_slice(&chunk);
                }
                out
            }
        };
        (headers, body)
    }

    #[tokio::test]
    async fn stale_sequence_reply_matches_capture() {
        let Some(theirs) = capture("37-Execute-stale-sequence-cookie.response.headers") else {
            return;
        };
        let rig = rig(Quirks::gromox());
        let mut client = Client::new(&rig);
        client.connect();
        let old = client.cookies.clone();
        assert!(matches!(
            client.execute_raw(&[], 0x3),
            Outcome::Reply { .. }
        ));
        let (headers, body) = http(&rig, "Execute", &old, Vec::new()).await;
        assert_eq!(
            header(&theirs, "X-ResponseCode"),
            headers["x-responsecode"].to_str().ok()
        );
        assert_eq!(
            header(&theirs, "Content-Type"),
            headers["content-type"].to_str().ok()
        );
        assert_eq!(
            header(&theirs, "X-RequestType").is_some(),
            headers.contains_key("x-requesttype")
        );
        assert!(String::from_utf8(body).unwrap().contains("<html>"));
    }

    #[tokio::test]
    async fn ping_reply_matches_capture() {
        let Some(theirs) = capture("35-PING-session-A.response.headers") else {
            return;
        };
        let rig = rig(Quirks::default());
        let mut client = Client::new(&rig);
        client.connect();
        let (headers, body) = http(&rig, "PING", &client.cookies, Vec::new()).await;
        for name in [
            "X-RequestType",
            "X-ResponseCode",
            "X-PendingPeriod",
            "X-ExpirationInfo",
            "Content-Type",
            "Cache-Control",
        ] {
            assert_eq!(
                header(&theirs, name),
                headers.get(name).and_then(|v| v.to_str().ok()),
                "{name}"
            );
        }
        let framed = exmux_mapihttp::http::parse_body(&body).unwrap();
        assert!(framed.body.is_empty(), "PING has no binary body");
        assert!(framed.headers.start_time.is_some());
    }
}
