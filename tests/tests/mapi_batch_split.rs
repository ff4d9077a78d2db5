//! ROP batches that do not fit in one Execute, against the emulator on loopback. Request
//! buffers over 32 KiB are split before sending. A response that the server ends with
//! RopBufferTooSmall, because of its own output limit or the client's MaxRopOut, is
//! continued with only the requests it did not process.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::Arc;
use std::time::Duration;

use exmux_core::auth::Credentials;
use exmux_core::http::{HttpOptions, ProxySetting};
use exmux_core::{ManualClock, Secret};
use exmux_emulator::mapi::{MapiFrontEnd, MapiOptions, legacy_dn};
use exmux_emulator::server::{Emulator, EmulatorHandle, EmulatorOptions};
use exmux_emulator::store::{ListOptions, NewItem, NewItemContent, WellKnownFolder};
use exmux_mapihttp::ids::ObjectId;
use exmux_mapihttp::prop::{PropTag, PropValue, RowCell, TaggedValue, tags};
use exmux_mapihttp::rop::{ResponseBody, RopRequest};
use exmux_mapihttp::session::{
    Batch, BatchResult, HandleRef, MapiSession, Replay, SessionConfig, SessionError,
};

struct Rig {
    emulator: EmulatorHandle,
    front: Arc<MapiFrontEnd>,
    clock: ManualClock,
}

/// Starts an emulator whose Execute responses carry at most `server_limit` bytes of ROP
/// output.
async fn rig(server_limit: u32) -> Rig {
    let clock = ManualClock::new(1_800_000_000_000);
    let emulator = Emulator::start(EmulatorOptions {
        tls: false,
        clock: Arc::new(clock.clone()),
        ..EmulatorOptions::default()
    })
    .await
    .unwrap();
    let mut options = MapiOptions::default();
    options.max_rop_out = server_limit;
    let front = MapiFrontEnd::mount(&emulator, options);
    Rig {
        emulator,
        front,
        clock,
    }
}

fn session(rig: &Rig, max_rop_out: u32) -> MapiSession {
    let mut config = SessionConfig::new(
        rig.emulator.mapi_emsmdb_url(),
        legacy_dn("user1@example.test"),
        Credentials::Basic {
            username: "user1@example.test".to_owned(),
            password: Secret::new("password1"),
        },
        HttpOptions {
            proxy: ProxySetting::Disabled,
            ..HttpOptions::default()
        }
        .build_client()
        .unwrap(),
    );
    config.clock = Arc::new(rig.clock.clone());
    config.retry_delay = Duration::from_millis(5);
    config.max_rop_out = max_rop_out;
    MapiSession::new(config)
}

fn deliver(rig: &Rig, subject: &str, body: &str) -> ObjectId {
    let mut store = rig.emulator.store().lock().unwrap();
    let session = store.open_session("delivery");
    let inbox = store.well_known_folder(WellKnownFolder::Inbox).unwrap();
    let mime = format!(
        "From: Sender <sender@example.test>\r\nTo: User One <user1@example.test>\r\nSubject: {subject}\r\nDate: Fri, 04 Dec 2026 12:00:00 +0000\r\n\r\n{body}\r\n"
    );
    let created = store
        .create_item(
            session,
            inbox,
            NewItem {
                content: NewItemContent::Mime(mime.into_bytes()),
                ..NewItem::default()
            },
        )
        .unwrap();
    ObjectId(created.id.to_u64())
}

fn inbox_subjects(rig: &Rig) -> Vec<String> {
    let store = rig.emulator.store().lock().unwrap();
    let inbox = store.well_known_folder(WellKnownFolder::Inbox).unwrap();
    let page = store
        .list_items(
            inbox,
            ListOptions {
                max_entries: usize::MAX,
                ..ListOptions::default()
            },
        )
        .unwrap();
    let mut subjects: Vec<String> = page
        .items
        .iter()
        .map(|item| item.props.subject.clone())
        .collect();
    subjects.sort();
    subjects
}

/// Builds one batch that opens every message and reads its subject, and returns the
/// batch with the index of each RopGetPropertiesSpecific and each message's output slot.
fn read_subjects_batch(inbox: ObjectId, messages: &[ObjectId]) -> (Batch, Vec<(usize, u8)>) {
    let mut batch = Batch::new();
    let logon = batch.input(HandleRef::Logon);
    let mut reads = Vec::new();
    for message in messages {
        let slot = batch.output();
        batch.push(RopRequest::OpenMessage {
            logon_id: 0,
            input_handle: logon,
            output_handle: slot,
            code_page_id: 0x0FFF,
            folder_id: inbox,
            open_mode_flags: 0,
            message_id: *message,
        });
        let get = batch.push(RopRequest::GetPropertiesSpecific {
            logon_id: 0,
            input_handle: slot,
            property_size_limit: 0,
            want_unicode: 1,
            tags: vec![tags::PID_TAG_SUBJECT],
        });
        reads.push((get, slot));
    }
    (batch, reads)
}

fn subject_of(result: &BatchResult, index: usize) -> String {
    let rop = result.result(index).expect("a response for every request");
    assert_eq!(rop.return_value, 0, "request {index} failed");
    let ResponseBody::PropertyRow(row) = &rop.body else {
        panic!(
            "request {index} did not return a property row: {:?}",
            rop.body
        );
    };
    match row.cells.first() {
        Some(RowCell::Value(PropValue::Unicode(subject))) => subject.clone(),
        other => panic!("request {index} returned {other:?} for the subject"),
    }
}

#[tokio::test]
async fn buffer_too_small_continues_reads() {
    let rig = rig(1024).await;
    let subjects: Vec<String> = (0..30).map(|i| format!("message number {i:02}")).collect();
    let messages: Vec<ObjectId> = subjects.iter().map(|s| deliver(&rig, s, "body")).collect();
    let session = session(&rig, 0x40000);
    let info = session.connect().await.unwrap();

    let (batch, reads) = read_subjects_batch(info.inbox(), &messages);
    let (executes, too_small) = rig.front.execute_counts();
    let result = session
        .execute("read subjects", &batch, Replay::Safe)
        .await
        .unwrap();

    for ((get, slot), subject) in reads.iter().zip(&subjects) {
        assert_eq!(&subject_of(&result, *get), subject);
        assert!(result.handle(*slot).is_some(), "message slot {slot} empty");
    }
    let (executes_after, too_small_after) = rig.front.execute_counts();
    assert!(
        executes_after - executes > 1,
        "one Execute carried the batch"
    );
    assert!(too_small_after - too_small >= 1, "no RopBufferTooSmall");
    assert_eq!(session.reconnect_count(), 0);
}

#[tokio::test]
async fn client_max_rop_out_splits_response() {
    // The server allows 64 KiB, the client asks for at most 512 bytes per response.
    let rig = rig(u32::from(u16::MAX)).await;
    let subjects: Vec<String> = (0..20).map(|i| format!("client limit {i:02}")).collect();
    let messages: Vec<ObjectId> = subjects.iter().map(|s| deliver(&rig, s, "body")).collect();
    let session = session(&rig, 512);
    let info = session.connect().await.unwrap();

    let (batch, reads) = read_subjects_batch(info.inbox(), &messages);
    let (_, too_small) = rig.front.execute_counts();
    let result = session
        .execute("read subjects", &batch, Replay::Safe)
        .await
        .unwrap();

    for ((get, _), subject) in reads.iter().zip(&subjects) {
        assert_eq!(&subject_of(&result, *get), subject);
    }
    let (_, too_small_after) = rig.front.execute_counts();
    assert!(too_small_after - too_small >= 1, "no RopBufferTooSmall");
}

#[tokio::test]
async fn write_batch_split_runs_each_once() {
    // Writes run only while 256 bytes of output are free, so a few fit per response.
    let rig = rig(400).await;
    let session = session(&rig, 0x40000);
    let info = session.connect().await.unwrap();
    let before = inbox_subjects(&rig);

    let mut batch = Batch::new();
    let logon = batch.input(HandleRef::Logon);
    let mut saves = Vec::new();
    let wanted: Vec<String> = (0..24).map(|i| format!("created {i:02}")).collect();
    for subject in &wanted {
        let slot = batch.output();
        batch.push(RopRequest::CreateMessage {
            logon_id: 0,
            input_handle: logon,
            output_handle: slot,
            code_page_id: 0x0FFF,
            folder_id: info.inbox(),
            associated: false,
        });
        batch.push(RopRequest::SetProperties {
            logon_id: 0,
            input_handle: slot,
            values: vec![TaggedValue {
                tag: tags::PID_TAG_SUBJECT,
                value: PropValue::Unicode(subject.clone()),
            }],
        });
        saves.push(batch.push(RopRequest::SaveChangesMessage {
            logon_id: 0,
            response_handle: slot,
            input_handle: slot,
            save_flags: 0x02,
        }));
    }
    let (executes, _) = rig.front.execute_counts();
    let result = session
        .execute("create messages", &batch, Replay::Never)
        .await
        .unwrap();
    let (executes_after, _) = rig.front.execute_counts();
    assert!(
        executes_after - executes > 1,
        "one Execute carried the batch"
    );

    for save in &saves {
        let rop = result.result(*save).expect("a response for every save");
        assert_eq!(rop.return_value, 0, "save {save} failed");
    }
    let mut expected = before;
    expected.extend(wanted);
    expected.sort();
    assert_eq!(inbox_subjects(&rig), expected);
}

#[tokio::test]
async fn request_over_32k_is_split() {
    let rig = rig(u32::from(u16::MAX)).await;
    let session = session(&rig, 0x40000);
    let info = session.connect().await.unwrap();

    // 60 requests of about 600 bytes each: 36 KB, over the 32 KiB of one request.
    let columns: Vec<PropTag> = (0..150u32)
        .map(|i| PropTag(((0x6700 + i) << 16) | 0x0003))
        .collect();
    let mut batch = Batch::new();
    let logon = batch.input(HandleRef::Logon);
    let folder = batch.output();
    batch.push(RopRequest::OpenFolder {
        logon_id: 0,
        input_handle: logon,
        output_handle: folder,
        folder_id: info.inbox(),
        open_mode_flags: 0,
    });
    let reads: Vec<usize> = (0..60)
        .map(|_| {
            batch.push(RopRequest::GetPropertiesSpecific {
                logon_id: 0,
                input_handle: folder,
                property_size_limit: 0,
                want_unicode: 1,
                tags: columns.clone(),
            })
        })
        .collect();
    let (executes, too_small) = rig.front.execute_counts();
    let result = session
        .execute("read folder properties", &batch, Replay::Safe)
        .await
        .unwrap();
    let (executes_after, too_small_after) = rig.front.execute_counts();
    assert_eq!(executes_after - executes, 2, "expected two request buffers");
    assert_eq!(too_small_after, too_small);

    for read in reads {
        let rop = result.result(read).expect("a response for every request");
        assert_eq!(rop.return_value, 0, "request {read} failed");
        let ResponseBody::PropertyRow(row) = &rop.body else {
            panic!("request {read} did not return a property row");
        };
        assert_eq!(row.cells.len(), columns.len());
    }
}

#[tokio::test]
async fn oversized_single_response_is_typed_error() {
    let rig = rig(300).await;
    let big = "x".repeat(2000);
    let message = deliver(&rig, "large body", &big);
    let session = session(&rig, 0x40000);
    let info = session.connect().await.unwrap();

    let mut batch = Batch::new();
    let logon = batch.input(HandleRef::Logon);
    let slot = batch.output();
    batch.push(RopRequest::OpenMessage {
        logon_id: 0,
        input_handle: logon,
        output_handle: slot,
        code_page_id: 0x0FFF,
        folder_id: info.inbox(),
        open_mode_flags: 0,
        message_id: message,
    });
    batch.push(RopRequest::GetPropertiesSpecific {
        logon_id: 0,
        input_handle: slot,
        property_size_limit: 0,
        want_unicode: 1,
        tags: vec![tags::PID_TAG_BODY],
    });
    let (_, too_small) = rig.front.execute_counts();
    let error = session
        .execute("read body", &batch, Replay::Safe)
        .await
        .unwrap_err();
    // The first response names SizeNeeded. The second request, sent with that
    // MaxRopOut, is still cut by the server's own limit, and the session stops there.
    let (_, too_small_after) = rig.front.execute_counts();
    assert_eq!(too_small_after - too_small, 2);

    match error {
        SessionError::BufferTooSmall {
            size_needed,
            max_rop_out,
            ..
        } => {
            assert!(usize::from(size_needed) > big.len(), "{size_needed}");
            assert!(max_rop_out >= u32::from(size_needed), "{max_rop_out}");
        }
        other => panic!("expected BufferTooSmall, got {other}"),
    }
}
